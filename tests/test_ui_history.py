"""The learning view of `robotrl ui`: curves from metrics.jsonl, the episode browser over a real store, its routes
(aiohttp's test client) and, once, the page in Debian's chromium."""

import asyncio
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.ui import CHROMIUM, CHROMIUM_ARGS
from robotrl.ui.history import (
    add_history_routes,
    curves,
    encode_jpeg,
    episode_detail,
    episode_list,
    frame_jpeg,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _obs(t: int) -> dict[str, np.ndarray]:
    # front: pure red, wrist: pure blue (RGB), so a swapped channel order shows; the state counts rows.
    return {"images/front": np.full((24, 32, 3), RED, np.uint8), "images/wrist": np.full((24, 32, 3), BLUE, np.uint8),
            "state/t": np.array([t], np.float32)}


def _record(store: EpisodeStore, source: str, steps: int, teleop: tuple[int, ...] = (), success: bool = False) -> int:
    rec = EpisodeRecorder(store)
    rec.start(_obs(0))
    for t in range(steps):
        rec.step(np.full(2, 0.1 * t, np.float32), float(t == steps - 1), _obs(t + 1), terminated=success and t == steps - 1,
                 intervention=t in teleop, source="teleop" if t in teleop else "policy", success=success and t == steps - 1,
                 classifier_probability=0.2 + 0.1 * t, classifier_success=success and t == steps - 1)
    return rec.finish(EpisodeMeta(source=source, task="pick", success=success, ret=float(success)))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder: episodes.zarr (a classifier judged each step; a demo; an online episode with two teleop steps
    and an operator's label) and metrics.jsonl (evaluations, learner rows, a stop, a half-written last line)."""
    run = tmp_path_factory.mktemp("run")
    store = EpisodeStore(run / "episodes.zarr", mode="a")
    _record(store, "demo", 4, success=True)
    _record(store, "online", 6, teleop=(2, 3))
    store.close()
    EpisodeStore(run / "episodes.zarr", mode="label").add_label(1, success=False, steps=np.zeros(7, bool))
    rows = [{"event": "eval", "env_steps": 2000, "success": 0.1, "success_ci": [0.02, 0.3], "episodes": 10, "return": 0.1,
             "updates": 100, "utd": 0.05, "intervention_rate": 0.3, "wall_s": 10.0, "best": True},
            {"event": "learner", "env_steps": 1500, "q": 0.5, "critic_loss": 0.2, "entropy": float("nan"),
             "classifier_accuracy": 0.9},
            {"event": "learner", "env_steps": 2500, "learner/q": 0.7, "critic_loss": 0.1, "actor_loss": -0.3, "classifier_accuracy": 0.95},
            {"event": "eval", "env_steps": 4000, "success": 0.6, "success_ci": [0.3, 0.8], "episodes": 10, "return": 0.6,
             "updates": 3000, "utd": 0.75, "intervention_rate": 0.1, "wall_s": 20.0, "best": True},
            {"event": "stop", "signal": "SIGTERM", "env_steps": 4100, "stored_steps": 4000, "updates": 3100, "wall_s": 21.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"event": "eval", "env_st')
    return run


def test_curves_plot_evaluations_learner_and_classifier_statistics(run):
    c = curves(run)
    s = c["series"]
    assert c["panels"] == ["success", "return", "critic", "learner", "classifier"]
    assert s["success"] == {"panel": "success", "x": [2000, 4000], "y": [0.1, 0.6], "lo": [0.02, 0.3], "hi": [0.3, 0.8]}
    assert s["intervention_rate"]["y"] == [0.3, 0.1] and s["return"]["panel"] == "return"
    assert s["q"] == {"panel": "critic", "x": [1500, 2500], "y": [0.5, 0.7]}  # "learner/q" plots as q
    assert s["critic_loss"]["panel"] == "critic" and s["classifier_accuracy"]["panel"] == "classifier"
    assert s["actor_loss"] == {"panel": "learner", "x": [2500], "y": [-0.3]}
    # bookkeeping (counters, flags, the stop row) is not a curve; a NaN is no point (and no series)
    assert not {"updates", "utd", "episodes", "wall_s", "best", "stored_steps", "entropy"} & set(s)
    assert curves(run / "nowhere") == {"run": str(run / "nowhere"), "panels": [], "series": {}}


def test_episode_list_summarises_each_episode(run):
    demo, online = episode_list(EpisodeStore(run / "episodes.zarr"))
    assert demo == {"index": 0, "source": "demo", "task": "pick", "twin": True, "length": 4, "return": 1.0, "success": True,
                    "classifier_success": True, "labels": [], "interventions": 0, "acted_by": {}}
    assert online["length"] == 6 and online["success"] is False and online["classifier_success"] is False
    assert online["interventions"] == 2 and online["acted_by"] == {"teleop": 2}
    assert online["labels"] == [{"source": "operator", "success": False, "per_step": True}]
    # a polling page's earlier answer: its episodes are reused (committed ones never change), labels re-read
    again = episode_list(EpisodeStore(run / "episodes.zarr"), [{**demo, "length": -1}, {**online, "labels": []}])
    assert again == [{**demo, "length": -1}, online]
    assert episode_list(EpisodeStore(run / "episodes.zarr"), [demo]) == [demo, online]


def test_episode_detail_has_each_step_and_row(run):
    d = episode_detail(EpisodeStore(run / "episodes.zarr"), 1)
    json.dumps(d, allow_nan=False)  # what the browser parses: no NaN
    assert (d["steps"], d["rows"], d["cameras"]) == (6, 7, ["front", "wrist"])
    assert d["action"][3] == pytest.approx([0.3, 0.3]) and len(d["action"]) == 6
    assert d["reward"] == [0, 0, 0, 0, 0, 1]
    assert d["intervention"] == [False, False, True, True, False, False]
    assert d["acted_by"] == ["policy", "policy", "teleop", "teleop", "policy", "policy"]
    assert d["classifier_probability"][0] is None and d["classifier_probability"][1] == pytest.approx(0.2)
    assert d["truth_success"] == [False] * 7
    assert d["labels"][0]["steps"] == [False] * 7
    assert d["judgements"] == {"truth": False, "classifier": False, "operator": False}
    with pytest.raises(IndexError, match="episode 2 out of range"):
        episode_detail(EpisodeStore(run / "episodes.zarr"), 2)


def test_frames_are_jpeg_in_the_right_colours(run):
    store = EpisodeStore(run / "episodes.zarr")
    for camera, rgb in (("front", RED), ("wrist", BLUE)):
        bgr = cv2.imdecode(np.frombuffer(frame_jpeg(store, 1, 6, camera), np.uint8), cv2.IMREAD_COLOR)
        assert bgr.shape == (24, 32, 3)
        np.testing.assert_allclose(bgr[12, 16, ::-1], rgb, atol=8)
    with pytest.raises(KeyError, match="cameras: front, wrist"):
        frame_jpeg(store, 0, 0, "top")
    with pytest.raises(IndexError, match="rows 0..4"):
        frame_jpeg(store, 0, 5, "front")
    # a frame-stacked observation (oldest first) shows its newest frame
    stacked = np.concatenate([np.full((8, 8, 3), BLUE, np.uint8), np.full((8, 8, 3), RED, np.uint8)], axis=-1)
    np.testing.assert_allclose(cv2.imdecode(np.frombuffer(encode_jpeg(stacked), np.uint8), cv2.IMREAD_COLOR)[4, 4, ::-1],
                               RED, atol=8)


async def _get(app: web.Application, paths: list[str]) -> dict[str, tuple[int, str, bytes]]:
    async with TestClient(TestServer(app)) as client:
        out = {}
        for path in paths:
            r = await client.get(path)
            out[path] = (r.status, r.content_type, await r.read())
        return out


def _app(run_dir: Path | None, store: Path | None) -> web.Application:
    app = web.Application()
    add_history_routes(app, run_dir, store)
    return app


def test_routes_answer_json_jpeg_and_the_page(run):
    api = "/api/history/episodes"
    paths = ["/history", "/history/history.js", "/api/history/curves", api, f"{api}/1", f"{api}/1/frames/wrist/3.jpg"]
    got = asyncio.run(_get(_app(run, run / "episodes.zarr"), paths))
    assert {p: got[p][0] for p in paths} == dict.fromkeys(paths, 200)
    assert got["/history"][1] == "text/html" and b"<canvas" in got["/history"][2]
    assert b"linePlot" in got["/history/history.js"][2]
    assert json.loads(got["/api/history/curves"][2]) == json.loads(json.dumps(curves(run)))
    episodes = json.loads(got[api][2])
    assert episodes["cameras"] == ["front", "wrist"] and [e["index"] for e in episodes["episodes"]] == [0, 1]
    assert json.loads(got[f"{api}/1"][2])["acted_by"][2] == "teleop"
    status, kind, body = got[f"{api}/1/frames/wrist/3.jpg"]
    assert kind == "image/jpeg" and cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (24, 32, 3)


def test_routes_name_the_problem_with_bad_input(run):
    api = "/api/history/episodes"
    want = {f"{api}/2": (404, "episode 2 out of range"), f"{api}/abc": (400, "index 'abc' is not a non-negative integer"),
            f"{api}/-1": (400, "index '-1'"), f"{api}/0/frames/top/0.jpg": (404, "no camera 'top'; cameras: front, wrist"),
            f"{api}/0/frames/front/9.jpg": (404, "row 9 out of range"), f"{api}/0/frames/front/x.jpg": (400, "step 'x'"),
            f"{api}/5/frames/front/0.jpg": (404, "episode 5 out of range")}
    got = asyncio.run(_get(_app(run, run / "episodes.zarr"), list(want)))
    for path, (status, message) in want.items():
        assert got[path][0] == status and got[path][1] == "application/json", path
        assert message in json.loads(got[path][2])["error"], path
    none = asyncio.run(_get(_app(None, None), ["/api/history/curves", api]))
    assert none["/api/history/curves"][0] == 404 and "no run folder" in json.loads(none["/api/history/curves"][2])["error"]
    assert none[api][0] == 404 and "no episode store" in json.loads(none[api][2])["error"]


def test_the_browser_sees_episodes_the_writer_appends_meanwhile(tmp_path):
    """The page's store is read-only and refreshed per request: a writer appends while it is open."""
    store = EpisodeStore(tmp_path / "episodes.zarr", mode="a")
    _record(store, "online", 3)

    async def scenario() -> list[int]:
        async with TestClient(TestServer(_app(tmp_path, tmp_path / "episodes.zarr"))) as client:
            counts = [len((await (await client.get("/api/history/episodes")).json())["episodes"])]
            _record(store, "online", 5, teleop=(1,))  # the writer holds its lock all along
            page = await (await client.get("/api/history/episodes")).json()
            counts.append(len(page["episodes"]))
            counts.append((await client.get("/api/history/episodes/1/frames/front/5.jpg")).status)
            return counts

    assert asyncio.run(scenario()) == [1, 2, 200]
    store.close()


@pytest.mark.slow
def test_page_draws_curves_and_browses_episodes_in_chromium(run):
    from playwright.sync_api import sync_playwright

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(_app(run, run / "episodes.zarr"))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    server = threading.Thread(target=loop.run_forever, daemon=True)
    server.start()
    errors: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/history")
            # every panel's canvas drawn: many pixels differ from the background's
            page.wait_for_function("""() => {
                const canvases = [...document.querySelectorAll('#curves canvas')];
                return canvases.length === 5 && canvases.every((c) => {
                    if (!c.width) return false;
                    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let drawn = 0;
                    for (let i = 0; i < px.length; i += 4)
                        if (px[i] !== px[0] || px[i + 1] !== px[1] || px[i + 2] !== px[2]) drawn++;
                    return drawn > 500;
                });
            }""")
            page.wait_for_selector("#episodes tbody tr")
            rows = page.locator("#episodes tbody tr")
            assert rows.count() == 2 and rows.nth(0).inner_text().split()[:3] == ["1", "online", "6"]  # newest first
            rows.nth(0).click()
            page.wait_for_function("""() => {
                const imgs = [...document.querySelectorAll('#frames img')];
                return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth === 32);
            }""")
            page.eval_on_selector("#scrubber", "s => { s.value = 2; s.dispatchEvent(new Event('input')); }")
            assert "teleop (intervention)" in page.inner_text("#step-info")
            page.wait_for_function("() => [...document.querySelectorAll('#frames img')].every((i) => i.src.endsWith('/2.jpg')"
                                   " && i.complete && i.naturalWidth === 32)")
            browser.close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        server.join()
        loop.run_until_complete(runner.cleanup())
        loop.close()
    assert errors == []
