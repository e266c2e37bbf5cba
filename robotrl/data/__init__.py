"""The one data format: a zarr episode store (dataset, replay source and recording format at once), and the
samplers over it (transitions for off-policy replay, windows for sequence policies)."""

from robotrl.data.sampler import WindowSampler, split_episodes
from robotrl.data.store import (INTERVENTION_SOURCES, LAYOUT_VERSION, EpisodeMeta, EpisodeRecorder, EpisodeStore, Judged,
                                Label, StoreError, step_fields)

__all__ = ["INTERVENTION_SOURCES", "LAYOUT_VERSION", "EpisodeMeta", "EpisodeRecorder", "EpisodeStore", "Judged", "Label",
           "StoreError", "WindowSampler", "split_episodes", "step_fields"]
