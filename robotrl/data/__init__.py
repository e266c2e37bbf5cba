"""The one data format: a zarr episode store (dataset, replay source and recording format at once)."""

from robotrl.data.store import (INTERVENTION_SOURCES, LAYOUT_VERSION, EpisodeMeta, EpisodeRecorder, EpisodeStore, Judged,
                                Label, StoreError, step_fields)

__all__ = ["INTERVENTION_SOURCES", "LAYOUT_VERSION", "EpisodeMeta", "EpisodeRecorder", "EpisodeStore", "Judged", "Label",
           "StoreError", "step_fields"]
