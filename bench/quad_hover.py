"""QuadHover from scratch: SAC (no demos, dense reward) on robotrl/QuadHover-v0, 5 seeds. Reports the env steps
and CPU wall time until the 10-episode evaluation success (hovering within 10 cm for the final second) first
reaches 90 %. Anchor: "Learning to Fly in Seconds" trains a Crazyflie hover in 18 s, 300k steps (TD3, a
laptop) with 64x64 networks, small enough for the drone's microcontroller; this runs the same width.

    python bench/quad_hover.py                  # writes bench/results/quad_hover.json
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

from common import write_result

ENV_ID = "robotrl/QuadHover-v0"
TARGET = 0.9


def job(spec: tuple[int, argparse.Namespace]) -> tuple[int, list[dict]]:
    import torch

    from robotrl.runtime.train import RunConfig, train

    seed, args = spec
    torch.set_num_threads(1)
    cfg = RunConfig(env=ENV_ID, env_kwargs={"robot": args.robot}, seed=seed, total_steps=args.budget,
                    random_steps=5000, eval_every=args.eval_every, eval_episodes=10, stop_success=TARGET,
                    sac={"utd": args.utd, "hidden": args.hidden, "discount": 0.99, "num_threads": 1})
    with tempfile.TemporaryDirectory() as tmp:
        return seed, train(cfg, Path(tmp) / "run", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--utd", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width (actor and critics)")
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--robot", default="crazyflie")
    args = parser.parse_args()
    runs = {}
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        for seed, curve in pool.map(job, [(s, args) for s in range(args.seeds)]):
            hit = next((c for c in curve if c["success"] >= TARGET), None)
            runs[seed] = {"steps_to_hover": hit["env_steps"] if hit else None, "wall_s": hit["wall_s"] if hit else None, "curve": curve}
            print(f"seed {seed}: {runs[seed]['steps_to_hover']} steps, {runs[seed]['wall_s']} s", flush=True)
    write_result("quad_hover", {
        "env": ENV_ID, "robot": args.robot, "budget": args.budget, "utd": args.utd, "hidden": args.hidden,
        "hovered": sum(r["steps_to_hover"] is not None for r in runs.values()), "seeds": args.seeds,
        "goal": "stable hover learned from scratch in 5 of 5 seeds", "anchor": "Learning to Fly in Seconds: 300k steps, 18 s",
        "goal_met": all(r["steps_to_hover"] is not None for r in runs.values()), "runs": runs,
    })


if __name__ == "__main__":
    main()
