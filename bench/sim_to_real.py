"""Sim-to-real that transfers: does the pixel policy trained with the twin's randomization keep its success on settings
it never saw? The goal configuration of bench/pixels.py (front + wrist cameras and proprioception, a reward
classifier from the scripted operator's labels, 20 demos, SAC with the frozen pretrained encoder) trained twice, to
the budget:
  randomized  configs/tasks/arm_pick_cube_pixels_randomized.yaml: the training randomization (masses, friction,
              damping, motor gains, lighting, cameras, colours) and one control step of latency; its labels,
              classifier and demos are recorded under it too, and its frozen encoder pretrained on its frames;
  nominal     configs/tasks/arm_pick_cube_pixels.yaml (or, with --nominal-run, a finished run of bench/pixels.py).
Each is evaluated over 200 episodes (seeds 20000+i) on the nominal twin and on every held-out set of
configs/heldout/arm_pick_cube.yaml, whose values lie outside the training ranges (masses x0.6-1.5, friction x0.5-1.5,
two steps of latency, darker light and cameras further off, a blue cube). Reported per policy and setting: success with
its 95 % interval, the share of its nominal success kept, and the safety cost per episode per limit.
Goal: randomized keeps >= 90 % of its nominal success under every held-out set.

Resumable: a run resumes from its folder, and each (policy, setting) evaluation is merged into the JSON when done and
skipped when there.

    python bench/sim_to_real.py                      # out/bench/sim_to_real.{json,png} (--update: bench/results/)
    python bench/sim_to_real.py --nominal-run out/pixels/goal_seed0/run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

from common import ROOT, add_output_args, out_dir, write_result
from pixels import ENV_ID, RECIPE, RUN_SETTINGS, add_run_args, learn, pixel_learner, pixel_task

TRAINING = "arm_pick_cube_pixels_randomized"
KEEP = 0.9  # the share of nominal success every held-out set must keep


def policies(args: argparse.Namespace) -> dict[str, Path]:
    """The two runs, trained to the budget (resumed where they stopped). The randomized one's frozen encoder is
    pretrained on frames of its own randomized twin (in ``--work``): one pretrained at nominal only ever saw one
    lighting, one camera pose and one colour, and its classifier then never fired on the randomized twin."""
    from robotrl.config import config_path

    runs = {}
    for name, task in (("randomized", {"config": str(config_path(TRAINING, "tasks"))}), ("nominal", pixel_task())):
        if name == "nominal" and args.nominal_run:
            runs[name] = Path(args.nominal_run)
            continue
        learner = (pixel_learner(args, TRAINING) if name == "randomized"
                   else pixel_learner(argparse.Namespace(**{**vars(args), "work": args.pixels_work})))
        work = args.work / f"{name}_seed0"
        learn(work, 0, args, {**task, "reward": "sparse"}, learner, with_classifier=True)
        runs[name] = work / "run"
    return runs


def settings_of(run: Path) -> tuple[Any, Any, dict[str, dict]]:
    """A run's last policy, its config and the env of every setting it is evaluated on: the nominal twin and each
    held-out set (checked against how the run trained)."""
    from robotrl.runtime.train import load_algorithm
    from robotrl.tasks.heldout import heldout_envs

    algorithm, cfg = load_algorithm(run, "last")
    return algorithm.policy, cfg, {"nominal": {**pixel_task(), "reward": "sparse"}, **heldout_envs(cfg.env, cfg.env_kwargs, "all")}


def evaluation(policy: Any, env_id: str, env_kwargs: dict, episodes: int) -> dict:
    """``policy`` over ``episodes`` fresh episodes (the report seeds) of the env ``env_kwargs`` makes."""
    from robotrl.runtime.actor import make_env
    from robotrl.runtime.evaluate import evaluate_with_costs, wilson_interval
    from robotrl.runtime.train import REPORT_SEED

    success, _, costs = evaluate_with_costs(policy, make_env(env_id, env_kwargs), episodes, REPORT_SEED)
    return {"success": success, "ci": [round(x, 3) for x in wilson_interval(success, episodes)],
            "cost_per_episode": {k: round(v, 3) for k, v in costs.items()}}


def summarize(results: dict[str, dict[str, dict]]) -> dict:
    out = {}
    for policy, settings in results.items():
        nominal = settings.get("nominal", {}).get("success")
        out[policy] = {s: {**r, "kept": round(r["success"] / nominal, 3) if nominal else None} for s, r in settings.items()}
    return out


def goal_met(summary: dict, sets: list[str]) -> bool | None:
    rows = summary.get("randomized", {})
    if not all(s in rows for s in ["nominal", *sets]):
        return None
    return all(rows[s]["kept"] is not None and rows[s]["kept"] >= KEEP for s in sets)


def plot(summary: dict, path: Path, settings: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(settings))
    for i, (policy, color) in enumerate((("randomized", "tab:blue"), ("nominal", "tab:gray"))):
        rows = summary.get(policy, {})
        have = [s for s in settings if s in rows]
        xs = x[[settings.index(s) for s in have]] + (i - 0.5) * 0.38
        rates = np.array([rows[s]["success"] for s in have])
        err = np.array([[r - rows[s]["ci"][0], rows[s]["ci"][1] - r] for s, r in zip(have, rates)]).T.reshape(2, -1)
        ax.bar(xs, rates, width=0.38, color=color, label=f"trained {policy}", yerr=err, capsize=3)
    ax.set_xticks(x, settings)
    ax.set(ylabel="success (200 episodes, 95 % CI)", ylim=(0, 1.05), title=f"{ENV_ID} from pixels: nominal and held-out twins")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per evaluation (default: 200)")
    parser.add_argument("--nominal-run", help="a finished run of bench/pixels.py's goal (its seed 0) to reuse as the "
                        "nominal policy instead of training one")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "sim_to_real", help="runs, labels, classifiers, "
                        "demos and the randomized run's encoder (default: out/sim_to_real)")
    parser.add_argument("--pixels-work", type=Path, default=ROOT / "out" / "pixels",
                        help="where bench/pixels.py keeps the nominal pretrained encoder (default: out/pixels)")
    parser.add_argument("--name", default="sim_to_real")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_output_args(parser)
    args = parser.parse_args()
    from robotrl.tasks.heldout import heldout_sets

    sets = list(heldout_sets(ENV_ID)[1])
    settings = ["nominal", *sets]
    folder = out_dir(args)
    path = folder / f"{args.name}.json"
    results = json.loads(path.read_text())["results"] if path.exists() else {}
    runs = policies(args)
    for policy, run in runs.items():
        acting, cfg, envs = settings_of(run)
        for setting in settings:
            if setting in results.get(policy, {}):
                continue
            results.setdefault(policy, {})[setting] = evaluation(acting, cfg.env, envs[setting], args.episodes)
            print(f"{policy} on {setting}: {results[policy][setting]}", flush=True)
            summary = summarize(results)
            plot(summary, folder / f"{args.name}.png", settings)
            write_result(folder, args.name, {
                "env": ENV_ID, "training": TRAINING, "heldout": "configs/heldout/arm_pick_cube.yaml",
                "settings": {**{k: getattr(args, k) for k in RUN_SETTINGS}, "recipe": RECIPE, "episodes": args.episodes,
                             "runs": {k: str(v) for k, v in runs.items()}},
                "summary": summary, "goal": f"randomized keeps >= {KEEP:.0%} of its nominal success on every held-out set",
                "goal_met": goal_met(summary, sets), "results": results,
            })


if __name__ == "__main__":
    main()
