import os
import socket

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import robotrl  # noqa: E402,F401  (registers the envs)
from robotrl.tasks.experts import make_expert  # noqa: E402


def free_udp_port() -> int:
    """A loopback UDP port nobody holds right now (for MAVLink links)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_episode(env: gym.Env, policy, seed: int) -> tuple[dict, int]:
    """Run one episode; returns the last info and the number of steps."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    steps, done, info = 0, False, {}
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        done, steps = terminated or truncated, steps + 1
    return info, steps


@pytest.fixture
def expert_success_rate():
    def rate(env_id: str, episodes: int) -> float:
        env = gym.make(env_id)
        expert = make_expert(env)
        wins = [run_episode(env, expert, seed)[0]["success"] for seed in range(episodes)]
        env.close()
        return float(np.mean(wins))

    return rate
