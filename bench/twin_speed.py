"""Twin speed: env steps/s with state observations against raw mj_step on the same model, and headless camera fps.

overhead = (wall time of one env step) / (wall time of the same number of physics steps as one
mj_step(nstep=N) call in C). Everything an env step adds -- controllers running inside the physics
steps, safety filter, observation dict, reward -- is in the numerator. Goal: <= 2 for the arm and the quad.

    python bench/twin_speed.py            # writes out/bench/twin_speed.json (--update: bench/results/)
"""

from __future__ import annotations

import argparse
import time

import robotrl  # noqa: F401,I001  first: registers the envs and selects headless GL before mujoco loads

import gymnasium as gym
import mujoco
import numpy as np
from tqdm import tqdm

from common import add_output_args, out_dir, write_result
from robotrl.sim.camera import TwinCamera

CASES = {"arm": ("robotrl/ArmPickCube-v0", ["front", "wrist"]), "quad": ("robotrl/QuadHover-v0", ["chase", "world"])}


def timed(fn, seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds`` of wall time (after a warm-up call)."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def env_speed(env_id: str, seconds: float) -> dict:
    env = gym.make(env_id)
    u = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, size=(4096, *env.action_space.shape)).astype(np.float32)
    i = 0

    def env_step():
        nonlocal i
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        i += 1
        if terminated or truncated:
            env.reset()

    # Resets are part of running an env, but not of the per-step cost asked for: count them separately.
    env_steps_per_s = timed(env_step, seconds)
    substeps = u.world.steps_for(u.control_dt)
    m = u.world.model
    d = mujoco.MjData(m)
    mujoco.mj_copyData(d, m, u.world.data)
    raw_nstep = timed(lambda: mujoco.mj_step(m, d, nstep=substeps), seconds) * substeps
    mujoco.mj_copyData(d, m, u.world.data)

    def single():
        for _ in range(substeps):
            mujoco.mj_step(m, d)

    raw_loop = timed(single, seconds) * substeps
    env.close()
    return {
        "env": env_id,
        "control_hz": u.config.control_hz,
        "physics_dt": u.world.dt,
        "physics_steps_per_env_step": substeps,
        "env_steps_per_s": env_steps_per_s,
        "env_physics_steps_per_s": env_steps_per_s * substeps,
        "raw_mj_step_nstep_per_s": raw_nstep,
        "raw_mj_step_python_loop_per_s": raw_loop,
        "overhead_vs_raw": raw_nstep / (env_steps_per_s * substeps),
        "overhead_vs_raw_python_loop": raw_loop / (env_steps_per_s * substeps),
    }


def camera_fps(env_id: str, cameras: list[str], size: int, seconds: float) -> dict:
    env = gym.make(env_id)
    env.reset(seed=0)
    out = {}
    for name in cameras:
        cam = TwinCamera(env.unwrapped.world, name, size, size)
        out[name] = timed(cam.read, seconds)
        cam.close()
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="wall time per measurement (default: 3)")
    add_output_args(parser)
    args = parser.parse_args()
    result: dict = {"goal": "overhead_vs_raw <= 2 for arm and quad", "cases": {}}
    for name, (env_id, cams) in tqdm(CASES.items(), desc="twin speed"):
        case = env_speed(env_id, args.seconds)
        case["camera_fps"] = {f"{s}x{s}": camera_fps(env_id, cams, s, args.seconds) for s in (96, 128)}
        result["cases"][name] = case
    result["goal_met"] = all(c["overhead_vs_raw"] <= 2.0 for c in result["cases"].values())
    write_result(out_dir(args), "twin_speed", result)


if __name__ == "__main__":
    main()
