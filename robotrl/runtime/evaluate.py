"""Evaluation of any Policy: fixed-seed episodes acting deterministically, a success rate and its interval.
Needs no torch (a scripted expert evaluates without it)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from robotrl.policies.base import Deterministic, Policy
from robotrl.runtime.actor import episode_steps


def evaluate(policy: Policy, env: gym.Env, episodes: int, seed: int = 10_000) -> tuple[float | None, float]:
    """(success rate, mean return) of ``policy`` acting deterministically over ``episodes`` episodes with seeds
    ``seed + i`` (reset at each start). The rate is over the episodes whose last step reported success: None for
    envs that report none."""
    return evaluate_with_costs(policy, env, episodes, seed)[:2]


def evaluate_with_costs(policy: Policy, env: gym.Env, episodes: int, seed: int = 10_000
                        ) -> tuple[float | None, float, dict[str, float]]:
    """:func:`evaluate`, and the mean safety cost per episode per limit (``info["costs"]``: 1 per step a limit was
    hit; empty for envs that report none)."""
    wins, returns, costs = [], [], {}
    for i in range(episodes):
        ret, info = 0.0, {}
        for _, _, reward, _, info in episode_steps(env, Deterministic(policy), seed + i):
            ret += reward
            for limit, cost in info.get("costs", {}).items():
                costs[limit] = costs.get(limit, 0.0) + cost
        flag = info.get("success", info.get("is_success"))  # gymnasium-robotics: is_success (make_env renames it)
        if flag is not None:
            wins.append(bool(flag))
        returns.append(ret)
    return (float(np.mean(wins)) if wins else None), float(np.mean(returns)), {k: v / episodes for k, v in costs.items()}


def wilson_interval(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (z = 1.96) Wilson score interval of a success rate measured over ``n`` episodes. Unlike rate +- z * se
    it stays inside [0, 1] and is not zero-width at 0 % or 100 %: 5 of 5 episodes is 57-100 %, 31 of 40 is 62-88 %."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z / n
    center = (rate + z2 / 2) / (1 + z2)
    half = z / (1 + z2) * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n))
    return max(0.0, center - half), min(1.0, center + half)
