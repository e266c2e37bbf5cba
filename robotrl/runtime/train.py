"""`robotrl train sac`: a run folder, the actor and the learner, in one process (sim) or two (``processes``).

    RUN/run.yaml          what was asked (env, overrides, learner config, demos, seed): eval and resume read it
    RUN/episodes.zarr     every actor episode (the online data; the buffers are rebuilt from it on resume)
    RUN/checkpoint.pt     learner state: networks, optimizers, temperature, counters
    RUN/weights/          versioned policy weights (learner -> actor)
    RUN/metrics.jsonl, RUN/tb/ (TensorBoard), RUN/learning_curve.png
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import yaml
from pydantic import Field
from tqdm import tqdm

from robotrl.config import StrictModel, load_config
from robotrl.data import EpisodeStore
from robotrl.learning.sac import SACAgent, evaluate, load_sac_config
from robotrl.runtime.actor import Actor, make_actor_env, make_env, postfix
from robotrl.runtime.learner import Learner, serve
from robotrl.runtime.transport import FileWeights


class RunConfig(StrictModel):
    env: str
    env_kwargs: dict[str, Any] = {}
    sac: dict[str, Any] = {}  # overrides of configs/learners/sac.yaml
    demos: str | None = None  # episode store with demonstrations (robotrl record)
    human: Literal["none", "scripted"] = "none"  # a scripted intervener (ArmPickCube)
    takeover_penalty: float = Field(0.1, ge=0)  # reward charged to the policy step a human took over after (RLIF)
    seed: int = 0
    total_steps: int = Field(20_000, ge=1)
    random_steps: int | None = Field(None, ge=0)  # uniform random actions first; default 0 with demos, else 1000
    eval_every: int = Field(1000, ge=1)
    eval_episodes: int = Field(20, ge=1)
    stop_success: float | None = Field(None, gt=0, le=1)  # stop once an evaluation reaches this success rate
    success_key: str | None = None  # info key of the env's success flag; None: "success" or "is_success"


def load_run(run: Path) -> RunConfig:
    return load_config(RunConfig, run / "run.yaml")


def save_run(cfg: RunConfig, run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def _build(cfg: RunConfig) -> tuple[gym.Env, SACAgent, Learner]:
    """Env, agent and learner (demos loaded): everything that can fail on a bad env id, learner config or demos,
    with nothing written yet."""
    env = make_actor_env(cfg.env, cfg.env_kwargs, cfg.human, cfg.seed, cfg.success_key)
    agent = SACAgent(env.observation_space, env.action_space, load_sac_config(cfg.sac), cfg.seed)
    learner = Learner(agent, env.observation_space, seed=cfg.seed, takeover_penalty=cfg.takeover_penalty)
    if cfg.demos:
        _add_demos(learner, cfg.demos, cfg.env)
    return env, agent, learner


def _add_demos(learner: Learner, demos: str, env_id: str) -> None:
    store = EpisodeStore(demos)
    if not store.n_episodes:
        raise ValueError(f"demos {demos}: no complete episodes in the store")
    try:
        learner.add_demos(store)
    except ValueError as exc:  # the replay buffer's shape check: recorded on another task or with other cameras
        tasks = ", ".join(sorted({m.task for m in store.metas()}))
        raise ValueError(f"demos {demos} (recorded on {tasks}) do not fit {env_id}: {exc}; record demos on "
                         f"{env_id} with `robotrl record --env {env_id} --out ...`") from None


def _setup(cfg: RunConfig, run: Path, writer: bool = True) -> tuple[gym.Env, SACAgent, Learner, EpisodeStore]:
    """Env, agent, learner and the run's episode store: opened for writing by the actor's side only."""
    return *_build(cfg), EpisodeStore(run / "episodes.zarr", mode="a" if writer else "r")


def _resume(learner: Learner, run: Path, store: EpisodeStore) -> bool:
    """Reload networks and counters from the checkpoint and the online buffer from the store."""
    if not (run / "checkpoint.pt").exists():
        return False
    learner.load(run / "checkpoint.pt")
    learner.env_steps = 0
    for _, rows in store.episodes():
        learner.ingest(rows)
    return True


def train(cfg: RunConfig, run: str | Path, processes: bool = False, progress: bool = True) -> list[dict]:
    """Train (or resume) the run in ``run``; returns the evaluation history."""
    run = Path(run)
    _flush_denormals()
    env, agent, learner = _build(cfg)  # a start that fails leaves no run folder behind
    save_run(cfg, run)
    store = EpisodeStore(run / "episodes.zarr", mode="a")
    resumed = _resume(learner, run, store)
    random_steps = cfg.random_steps if cfg.random_steps is not None else (0 if cfg.demos else 1000)
    transport = FileWeights(run / "weights") if processes else None
    actor = Actor(env, agent, store, cfg.env, transport, random_steps=random_steps, seed=cfg.seed,
                  resume_at=(learner.env_steps, store.n_episodes))
    eval_env = make_env(cfg.env, cfg.env_kwargs, cfg.success_key)
    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(run / "tb"))
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] if resumed and (run / "metrics.jsonl").exists() else []
    learner_proc = _start_learner(run) if processes else None
    start, rates = time.time(), []
    bar = tqdm(total=cfg.total_steps, initial=actor.env_steps, desc=f"SAC on {cfg.env}", unit="step", disable=not progress)
    if resumed:
        bar.write(f"resumed {run} at env step {actor.env_steps} ({agent.num_updates} updates)")
    try:
        while actor.env_steps < cfg.total_steps:
            episode = actor.step()
            bar.update(1)
            if episode is not None:
                rates.append(episode["intervention_rate"])
                tb.add_scalar("train/episode_return", episode["meta"].ret, actor.env_steps)
                tb.add_scalar("train/episode_success", float(episode["meta"].success), actor.env_steps)
                tb.add_scalar("train/intervention_rate", episode["intervention_rate"], actor.env_steps)
                if not processes:
                    learner.ingest(episode["rows"])
            if not processes and actor.env_steps > random_steps and learner.ready():
                stats = learner.update()
                if agent.num_updates % 100 == 0:
                    for k, v in stats.items():
                        tb.add_scalar(f"learner/{k}", v, actor.env_steps)
            # The last step evaluates too: every run has at least one evaluation (a curve, metrics.jsonl).
            if actor.env_steps % cfg.eval_every == 0 or actor.env_steps == cfg.total_steps:
                success, ret = evaluate(agent, eval_env, cfg.eval_episodes)
                row = {"env_steps": actor.env_steps, "success": success, "return": ret, "updates": agent.num_updates,
                       "weights_version": actor.weights_version, "intervention_rate": float(np.mean(rates)) if rates else 0.0,
                       "wall_s": time.time() - start}
                rates = []
                history.append(row)
                with open(run / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                if success is not None:
                    tb.add_scalar("eval/success", success, actor.env_steps)
                tb.add_scalar("eval/return", ret, actor.env_steps)
                bar.set_postfix(postfix(success, ret), updates=agent.num_updates)
                if not processes:
                    learner.save(run / "checkpoint.pt")
                if cfg.stop_success is not None and success is not None and success >= cfg.stop_success:
                    break
    finally:
        bar.close()
        tb.close()
        store.close()
        if learner_proc is not None:
            (run / "STOP").touch()
            learner_proc.join(timeout=60)
            (run / "STOP").unlink(missing_ok=True)
        elif actor.env_steps:
            learner.save(run / "checkpoint.pt")
    plot_curve(history, run / "learning_curve.png", cfg.env)
    return history


def _flush_denormals() -> None:
    """With sparse rewards, Q-values, gradients and Adam moments decay toward zero, and x86 CPUs handle denormal
    floats in microcode: updates measured ~10x slower without this (process-wide, so set by the process owner)."""
    import torch

    torch.set_flush_denormal(True)


def _start_learner(run: Path) -> mp.Process:
    (run / "STOP").unlink(missing_ok=True)
    # spawn, never fork: the parent may hold a GL context (MuJoCo rendering) and torch threads.
    proc = mp.get_context("spawn").Process(target=learner_main, args=(str(run),), daemon=True)
    proc.start()
    return proc


def learner_main(run: str) -> None:
    """Entry point of the learner process (also `python -m robotrl.runtime.train RUN`)."""
    run_dir = Path(run)
    _flush_denormals()
    cfg = load_run(run_dir)
    env, agent, learner, store = _setup(cfg, run_dir, writer=False)
    env.close()
    learner.transport = FileWeights(run_dir / "weights")
    _resume(learner, run_dir, store)
    serve(learner, run_dir / "episodes.zarr", run_dir / "checkpoint.pt", run_dir / "STOP")


def plot_curve(history: list[dict], path: Path, title: str) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["env_steps"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if history[-1]["success"] is None:  # an env with no success flag: its return is the curve
        ax.plot(steps, [h["return"] for h in history], marker="o", label="eval return")
        ax.set(xlabel="env steps", ylabel="mean return", title=title)
    else:
        ax.plot(steps, [h["success"] for h in history], marker="o", label="eval success")
        if any(h["intervention_rate"] for h in history):
            ax.plot(steps, [h["intervention_rate"] for h in history], marker=".", label="intervention rate")
        ax.set(xlabel="env steps", ylabel="rate", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_agent(run: str | Path) -> tuple[SACAgent, RunConfig]:
    """The trained agent of a run folder (from its checkpoint) and the run's config."""
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"no run folder {run}")
    if not (run / "checkpoint.pt").exists():
        raise ValueError(f"{run}: no checkpoint.pt; train first with `robotrl train sac --out {run}`")
    cfg = load_run(run)
    env = make_env(cfg.env, cfg.env_kwargs, cfg.success_key)
    agent = SACAgent(env.observation_space, env.action_space, load_sac_config(cfg.sac), cfg.seed)
    Learner(agent, env.observation_space, capacity=1).load(run / "checkpoint.pt")
    env.close()
    return agent, cfg


def evaluate_run(run: str | Path, episodes: int, seed: int = 20_000) -> tuple[float | None, float]:
    """Success rate (None for an env with no success flag) and mean return of a run's policy on fresh seeds."""
    agent, cfg = load_agent(run)
    return evaluate(agent, make_env(cfg.env, cfg.env_kwargs, cfg.success_key), episodes, seed)


if __name__ == "__main__":
    import sys

    learner_main(sys.argv[1])
