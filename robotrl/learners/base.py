"""The Algorithm seam: what the learner loop (robotrl.runtime.learner), the run folder and the ROS learner node call,
whatever the algorithm (SAC, behaviour cloning, ...). An algorithm owns its networks and optimizers and hands out
one :class:`~robotrl.policies.base.Policy` (what the actor runs and what travels as weights); it declares what it
learns from, and the Learner samples that for it:

- ``samples``: "transitions" (obs, action, reward, next_obs, done; see robotrl.learners.replay) or "sequences"
  (windows of consecutive steps, for action chunks; not implemented by the Learner yet).
- ``replay``: "mixed" (RLPD: each batch half offline — demos and intervened steps — half online, the actor's own
  episodes) or "offline" (demos and intervened steps only: imitation).
- ``batch_size``: transitions one ``update()`` call takes (one call per env step in the runtime); ``min_replay``:
  transitions the replay must hold before the first call.

Configs: one YAML per algorithm, ``configs/learners/<name>.yaml``, validated by the algorithm's strict pydantic
model (a :class:`LearnerConfig`); :func:`make_algorithm` builds one by name from that file and overrides.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Mapping, Protocol, runtime_checkable

import gymnasium as gym
import torch
from pydantic import Field

from robotrl.config import StrictModel
from robotrl.policies.base import Policy

Batch = dict[str, Any]


class LearnerConfig(StrictModel):
    """What every learner config has: where its tensors live and how many CPU threads it may use."""

    device: str = "auto"  # "auto": cuda when available, else cpu
    num_threads: int = Field(0, ge=0)  # torch CPU threads (process-wide); 0: default_threads()


@runtime_checkable
class Algorithm(Protocol):
    config: LearnerConfig
    obs_space: gym.spaces.Dict  # the spaces it was built for (a Box observation space becomes {"state": box})
    action_space: gym.spaces.Box
    policy: Policy  # what the actor runs; policy.state_dict() is what the learner ships as weights
    samples: Literal["transitions", "sequences"]
    replay: Literal["mixed", "offline"]
    batch_size: int  # transitions per update() call
    min_replay: int  # transitions in the replay before the first update()
    num_updates: int  # update() calls so far

    def update(self, batch: Batch) -> dict[str, float]:
        """Learn from one sampled batch of ``batch_size`` transitions; returns scalar statistics (TensorBoard)."""
        ...

    def counters(self) -> dict[str, int]:
        """Progress counts for metrics and the learner's progress file: ``updates`` (= num_updates) first, then any
        of its own (SAC: ``critic_updates``, from which the effective update-to-data ratio is reported)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume learning exactly: networks, optimizers, counters, RNG (a checkpoint's "agent")."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def default_threads() -> int:
    """Half the CPU cores, at least 1: a robot's computer always runs other processes (ROS nodes, cameras, the
    twin), and torch's default of one thread per core then fights them. Measured on 2 cores
    (bench/learner_threads.py): beside a competing load 1 thread ran 2.1x (state) and 2.3x (image learner) the
    updates/s of 2; on a quiet machine 2 threads ran only 1.4x and 1.7x those of 1."""
    return max(1, (os.cpu_count() or 2) // 2)


def resolve_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)

