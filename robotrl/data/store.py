"""EpisodeStore: episodes in one zarr group, laid out like diffusion_policy's ReplayBuffer (layout version 2).

    data/<key>            observations, episodes concatenated along time, chunked along time only; the key is the
                          observation key under a lossless mapping (``data_key``): '/' -> '.', and '.', '%' and any
                          other character outside [A-Za-z0-9_-] -> %XX (UTF-8), so data/state.ee_pos holds
                          ``state/ee_pos`` and data/observation%2Estate holds LeRobot's ``observation.state``
    data/action, reward, is_terminal, is_last, intervention (bool: the executed action was not the policy's),
    data/intervention_source  uint8 per step: who acted (INTERVENTION_SOURCES; the code is the index, the array's
                          ``codes`` attribute lists them; 255 = not recorded, a layout 1 store's interventions)
    cost/<limit>          float32 per step: 1 where the task's safety limit was hit (``info["costs"]``)
    truth/success, truth/reward   the env's own judgement (Task.judge; ground truth in the twin). For evaluation
                          and benchmarks only: never a deployable reward or a policy input
    classifier/probability, classifier/success   a reward classifier's verdict, when one judged (ClassifierReward)
    teleop/age_ms         float32 per step: how old the human's command was when the step executed it (NaN on the
                          steps nobody took over), when a device of the operator's page reported it
    labels/...            judgements added after recording (an operator's), appended: see ``add_label``
    meta/episode_ends     end row (exclusive) of every complete episode: the commit record
    meta/<field>          one row per episode: source, success (the env's own, as truth/success), return, task,
                          robot, seed, twin

Each episode has T + 1 rows: row t holds observation t and the action, reward, costs and flags of step t; the last
row holds the final observation with ``is_last`` set (as in RLDS; its step fields are padding). A transition's next
observation is always the next row. Success columns belong to the row's observation: row t + 1 holds the verdict on
the observation step t led to (row 0, the reset state, is never a success). Zarr v2 format, so zarr 2 readers
(diffusion_policy) open it too. ``episode()`` returns rows keyed by data name, group columns as "<group>/<name>"
(e.g. "truth/success", "cost/workspace"): a key with a '/' is never an observation.

Versions: the root attribute ``layout_version`` (2; a store without it is layout 1, today's until robotrl 0.x).
A layout 1 store reads through this code unchanged on disk: data/success reads as truth/success, the
intervention source is derived from the flag (255 where it was set), costs and classifier columns are absent.
Episodes appended to a layout 1 store keep layout 1 (the v2-only columns are dropped); labels may be added.

Crash safety: an episode is written in full -- data rows, then its metadata -- before its end is appended to
meta/episode_ends, and zarr writes every file atomically (temp file + rename). A writer killed at any point
leaves every committed episode intact; rows past the last committed end are ignored by readers and trimmed
by the next writer. A reader sees only complete episodes and picks up new ones with ``refresh()``. A label is
committed by the labels group's ``count`` attribute, written last.

One writer at a time: mode "a" holds an exclusive lock (``.writer.lock``, flock) for the store object's life,
because a second writer's start-up trim would cut the rows the first one is committing. The kernel drops the
lock when its process dies, so a killed writer never blocks recovery. Labels never touch recorded rows: mode
"label" adds labels (under its own short ``.labels.lock``) while a writer keeps recording.
"""

from __future__ import annotations

import fcntl
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping
from urllib.parse import unquote

import numcodecs
import numpy as np
import zarr

