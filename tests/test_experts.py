"""Scripted experts survive what a policy trained in the twin meets: the training randomization (the default ranges)
with one step of action latency. The full count (100 seeds per expert and condition) is bench/experts.py; here a
few seeds apart from the benchmark's, with a margin (floating point differs between CPUs)."""

import gymnasium as gym
import numpy as np
import pytest
from conftest import run_episode

from robotrl import ENVS
from robotrl.tasks.experts import make_expert

TRAINING = {"randomization": {"enabled": True}, "action_latency_steps": 1}
SEEDS = range(1000, 1010)


@pytest.mark.parametrize("env_id", list(ENVS))
def test_expert_succeeds_under_training_randomization_and_a_step_of_latency_within_its_limits(env_id):
    """... and no command of its hits a safety limit: a step late, the arm's previous action still moves it first,
    which once took the pick's descent below the workspace floor."""
    env = gym.make(env_id, **TRAINING)
    expert = make_expert(env)
    wins, cost = [], 0.0
    for seed in SEEDS:
        obs, _ = env.reset(seed=seed)
        expert.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done, cost = terminated or truncated, cost + info["cost"]
        wins.append(info["success"])
    env.close()
    assert np.mean(wins) >= 0.9, f"{env_id}: failed seeds {[s for s, w in zip(SEEDS, wins) if not w]}"
    assert cost == 0


@pytest.mark.parametrize("env_id", ["robotrl/QuadHover-v0", "robotrl/QuadWaypoints-v0"])
def test_heavier_quadrotor_with_one_step_of_latency(env_id):
    """Outside the training draws on purpose, so the margin shows: every body 15 % heavier, the motors 5 % weaker
    (the expert knows only the nominal mass: its thrust integral finds the rest)."""
    env = gym.make(env_id, action_latency_steps=1, randomization={
        "enabled": True, "mass_scale": (1.15, 1.15), "actuator_gain_scale": (0.95, 0.95)})
    expert = make_expert(env)
    wins = [run_episode(env, expert, seed)[0]["success"] for seed in range(2000, 2005)]
    assert np.mean(wins) >= 0.8


def test_reset_forgets_what_the_quadrotor_expert_learned():
    env = gym.make("robotrl/QuadHover-v0", **TRAINING)
    expert = make_expert(env)
    run_episode(env, expert, seed=0)
    assert expert.thrust_bias != 0 and np.any(expert.rate_bias != 0)
    obs, _ = env.reset(seed=1)
    expert.reset()
    np.testing.assert_array_equal(expert.act(obs), make_expert(env).act(obs))
