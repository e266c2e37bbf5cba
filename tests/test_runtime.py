"""Actor / learner runtime: weights travel by version, a learner crash leaves the actor running, resume continues,
the actor in sim keeps to the learner's pace, evaluations carry their interval."""

import json
import os
import signal
import time

import numpy as np
import pytest
import torch

from robotrl.data import EpisodeStore
from robotrl.runtime.evaluate import wilson_interval
from robotrl.runtime.train import (RunConfig, _build, _start_learner, learner_setup, evaluate_run, load_history, save_run,
                                   train)
from robotrl.runtime.actor import Actor, RateLimiter
from robotrl.runtime.transport import FileWeights

FAST = {"batch_size": 64, "hidden": 64, "num_threads": 1}


def reach(total_steps, **kw):
    return RunConfig(env="robotrl/ArmReach-v0", env_kwargs={"reward": "dense"}, learner=kw.pop("learner", FAST), total_steps=total_steps,
                     eval_every=kw.pop("eval_every", 100), eval_episodes=2, random_steps=kw.pop("random_steps", 100), **kw)


def test_file_weights_versions_and_pruning(tmp_path):
    t = FileWeights(tmp_path / "w", keep=2)
    assert t.poll(-1) is None
    for v in (1, 2, 3):
        t.publish(v, {"w": torch.full((2,), float(v))})
    version, weights = t.poll(-1)
    assert version == 3 and weights["w"].tolist() == [3.0, 3.0]
    assert t.poll(3) is None
    assert sorted(p.name for p in (tmp_path / "w").glob("v*.pt")) == ["v00000002.pt", "v00000003.pt"]


@pytest.mark.slow
def test_resume_continues_the_same_run(tmp_path):
    run = tmp_path / "run"
    first = train(reach(300), run, progress=False)
    before = evaluate_run(run, episodes=3)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    learner, message = learner_setup(run)
    agent = learner.algorithm
    assert message.startswith(f"resumed {run} at env step 300 ")
    # The resumed policy is the trained one, not a fresh initialization (LeRobot PR #4560's bug).
    assert agent.num_updates == ckpt["agent"]["num_updates"] > 0
    assert evaluate_run(run, episodes=3) == before
    second = train(reach(500), run, progress=False)
    assert second[: len(first)] == first  # the curve goes on from where it stopped
    assert second[-1]["wall_s"] > first[-1]["wall_s"]  # the run's training time across the resume
    assert second[-1]["env_steps"] == 500 and second[-1]["updates"] > first[-1]["updates"]
    seeds = [m.seed for m in EpisodeStore(run / "episodes.zarr").metas()]
    assert len(seeds) == len(set(seeds))  # the episode sequence continued, no seed replayed


@pytest.mark.slow
def test_processes_weights_reach_the_actor_and_a_learner_crash_leaves_it_running(tmp_path):
    run = tmp_path / "run"
    cfg = reach(10_000)
    save_run(cfg, run)
    env, agent, _ = _build(cfg)
    store = EpisodeStore(run / "episodes.zarr", mode="a")
    actor = Actor(env, agent.policy, store, cfg.env, FileWeights(run / "weights"), random_steps=100, poll_every=5)
    proc = _start_learner(run)
    try:
        deadline = time.time() + 240
        while actor.weights_version < 2 and time.time() < deadline and proc.is_alive():
            actor.step()
        assert actor.weights_version >= 2, f"the learner's weights never reached the actor (learner exit code {proc.exitcode})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        version, episodes = actor.weights_version, store.n_episodes
        for _ in range(200):  # the actor keeps acting on its last weights
            actor.step()
        assert actor.weights_version == version
        assert store.n_episodes >= episodes + 3
        assert np.isfinite(actor.policy.act(actor._obs)).all()
    finally:
        if proc.is_alive():
            proc.kill()


def test_wilson_interval():
    assert [round(x, 2) for x in wilson_interval(31 / 40, 40)] == [0.62, 0.88]  # 77.5 % of 40: 62-88 %
    assert [round(x, 2) for x in wilson_interval(1.0, 5)] == [0.57, 1.0]  # 5 of 5 is not "100 %"
    low, high = wilson_interval(0.0, 50)
    assert low == 0.0 and 0.06 < high < 0.08
    low, high = wilson_interval(0.5, 200)
    assert 0.43 < low < 0.5 < high < 0.57


class Reports:
    """A learner's counters as the actor reads them: each read, ``step`` more updates (None: no report yet)."""

    def __init__(self, ready=True, step=10, start=0, reports=True):
        self.reads, self.ready, self.step, self.updates, self.reports = 0, ready, step, start, reports

    def read(self):
        self.reads += 1
        self.updates += self.step
        return {"updates": self.updates, "ready": self.ready} if self.reports else {}


def test_rate_limiter_waits_for_a_ready_live_learner_only():
    learner = Reports()
    RateLimiter(learner, warmup=20, max_ahead=50, poll_seconds=0).wait(stored_steps=220)
    assert learner.updates == 150  # returned at the first report within 50 of 220 - 20 stored env steps
    learner = Reports(start=200)
    limiter = RateLimiter(learner, warmup=0, max_ahead=50, poll_seconds=0)
    limiter.wait(220)
    limiter.wait(240)
    assert learner.reads == 1  # within reach of the counters read before: no read at all
    for idle in (Reports(ready=False), Reports(step=0)):  # no batch yet (it waits for data) / a dead learner
        RateLimiter(idle, warmup=0, max_ahead=50, alive=lambda: idle.step > 0, poll_seconds=0).wait(1000)
        assert idle.reads <= 2
    starting = Reports(reports=False)  # a learner process still starting up: as if at 0 updates
    reads = iter(range(5))
    RateLimiter(starting, warmup=0, max_ahead=50, alive=lambda: next(reads, None) is not None, poll_seconds=0).wait(100)
    assert starting.reads >= 5


