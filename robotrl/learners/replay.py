"""In-memory replay for off-policy learners: a ring buffer over dict observations and RLPD's symmetric sampler.

A batch is a plain dict ``{"obs": {key: array}, "action", "reward", "next_obs": {key: array}, "done"}`` of numpy
arrays (``done`` = terminated, never truncation: a time-limit cut still bootstraps). :func:`to_torch` moves it to
a device; the learner only sees that dict, so any data source (this buffer, the zarr episode store, a network
stream) can feed it.

An *episode* (what demos and the episode store hand over) is ``{"obs": {key: (T+1, ...)}, "action": (T, A),
"reward": (T,), "terminated": (T,)}``: T+1 observations because every transition needs its next one.

Memory: every observation (camera frame) is stored once. A row holds one observation and, when a transition
starts there, its action, reward, done and the row of its next observation (``next_index``: the row itself or
the following one). An episode of T steps fills T+1 consecutive rows; its last row (the final observation) starts
no transition, so the next_obs of an episode's last step is always that episode's final observation, never the
next episode's first. ``capacity`` rows at most: ``nbytes <= capacity * bytes_per_transition``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Protocol

import gymnasium as gym
import numpy as np
import torch

from robotrl.learners.networks import as_obs_dict, dict_space

Batch = dict[str, Any]
Episode = dict[str, Any]


class FrameEncoder(Protocol):
    """A fixed function of one observation key applied as frames enter the replay (e.g. a frozen CNN): the
    replay stores (and samples) its output for that key instead of the raw frames."""

    space: gym.spaces.Box  # what it outputs for one frame

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(N, *input shape) -> (N, *space.shape)."""
        ...


