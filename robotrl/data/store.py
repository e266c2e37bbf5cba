"""EpisodeStore: episodes in one zarr group, laid out like diffusion_policy's ReplayBuffer.

    data/<key>          every per-step array, episodes concatenated along time, chunked along time only
                        (observation keys with '/' -> '.', e.g. data/state.ee_pos, data/images.wrist)
    data/action, data/reward, data/is_terminal, data/is_last, data/intervention, data/success (per-step label:
                        the task reported success after this step; what reward classifiers learn from)
    meta/episode_ends   end row (exclusive) of every complete episode: the commit record
    meta/<field>        one row per episode: source, success, return, task, robot, seed, twin

Each episode has T + 1 rows: row t holds observation t and the action, reward and flags of step t; the last
row holds the final observation with ``is_last`` set (as in RLDS). A transition's next observation is always
the next row. Zarr v2 format, so zarr 2 readers (diffusion_policy) open it too.

Crash safety: an episode is written in full -- data rows, then its metadata -- before its end is appended to
meta/episode_ends, and zarr writes every file atomically (temp file + rename). A writer killed at any point
leaves every committed episode intact; rows past the last committed end are ignored by readers and trimmed
by the next writer. A reader sees only complete episodes and picks up new ones with ``refresh()``.

One writer at a time: mode "a" holds an exclusive lock (``.writer.lock``, flock) for the store object's life,
because a second writer's start-up trim would cut the rows the first one is committing. The kernel drops the
lock when its process dies, so a killed writer never blocks recovery.
"""

from __future__ import annotations

import dataclasses
import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numcodecs
import numpy as np
import zarr

SOURCES = ("demo", "intervention", "online", "eval")
Source = Literal["demo", "intervention", "online", "eval"]
STEP_KEYS = ("action", "reward", "is_terminal", "is_last", "intervention", "success")
CHUNK_BYTES = 2 << 20  # ~2 MB chunks along time, as diffusion_policy recommends
IMAGE_COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.NOSHUFFLE)
VECTOR_COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


class StoreError(RuntimeError):
    """A store that cannot be opened or appended to as asked; the message names the path and the problem."""


@dataclass(frozen=True)
class EpisodeMeta:
    source: Source
    task: str
    robot: str = ""
    success: bool = False
    ret: float = 0.0
    seed: int = -1
    twin: bool = True  # recorded in the MuJoCo twin (False: on the real robot)


_META_DTYPES = {"source": "<U16", "task": "<U64", "robot": "<U32", "success": "bool", "ret": "float64", "seed": "int64", "twin": "bool"}


def data_key(obs_key: str) -> str:
    return obs_key.replace("/", ".")


def obs_key(data_key_: str) -> str:
    return data_key_.replace(".", "/")


