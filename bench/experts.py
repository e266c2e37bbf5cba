"""Scripted experts over many seeded episodes, at nominal and under the training randomization (the default ranges
of RandomizationConfig) with one step of action latency: the full count behind the >= 95 % goal (CI tests run a few
seeds of each).

    python bench/experts.py --episodes 100     # writes out/bench/experts.json (--update: bench/results/)
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import robotrl  # noqa: F401  (registers the envs)
from common import add_output_args, out_dir, write_result
from robotrl.envs import ENVS
from robotrl.runtime.evaluate import wilson_interval
from robotrl.tasks.base import RandomizationConfig
from robotrl.tasks.experts import make_expert

GOAL = 0.95
CASES = [(env_id, {}) for env_id in ENVS] + [
    ("robotrl/QuadHover-v0", {"robot": "quad_1kg"}),
    ("robotrl/QuadWaypoints-v0", {"robot": "quad_1kg"}),
]
# What a policy trained in the twin meets: every physical knob drawn from its training range, actions a step late.
CONDITIONS = {
    "nominal": {},
    "randomized+latency1": {"randomization": {"enabled": True}, "action_latency_steps": 1},
}


def run_case(env_id: str, overrides: dict, condition: str, episodes: int) -> dict:
    env = gym.make(env_id, **overrides, **CONDITIONS[condition])
    expert = make_expert(env)
    wins, costs, lengths = [], [], []
    for seed in tqdm(range(episodes), desc=f"{env_id} {overrides or ''} {condition}", leave=False):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        done, cost, n = False, 0.0, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done, cost, n = terminated or truncated, cost + info["cost"], n + 1
        wins.append(bool(info["success"]))
        costs.append(cost)
        lengths.append(n)
    env.close()
    rate = float(np.mean(wins))
    return {"env": env_id, "overrides": overrides, "condition": condition, "episodes": episodes, "success_rate": rate,
            "interval95": list(wilson_interval(rate, episodes)), "failed_seeds": [s for s, w in enumerate(wins) if not w],
            "mean_steps": float(np.mean(lengths)), "mean_safety_cost": float(np.mean(costs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="seeded episodes per task and condition (default: 100)")
    add_output_args(parser)
    args = parser.parse_args()
    rows = []
    for env_id, overrides in CASES:
        for condition in CONDITIONS:
            row = run_case(env_id, overrides, condition, args.episodes)
            rows.append(row)
            low, high = row["interval95"]
            print(f"{env_id} {overrides or ''} {condition}: {row['success_rate']:.0%} (95 % CI {low:.0%}-{high:.0%}, "
                  f"{args.episodes} episodes)", flush=True)
    write_result(out_dir(args), "experts", {
        "goal": f"success_rate >= {GOAL} for every expert under every condition",
        "goal_met": all(r["success_rate"] >= GOAL for r in rows),
        "conditions": CONDITIONS, "training_randomization": RandomizationConfig(enabled=True).model_dump(),
        "results": rows,
    })


if __name__ == "__main__":
    main()
