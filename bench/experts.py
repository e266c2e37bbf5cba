"""Scripted experts over many seeded episodes (the full count behind the >= 95 % goal; CI tests run 20).

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
from robotrl.tasks.experts import make_expert

CASES = [(env_id, {}) for env_id in ENVS] + [
    ("robotrl/QuadHover-v0", {"robot": "quad_1kg"}),
    ("robotrl/QuadWaypoints-v0", {"robot": "quad_1kg"}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="seeded episodes per task (default: 100)")
    add_output_args(parser)
    args = parser.parse_args()
    rows = []
    for env_id, overrides in CASES:
        env = gym.make(env_id, **overrides)
        expert = make_expert(env)
        wins, costs, lengths = [], [], []
        for seed in tqdm(range(args.episodes), desc=f"{env_id} {overrides or ''}", leave=False):
            obs, _ = env.reset(seed=seed)
            expert.reset()
            done, cost, n = False, 0.0, 0
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done, cost, n = terminated or truncated, cost + info["cost"], n + 1
            wins.append(info["success"])
            costs.append(cost)
            lengths.append(n)
        rows.append({"env": env_id, "overrides": overrides, "episodes": args.episodes,
                     "success_rate": float(np.mean(wins)), "failed_seeds": [s for s, w in enumerate(wins) if not w],
                     "mean_steps": float(np.mean(lengths)), "mean_safety_cost": float(np.mean(costs))})
        print(f"{env_id} {overrides}: {np.mean(wins):.0%}")
    write_result(out_dir(args), "experts", {"goal": "success_rate >= 0.95 for every task", "goal_met": all(r["success_rate"] >= 0.95 for r in rows), "results": rows})


if __name__ == "__main__":
    main()