LAYOUT_VERSION = 2
SOURCES = ("demo", "intervention", "online", "eval")
Source = Literal["demo", "intervention", "online", "eval"]
# data/ columns that are not observations (layout 1 also had data/success, read as truth/success).
STEP_KEYS = ("action", "reward", "is_terminal", "is_last", "intervention", "intervention_source")
V1_STEP_KEYS = ("action", "reward", "is_terminal", "is_last", "intervention", "success")
RESERVED = frozenset(STEP_KEYS) | {"success"}
GROUPS = ("cost", "truth", "classifier", "teleop")  # per-row columns recorded with the episode, grouped by provenance
# Columns only some episodes have (an episode nobody took over at a device reports no command age): a store fills
# them for the episodes without, and takes them when they first come, filled for the episodes before.
OPTIONAL_COLUMNS: dict[str, float] = {"teleop/age_ms": np.nan}
# Who acted at a step; the stored code is the index. "policy": the policy (or scripted expert) acting; "teleop": a
# human at an input device (SpaceMouse, the web UI's /teleop topics); "scripted": a scripted human
# (ScriptedIntervener); "shield": a safety shield's backup action; "random": the actor's random warm-up; "keyboard",
# "gamepad", "spacemouse": a human at that device of the operator's page (robotrl.ui), which names its device.
TELEOP_DEVICES = ("keyboard", "gamepad", "spacemouse")  # a human at one of these: recorded as the source
INTERVENTION_SOURCES = ("policy", "teleop", "scripted", "shield", "random", *TELEOP_DEVICES)  # code = index: append only
UNKNOWN_SOURCE = 255  # an intervention whose source was not recorded (layout 1 stores, sources that say nothing)
LABEL_RESERVED = ("truth", "classifier")  # recorded provenances; a label's source is any other name
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
    success: bool = False  # the env's own verdict at the last step (truth in the twin; evaluation only)
    ret: float = 0.0
    seed: int = -1
    twin: bool = True  # recorded in the MuJoCo twin (False: on the real robot)


_META_DTYPES = {"source": "<U16", "task": "<U64", "robot": "<U32", "success": "bool", "ret": "float64", "seed": "int64", "twin": "bool"}


@dataclass(frozen=True)
class Label:
    """A judgement added after recording (``EpisodeStore.add_label``)."""

    episode: int
    source: str  # who judged, e.g. "operator"
    success: bool | None  # the episode's outcome; None: not judged
    steps: np.ndarray | None  # per row (T + 1): the success of the row's observation; None: not judged
    time_ns: int  # wall-clock time it was added


@dataclass(frozen=True)
class Judged:
    """One provenance's judgement of an episode (``EpisodeStore.judgements``)."""

    success: bool | None  # the episode's outcome (None: this judge gave none)
    steps: np.ndarray | None  # per row: the success of the row's observation (None: not judged per step)
    reward: np.ndarray | None = None  # truth: the env's reward per step row
    probability: np.ndarray | None = None  # classifier: P(success) per row (NaN on row 0, never judged)


# -- key mapping -----------------------------------------------------------------------------------------------
_SAFE = frozenset(string.ascii_letters + string.digits + "_-")


def data_key(obs_key_: str) -> str:
    """The data/ array name of an observation key, reversibly: '/' -> '.', every other character outside
    [A-Za-z0-9_-] (including '.' and '%') -> %XX of its UTF-8 bytes. ``state/ee_pos`` -> ``state.ee_pos``,
    ``observation.state`` -> ``observation%2Estate``."""
    out = []
    for ch in obs_key_:
        if ch == "/":
            out.append(".")
        elif ch in _SAFE:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out)


def obs_key(data_key_: str) -> str:
    """The observation key of a data/ array name (inverse of ``data_key``)."""
    return unquote(data_key_.replace(".", "/"), errors="strict")


def _v1_obs_key(name: str) -> str:
    return name.replace(".", "/")  # layout 1's (lossy) mapping


def is_observation(row_key: str) -> bool:
    """Whether a row key of ``episode()`` is an observation (not a step column, not a group column)."""
    return "/" not in row_key and row_key not in RESERVED


def source_code(source: str) -> int:
    if source == "unknown":
        return UNKNOWN_SOURCE
    try:
        return INTERVENTION_SOURCES.index(source)
    except ValueError:
        raise ValueError(f"intervention source {source!r} unknown; known: {', '.join(INTERVENTION_SOURCES)} "
                         "(or 'unknown')") from None


def source_name(code: int) -> str:
    return INTERVENTION_SOURCES[code] if code < len(INTERVENTION_SOURCES) else "unknown"


def _layout_version(attrs: Mapping[str, Any]) -> int:
    if "layout_version" in attrs:
        return int(attrs["layout_version"])
    fmt = str(attrs.get("format", ""))
    return int(fmt.rsplit("/", 1)[1]) if fmt.startswith("robotrl.episode_store/") else 1


