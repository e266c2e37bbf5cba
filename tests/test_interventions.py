"""Interventions: the teleop action replaces the policy's, steps are flagged, the rate is reported."""

import gymnasium as gym
import numpy as np

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.tasks.experts import make_expert
from robotrl.interventions import CubeDrift, InterventionWrapper, ScriptedIntervener
from robotrl.policies import Stateless


def make(seed=0, hold=5):
    base = gym.make("robotrl/ArmPickCube-v0")
    human = ScriptedIntervener(make_expert(base), CubeDrift(patience=5), hold_steps=hold, noise=0.05, seed=seed)
    return InterventionWrapper(base, human)


class Ones(Stateless):
    def act(self, obs, deterministic=False):
        return np.ones(3, np.float32)


def test_hands_off_passes_the_policy_action_through():
    env = InterventionWrapper(gym.make("robotrl/ArmReach-v0"), ScriptedIntervener(Ones(), lambda o: False))
    env.reset(seed=0)
    action = np.array([0.1, -0.2, 0.3], np.float32)
    _, _, _, _, info = env.step(action)
    assert info["intervention"] is False and info["intervention_rate"] == 0.0
    np.testing.assert_array_equal(info["action"], action)


def test_human_takes_over_when_the_policy_stalls_and_flags_the_steps():
    env = make()
    env.reset(seed=0)
    flags = []
    for _ in range(12):
        _, _, _, _, info = env.step(np.zeros(4, np.float32))  # a policy that goes nowhere
        flags.append(info["intervention"])
        assert not np.array_equal(info["action"], np.zeros(4)) or not info["intervention"]
    # Five steps without progress toward the cube, then the human holds for hold_steps (5).
    assert flags[:5] == [False] * 5 and flags[5:10] == [True] * 5
    assert info["intervention_rate"] == sum(flags) / len(flags)


def test_a_policy_heading_for_the_cube_is_left_alone():
    base = gym.make("robotrl/ArmPickCube-v0")
    policy, trigger = make_expert(base), CubeDrift(patience=5)
    obs, _ = base.reset(seed=3)
    policy.reset()
    for _ in range(40):  # the whole approach, grasp and lift, starting ~20 cm from the cube
        assert not trigger(obs)
        obs, _, terminated, _, _ = base.step(policy.act(obs))
        if terminated:
            break
    assert terminated


def test_drifting_away_triggers_and_the_trigger_resets():
    trigger = CubeDrift(patience=3)
    obs = lambda d: {"state/cube_to_ee": np.array([d, 0, 0], np.float32), "state/cube_pos": np.array([0.5, 0, 0.02], np.float32)}
    assert [trigger(obs(d)) for d in (0.20, 0.15, 0.16, 0.17, 0.18)] == [False, False, False, False, True]
    assert not trigger(obs(0.02))  # at the cube: the policy is grasping, not drifting
    trigger.reset()
    assert [trigger(obs(0.2)) for _ in range(3)] == [False, False, False]


def test_a_passive_policy_with_a_human_still_solves_the_task():
    """The intervener alone (policy outputs zeros) must succeed: interventions carry real task information."""
    wins = []
    for seed in range(5):
        env = make(seed, hold=30)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(np.zeros(4, np.float32))
            done = terminated or truncated
        wins.append(info["success"])
    assert np.mean(wins) >= 0.8


def test_intervened_steps_are_recorded_with_their_flag(tmp_path):
    env = make()
    store = EpisodeStore(tmp_path / "i.zarr", mode="a")
    rec = EpisodeRecorder(store)
    obs, _ = env.reset(seed=0)
    rec.start(obs)
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        rec.step(info["action"], reward, obs, terminated, info["intervention"])
    rec.finish(EpisodeMeta(source="intervention", task="robotrl/ArmPickCube-v0"))
    ep = store.episode(0)
    assert not ep["intervention"][:5].any() and ep["intervention"][5:10].all()
    assert np.abs(ep["action"][5:10]).sum() > 0  # the executed (human) action, not the policy's zeros
    assert np.abs(ep["action"][:5]).sum() == 0


def test_learner_charges_the_policy_step_that_led_to_a_takeover(tmp_path):
    """RLIF: the step before the human takes over costs ``takeover_penalty``; the human's own steps go to both
    buffers with the task's reward, so the policy learns to avoid needing rescue, not to wait for it."""
    from robotrl.data.store import transitions
    from robotrl.learners import SACAgent, load_sac_config
    from robotrl.runtime.learner import Learner

    env = make()
    store = EpisodeStore(tmp_path / "i.zarr", mode="a")
    rec = EpisodeRecorder(store)
    obs, _ = env.reset(seed=0)
    rec.start(obs)
    for _ in range(12):  # the human takes over at step 5 (the policy stalls) and lets go after 5 steps
        obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        rec.step(info["action"], reward, obs, terminated, info["intervention"])
    rec.finish(EpisodeMeta(source="intervention", task="robotrl/ArmPickCube-v0"))
    rows = store.episode(0)
    agent = SACAgent(env.observation_space, env.action_space, load_sac_config({"device": "cpu"}))
    charged = Learner(agent, env.observation_space, capacity=100, takeover_penalty=0.5)
    plain = Learner(agent, env.observation_space, capacity=100)
    charged.ingest(rows)
    plain.ingest(rows)
    n = len(transitions(rows)["action"])
    diff = plain.online.reward[:n] - charged.online.reward[:n]
    assert np.flatnonzero(diff).tolist() == [4] and diff[4] == 0.5
    assert len(charged.offline) == len(plain.offline) == int(rows["intervention"][:n].sum()) > 0
    assert np.array_equal(charged.offline.reward[:len(plain.offline)], plain.offline.reward[:len(plain.offline)])
