"""Learner threads: SAC updates/s with 1 torch thread against torch's default (one per core), for the state and
the image learner, on a quiet machine and beside a competing load, the normal case on a robot's computer (ROS
nodes, cameras, the twin). The competing load is another process doing torch matmuls with the default thread
count, as a second learner or a policy server would. The learner's default num_threads follows these numbers.

    python bench/learner_threads.py             # writes out/bench/learner_threads_<cpu>.json (--update: bench/results/)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

import gymnasium as gym
import torch

from common import add_output_args, cpu_slug, out_dir, write_result
from robotrl.learners.throughput import collect, rate, updater

ENV_ID = "robotrl/ArmPickCube-v0"
LEARNERS = {  # what `robotrl train sac` runs: sac_pick on state observations, and on a 64 px wrist camera
    "state": ({}, {"utd": 4, "discrete_gripper": True}),
    "image": ({"observation": {"cameras": ["wrist"], "image_size": 64}}, {"discrete_gripper": True, "batch_size": 128}),
}


def competing_load(stop: mp.Event) -> None:
    """Another torch process on the machine, with torch's default threads."""
    a = torch.randn(512, 512)
    while not stop.is_set():
        a = torch.tanh(a @ a * 1e-3)


def timings(env: gym.Env, sac: dict, threads: int, rounds: int, updates: int) -> list[float]:
    buffer = collect(env, 1000)
    run = updater(env, buffer, {**sac, "device": "cpu", "num_threads": threads})
    run(5)
    return [rate(run, updates) for _ in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=30, help="updates per timing round")
    add_output_args(parser)
    args = parser.parse_args()
    default_threads = os.cpu_count() or 1
    results: dict = {}
    ctx = mp.get_context("spawn")
    for load in ("quiet", "competing load"):
        stop, proc = ctx.Event(), None
        if load != "quiet":
            proc = ctx.Process(target=competing_load, args=(stop,), daemon=True)
            proc.start()
        for name, (env_kwargs, sac) in LEARNERS.items():
            env = gym.make(ENV_ID, **env_kwargs)
            for threads in sorted({1, default_threads}):
                r = timings(env, sac, threads, args.rounds, args.updates)
                results.setdefault(load, {}).setdefault(name, {})[f"{threads}_threads"] = {
                    "updates_per_s": round(statistics.median(r), 2), "rounds": [round(x, 2) for x in r]}
                print(f"{load:15s} {name:6s} {threads} threads: {statistics.median(r):.1f} updates/s", flush=True)
            env.close()
        if proc is not None:
            stop.set()
            proc.join()
    write_result(out_dir(args), f"learner_threads_{cpu_slug()}", {
        "env": ENV_ID, "learners": {k: {"env_kwargs": e, "sac": s} for k, (e, s) in LEARNERS.items()},
        "default_threads": default_threads, "updates_per_s": results,
    })


if __name__ == "__main__":
    main()