class EpisodeStore:
    """Open (or create, with mode "a") an episode store at ``path``. Mode "label": an existing store, to add
    labels only (no episode writer lock: an actor may keep recording meanwhile)."""

    def __init__(self, path: str | Path, mode: Literal["r", "a", "label"] = "r"):
        self.path, self.mode = Path(path), mode
        if mode not in ("r", "a", "label"):
            raise ValueError(f"EpisodeStore mode {mode!r}: use 'r', 'a' or 'label'")
        if mode != "a" and not self.path.exists():
            raise StoreError(f"{self.path}: no episode store here (record one with `robotrl record --out {self.path}`)")
        try:
            self.root = zarr.open_group(str(self.path), mode={"r": "r", "a": "a", "label": "r+"}[mode], zarr_format=2)
        except Exception as exc:  # zarr raises several types for a folder that is not a zarr group
            raise StoreError(f"{self.path}: not a zarr episode store ({type(exc).__name__}: {exc})") from exc
        self._lock = self._lock_writer() if mode == "a" else None
        if mode == "a" and "meta" not in self.root:
            self.root.require_group("data")
            meta = self.root.require_group("meta")
            meta.create_array("episode_ends", shape=(0,), chunks=(4096,), dtype="int64", fill_value=0)
            for name, dtype in _META_DTYPES.items():
                meta.create_array(name, shape=(0,), chunks=(4096,), dtype=dtype)
            self.root.attrs.update({"format": f"robotrl.episode_store/{LAYOUT_VERSION}", "layout_version": LAYOUT_VERSION})
        if "meta" not in self.root or "episode_ends" not in self.root["meta"] or "data" not in self.root:
            raise StoreError(f"{self.path}: not an episode store: meta/episode_ends or data/ is missing")
        self.version = _layout_version(self.root.attrs.asdict())
        if self.version > LAYOUT_VERSION:
            raise StoreError(f"{self.path}: episode store layout {self.version} is newer than this robotrl reads "
                             f"(up to {LAYOUT_VERSION}); update robotrl")
        self.episode_ends = np.zeros(0, np.int64)
        self._cols: dict[str, zarr.Array] = {}
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
        unchanged = valid == len(self.episode_ends) and self._cols and np.array_equal(ends[:valid], self.episode_ends)
        self.episode_ends = ends[:valid]
        if unchanged:  # the open arrays already hold every committed row
            return
        self._cols = self._open_columns()
        for name, arr in self._cols.items():
            if arr.shape[0] < self.n_steps:
                raise StoreError(f"{self.path}: {self._disk_path(name)} has {arr.shape[0]} rows but episodes end at "
                                 f"{self.n_steps}: the store is corrupt")

    def _open_columns(self) -> dict[str, zarr.Array]:
        data = self.root["data"]
        cols = {self._row_key(k): data[k] for k in data.array_keys()}
        if self.version >= 2:
            for group in GROUPS:
                if group in self.root:
                    g = self.root[group]
                    cols.update({f"{group}/{k}": g[k] for k in g.array_keys()})
        return cols

    def _row_key(self, name: str) -> str:
        """The row key of array data/<name>."""
        if self.version >= 2 or name in STEP_KEYS:
            return name
        return "truth/success" if name == "success" else data_key(_v1_obs_key(name))

    def _disk_path(self, row_key: str) -> str | None:
        """Where a row key lives in this store (None: a column this store's layout does not hold)."""
        if self.version >= 2:
            if "/" in row_key:
                group, name = row_key.split("/", 1)
                return f"{group}/{name}" if group in GROUPS and "/" not in name else None
            return f"data/{row_key}"
        if row_key in V1_STEP_KEYS:
            return f"data/{row_key}"
        if row_key == "truth/success":
            return "data/success"
        if "/" in row_key or row_key in RESERVED:
            return None
        return f"data/{obs_key(row_key).replace('/', '.')}"

    @property
    def n_episodes(self) -> int:
        return len(self.episode_ends)

    @property
    def n_steps(self) -> int:
        """Rows of complete episodes (each episode has one more row than steps)."""
        return int(self.episode_ends[-1]) if len(self.episode_ends) else 0

    @property
    def keys(self) -> list[str]:
        """Row keys of ``episode()``: observations by data name, step columns, "<group>/<name>" columns."""
        derived = ["intervention_source"] if self.version < 2 and "intervention" in self._cols else []
        return sorted([*self._cols, *derived])

    @property
    def obs_keys(self) -> list[str]:
        """The observation keys (as the env gave them, e.g. ``state/ee_pos``)."""
        return sorted(obs_key(k) for k in self._cols if is_observation(k))

    @property
    def limits(self) -> list[str]:
        """The safety limits with a per-step cost column."""
        return sorted(obs_key(k.split("/", 1)[1]) for k in self._cols if k.startswith("cost/"))

    def episode_slice(self, i: int) -> slice:
        start = int(self.episode_ends[i - 1]) if i > 0 else 0
        return slice(start, int(self.episode_ends[i]))

    def _index(self, i: int) -> int:
        if not -self.n_episodes <= i < self.n_episodes:
            raise IndexError(f"{self.path}: episode {i} out of range ({self.n_episodes} complete episodes)")
        return i % self.n_episodes

    def episode(self, i: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """All rows of complete episode ``i`` (negative indices count from the end), keyed by row key (see
        ``keys``); ``keys``: only these."""
        sl = self.episode_slice(self._index(i))
        want = self.keys if keys is None else keys
        missing = [k for k in want if k not in self.keys]
        if missing:
            raise KeyError(f"{self.path}: no column {missing[0]!r}; columns: {', '.join(self.keys)}")
        rows = {k: np.asarray(self._cols[k][sl]) for k in want if k in self._cols}
        if "intervention_source" in want and "intervention_source" not in self._cols:  # layout 1: from the flag
            flag = np.asarray(self._cols["intervention"][sl])
            rows["intervention_source"] = np.where(flag, UNKNOWN_SOURCE, 0).astype(np.uint8)
        return rows

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

    # -- judgements by provenance --------------------------------------------------------------------------
    def labels(self, episode: int | None = None) -> list[Label]:
        """Committed labels (of ``episode``, or all), oldest first."""
        if "labels" not in self.root:
            return []
        g = self.root["labels"]
        n = int(g.attrs.get("count", 0))
        if n == 0:
            return []
        cols = {k: np.asarray(g[k][:n]) for k in ("episode", "source", "success", "time_ns", "steps_end")}
        ends = cols["steps_end"]
        steps = np.asarray(g["steps"][: int(ends[-1])]) if ends[-1] else np.zeros(0, bool)
        out = []
        for j in range(n):
            if episode is not None and cols["episode"][j] != episode % max(self.n_episodes, 1):
                continue
            start = int(ends[j - 1]) if j else 0
            out.append(Label(episode=int(cols["episode"][j]), source=str(cols["source"][j]),
                             success=None if cols["success"][j] < 0 else bool(cols["success"][j]),
                             steps=steps[start:int(ends[j])] if ends[j] > start else None, time_ns=int(cols["time_ns"][j])))
        return out

    def judgements(self, i: int) -> dict[str, Judged]:
        """Episode ``i`` as each judge saw it, kept apart: "truth" (the env's own judgement: ground truth in the
        twin; for evaluation only), "classifier" (when a reward classifier judged while recording), and one entry
        per label source (e.g. "operator"; per field, the newest label that gave it)."""
        i = self._index(i)
        want = [k for k in ("truth/success", "truth/reward", "classifier/success", "classifier/probability") if k in self._cols]
        rows = self.episode(i, want)
        out = {"truth": Judged(success=self.meta(i).success, steps=rows.get("truth/success"), reward=rows.get("truth/reward"))}
        if "classifier/success" in rows:
            out["classifier"] = Judged(success=bool(rows["classifier/success"][-1]), steps=rows["classifier/success"],
                                       probability=rows.get("classifier/probability"))
        for label in self.labels(i):
            old = out.get(label.source, Judged(success=None, steps=None))
            out[label.source] = Judged(success=old.success if label.success is None else label.success,
                                       steps=old.steps if label.steps is None else label.steps)
        return out

    def step_success(self, i: int, prefer: tuple[str, ...] = ("operator", "truth")) -> tuple[np.ndarray, str]:
        """Per-row success of episode ``i`` from the first provenance in ``prefer`` that judged it per step, and
        which one that was (KeyError if none did)."""
        judged = self.judgements(i)
        for source in prefer:
            if source in judged and judged[source].steps is not None:
                return judged[source].steps, source
        raise KeyError(f"{self.path}: episode {i} has no per-step success from {', '.join(prefer)} "
                       f"(it has {', '.join(s for s, j in judged.items() if j.steps is not None) or 'none'})")

    # -- writing -------------------------------------------------------------------------------------------
    def add_episode(self, rows: dict[str, np.ndarray], meta: EpisodeMeta) -> int:
        """Append one complete episode (``rows``: row key -> array with T + 1 rows). Returns its index."""
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened {'read-only' if self.mode == 'r' else 'for labels'}; open with "
                             "mode='a' to add episodes")
        if meta.source not in SOURCES:
            raise StoreError(f"{self.path}: episode source {meta.source!r} not allowed; allowed: {', '.join(SOURCES)}")
        lengths = {k: len(v) for k, v in rows.items()}
        if len(set(lengths.values())) != 1:
            raise StoreError(f"{self.path}: episode arrays differ in length: {lengths}")
        if self.version >= 2:
            bad = [k for k in rows if self._disk_path(k) is None]
            if bad:
                raise StoreError(f"{self.path}: no column {bad[0]!r}: a row key is an observation (no '/') or "
                                 f"<group>/<name> with group one of {', '.join(GROUPS)}")
        else:  # layout 1 stays layout 1: what it has no column for is not kept
            rows = {k: v for k, v in rows.items() if self._disk_path(k) is not None}
        n = next(iter(lengths.values()))
        rows = {**{k: np.full(n, fill, self._cols[k].dtype) for k, fill in OPTIONAL_COLUMNS.items() if k in self._cols},
                **rows}
        self._check_schema(rows)
        start = self.n_steps
        for key, value in rows.items():
            arr = self._cols[key] if key in self._cols else self._create(key, np.asarray(value))
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
        group, name = self._disk_path(key).split("/", 1)
        arr = self.root.require_group(group).create_array(
            name, shape=(0, *value.shape[1:]), chunks=(chunk_rows, *value.shape[1:]), dtype=value.dtype, compressors=compressor,
            fill_value=OPTIONAL_COLUMNS.get(key),  # an optional column's rows before its first episode read as this
        )
        if key == "intervention_source":
            arr.attrs.update({"codes": list(INTERVENTION_SOURCES), "unknown": UNKNOWN_SOURCE})
        self._cols[key] = arr
        return arr

    def _check_schema(self, rows: dict[str, np.ndarray]) -> None:
        if not self._cols:
            return
        missing, extra = set(self._cols) - set(rows), set(rows) - set(self._cols) - set(OPTIONAL_COLUMNS)
        if missing or extra:
            raise StoreError(f"{self.path}: episode keys do not match the store: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for key, value in rows.items():
            if key not in self._cols:  # an optional column's first episode: nothing to match yet
                continue
            arr, value = self._cols[key], np.asarray(value)
            if arr.shape[1:] != value.shape[1:] or arr.dtype != value.dtype:
                raise StoreError(
                    f"{self.path}: {self._disk_path(key)} holds {arr.dtype}{list(arr.shape[1:])} per step, "
                    f"the new episode has {value.dtype}{list(value.shape[1:])}"
                )

    def _trim_uncommitted(self) -> None:
        """Drop rows and metadata a killed writer left past the last committed episode."""
        end, n = self.n_steps, self.n_episodes
        for arr in self._cols.values():
            if arr.shape[0] > end:
                arr.resize((end, *arr.shape[1:]))
        m = self.root["meta"]
        for name in (*_META_DTYPES, "episode_ends"):
            if m[name].shape[0] > n:
                m[name].resize((n,))

    def add_label(self, episode: int, success: bool | None = None, steps: np.ndarray | None = None,
                  source: str = "operator") -> int:
        """Judge a recorded episode after the fact: its outcome (``success``) and/or the success of each row's
        observation (``steps``, T + 1 bools, as truth/success). Appended to labels/; recorded rows, metadata and
        episode_ends are never rewritten. A later label from the same source overrides per field. Returns the
        label's index. Needs mode "a" or "label"."""
        if self.mode == "r":
            raise StoreError(f"{self.path}: opened read-only; open with mode='label' (or 'a') to add labels")
        if self.mode == "label":
            self.refresh()
        i = self._index(episode)
        if success is None and steps is None:
            raise ValueError("add_label: give success, steps or both")
        if not source or len(source) > 32 or source in LABEL_RESERVED:
            raise ValueError(f"label source {source!r}: 1-32 characters, not {' or '.join(LABEL_RESERVED)} (recorded "
                             "provenances are never added after the fact)")
        if steps is not None:
            steps = np.asarray(steps)
            sl = self.episode_slice(i)
            if steps.shape != (sl.stop - sl.start,) or steps.dtype != bool:
                raise ValueError(f"add_label steps: {sl.stop - sl.start} bools for episode {i} (one per row, T + 1), "
                                 f"got {steps.dtype}{list(steps.shape)}")
        with open(self.path / ".labels.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # label writers take turns; a label takes milliseconds
            g = self._labels_group()
            n = int(g.attrs.get("count", 0))  # rows past it are a killed label writer's: overwritten
            m = int(g["steps_end"][n - 1]) if n else 0
            if steps is not None:
                g["steps"].resize((m + len(steps),))
                g["steps"][m:] = steps
                m += len(steps)
            values = {"episode": i, "source": source, "success": -1 if success is None else int(bool(success)),
                      "time_ns": time.time_ns(), "steps_end": m}
            for name, value in values.items():
                g[name].resize((n + 1,))
                g[name][n] = value
            g.attrs["count"] = n + 1  # the commit
        return n

    def _labels_group(self) -> zarr.Group:
        if "labels" in self.root:
            return self.root["labels"]
        g = self.root.require_group("labels")
        for name, dtype in {"episode": "int64", "source": "<U32", "success": "int8", "time_ns": "int64",
                            "steps_end": "int64", "steps": "bool"}.items():
            g.create_array(name, shape=(0,), chunks=(65536 if name == "steps" else 4096,), dtype=dtype,
                           compressors=VECTOR_COMPRESSOR)
        g.attrs.update({"count": 0, "layout_version": 1})
        return g

    def summary(self) -> dict:
        metas = self.metas()
        by_source = {s: sum(m.source == s for m in metas) for s in SOURCES}
        acted = {}
        if "intervention_source" in self._cols or "intervention" in self._cols:
            if "intervention_source" in self._cols:
                codes = np.asarray(self._cols["intervention_source"][: self.n_steps])
            else:  # layout 1: from the flag
                codes = np.where(np.asarray(self._cols["intervention"][: self.n_steps]), UNKNOWN_SOURCE, 0)
            steps = np.delete(codes, self.episode_ends - 1)  # each episode's last row is padding
            acted = {source_name(int(c)): int(n) for c, n in zip(*np.unique(steps, return_counts=True))}
        return {
            "path": str(self.path),
            "layout_version": self.version,
            "episodes": self.n_episodes,
            "steps": self.n_steps - self.n_episodes,
            "by_source": {k: v for k, v in by_source.items() if v},
            "acted_by": acted,
            "success_rate": float(np.mean([m.success for m in metas])) if metas else None,
            "labels": len(self.labels()),
            "tasks": sorted({m.task for m in metas}),
            "keys": {k: f"{a.dtype}{list(a.shape[1:])}" for k, a in sorted(self._cols.items())},
            "bytes_on_disk": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
        }


class EpisodeRecorder:
    """Collects one episode step by step; ``finish`` writes it to the store in one commit."""

    def __init__(self, store: EpisodeStore):
        self.store = store
        self._rows: dict[str, list] | None = None

    def start(self, obs: dict[str, np.ndarray]) -> None:
        clash = [k for k in obs if not is_observation(data_key(k))]
        if clash:
            raise ValueError(f"observation key {clash[0]!r} is a step column's name ({', '.join(sorted(RESERVED))})")
        self._rows = {data_key(k): [np.asarray(v)] for k, v in obs.items()}
        self._steps: dict[str, list] = {k: [] for k in (*STEP_KEYS, "truth/success", "truth/reward")}
        self._costs: dict[str, list[float]] = {}
        self._classifier: dict[str, list] | None = None
        self._age: list[float] | None = None

    def step(self, action: np.ndarray, reward: float, next_obs: dict[str, np.ndarray], terminated: bool,
             intervention: bool = False, success: bool = False, *, source: str | None = None,
             costs: Mapping[str, float] | None = None, truth_reward: float | None = None,
             classifier_probability: float | None = None, classifier_success: bool | None = None,
             teleop_age_ms: float | None = None) -> None:
        """One step. ``success``: the env's own verdict (truth); ``truth_reward``: the env's own reward (default
        ``reward``, the one learned from); ``source``: who acted (INTERVENTION_SOURCES; default "policy", or
        "unknown" for an intervention); ``costs``: per safety limit; ``classifier_*``: a reward classifier's
        verdict; ``teleop_age_ms``: the age of the human's command this step executed. See ``step_fields`` for these
        from a step's info."""
        if self._rows is None:
            raise RuntimeError("EpisodeRecorder.step before start")
        n = len(self._steps["action"])
        for k, v in next_obs.items():
            self._rows[data_key(k)].append(np.asarray(v))
        s = self._steps
        s["action"].append(np.asarray(action, np.float32))
        s["reward"].append(np.float32(reward))
        s["is_terminal"].append(bool(terminated))
        s["is_last"].append(False)
        s["intervention"].append(bool(intervention))
        s["intervention_source"].append(source_code(source or ("unknown" if intervention else "policy")))
        s["truth/success"].append(bool(success))
        s["truth/reward"].append(np.float32(reward if truth_reward is None else truth_reward))
        for limit in costs or {}:
            self._costs.setdefault(limit, [np.nan] * n)  # a limit first reported now: not measured before
        for limit, values in self._costs.items():
            values.append(float((costs or {}).get(limit, np.nan)))
        if classifier_probability is not None and self._classifier is None:
            self._classifier = {"probability": [np.nan] * n, "success": [False] * n}
        if self._classifier is not None:
            judged = classifier_probability is not None
            self._classifier["probability"].append(float(classifier_probability) if judged else np.nan)
            self._classifier["success"].append(bool(classifier_success) if judged else False)
        if teleop_age_ms is not None and self._age is None:
            self._age = [np.nan] * n
        if self._age is not None:
            self._age.append(np.nan if teleop_age_ms is None else float(teleop_age_ms))

    @property
    def steps(self) -> int:
        """Steps recorded in the episode in progress (0 when none is)."""
        return 0 if self._rows is None else len(self._steps["action"])

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
        s["intervention_source"].append(0)
        s["truth/reward"].append(np.float32(0))
        # Row t holds observation t; the success flag of step t describes observation t + 1, so shift by one:
        # each row's label then belongs to its own observation (row 0, the reset state, is not a success).
        s["truth/success"] = [False, *s["truth/success"]]
        cols = {**self._rows, **s}
        cols["intervention_source"] = np.asarray(s["intervention_source"], np.uint8)
        for limit, values in self._costs.items():
            cols[f"cost/{data_key(limit)}"] = np.asarray([*values, 0.0], np.float32)
        if self._classifier is not None:
            cols["classifier/probability"] = np.asarray([np.nan, *self._classifier["probability"]], np.float32)
            cols["classifier/success"] = np.asarray([False, *self._classifier["success"]], bool)
        if self._age is not None:
            cols["teleop/age_ms"] = np.asarray([*self._age, np.nan], np.float32)
        rows = {k: np.stack(v) if isinstance(v, list) else v for k, v in cols.items()}
        self._rows = None
        self.last_rows = rows  # a learner in the same process ingests these without re-reading the store
        return self.store.add_episode(rows, meta)


def step_fields(info: Mapping[str, Any], acted_by: str = "policy") -> dict[str, Any]:
    """The recorder's fields from a step's info: the intervention flag and who acted (the intervening source's
    ``info["intervention_source"]``, else ``acted_by``: "policy", or "random" in the actor's warm-up), the task's
    cost per safety limit (``info["costs"]``), and the judgements by provenance: the env's own success and reward
    (``task_success`` / ``task_reward`` when a ClassifierReward replaced them) and the classifier's verdict."""
    intervened = bool(info.get("intervention", False))
    fields: dict[str, Any] = {"intervention": intervened,
                              "source": (info.get("intervention_source") or "unknown") if intervened else acted_by}
    if info.get("costs"):
        fields["costs"] = info["costs"]
    if "success_probability" in info:  # a reward classifier judged: the env's own verdict is under task_*
        fields.update(success=bool(info.get("task_success")), truth_reward=float(info.get("task_reward", np.nan)),
                      classifier_probability=float(info["success_probability"]), classifier_success=bool(info["success"]))
    else:
        fields["success"] = bool(info.get("success"))  # envs that report none: never
    if intervened and info.get("teleop_age_ms") is not None:
        fields["teleop_age_ms"] = float(info["teleop_age_ms"])
    return fields


def transitions(rows: dict[str, np.ndarray]) -> dict:
    """One stored episode as the learner's episode dict: observations (T + 1 rows, env keys) and T steps. Only
    observations become observations: step, cost, truth and classifier columns never do."""
    steps = slice(0, len(rows["action"]) - 1)
    return {
        "obs": {obs_key(k): v for k, v in rows.items() if is_observation(k)},
        "action": rows["action"][steps],
        "reward": rows["reward"][steps],
        "terminated": rows["is_terminal"][steps],
        "intervention": rows["intervention"][steps],
    }


def _scalar(x):
    return x.item() if hasattr(x, "item") else x
