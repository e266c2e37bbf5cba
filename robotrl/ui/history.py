"""The learning view of `robotrl ui`: learning curves from a run's metrics.jsonl and a browser over its episode store.

A read-only page (``/history``): it commands nothing, so it needs no token. The pure functions (``curves``,
``episode_list``, ``episode_detail``, ``frame_jpeg``) build what the JSON API serves; ``add_history_routes`` mounts
that API and the page on the operator page's aiohttp app:

    GET /history                                               the page (static/history.html)
    GET /history/history.js                                    its script
    GET /api/history/curves                                    ``curves(run_dir)``
    GET /api/history/episodes                                  ``{"store", "cameras", "episodes": episode_list(store)}``
    GET /api/history/episodes/{index}                          ``episode_detail(store, index)``
    GET /api/history/episodes/{index}/frames/{camera}/{step}.jpg   a camera frame of row ``step`` (JPEG)

Bad input answers 400 (not an integer) or 404 (no such episode, camera, row, or no store yet) with
``{"error": "..."}``. The store is opened read-only (mode "r": no writer lock, so the actor keeps appending) and
refreshed on each request, which picks up the episodes committed meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from aiohttp import web

from robotrl.data import EpisodeStore, Label, StoreError
from robotrl.data.store import data_key, source_name

STATIC = Path(__file__).parent / "static"
METRICS = "metrics.jsonl"
# Row fields that are bookkeeping, not learning statistics: never plotted.
BOOKKEEPING = frozenset({"event", "env_steps", "wall_s", "episodes", "torch_threads", "weights_version", "best", "updates",
                         "utd", "critic_updates", "gradient_steps", "stored_steps", "signal", "success_ci", "time"})
PANELS = ("success", "return", "critic", "learner", "classifier")  # the page's plots, in this order


# -- pure functions ------------------------------------------------------------------------------------------------
def curves(run_dir: Path) -> dict:
    """The learning curves of a run: ``{"run", "panels", "series"}``, series by name, each ``{"panel", "x", "y"}``
    with x = env steps (sorted), "success" also with its 95 % interval ("lo", "hi"). Evaluation rows give
    "success", "intervention_rate" and "return"; any numeric statistic of any row with env_steps (learner /
    update rows: Q values, losses, entropy; classifier statistics) becomes a series in the panel its name says:
    "critic" (q*, critic*), "classifier" (classifier*), else "learner". A missing file gives no series; an
    unparseable line (the writer's half-written last line) is skipped."""
    path = Path(run_dir) / METRICS
    lines = path.read_text().splitlines() if path.exists() else []
    points: dict[str, list[tuple[float, float, Any]]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or _number(row.get("env_steps")) is None or row.get("event") == "stop":
            continue
        x = float(row["env_steps"])
        for key, value in row.items():
            y = _number(value)
            if key in BOOKKEEPING or y is None:
                continue
            name = key.removeprefix("learner/")  # TensorBoard-style names plot under their own name
            ci = row.get("success_ci") if name == "success" else None
            points.setdefault(name, []).append((x, y, ci))
    series = {}
    for name, pts in points.items():
        pts.sort(key=lambda p: p[0])
        s: dict[str, Any] = {"panel": _panel(name), "x": [p[0] for p in pts], "y": [p[1] for p in pts]}
        if name == "success" and all(isinstance(p[2], list) and len(p[2]) == 2 for p in pts):
            s["lo"], s["hi"] = [p[2][0] for p in pts], [p[2][1] for p in pts]
        series[name] = s
    panels = [p for p in PANELS if any(s["panel"] == p for s in series.values())]
    return {"run": str(run_dir), "panels": panels, "series": series}


def episode_list(store: EpisodeStore, known: list[dict] | None = None) -> list[dict]:
    """One summary per complete episode: index, source, task, length (steps), return, success (the env's own
    verdict: ground truth in the twin), the classifier's verdict (when one judged), the labels (who judged, the
    outcome, whether per step), and the intervention steps (count and who acted). ``known``: an earlier answer
    for this store, whose episodes are reused with fresh labels (committed episodes never change; labels come
    later), so a page that polls reads only the new episodes."""
    labels: dict[int, list[dict]] = {}
    for label in store.labels():
        labels.setdefault(label.episode, []).append(_label(label, steps=False))
    out = [{**summary, "labels": labels.get(i, [])} for i, summary in enumerate((known or [])[: store.n_episodes])]
    if len(out) == store.n_episodes:
        return out
    want = [k for k in ("intervention", "intervention_source", "classifier/success") if k in store.keys]
    for i, meta in enumerate(store.metas()[len(out):], start=len(out)):
        rows = store.episode(i, want)
        steps = slice(0, len(rows["intervention"]) - 1)  # the last row's step fields are padding
        flags = rows["intervention"][steps]
        codes = rows["intervention_source"][steps][flags]
        out.append({"index": i, "source": meta.source, "task": meta.task, "twin": meta.twin,
                    "length": int(flags.shape[0]), "return": _number(meta.ret), "success": meta.success,
                    "classifier_success": bool(rows["classifier/success"][-1]) if "classifier/success" in rows else None,
                    "labels": labels.get(i, []), "interventions": int(flags.sum()),
                    "acted_by": {source_name(int(c)): int(n) for c, n in zip(*np.unique(codes, return_counts=True))}})
    return out


def episode_detail(store: EpisodeStore, index: int) -> dict:
    """Episode ``index`` step by step. Per step (T): action, reward, intervention flag, who acted (by name). Per
    row (T + 1, row t holds observation t): the env's own success (truth), the classifier's probability of
    success (None where it did not judge; absent without a classifier). Its metadata, labels, judgements by
    provenance and cameras (the frames API's names)."""
    _check_index(store, index)
    want = [k for k in ("action", "reward", "intervention", "intervention_source", "truth/success",
                        "classifier/probability") if k in store.keys]
    rows = store.episode(index, want)
    n = len(rows["action"]) - 1  # steps; the last row's step fields are padding
    steps = slice(0, n)
    meta = store.meta(index)
    out = {"index": index, "source": meta.source, "task": meta.task, "robot": meta.robot, "seed": meta.seed,
           "twin": meta.twin, "success": meta.success, "return": _number(meta.ret),
           "steps": n, "rows": n + 1,
           "action": [[_number(a) for a in row] for row in rows["action"][steps].reshape(n, -1)],
           "reward": [_number(r) for r in rows["reward"][steps]],
           "intervention": [bool(f) for f in rows["intervention"][steps]],
           "acted_by": [source_name(int(c)) for c in rows["intervention_source"][steps]],
           "truth_success": [bool(s) for s in rows["truth/success"]] if "truth/success" in rows else None,
           "labels": [_label(label, steps=True) for label in store.labels(index)],
           "judgements": {name: j.success for name, j in store.judgements(index).items()},
           "cameras": cameras(store)}
    if "classifier/probability" in rows:
        out["classifier_probability"] = [_number(p) for p in rows["classifier/probability"]]
    return out


def cameras(store: EpisodeStore) -> list[str]:
    """The store's camera names (observations ``images/<camera>``)."""
    return [k.split("/", 1)[1] for k in store.obs_keys if k.startswith("images/")]


def episode_frames(store: EpisodeStore, index: int, camera: str) -> np.ndarray:
    """All frames of one camera in episode ``index`` (T + 1 rows, uint8 H x W x C)."""
    _check_index(store, index)
    if camera not in cameras(store):
        raise KeyError(f"no camera {camera!r}; cameras: {', '.join(cameras(store)) or 'none'}")
    return store.episode(index, [data_key(f"images/{camera}")])[data_key(f"images/{camera}")]


def encode_jpeg(frame: np.ndarray, quality: int = 80) -> bytes:
    """One RGB frame as JPEG. A frame-stacked observation (3k channels, oldest first) shows its newest frame."""
    if frame.ndim == 3 and frame.shape[-1] >= 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame[..., -3:]), cv2.COLOR_RGB2BGR)  # cv2 writes BGR
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {frame.dtype}{list(frame.shape)} frame as JPEG")
    return buf.tobytes()