class EpisodeStore:
    """Open (or create, with mode "a") an episode store at ``path``."""

    def __init__(self, path: str | Path, mode: Literal["r", "a"] = "r"):
        self.path, self.mode = Path(path), mode
        if mode == "r" and not self.path.exists():
            raise StoreError(f"{self.path}: no episode store here (record one with `robotrl record --out {self.path}`)")
        try:
            self.root = zarr.open_group(str(self.path), mode=mode, zarr_format=2)
        except Exception as exc:  # zarr raises several types for a folder that is not a zarr group
            raise StoreError(f"{self.path}: not a zarr episode store ({type(exc).__name__}: {exc})") from exc
        self._lock = self._lock_writer() if mode == "a" else None
        if mode == "a" and "meta" not in self.root:
            self.root.require_group("data")
            meta = self.root.require_group("meta")
            meta.create_array("episode_ends", shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
            for name, dtype in _META_DTYPES.items():
                meta.create_array(name, shape=(0,), chunks=(4096,), dtype=dtype)
            self.root.attrs["format"] = "robotrl.episode_store/1"
        if "meta" not in self.root or "episode_ends" not in self.root["meta"] or "data" not in self.root:
            raise StoreError(f"{self.path}: not an episode store: meta/episode_ends or data/ is missing")
        self.refresh()
        if mode == "a":
            self._trim_uncommitted()

    def _lock_writer(self):
        lock = open(self.path / ".writer.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreError(f"{self.path}: another EpisodeStore is writing to this store; open it read-only "
                             "(mode='r') or close the other writer first") from None
        return lock

    def close(self) -> None:
        """Release the writer lock (also released when the object is collected or the process exits)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- reading -------------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read what is committed (a writer in another process may have added episodes)."""
        ends = np.asarray(self.root["meta/episode_ends"][:])
        # A writer killed between growing episode_ends and writing its value leaves a non-increasing tail.
        valid = len(ends)
        while valid and (ends[valid - 1] <= (ends[valid - 2] if valid > 1 else 0)):
            valid -= 1
        self.episode_ends = ends[:valid]
        self._data = {k: self.root["data"][k] for k in self.root["data"].array_keys()}
        for name, arr in self._data.items():
            if arr.shape[0] < self.n_steps:
                raise StoreError(f"{self.path}: data/{name} has {arr.shape[0]} rows but episodes end at {self.n_steps}: the store is corrupt")

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def n_steps(self) -> int:
        """Rows of complete episodes (each episode has one more row than steps)."""
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    @property
    def keys(self) -> list[str]:
        return sorted(self._data)

    def episode_slice(self, i: int) -> slice:
        start = int(self.episode_ends[i - 1]) if i > 0 else 0
        return slice(start, int(self.episode_ends[i]))

    def episode(self, i: int) -> dict[str, np.ndarray]:
        """All rows of complete episode ``i`` (negative indices count from the end)."""
        if not -self.n_episodes <= i < self.n_episodes:
            raise IndexError(f"{self.path}: episode {i} out of range ({self.n_episodes} complete episodes)")
        sl = self.episode_slice(i % self.n_episodes)
        return {k: np.asarray(a[sl]) for k, a in self._data.items()}

    def meta(self, i: int) -> EpisodeMeta:
        m = self.root["meta"]
        return EpisodeMeta(**{name: _scalar(m[name][i]) for name in _META_DTYPES})

    def metas(self) -> list[EpisodeMeta]:
        m = self.root["meta"]
        cols = {name: np.asarray(m[name][: self.n_episodes]) for name in _META_DTYPES}
        return [EpisodeMeta(**{n: _scalar(cols[n][i]) for n in cols}) for i in range(self.n_episodes)]

    def episodes(self, sources: tuple[str, ...] | None = None) -> Iterator[tuple[EpisodeMeta, dict[str, np.ndarray]]]:
        for i, meta in enumerate(self.metas()):
            if sources is None or meta.source in sources:
                yield meta, self.episode(i)

    # -- writing -------------------------------------------------------------------------------------------
    def add_episode(self, rows: dict[str, np.ndarray], meta: EpisodeMeta) -> int:
        """Append one complete episode (``rows``: data key -> array with T + 1 rows). Returns its index."""
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to add episodes")
        if meta.source not in SOURCES:
            raise StoreError(f"{self.path}: episode source {meta.source!r} not allowed; allowed: {', '.join(SOURCES)}")
        lengths = {k: len(v) for k, v in rows.items()}
        if len(set(lengths.values())) != 1:
            raise StoreError(f"{self.path}: episode arrays differ in length: {lengths}")
        self._check_schema(rows)
        start = self.n_steps
        n = next(iter(lengths.values()))
        for key, value in rows.items():
            arr = self._data[key] if key in self._data else self._create(key, np.asarray(value))
            arr.resize((start + n, *arr.shape[1:]))
            arr[start:] = value
        m = self.root["meta"]
        i = self.n_episodes
        for name in _META_DTYPES:
            m[name].resize((i + 1,))
            m[name][i] = getattr(meta, name)
        ends = m["episode_ends"]
        ends.resize((i + 1,))
        ends[i] = start + n  # the commit: readers see the episode from here on
        self.episode_ends = np.append(self.episode_ends, start + n)
        return i

    def _create(self, key: str, value: np.ndarray) -> zarr.Array:
        row_bytes = max(1, value[0].nbytes)
        chunk_rows = int(np.clip(CHUNK_BYTES // row_bytes, 1, 65536))
        compressor = IMAGE_COMPRESSOR if value.dtype == np.uint8 and value.ndim >= 3 else VECTOR_COMPRESSOR
        arr = self.root["data"].create_array(
            key, shape=(0, *value.shape[1:]), chunks=(chunk_rows, *value.shape[1:]), dtype=value.dtype, compressors=compressor
        )
        self._data[key] = arr
        return arr

    def _check_schema(self, rows: dict[str, np.ndarray]) -> None:
        if not self._data:
            return
        missing, extra = set(self._data) - set(rows), set(rows) - set(self._data)
        if missing or extra:
            raise StoreError(f"{self.path}: episode keys do not match the store: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for key, value in rows.items():
            arr, value = self._data[key], np.asarray(value)
            if arr.shape[1:] != value.shape[1:] or arr.dtype != value.dtype:
                raise StoreError(
                    f"{self.path}: data/{key} holds {arr.dtype}{list(arr.shape[1:])} per step, "
                    f"the new episode has {value.dtype}{list(value.shape[1:])}"
                )

    def _trim_uncommitted(self) -> None:
        """Drop rows and metadata a killed writer left past the last committed episode."""
        end, n = self.n_steps, self.n_episodes
        for arr in self._data.values():
            if arr.shape[0] > end:
                arr.resize((end, *arr.shape[1:]))
        m = self.root["meta"]
        for name in (*_META_DTYPES, "episode_ends"):
            if m[name].shape[0] > n:
                m[name].resize((n,))

    def summary(self) -> dict:
        metas = self.metas()
        by_source = {s: sum(m.source == s for m in metas) for s in SOURCES}
        return {
            "path": str(self.path),
            "episodes": self.n_episodes,
            "steps": self.n_steps - self.n_episodes,
            "by_source": {k: v for k, v in by_source.items() if v},
            "success_rate": float(np.mean([m.success for m in metas])) if metas else None,
            "tasks": sorted({m.task for m in metas}),
            "keys": {k: f"{a.dtype}{list(a.shape[1:])}" for k, a in sorted(self._data.items())},
            "bytes_on_disk": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
        }


class EpisodeRecorder:
    """Collects one episode step by step; ``finish`` writes it to the store in one commit."""

    def __init__(self, store: EpisodeStore):
        self.store = store
        self._rows: dict[str, list] | None = None

    def start(self, obs: dict[str, np.ndarray]) -> None:
        self._rows = {data_key(k): [np.asarray(v)] for k, v in obs.items()}
        self._steps: dict[str, list] = {k: [] for k in STEP_KEYS}

    def step(self, action: np.ndarray, reward: float, next_obs: dict[str, np.ndarray], terminated: bool,
             intervention: bool = False, success: bool = False) -> None:
        if self._rows is None:
            raise RuntimeError("EpisodeRecorder.step before start")
        for k, v in next_obs.items():
            self._rows[data_key(k)].append(np.asarray(v))
        s = self._steps
        s["action"].append(np.asarray(action, np.float32))
        s["reward"].append(np.float32(reward))
        s["is_terminal"].append(bool(terminated))
        s["is_last"].append(False)
        s["intervention"].append(bool(intervention))
        s["success"].append(bool(success))

    def finish(self, meta: EpisodeMeta) -> int:
        if self._rows is None or not self._steps["action"]:
            raise RuntimeError("EpisodeRecorder.finish with no steps recorded")
        s = self._steps
        # The final row carries the last observation; its step fields are padding (is_last marks it).
        s["action"].append(np.zeros_like(s["action"][0]))
        s["reward"].append(np.float32(0))
        s["is_terminal"].append(s["is_terminal"][-1])
        s["is_last"].append(True)
        s["intervention"].append(False)
        # Row t holds observation t; the success flag of step t describes observation t + 1, so shift by one:
        # each row's label then belongs to its own observation (row 0, the reset state, is not a success).
        s["success"] = [False, *s["success"]]
        rows = {k: np.stack(v) for k, v in {**self._rows, **s}.items()}
        self._rows = None
        self.last_rows = rows  # a learner in the same process ingests these without re-reading the store
        return self.store.add_episode(rows, meta)


def transitions(rows: dict[str, np.ndarray]) -> dict:
    """One stored episode as the learner's episode dict: observations (T + 1 rows, '/' keys) and T steps."""
    steps = slice(0, len(rows["action"]) - 1)
    return {
        "obs": {obs_key(k): v for k, v in rows.items() if k not in STEP_KEYS},
        "action": rows["action"][steps],
        "reward": rows["reward"][steps],
        "terminated": rows["is_terminal"][steps],
        "intervention": rows["intervention"][steps],
    }


def _scalar(x):
    return x.item() if hasattr(x, "item") else x
