"""QuadHover from scratch: SAC (no demos, dense reward) on robotrl/QuadHover-v0, 5 seeds. Reports the env steps,
wall time and CPU time until the 10-episode evaluation success (within 10 cm and slower than 0.2 m/s for the
episode's final second) first reaches 90 %, then confirms that policy on 50 fresh episodes. Anchor: "Learning to
Fly in Seconds" trains a Crazyflie hover in 18 s, 300k steps (TD3, a laptop) with 64x64 networks, small enough
for the drone's microcontroller; this runs the same width. The JSON is rewritten after every seed, so a stopped
run keeps what it finished.

    python bench/quad_hover.py                  # writes out/bench/quad_hover.{json,png} (--update: bench/results/)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

from common import add_output_args, out_dir, write_result

ENV_ID = "robotrl/QuadHover-v0"
TARGET = 0.9
CONFIRM_EPISODES = 50


def job(spec: tuple[int, argparse.Namespace]) -> tuple[int, dict]:
    import torch

    from robotrl.runtime.train import RunConfig, evaluate_run, train

    seed, args = spec
    torch.set_num_threads(1)
    cfg = RunConfig(env=ENV_ID, env_kwargs={"robot": args.robot}, seed=seed, total_steps=args.budget,
                    random_steps=5000, eval_every=args.eval_every, eval_episodes=10, stop_success=TARGET,
                    learner={"utd": args.utd, "hidden": args.hidden, "discount": 0.99, "num_threads": 1})
    cpu = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        curve = train(cfg, Path(tmp) / "run", progress=False)
        cpu = time.process_time() - cpu
        hit = next((c for c in curve if c["success"] >= TARGET), None)
        confirm = evaluate_run(Path(tmp) / "run", CONFIRM_EPISODES)[0] if hit else None
    return seed, {"steps_to_hover": hit["env_steps"] if hit else None, "wall_s": hit["wall_s"] if hit else None,
                  "cpu_s": cpu if hit else None, "confirm_success": confirm, "curve": curve}


def plot(runs: dict[int, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for seed, run in sorted(runs.items()):
        ax.plot([c["env_steps"] for c in run["curve"]], [c["success"] for c in run["curve"]], marker=".", label=f"seed {seed}")
    ax.axhline(TARGET, color="gray", ls="--", lw=1)
    ax.set(xlabel="env steps", ylabel="eval success (10 episodes)", title=f"{ENV_ID} from scratch (SAC, 64x64)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--utd", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64, help="MLP width (actor and critics)")
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--robot", default="crazyflie")
    add_output_args(parser)
    args = parser.parse_args()
    runs: dict[int, dict] = {}
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(job, (s, args)) for s in range(args.seeds)]):
            seed, runs[seed] = future.result()
            r = runs[seed]
            print(f"seed {seed}: {r['steps_to_hover']} steps, {r['wall_s']} s wall, {r['cpu_s']} s CPU, "
                  f"confirmed {r['confirm_success']}", flush=True)
            hovered = [r for r in runs.values() if r["steps_to_hover"] is not None]
            plot(runs, out_dir(args) / "quad_hover.png")
            write_result(out_dir(args), "quad_hover", {
                "env": ENV_ID, "robot": args.robot, "budget": args.budget, "utd": args.utd, "hidden": args.hidden,
                "seeds": args.seeds, "finished": sorted(runs), "hovered": len(hovered),
                "mean_steps_to_hover": sum(r["steps_to_hover"] for r in hovered) / len(hovered) if hovered else None,
                "mean_cpu_s": sum(r["cpu_s"] for r in hovered) / len(hovered) if hovered else None,
                "goal": "stable hover learned from scratch in 5 of 5 seeds",
                "anchor": "Learning to Fly in Seconds: 300k steps, 18 s",
                "goal_met": len(runs) == args.seeds and len(hovered) == args.seeds, "runs": runs,
            })


if __name__ == "__main__":
    main()
