"""In-memory replay for off-policy learners: a ring buffer over dict observations and RLPD's symmetric sampler.

A batch is a plain dict ``{"obs": {key: array}, "action", "reward", "next_obs": {key: array}, "done"}`` of numpy
arrays (``done`` = terminated, never truncation: a time-limit cut still bootstraps). :func:`to_torch` moves it to
a device; the learner only sees that dict, so any data source (this buffer, the zarr episode store, a network
stream) can feed it.

An *episode* (what demos and the episode store hand over) is ``{"obs": {key: (T+1, ...)}, "action": (T, A),
"reward": (T,), "terminated": (T,)}``: T+1 observations because every transition needs its next one.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch

from robotrl.learners.networks import as_obs_dict, dict_space

Batch = dict[str, Any]
Episode = dict[str, Any]


class ReplayBuffer:
    """Fixed-capacity ring buffer; the oldest transitions are overwritten first. Images stay uint8 (4x smaller
    than float32 and converted on the learner's device). Observations and next observations are stored
    separately: simple and always right across episode ends, at twice the image memory."""

    def __init__(self, obs_space: gym.Space, action_dim: int, capacity: int = 1_000_000):
        space = dict_space(obs_space)
        self.capacity = int(capacity)
        # np.zeros maps pages lazily: a large capacity costs memory only as it fills.
        self.obs = {k: np.zeros((self.capacity, *s.shape), s.dtype) for k, s in space.spaces.items()}
        self.next_obs = {k: np.zeros_like(v) for k, v in self.obs.items()}
        self.action = np.zeros((self.capacity, action_dim), np.float32)
        self.reward = np.zeros(self.capacity, np.float32)
        self.done = np.zeros(self.capacity, np.float32)
        self.pos = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward: float, next_obs, terminated: bool) -> None:
        obs, next_obs, i = as_obs_dict(obs), as_obs_dict(next_obs), self.pos
        for k in self.obs:
            self.obs[k][i] = obs[k]
            self.next_obs[k][i] = next_obs[k]
        self.action[i], self.reward[i], self.done[i] = action, reward, float(terminated)
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_episode(self, episode: Episode) -> None:
        obs = as_obs_dict(episode["obs"])
        self.check(obs, episode["action"])
        for t in range(len(episode["action"])):
            self.add({k: v[t] for k, v in obs.items()}, episode["action"][t], episode["reward"][t],
                     {k: v[t + 1] for k, v in obs.items()}, episode["terminated"][t])

    def check(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """ValueError naming the first observation or action that does not fit this buffer (rows of ``obs`` and
        ``action`` are steps), e.g. for an episode recorded on another task."""
        for key, buf in self.obs.items():
            if key not in obs:
                raise ValueError(f"observation {key!r} missing (the episode has {', '.join(sorted(obs))})")
            if obs[key].shape[1:] != buf.shape[1:]:
                raise ValueError(f"observation {key!r} has shape {obs[key].shape[1:]}, not {buf.shape[1:]}")
        if action.shape[1:] != self.action.shape[1:]:
            raise ValueError(f"actions have shape {action.shape[1:]}, not {self.action.shape[1:]}")

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """``n`` transitions uniformly with replacement."""
        if self.size == 0:
            raise ValueError("sample from an empty ReplayBuffer")
        idx = rng.integers(0, self.size, n)
        return {"obs": {k: v[idx] for k, v in self.obs.items()}, "action": self.action[idx], "reward": self.reward[idx],
                "next_obs": {k: v[idx] for k, v in self.next_obs.items()}, "done": self.done[idx]}


class MixedSampler:
    """RLPD's symmetric sampling: each batch takes ``round(n * ratio)`` transitions from the offline buffer
    (demos, and in HIL-SERL also every intervention) and the rest from the online buffer, interleaved so that
    every consecutive slice keeps the ratio too (SACAgent.update cuts a UTD batch into consecutive mini-batches;
    end to end, half of them would hold demos only and the actor would train on online states only). While one
    buffer is empty, the whole batch comes from the other."""

    def __init__(self, offline: ReplayBuffer, online: ReplayBuffer, ratio: float = 0.5):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"MixedSampler ratio must be in [0, 1], got {ratio}")
        self.offline, self.online, self.ratio = offline, online, ratio

    def __len__(self) -> int:
        return len(self.offline) + len(self.online)

    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        if len(self.offline) == 0 or len(self.online) == 0:
            return (self.online if len(self.online) else self.offline).sample(n, rng)
        k = int(round(n * self.ratio))
        if k == 0 or k == n:
            return (self.offline if k == n else self.online).sample(n, rng)
        # Rank each part's rows by their position within that part: sorting the ranks deals the two out evenly.
        spread = np.argsort(np.concatenate([(np.arange(k) + 0.5) / k, (np.arange(n - k) + 0.5) / (n - k)]), kind="stable")
        return take(concat(self.offline.sample(k, rng), self.online.sample(n - k, rng)), spread)


def concat(a: Batch, b: Batch) -> Batch:
    """Two batches one after the other (nested dicts included)."""
    return {k: concat(v, b[k]) if isinstance(v, Mapping) else np.concatenate([v, b[k]]) for k, v in a.items()}


def take(batch: Batch, index: np.ndarray) -> Batch:
    """The rows ``index`` of a (nested) batch."""
    return {k: take(v, index) if isinstance(v, Mapping) else v[index] for k, v in batch.items()}


def split(batch: Batch, k: int) -> list[Batch]:
    """``k`` equal consecutive mini-batches of a (nested) dict batch of tensors; views, no copies."""
    if k == 1:
        return [batch]
    parts = [{} for _ in range(k)]
    for key, value in batch.items():
        chunks = split(value, k) if isinstance(value, Mapping) else value.chunk(k)
        for part, chunk in zip(parts, chunks):
            part[key] = chunk
    return parts


def to_torch(batch: Batch, device: torch.device | str = "cpu") -> Batch:
    """numpy batch -> torch tensors on ``device`` (zero-copy on CPU; dtypes kept, so images move as uint8)."""
    return {k: to_torch(v, device) if isinstance(v, Mapping) else torch.as_tensor(v, device=device)
            for k, v in batch.items()}
