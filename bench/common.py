"""Shared by the benchmarks: where results go, what they record about the machine, how they are written.

A benchmark writes to out/bench/ unless told otherwise; only ``--update`` rewrites the committed bench/results/.
Every JSON records the git commit, the CPU model and its relevant flags, and the package versions, because speed
and even fp32 learning curves differ between CPUs (AMD and Intel here) and between mujoco and torch versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # the committed results: written only with --update
DEFAULT_OUT = ROOT / "out" / "bench"
PACKAGES = ("mujoco", "torch", "numpy", "gymnasium", "zarr", "stable-baselines3", "ros-kilted-rclpy")
# CPU features that change what the learners' fast paths can do (bf16 matmuls, wide vectors).
TARGET = 0.9  # first_hit: the first evaluation at or above this success rate
STAY = 0.85  # stays_from: no later evaluation below this (DESIGN.md)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def add_output_args(parser: argparse.ArgumentParser) -> None:
    """--out-dir and --update, the same for every benchmark."""
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT,
                        help=f"where the JSON and plots go (default: {DEFAULT_OUT.relative_to(ROOT)}/)")
    parser.add_argument("--update", action="store_true",
                        help="write the committed results in bench/results/ instead (do this to publish a new figure)")


def out_dir(args: argparse.Namespace) -> Path:
    folder = RESULTS if args.update else args.out_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cpu() -> dict:
    """Model name and the relevant feature flags, from /proc/cpuinfo (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or "unknown", "flags": []}
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return {"model": model.group(1).strip() if model else "unknown", "flags": [f for f in CPU_FLAGS if f in have]}


def cpu_slug() -> str:
    """A file-name-safe short name of this CPU, e.g. 'intel-xeon-processor' (results that hold per CPU)."""
    model = re.sub(r"\((r|tm)\)|cpu|@.*$|\d+-core processor", "", cpu()["model"].lower())
    return re.sub(r"[^a-z0-9]+", "-", model).strip("-") or "unknown-cpu"


