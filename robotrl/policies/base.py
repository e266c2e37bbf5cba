"""The Policy seam: what the actor, evaluation, the run folder and the ROS actor node call, whatever made the
policy (SAC, behaviour cloning, a scripted expert, random actions).

Observations are dicts (``state/<name>`` float32 vectors, ``images/<camera>`` uint8 HxWxC); actions are
normalized to [-1, 1]. A policy that keeps state across steps (an expert's phase, a chunk queue, frame history)
clears it in ``reset()``, which the runtime calls at every episode start; a stateless one does nothing there.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

Obs = Mapping[str, np.ndarray]


@runtime_checkable
class Policy(Protocol):
    def reset(self) -> None:
        """A new episode starts: forget per-episode state."""
        ...

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One action for one observation. ``deterministic``: the mode (evaluation) instead of a sample."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The weights (what a learner ships to an actor); {} for a policy without any."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class ChunkPolicy(Policy, Protocol):
    """A policy that predicts a chunk of future actions at once (action chunking). ``act`` still returns one
    action per control step, from a queue the policy refills itself, so safety filters, watchdogs and
    interventions stay per step; ``reset()`` (a takeover, a new episode) flushes the queue."""

    chunk_size: int

    def act_chunk(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """(chunk_size, action_dim) actions starting now."""
        ...


class Stateless:
    """Mixin for policies with no per-episode state and no weights."""

    def reset(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no weights, got {sorted(state)}")


class RandomPolicy(Stateless):
    """Uniform random actions from the action space (the warm-up of off-policy learners, a baseline)."""

    def __init__(self, action_space: gym.spaces.Box, seed: int | None = None):
        self.action_space = action_space
        if seed is not None:
            self.action_space.seed(seed)

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        return self.action_space.sample()


class Deterministic:
    """A policy that always acts with ``deterministic=True`` (its mode): how evaluation, rollouts and recordings run a
    trained policy. Weights and reset pass through."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        return self.policy.act(obs, deterministic=True)

    def state_dict(self) -> dict[str, Any]:
        return self.policy.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state)