def frame_jpeg(store: EpisodeStore, index: int, step: int, camera: str, quality: int = 80) -> bytes:
    """Row ``step`` (0..T: observation ``step``) of ``camera`` in episode ``index``, as JPEG."""
    return encode_jpeg(_row(episode_frames(store, index, camera), step), quality)


def _row(frames: np.ndarray, step: int) -> np.ndarray:
    if not 0 <= step < len(frames):
        raise IndexError(f"row {step} out of range: the episode has rows 0..{len(frames) - 1}")
    return frames[step]


def _check_index(store: EpisodeStore, index: int) -> None:
    if not 0 <= index < store.n_episodes:
        raise IndexError(f"episode {index} out of range: the store has {store.n_episodes} complete episodes")


def _label(label: Label, steps: bool) -> dict:
    out = {"source": label.source, "success": label.success, "per_step": label.steps is not None}
    if steps:
        out["steps"] = None if label.steps is None else [bool(s) for s in label.steps]
    return out


def _panel(name: str) -> str:
    if name in ("success", "intervention_rate"):
        return "success"
    if name == "return":
        return "return"
    if name.startswith("classifier"):
        return "classifier"
    if name == "q" or name.startswith(("q_", "q/", "critic")):
        return "critic"
    return "learner"


def _number(x: Any) -> float | None:
    """A finite number for JSON (NaN is not JSON: browsers reject it), else None; bools are not numbers."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return None
    x = float(x)
    return float(f"{x:.6g}") if math.isfinite(x) else None


# -- routes --------------------------------------------------------------------------------------------------------
class _Unavailable(Exception):
    """No run folder or store to show (yet): 404."""


class _History:
    """The routes' state: one read-only store, refreshed per request; the last few episodes' frames (scrubbing
    asks for every row of the same episode); the parsed metrics, until the file changes."""

    FRAME_CACHE = 4

    def __init__(self, run_dir: Path | None, store_path: Path | None):
        self.run_dir, self.store_path = run_dir, store_path
        self.lock = threading.Lock()  # requests run in worker threads; the store object is not thread-safe
        self.store: EpisodeStore | None = None
        self.frames: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self.metrics: tuple[tuple[float, int], dict] | None = None
        self.episodes: list[dict] = []  # the last episode_list, reused by the next

    def curves(self) -> dict:
        if self.run_dir is None:
            raise _Unavailable("no run folder given: the learning curves need one (its metrics.jsonl)")
        path = self.run_dir / METRICS
        stat = path.stat() if path.exists() else None
        key = (stat.st_mtime, stat.st_size) if stat else (0.0, 0)
        with self.lock:
            if self.metrics is None or self.metrics[0] != key:
                self.metrics = (key, curves(self.run_dir))
            return self.metrics[1]

    def with_store(self, fn: Callable[[EpisodeStore], Any]) -> Any:
        with self.lock:
            if self.store_path is None:
                raise _Unavailable("no episode store given: the episode browser needs one (episodes.zarr)")
            if self.store is None:
                if not self.store_path.exists():
                    raise _Unavailable(f"no episode store at {self.store_path} (yet: the first episode creates it)")
                self.store = EpisodeStore(self.store_path, mode="r")
            else:
                self.store.refresh()
            return fn(self.store)

    def episode_list(self, store: EpisodeStore) -> dict:
        self.episodes = episode_list(store, self.episodes)
        return {"store": str(store.path), "cameras": cameras(store), "episodes": self.episodes}

    def frame(self, store: EpisodeStore, index: int, camera: str, step: int) -> bytes:
        key = (index, camera)
        if key not in self.frames:  # committed episodes never change: cached frames stay valid
            self.frames[key] = episode_frames(store, index, camera)
            if len(self.frames) > self.FRAME_CACHE:
                self.frames.popitem(last=False)
        self.frames.move_to_end(key)
        return encode_jpeg(_row(self.frames[key], step))


def add_history_routes(app: web.Application, run_dir: Path | None, store_path: Path | None) -> None:
    """Mount the learning view on ``app``: the page at /history and its read-only API under /api/history/ (see
    the module docstring). ``run_dir``: the run folder (its metrics.jsonl); ``store_path``: the episode store;
    either may be None (its part of the page then says so)."""
    state = _History(Path(run_dir) if run_dir is not None else None, Path(store_path) if store_path is not None else None)

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "history.html")

    async def script(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "history.js")

    async def get_curves(_: web.Request) -> web.Response:
        return await _answer(state.curves)

    async def get_episodes(_: web.Request) -> web.Response:
        return await _answer(lambda: state.with_store(state.episode_list))

    async def get_episode(request: web.Request) -> web.Response:
        try:
            index = _integer(request, "index")
        except ValueError as exc:
            return _error(400, str(exc))
        return await _answer(lambda: state.with_store(lambda s: episode_detail(s, index)))

    async def get_frame(request: web.Request) -> web.Response:
        try:
            index, step = _integer(request, "index"), _integer(request, "step")
        except ValueError as exc:
            return _error(400, str(exc))
        camera = request.match_info["camera"]
        return await _answer(lambda: state.with_store(lambda s: state.frame(s, index, camera, step)))

    app.router.add_get("/history", page)
    app.router.add_get("/history/history.js", script)
    app.router.add_get("/api/history/curves", get_curves)
    app.router.add_get("/api/history/episodes", get_episodes)
    app.router.add_get("/api/history/episodes/{index}", get_episode)
    app.router.add_get("/api/history/episodes/{index}/frames/{camera}/{step}.jpg", get_frame)


async def _answer(work: Callable[[], Any]) -> web.Response:
    """Run ``work`` off the event loop (zarr reads block; the live operator page shares the loop) and answer
    its result: bytes as JPEG, anything else as JSON; its errors as JSON naming the problem."""
    try:
        result = await asyncio.to_thread(work)
    except (_Unavailable, IndexError, KeyError) as exc:
        return _error(404, str(exc.args[0]) if exc.args else type(exc).__name__)
    except StoreError as exc:
        return _error(500, str(exc))
    if isinstance(result, bytes):
        # A committed episode's frames never change (the store only appends): the browser may keep them.
        return web.Response(body=result, content_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
    return web.json_response(result, headers={"Cache-Control": "no-store"})


def _integer(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name} {text!r} is not a non-negative integer")
    return int(text)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