def git_commit() -> dict:
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def packages() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def machine() -> dict:
    return {"cpu": cpu(), "cpu_count": os.cpu_count(), "git": git_commit(), "packages": packages(),
            "platform": platform.platform(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def write_result(folder: Path, name: str, result: dict) -> Path:
    """Write FOLDER/<name>.json and print it (last, so logs end with the figures)."""
    path = folder / f"{name}.json"
    text = json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2, default=_jsonable)
    path.write_text(text + "\n")
    print(text)
    print(f"wrote {path}")
    return path


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def first_hit(curve: list[dict]) -> int | None:
    return next((c["env_steps"] for c in curve if c["success"] >= TARGET), None)


def stays_from(curve: list[dict]) -> int | None:
    """The first evaluation after which no later one falls below STAY (None: the last one is below)."""
    since = None
    for c in curve:
        if c["success"] < STAY:
            since = None
        elif since is None:
            since = c["env_steps"]
    return since


def finished_jobs(path: Path, settings: dict) -> dict[str, dict[str, dict]]:
    """The jobs a previous run with the same settings finished (resume), or none."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("settings", {}).get("run") != settings:
        raise SystemExit(f"{path} holds a run with other settings ({old.get('settings', {}).get('run')}); "
                         f"give another --name or remove it")
    return old["jobs"]


def run_jobs(job: Callable[[Any], tuple[str, int, dict]], specs: list[tuple], path: Path, settings: dict,
             write: Callable[[dict], None], workers: int) -> None:
    """Learning jobs ``job(spec) -> (method, seed, result with a "curve")``, ``workers`` at a time in spawned
    processes; each result is merged into the jobs the JSON at ``path`` holds by then (another run of the benchmark
    may have added some) and ``write(jobs)`` publishes them, so a stopped benchmark loses at most its running jobs.
    With no spec left, ``write`` refreshes the summary and the plot."""
    jobs = finished_jobs(path, settings)
    print(f"{len(specs)} jobs to run ({sum(len(v) for v in jobs.values())} already in {path})", flush=True)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for future in as_completed([pool.submit(job, spec) for spec in specs]):
            method, seed, result = future.result()
            print(f"{method} seed {seed}: first 90 % at {first_hit(result['curve'])}, stays from "
                  f"{stays_from(result['curve'])}, final {result['final']}", flush=True)
            jobs = finished_jobs(path, settings)
            jobs.setdefault(method, {})[str(seed)] = result
            write(jobs)
    if not specs and jobs:
        write(jobs)


def plot_curves(jobs: dict[str, dict[str, dict]], path: Path, colors: dict[str, str], title: str, ylabel: str) -> None:
    """Every job's evaluation curve (success against env steps), a colour per method, with the 90 % and 85 % lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    for method, seeds in jobs.items():
        for i, (_, r) in enumerate(sorted(seeds.items())):
            ax.plot([c["env_steps"] for c in r["curve"]], [c["success"] for c in r["curve"]], color=colors[method],
                    alpha=0.8, label=method if i == 0 else None, marker=".")
    ax.axhline(TARGET, color="gray", ls="--", lw=1)
    ax.axhline(STAY, color="gray", ls=":", lw=1)
    ax.set(xlabel="env steps", ylabel=ylabel, ylim=(-0.02, 1.02), title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def record_demos(path: Path, n: int, seed: int, env_id: str, env_kwargs: dict, classifier: str | None = None,
                 max_tries: int = 3) -> Path:
    """``n`` scripted demos in the store at ``path`` (the ones it holds already count: a stopped job goes on), seeds
    1000*(seed+1)+i, apart from evaluation seeds. A demo set holds successes, as ``robotrl record`` keeps it: an
    episode its judge calls a failure is left out and the next seed tried (at most ``max_tries`` * n seeds). With a
    reward ``classifier``, recorded through it: rewards, ends and the judge are its verdicts, as when an operator
    records demos on the robot -- a demo whose success it missed would teach that a lifted cube earns nothing."""
    from robotrl.data import EpisodeRecorder, EpisodeStore
    from robotrl.runtime.actor import make_actor_env, record_episode
    from robotrl.tasks.experts import make_expert

    store = EpisodeStore(path, mode="a")
    first = 1000 * (seed + 1)
    if store.n_episodes < n:
        env = make_actor_env(env_id, env_kwargs, "none", seed, classifier=classifier)
        expert, rec = make_expert(env), EpisodeRecorder(store)
        tried = max(m.seed for m in store.metas()) + 1 - first if store.n_episodes else 0
        while store.n_episodes < n:
            if tried >= max_tries * n:
                raise RuntimeError(f"{path}: {store.n_episodes} of {n} demos succeeded in {tried} episodes of the "
                                   f"scripted expert on {env_id}" + (f" judged by {classifier}" if classifier else ""))
            record_episode(env, expert, rec, first + tried, "demo", env_id, keep_failures=False)
            tried += 1
        env.close()
    return path


def learn_sb3(model: Any, eval_env: Any, args: argparse.Namespace, cap_s: float = float("inf")) -> dict:
    """Train a Stable-Baselines3 model to ``args.budget`` env steps (or ``cap_s`` seconds of wall time) with
    robotrl's evaluations: ``args.eval_episodes`` on the selection seeds every ``args.eval_every`` steps, then
    ``args.final_episodes`` on the report seeds. Returns the curve, the final rate, the wall time and the steps."""
    from stable_baselines3.common.callbacks import BaseCallback

    from robotrl.policies import Stateless
    from robotrl.runtime.evaluate import evaluate
    from robotrl.runtime.train import REPORT_SEED, SELECT_SEED

    curve: list[dict] = []
    start = time.time()

    class SB3Policy(Stateless):
        """The SB3 model behind the Policy protocol (acting deterministically), for robotrl's evaluate()."""

        def act(self, obs, deterministic: bool = True):
            return model.predict(obs, deterministic=True)[0]

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                success, _ = evaluate(SB3Policy(), eval_env, args.eval_episodes, SELECT_SEED)
                curve.append({"env_steps": self.num_timesteps, "success": success, "wall_s": time.time() - start})
            return time.time() - start < cap_s

    model.learn(total_timesteps=args.budget, callback=Eval())
    final = evaluate(SB3Policy(), eval_env, args.final_episodes, REPORT_SEED)[0]
    return {"curve": curve, "final": {"last": final}, "train_wall_s": time.time() - start,
            "env_steps_reached": model.num_timesteps}