@pytest.mark.slow
def test_processes_hold_the_configured_update_to_data_ratio(tmp_path):
    """Two processes in sim: the actor waits for the learner, so the learner's real updates (not the actor's
    count, always 0) keep the learner config's ratio, and the metrics say so."""
    handler = signal.getsignal(signal.SIGTERM)
    cfg = reach(600, eval_every=200, random_steps=0, learner={**FAST, "hidden": 32, "batch_size": 32, "utd": 2})
    history = train(cfg, tmp_path / "run", processes=True, progress=False)
    assert signal.getsignal(signal.SIGTERM) is handler  # train() put the previous SIGTERM handler back
    assert [h["env_steps"] for h in history] == [200, 400, 600]
    for row in history[1:]:  # after 400 and 600 env steps: critic updates per env step within 20 % of utd 2
        assert abs(row["utd"] / 2 - 1) <= 0.2, history
    assert history[-1]["updates"] >= 0.8 * 600 and history[-1]["weights_version"] > 1
    progress = json.loads((tmp_path / "run" / "learner.json").read_text())
    assert progress["updates"] == history[-1]["updates"] and progress["critic_updates"] == 2 * progress["updates"]


def test_a_run_without_checkpoint_continues_from_its_episodes_and_says_so(tmp_path):
    run = tmp_path / "run"
    tiny = {**FAST, "hidden": 32, "batch_size": 32}
    train(reach(100, random_steps=100, learner=tiny), run, progress=False)  # all random: no updates
    (run / "checkpoint.pt").unlink()
    (run / "best.pt").unlink()
    with open(run / "metrics.jsonl", "a") as f:  # an evaluation after the last stored episode (its episode was lost)
        f.write(json.dumps({"event": "eval", "env_steps": 150, "success": 0.0, "return": 0.0}) + "\n")
    learner, message = learner_setup(run)
    assert message.startswith(f"continued {run} at env step 100 (2 stored episodes) with fresh networks")
    assert learner.env_steps == 100 and len(learner.online) > 0
    history = train(reach(200, random_steps=100, learner=tiny), run, progress=False)
    assert [h["env_steps"] for h in history] == [100, 200] == [h["env_steps"] for h in load_history(run)]
    assert len(EpisodeStore(run / "episodes.zarr").metas()) == 4 and (run / "best.pt").exists()


def test_a_run_yaml_from_before_the_learner_seam_still_loads(tmp_path):
    """Old run folders hold SAC's overrides under ``sac:``: they load as algo sac with those learner overrides."""
    from robotrl.config import ConfigError
    from robotrl.runtime.train import load_run

    (tmp_path / "run.yaml").write_text("env: robotrl/ArmReach-v0\nsac: {hidden: 32, utd: 2}\nseed: 3\n")
    cfg = load_run(tmp_path)
    assert (cfg.algo, cfg.learner, cfg.seed) == ("sac", {"hidden": 32, "utd": 2}, 3)
    (tmp_path / "run.yaml").write_text("env: robotrl/ArmReach-v0\nalgo: bc\nsac: {hidden: 32}\n")
    with pytest.raises(ConfigError, match="'sac'"):
        load_run(tmp_path)


def test_a_paused_learner_ingests_but_makes_no_update_until_resumed(tmp_path):
    """serve() as the learner process runs it, paused by the operator (robotrl ui's Pause learning: RUN/PAUSE; the
    learner node: /operator/learning): new episodes are taken in, no update is made; resumed, updates go on."""
    import threading

    from robotrl.data import EpisodeRecorder
    from robotrl.policies import RandomPolicy
    from robotrl.runtime.actor import make_env, record_episode
    from robotrl.runtime.learner import serve

    run = tmp_path / "run"
    tiny = {**FAST, "hidden": 32, "batch_size": 32}
    train(reach(200, random_steps=100, learner=tiny), run, progress=False)
    learner, _ = learner_setup(run)
    learner.transport = FileWeights(run / "weights")
    updates = learner.algorithm.num_updates
    store = EpisodeStore(run / "episodes.zarr", mode="a")  # the actor goes on recording
    env = make_env("robotrl/ArmReach-v0", {"reward": "dense"})
    for seed in range(2):
        record_episode(env, RandomPolicy(env.action_space), EpisodeRecorder(store), seed, "online", "reach")
    store.close()
    checks, paused, stop = [], threading.Event(), threading.Event()
    paused.set()

    def is_paused() -> bool:
        checks.append(paused.is_set())
        return paused.is_set()

    stopper = type("Stop", (), {"exists": lambda self: stop.is_set()})()
    thread = threading.Thread(target=serve, args=(learner, run / "episodes.zarr", run / "checkpoint.pt", stopper),
                              kwargs={"paused": is_paused, "poll_seconds": 0.001}, daemon=True)
    thread.start()
    hang_guard = time.monotonic() + 60
    while len(checks) < 200 or learner.episodes < 6:  # many loops of serve(), all paused
        assert time.monotonic() < hang_guard and thread.is_alive()
        time.sleep(0.005)
    assert learner.algorithm.num_updates == updates and learner.episodes == 6  # ingested, not learned from
    paused.clear()
    while learner.algorithm.num_updates < updates + 20:
        assert time.monotonic() < hang_guard and thread.is_alive()
        time.sleep(0.005)
    stop.set()
    thread.join(timeout=30)
