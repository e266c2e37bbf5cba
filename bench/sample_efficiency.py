"""Sample efficiency and stability on ArmPickCube (state observations, sparse reward). Ours: `robotrl train sac`
(RLPD / HIL-SERL recipe) from 10 scripted demos, 3 seeds. Peer: Stable-Baselines3 SAC with its defaults on the same
env and budget, without demos and with the same demos in its replay buffer, 1 seed each (the reference).

Every run goes to its budget (no stop at the first success) with a 50-episode evaluation every 1000 env steps on
the selection seeds (10000+i). Reported per seed: the env steps of the first evaluation >= 90 % (first_hit), stays
from (the first evaluation after which no later one falls below 85 %; DESIGN.md), and the final policy's success
over 200 fresh episodes (seeds 20000+i) with its 95 % interval, for the last checkpoint and for best.pt.
Goal: stays-from <= 10k env steps and final >= 95 % on 3 of 3 seeds.

Resumable: each (method, seed) job merges into the JSON when it ends, and a rerun skips the jobs already there
(same settings), so a benchmark longer than a session goes on where it stopped. Jobs run two at a time (one per
core) in spawned processes, each recording the CPU it ran on.

    python bench/sample_efficiency.py            # writes out/bench/sample_efficiency.{json,png} (--update: bench/results/)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

from common import (add_output_args, cpu, finished_jobs, first_hit, learn_sb3, out_dir, plot_curves, record_demos,
                    run_jobs, stays_from, write_result)

ENV_ID = "robotrl/ArmPickCube-v0"
ENV_KWARGS = {"reward": "sparse"}
FINAL_EPISODES = 200
# Our learner's configurations, as RunConfig overrides: the default, and the fast path of bench/sac_throughput.py
# (run it with --methods ours_compiled_bf16 --name NAME to check that the fast path learns as well).
OURS = {"ours": {}, "ours_compiled_bf16": {"learner": {"compile": True, "precision": "bf16"}}}
PEERS = ("sb3", "sb3_with_demos")


def ours(seed: int, args: argparse.Namespace, **run: Any) -> dict:
    """Our learner's eval curve and final evaluations; ``run`` overrides RunConfig fields (e.g. ``human``,
    ``stop_success``)."""
    import torch

    from robotrl.runtime.train import REPORT_SEED, RunConfig, evaluate_run, load_history, train

    torch.set_num_threads(1)
    sac = {"utd": args.utd, "num_threads": 1, "discrete_gripper": True, **run.pop("learner", {})}
    with tempfile.TemporaryDirectory() as tmp:
        demos = record_demos(Path(tmp) / "demos.zarr", args.demos, seed, ENV_ID, ENV_KWARGS)
        cfg = RunConfig(env=ENV_ID, env_kwargs=ENV_KWARGS, demos=str(demos), seed=seed, total_steps=args.budget,
                        eval_every=args.eval_every, eval_episodes=args.eval_episodes, **run, learner=sac)
        start = time.time()
        train(cfg, Path(tmp) / "run", progress=False)
        keep = ("env_steps", "success", "success_ci", "intervention_rate", "wall_s")
        curve = [{k: h.get(k) for k in keep} for h in load_history(Path(tmp) / "run") if h.get("event") == "eval"]
        final = {which: evaluate_run(Path(tmp) / "run", args.final_episodes, REPORT_SEED, which)[0]
                 for which in ("last", "best") if getattr(args, "final_episodes", 0)}
        return {"curve": curve, "final": final, "train_wall_s": time.time() - start}


def sb3(seed: int, args: argparse.Namespace, with_demos: bool) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    env, eval_env = gym.make(ENV_ID, **ENV_KWARGS), gym.make(ENV_ID, **ENV_KWARGS)
    model = SAC("MultiInputPolicy", env, seed=seed, verbose=0, device="cpu")
    if with_demos:
        with tempfile.TemporaryDirectory() as tmp:
            from robotrl.data import EpisodeStore
            from robotrl.data.store import transitions

            for _, rows in EpisodeStore(record_demos(Path(tmp) / "d.zarr", args.demos, seed, ENV_ID, ENV_KWARGS)).episodes():
                ep = transitions(rows)
                for t in range(len(ep["action"])):
                    model.replay_buffer.add({k: v[t][None] for k, v in ep["obs"].items()}, {k: v[t + 1][None] for k, v in ep["obs"].items()},
                                            ep["action"][t][None], ep["reward"][t : t + 1], ep["terminated"][t : t + 1], [{}])
    return learn_sb3(model, eval_env, args)


def job(spec: tuple[str, int, argparse.Namespace]) -> tuple[str, int, dict]:
    method, seed, args = spec
    result = ours(seed, args, **OURS[method]) if method in OURS else sb3(seed, args, with_demos=method == "sb3_with_demos")
    return method, seed, {**result, "cpu": cpu()["model"]}


def summarize(jobs: dict[str, dict[str, dict]], final_episodes: int) -> dict:
    from robotrl.runtime.evaluate import wilson_interval

    out = {}
    for method, seeds in jobs.items():
        rows = {}
        for seed, r in sorted(seeds.items()):
            final = {k: {"success": v, "ci": [round(x, 3) for x in wilson_interval(v, final_episodes)]}
                     for k, v in r["final"].items()}
            rows[seed] = {"first_hit": first_hit(r["curve"]), "stays_from": stays_from(r["curve"]), "final": final}
        out[method] = rows
    return out


def goal_met(summary: dict, seeds: int) -> bool | None:
    """Stays-from <= 10k env steps and final (last checkpoint) >= 95 % on every seed of ours; None until all ran."""
    rows = summary.get("ours", {})
    if len(rows) < seeds:
        return None
    return all(r["stays_from"] is not None and r["stays_from"] <= 10_000 and r["final"]["last"]["success"] >= 0.95
               for r in rows.values())


def plot(jobs: dict, path: Path, eval_episodes: int) -> None:
    colors = {"ours": "tab:blue", "ours_compiled_bf16": "tab:cyan", "sb3": "tab:red", "sb3_with_demos": "tab:orange"}
    plot_curves(jobs, path, colors, f"{ENV_ID}, sparse reward, state obs (dashed 90 %, dotted 85 %)", f"eval success ({eval_episodes} episodes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of ours (default: 3)")
    parser.add_argument("--peer-seeds", type=int, default=1, help="seeds of each SB3 variant (default: 1)")
    parser.add_argument("--budget", type=int, default=30_000, help="env steps per run (default: 30000)")
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--utd", type=int, default=4, help="our update-to-data ratio (default: 4)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--final-episodes", type=int, default=FINAL_EPISODES)
    parser.add_argument("--methods", default="ours,sb3,sb3_with_demos", help=f"of {', '.join([*OURS, *PEERS])}")
    parser.add_argument("--name", default="sample_efficiency", help="result name: NAME.{json,png}")
    parser.add_argument("--workers", type=int, default=2, help="jobs at a time (default: 2, one per core)")
    add_output_args(parser)
    args = parser.parse_args()
    settings = {k: getattr(args, k) for k in ("budget", "demos", "utd", "eval_every", "eval_episodes", "final_episodes")}
    folder = out_dir(args)
    jobs = finished_jobs(folder / f"{args.name}.json", settings)
    specs = [(m, s, args) for m in args.methods.split(",") for s in range(args.seeds if m in OURS else args.peer_seeds)
             if str(s) not in jobs.get(m, {})]
    run_jobs(job, specs, folder / f"{args.name}.json", settings, lambda jobs: write(folder, args, settings, jobs),
             args.workers)


def write(folder: Path, args: argparse.Namespace, settings: dict, jobs: dict) -> None:
    summary = summarize(jobs, args.final_episodes)
    plot(jobs, folder / f"{args.name}.png", args.eval_episodes)
    write_result(folder, args.name, {
        "env": ENV_ID, "reward": "sparse", "observations": "state",
        "settings": {"run": settings, "variants": OURS,
                     "ours": {"n_critics": 2, "batch_size": 256, "discount": 0.97, "discrete_gripper": True},
                     "sb3": "SAC defaults (MultiInputPolicy, UTD 1, gamma 0.99, batch 256, learning_starts 100)"},
        "summary": summary,
        "goal": "ours: stays-from <= 10k env steps and final >= 95 % (200 episodes) on 3/3 seeds",
        "goal_met": goal_met(summary, args.seeds),
        "jobs": jobs,
    })

if __name__ == "__main__":
    main()
