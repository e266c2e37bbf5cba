"""The replay: each observation stored once, memory bounded by its capacity, next observations right across episode
ends and across the ring's wrap-around, and the learner's memory report."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robotrl.learners import ReplayBuffer, SACAgent, SACConfig
from robotrl.runtime.learner import Learner

SPACE = gym.spaces.Dict({"images/cam": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
                         "state/t": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)})


def episode(ep: int, steps: int) -> dict:
    """Observation t of episode ep carries (ep, t) in its state and in every pixel; reward = 100 ep + t."""
    t = np.arange(steps + 1)
    obs = {"images/cam": np.broadcast_to(((ep * 16 + t) % 256).astype(np.uint8)[:, None, None, None],
                                         (steps + 1, 8, 8, 3)).copy(),
           "state/t": np.stack([np.full(steps + 1, ep), t], 1).astype(np.float32)}
    return {"obs": obs, "action": np.zeros((steps, 1), np.float32), "reward": (100.0 * ep + t[:-1]).astype(np.float32),
            "terminated": (t[:-1] == steps - 1) & (ep % 2 == 0)}


def check_consistent(batch: dict) -> None:
    """Every sampled transition's obs is (ep, t) and next_obs (ep, t + 1) of the same episode, in state and pixels."""
    ep, t = batch["obs"]["state/t"].T
    nep, nt = batch["next_obs"]["state/t"].T
    np.testing.assert_array_equal(nep, ep)
    np.testing.assert_array_equal(nt, t + 1)
    np.testing.assert_array_equal(batch["reward"], 100 * ep + t)
    np.testing.assert_array_equal(batch["next_obs"]["images/cam"][:, 0, 0, 0], ((ep * 16 + t + 1) % 256).astype(np.uint8))


def test_memory_is_bounded_by_capacity_and_frames_are_stored_once():
    buffer = ReplayBuffer(SPACE, 1, capacity=50)
    allocated = sum(a.nbytes for a in buffer.obs.values()) + buffer.action.nbytes + buffer.reward.nbytes + buffer.done.nbytes
    assert buffer.nbytes >= allocated and buffer.nbytes <= buffer.capacity * buffer.bytes_per_transition
    frame = 8 * 8 * 3 + 2 * 4
    assert frame < buffer.bytes_per_transition < 2 * frame  # one observation per transition, not obs and next_obs
    assert not hasattr(buffer, "next_obs")
    for ep in range(20):
        buffer.add_episode(episode(ep, 7))
        assert len(buffer) <= buffer.capacity and buffer.rows <= buffer.capacity
        assert all(len(v) == 50 for v in buffer.obs.values())  # never grows


def test_next_obs_never_crosses_an_episode_boundary_across_wrap_around():
    buffer = ReplayBuffer(SPACE, 1, capacity=23)  # not a multiple of the episode length: episodes wrap mid-way
    rng = np.random.default_rng(0)
    for ep in range(13):
        buffer.add_episode(episode(ep, 5 + ep % 4))
        batch = buffer.sample(500, rng)
        check_consistent(batch)
        # The last step of an episode leads to that episode's final observation.
        ep_ids, t = batch["obs"]["state/t"].T
        last = t == np.array([5 + e % 4 for e in ep_ids.astype(int)]) - 1
        np.testing.assert_array_equal(batch["done"][last], (ep_ids[last] % 2 == 0).astype(np.float32))
    # Held: the newest episodes whole (12: 5 steps in 6 rows, 11: 8 in 9, 10: 7 in 8 = 23 rows), nothing older.
    held = sorted(map(tuple, buffer.obs["state/t"][buffer.transitions()].astype(int).tolist()))
    assert held == [(e, t) for e in (10, 11, 12) for t in range(5 + e % 4)] and len(buffer) == 20


def test_step_by_step_adds_store_each_observation_once_and_match_add_episode():
    a, b = ReplayBuffer(SPACE, 1, capacity=40), ReplayBuffer(SPACE, 1, capacity=40)
    for ep in range(3):
        e = episode(ep, 6)
        a.add_episode(e)
        for t in range(6):
            b.add({k: v[t] for k, v in e["obs"].items()}, e["action"][t], e["reward"][t],
                  {k: v[t + 1] for k, v in e["obs"].items()}, e["terminated"][t])
    assert len(a) == len(b) == 18 and a.rows == b.rows == 21  # 6 transitions in 7 rows per episode
    for buffer in (a, b):
        check_consistent(buffer.sample(300, np.random.default_rng(1)))
    x, y = a.sample(64, np.random.default_rng(2)), b.sample(64, np.random.default_rng(2))
    np.testing.assert_array_equal(x["obs"]["state/t"], y["obs"]["state/t"])  # same order, same stream
    # Wrap-around with step-by-step adds too: many short episodes through a small ring.
    c = ReplayBuffer(SPACE, 1, capacity=11)
    for ep in range(30):
        e = episode(ep, 1 + ep % 5)
        for t in range(len(e["action"])):
            c.add({k: v[t] for k, v in e["obs"].items()}, e["action"][t], e["reward"][t],
                  {k: v[t + 1] for k, v in e["obs"].items()}, e["terminated"][t])
        check_consistent(c.sample(100, np.random.default_rng(ep)))


def test_an_episode_longer_than_the_buffer_keeps_its_end():
    buffer = ReplayBuffer(SPACE, 1, capacity=10)
    buffer.add_episode(episode(0, 25))
    assert len(buffer) == 9
    batch = buffer.sample(200, np.random.default_rng(0))
    check_consistent(batch)
    assert batch["obs"]["state/t"][:, 1].min() == 16 and batch["obs"]["state/t"][:, 1].max() == 24


def test_learner_reports_replay_memory_and_refuses_a_capacity_that_does_not_fit():
    env_obs = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (96, 96, 3), np.uint8),
                               "images/wrist": gym.spaces.Box(0, 255, (96, 96, 3), np.uint8),
                               "state/q": gym.spaces.Box(-1, 1, (7,), np.float32)})
    action = gym.spaces.Box(-1, 1, (4,), np.float32)
    agent = SACAgent(env_obs, action, SACConfig(hidden=16, image_features=8, cnn_channels=8, capacity=1000, device="cpu"))
    lines: list[str] = []
    learner = Learner(agent, env_obs, log=lines.append)
    assert learner.offline.capacity == learner.online.capacity == 1000  # from the learner config
    per = learner.offline.bytes_per_transition
    assert 2 * 96 * 96 * 3 < per < 2 * 96 * 96 * 3 + 200
    assert learner.replay_bytes == 2 * 1000 * per
    assert len(lines) == 1 and f"{per:,} bytes per transition" in lines[0] and "capacity 1,000" in lines[0]
    with pytest.raises(MemoryError, match="capacity"):
        Learner(agent, env_obs, capacity=10**9, log=None)  # 55 TB: refused before anything is allocated
    with pytest.raises(ValueError, match="capacity"):
        SACConfig(capacity=1)