class ReplayBuffer:
    """Fixed-capacity ring of observation rows; the oldest rows (and the transitions that start or end there) are
    overwritten first. Images stay uint8 (4x smaller than float32 and converted on the learner's device).

    ``encoders``: observation key -> :class:`FrameEncoder`, computed once per stored frame (SAC's frozen-encoder
    feature cache); batches then hold the encoder's output under that key."""

    def __init__(self, obs_space: gym.Space, action_dim: int, capacity: int = 100_000,
                 encoders: Mapping[str, FrameEncoder] | None = None):
        space = dict_space(obs_space)
        if int(capacity) < 2:
            raise ValueError(f"replay capacity must be >= 2 rows, got {capacity}")
        self.capacity = int(capacity)
        self.encoders = dict(encoders or {})
        unknown = set(self.encoders) - set(space.spaces)
        if unknown:
            raise ValueError(f"replay encoders for unknown observation keys {sorted(unknown)}")
        self.input_shapes = {k: s.shape for k, s in space.spaces.items()}  # what add() and episodes hand over
        stored = {k: self.encoders[k].space if k in self.encoders else s for k, s in space.spaces.items()}
        # np.zeros maps pages lazily: a large capacity costs memory only as it fills.
        self.obs = {k: np.zeros((self.capacity, *s.shape), s.dtype) for k, s in stored.items()}
        self.action = np.zeros((self.capacity, action_dim), np.float32)
        self.reward = np.zeros(self.capacity, np.float32)
        self.done = np.zeros(self.capacity, np.float32)
        self.next_index = np.zeros(self.capacity, np.int64)  # row of the next observation of row i's transition
        # The rows that start a transition, packed at the front of `_valid` (uniform sampling with one draw);
        # `_slot[row]` is the row's place in it, -1 when the row starts none.
        self._valid = np.zeros(self.capacity, np.int64)
        self._slot = np.full(self.capacity, -1, np.int64)
        self.size = 0  # transitions held
        self.pos = 0  # next row to write
        self.rows = 0  # rows ever filled (<= capacity)
        self._open: dict | None = None  # the raw observation in row pos-1 when it starts no transition yet

    @property
    def bytes_per_transition(self) -> int:
        """Bytes one row costs (an observation, its transition fields and the index arrays)."""
        return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in self._arrays())

    @property
    def nbytes(self) -> int:
        """Bytes of every array at full capacity (pages are mapped as rows fill)."""
        return sum(a.nbytes for a in self._arrays())

    def _arrays(self) -> list[np.ndarray]:
        return [*self.obs.values(), self.action, self.reward, self.done, self.next_index, self._valid, self._slot]

    def __len__(self) -> int:
        return self.size

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _drop(self, row: int) -> None:
        """Row ``row`` no longer starts a transition."""
        slot = self._slot[row]
        if slot < 0:
            return
        last = self._valid[self.size - 1]
        self._valid[slot], self._slot[last] = last, slot
        self._slot[row] = -1
        self.size -= 1

    def _keep(self, row: int) -> None:
        self._valid[self.size], self._slot[row] = row, self.size
        self.size += 1

    def _claim(self, n: int) -> np.ndarray:
        """The next ``n`` rows of the ring (n <= capacity), emptied: every transition that starts in them or ends
        in them is dropped."""
        rows = (self.pos + np.arange(n)) % self.capacity
        for row in rows.tolist():
            self._drop(row)
        # The row before the first starts a transition ending in it only if that transition is a self-loop or
        # points into `rows`: it was written last, so it never points past pos. Nothing else can point in.
        self.pos = int((self.pos + n) % self.capacity)
        self.rows = min(self.rows + n, self.capacity)
        self._open = None
        return rows

    def _write_obs(self, rows: np.ndarray, obs: Mapping[str, np.ndarray]) -> None:
        for k, buf in self.obs.items():
            buf[rows] = self.encoders[k](obs[k]) if k in self.encoders else obs[k]

    # -- adding --------------------------------------------------------------------------------------------
    def add(self, obs, action, reward: float, next_obs, terminated: bool) -> None:
        """One transition. ``obs`` reuses the previous transition's stored ``next_obs`` when equal to it (a
        step-by-step episode stores each observation once); ``next_obs`` equal to ``obs`` is not stored again."""
        obs, next_obs = as_obs_dict(obs), as_obs_dict(next_obs)
        same_next = _equal(obs, next_obs)
        if self._open is not None and _equal(self._open, obs):
            row = (self.pos - 1) % self.capacity
            if not same_next:
                nxt = int(self._claim(1)[0])
                self._write_obs(np.array([nxt]), {k: np.asarray(v)[None] for k, v in next_obs.items()})
            else:
                nxt = row
                self._open = None
        else:
            rows = self._claim(1 if same_next else 2)
            self._write_obs(rows, {k: np.stack([np.asarray(obs[k]), np.asarray(next_obs[k])])[: len(rows)]
                                   for k in self.obs})
            row, nxt = int(rows[0]), int(rows[-1])
        self.action[row], self.reward[row], self.done[row] = action, reward, float(terminated)
        self.next_index[row] = nxt
        self._keep(row)
        self._open = None if same_next else {k: np.array(v, copy=True) for k, v in next_obs.items()}

    def add_episode(self, episode: Episode) -> None:
        """T transitions from T+1 observations in T+1 consecutive rows (the last ``capacity - 1`` transitions when
        the episode is longer than the buffer)."""
        obs = as_obs_dict(episode["obs"])
        action = np.asarray(episode["action"])
        self.check(obs, action)
        start = max(0, len(action) - (self.capacity - 1))
        t = len(action) - start
        if t <= 0:
            return
        rows = self._claim(t + 1)
        self._write_obs(rows, {k: np.asarray(v)[start: start + t + 1] for k, v in obs.items()})
        head = rows[:-1]
        self.action[head] = action[start:]
        self.reward[head] = np.asarray(episode["reward"])[start:]
        self.done[head] = np.asarray(episode["terminated"])[start:]
        self.next_index[head] = rows[1:]
        n = self.size
        self._valid[n: n + t], self._slot[head] = head, np.arange(n, n + t)
        self.size += t

    def check(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """ValueError naming the first observation or action that does not fit this buffer (rows of ``obs`` and
        ``action`` are steps), e.g. for an episode recorded on another task."""
        for key, shape in self.input_shapes.items():
            if key not in obs:
                raise ValueError(f"observation {key!r} missing (the episode has {', '.join(sorted(obs))})")
            if obs[key].shape[1:] != shape:
                raise ValueError(f"observation {key!r} has shape {obs[key].shape[1:]}, not {shape}")
        if action.shape[1:] != self.action.shape[1:]:
            raise ValueError(f"actions have shape {action.shape[1:]}, not {self.action.shape[1:]}")

    # -- sampling ------------------------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> Batch:
        """``n`` transitions uniformly with replacement."""
        if self.size == 0:
            raise ValueError("sample from an empty ReplayBuffer")
        idx = self._valid[rng.integers(0, self.size, n)]
        nxt = self.next_index[idx]
        return {"obs": {k: v[idx] for k, v in self.obs.items()}, "action": self.action[idx], "reward": self.reward[idx],
                "next_obs": {k: v[nxt] for k, v in self.obs.items()}, "done": self.done[idx]}

    def transitions(self) -> np.ndarray:
        """The rows that start a transition (in no particular order)."""
        return self._valid[: self.size].copy()


def _equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable (/proc/meminfo, else sysconf), capped by a cgroup v2
    memory limit; None where neither is known."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        if limit != "max":
            used = int(open("/sys/fs/cgroup/memory.current").read())
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


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
