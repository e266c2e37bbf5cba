"""The one data format: a zarr episode store (dataset, replay source and recording format at once)."""

from robotrl.data.store import EpisodeMeta, EpisodeRecorder, EpisodeStore, StoreError

__all__ = ["EpisodeMeta", "EpisodeRecorder", "EpisodeStore", "StoreError"]
