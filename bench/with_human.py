"""Learning with a human: ArmPickCube from 10 demos, with and without a scripted intervener (the expert plus
noise takes over for 5 steps when the gripper has not come closer to a cube still on the table for 5 steps:
robotrl.interventions.CubeDrift). Reports env steps to 90 % evaluation success, and draws success and
intervention-rate curves.

    python bench/with_human.py                  # writes out/bench/with_human.{json,png} (--update: bench/results/)
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

import numpy as np

from robotrl.runtime.train import RunConfig
from common import TARGET, add_output_args, first_hit, out_dir, write_result
from sample_efficiency import ENV_ID, ours


def job(spec):
    human, seed, args = spec
    return human, seed, ours(seed, args, human=human, takeover_penalty=args.takeover_penalty, stop_success=TARGET)["curve"]


def steps_to_target(curve: list[dict], budget: int) -> int:
    """Env steps of the first evaluation at TARGET; a run that never got there counts as its budget."""
    return first_hit(curve) or budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=30_000)
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--utd", type=int, default=4)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--takeover-penalty", type=float, default=RunConfig.model_fields["takeover_penalty"].default,
                        help="reward charged to the policy step a human took over after (RLIF); 0: none")
    add_output_args(parser)
    args = parser.parse_args()
    results: dict[str, dict[int, list]] = {}
    specs = [(h, s, args) for h in ("none", "scripted") for s in range(args.seeds)]
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        for human, seed, curve in pool.map(job, specs):
            results.setdefault(human, {})[seed] = curve
            print(f"human={human} seed {seed}: {steps_to_target(curve, args.budget)} steps to {TARGET:.0%}", flush=True)
    steps = {h: [steps_to_target(c, args.budget) for c in seeds.values()] for h, seeds in results.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for human, color in (("none", "tab:blue"), ("scripted", "tab:green")):
        for i, curve in enumerate(results[human].values()):
            x = [c["env_steps"] for c in curve]
            a.plot(x, [c["success"] for c in curve], color=color, marker=".", label=f"human: {human}" if i == 0 else None)
            if human == "scripted":
                b.plot(x, [c["intervention_rate"] for c in curve], color=color, marker=".", label="intervention rate" if i == 0 else None)
    a.axhline(TARGET, color="gray", ls="--", lw=1)
    a.set(xlabel="env steps", ylabel="eval success", title=f"{ENV_ID} from {args.demos} demos")
    b.set(xlabel="env steps", ylabel="fraction of steps", title="scripted human: intervention rate")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir(args) / "with_human.png", dpi=120)
    write_result(out_dir(args), "with_human", {
        "env": ENV_ID, "budget": args.budget, "demos": args.demos, "utd": args.utd,
        "steps_to_90": steps, "mean_steps_to_90": {h: float(np.mean(s)) for h, s in steps.items()},
        "goal": "interventions cut the env steps to 90 % versus no interventions",
        "goal_met": bool(np.mean(steps["scripted"]) < np.mean(steps["none"])),
        "curves": results,
    })


if __name__ == "__main__":
    main()
