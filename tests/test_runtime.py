"""Actor / learner runtime: weights travel by version, a learner crash leaves the actor running, resume continues."""

import os
import signal
import time

import numpy as np
import pytest
import torch

from robotrl.data import EpisodeStore
from robotrl.runtime.train import RunConfig, _resume, _setup, _start_learner, evaluate_run, save_run, train
from robotrl.runtime.actor import Actor
from robotrl.runtime.transport import FileWeights

FAST = {"batch_size": 64, "hidden": 64, "num_threads": 1}


def reach(total_steps, **kw):
    return RunConfig(env="robotrl/ArmReach-v0", env_kwargs={"reward": "dense"}, sac=FAST, total_steps=total_steps,
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
    cfg, ckpt = reach(300), torch.load(run / "checkpoint.pt", weights_only=False)
    env, agent, learner, store = _setup(cfg, run, writer=False)
    assert _resume(learner, run, store)
    # The resumed policy is the trained one, not a fresh initialization (LeRobot PR #4560's bug).
    assert agent.num_updates == ckpt["agent"]["num_updates"] > 0
    assert evaluate_run(run, episodes=3) == before
    second = train(reach(500), run, progress=False)
    assert second[: len(first)] == first  # the curve goes on from where it stopped
    assert second[-1]["env_steps"] == 500 and second[-1]["updates"] > first[-1]["updates"]
    seeds = [m.seed for m in EpisodeStore(run / "episodes.zarr").metas()]
    assert len(seeds) == len(set(seeds))  # the episode sequence continued, no seed replayed


@pytest.mark.slow
def test_processes_weights_reach_the_actor_and_a_learner_crash_leaves_it_running(tmp_path):
    run = tmp_path / "run"
    cfg = reach(10_000)
    save_run(cfg, run)
    env, agent, _, store = _setup(cfg, run)
    actor = Actor(env, agent, store, cfg.env, FileWeights(run / "weights"), random_steps=100, poll_every=5)
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
        assert np.isfinite(actor.agent.act(actor._obs)).all()
    finally:
        if proc.is_alive():
            proc.kill()
