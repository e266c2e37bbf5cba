"""`robotrl train <algo>`: a run folder, the actor and the learner, in one process (sim) or two (``processes``), for
any learner (configs/learners/<algo>.yaml: sac, bc): the loop names only the Policy and Algorithm protocols.

    RUN/run.yaml          what was asked (env, overrides, learner and its config, demos, seed): eval and resume read it
    RUN/episodes.zarr     every actor episode (the online data; the buffers are rebuilt from it on resume)
    RUN/checkpoint.pt     the last learner state (the algorithm's: networks, optimizers, counters): saved after the
                          first 100 updates, at every evaluation (two processes: every eval_every updates) and on a stop
    RUN/best.pt           the policy of the best evaluation so far, with that evaluation's row: the highest success
                          rate, a tie broken by the mean return, a tie of both going to the later one (more trained);
                          an env without a success flag: the highest mean return. What eval, rollout and the ROS
                          actor load by default (their --checkpoint / checkpoint: best | last)
    RUN/weights/          versioned policy weights (learner -> actor; two processes)
    RUN/learner.json      the learner's counters (two processes): the actor's rate limiter and the metrics read them
    RUN/metrics.jsonl     a row per evaluation ("event": "eval": success rate, its 95 % Wilson interval "success_ci"
                          over "episodes", mean return, the learner's counters ("updates"; SAC's effective
                          update-to-data ratio "utd" = critic updates / env steps, warm-up included), "best") and per
                          stop ("event": "stop")
    RUN/tb/ (TensorBoard), RUN/learning_curve.png

Stops: SIGTERM (what ros2 launch, systemd and docker stop send) ends the loop after the current step (or
evaluation), Ctrl-C
(KeyboardInterrupt) where it is; either way the checkpoint and a "stop" row are saved, and running the same command
again resumes at the env step of the last stored episode (the episode in progress is dropped). `robotrl train` then
exits 0 after SIGTERM (a requested stop, as the ROS nodes do) and 130 after Ctrl-C (the shell's convention).

Seeds that pick a checkpoint never report it: the evaluations during training (they pick best.pt) run episodes
SELECT_SEED + i, `robotrl eval` reports on REPORT_SEED + i, and eval_episodes <= REPORT_SEED - SELECT_SEED.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import yaml
from pydantic import Field, model_validator
from tqdm import tqdm

from robotrl.config import StrictModel, load_config
from robotrl.data import EpisodeStore
from robotrl.learners import Algorithm, make_algorithm
from robotrl.policies.base import Policy
from robotrl.runtime.actor import Actor, RateLimiter, make_actor_env, make_env, postfix
from robotrl.runtime.evaluate import evaluate, wilson_interval
from robotrl.runtime.learner import FIRST_CHECKPOINT, Learner, serve
from robotrl.runtime.transport import FileProgress, FileWeights, save_atomic
from robotrl.tasks import is_task, task_spaces

CHECKPOINT, BEST, METRICS, PROGRESS = "checkpoint.pt", "best.pt", "metrics.jsonl", "learner.json"
PAUSE = "PAUSE"  # while this file is in the run folder the learner process makes no update (the operator paused it)
SELECT_SEED = 10_000  # evaluations during training, which pick best.pt: seeds SELECT_SEED + i
REPORT_SEED = 20_000  # `robotrl eval`: disjoint from the selection seeds, so best.pt's pick does not flatter it


class RunConfig(StrictModel):
    env: str
    env_kwargs: dict[str, Any] = {}
    algo: str = "sac"  # the learner: a name in robotrl.learners.ALGORITHMS (sac, bc)
    learner: dict[str, Any] = {}  # overrides of configs/learners/<algo>.yaml
    demos: str | None = None  # episode store with demonstrations (robotrl record)
    human: Literal["none", "scripted"] = "none"  # a scripted intervener (ArmPickCube)
    # A path to a reward classifier (`robotrl train classifier`): the training env's reward and success are its
    # verdict on the observations, as on a robot; evaluations still judge by the env's own success.
    classifier: str | None = None
    takeover_penalty: float = Field(0.1, ge=0)  # reward charged to the policy step a human took over after (RLIF)
    seed: int = 0
    total_steps: int = Field(20_000, ge=1)
    random_steps: int | None = Field(None, ge=0)  # uniform random actions first; default 0 with demos, else 1000
    eval_every: int = Field(1000, ge=1)
    eval_episodes: int = Field(50, ge=1, le=REPORT_SEED - SELECT_SEED)  # DESIGN.md: >= 50 during training
    stop_success: float | None = Field(None, gt=0, le=1)  # stop once an evaluation reaches this success rate
    success_key: str | None = None  # info key of the env's success flag; None: "success" or "is_success"
    # Two processes in sim: env steps the actor may run ahead of the learner's updates (RateLimiter), so the
    # update-to-data ratio is the learner config's; 0: the actor never waits (as on a robot).
    max_ahead: int = Field(100, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _sac_key(cls, data: Any) -> Any:
        """run.yaml files from before the learner seam hold SAC's overrides under ``sac:``."""
        if isinstance(data, dict) and "sac" in data:
            data = dict(data)
            if "learner" in data or data.get("algo", "sac") != "sac":
                raise ValueError("'sac' (the old name of 'learner', for algo sac) cannot be given with 'learner' "
                                 "or another algo")
            data["learner"] = data.pop("sac")
        return data


def load_run(run: Path) -> RunConfig:
    return load_config(RunConfig, run / "run.yaml")


def save_run(cfg: RunConfig, run: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))


def _build(cfg: RunConfig) -> tuple[gym.Env, Algorithm, Learner]:
    """Env, algorithm and learner (demos loaded): everything that can fail on a bad env id, learner config or demos,
    with nothing written yet."""
    env = make_actor_env(cfg.env, cfg.env_kwargs, cfg.human, cfg.seed, cfg.success_key, cfg.classifier)
    return env, *_learning(cfg, env.observation_space, env.action_space)


def _learning(cfg: RunConfig, obs_space: gym.Space, action_space: gym.spaces.Box) -> tuple[Algorithm, Learner]:
    algorithm = make_algorithm(cfg.algo, obs_space, action_space, cfg.learner, cfg.seed)
    if algorithm.replay == "offline" and not cfg.demos and cfg.human == "none":
        raise ValueError(f"{cfg.algo} learns from demonstrations only (its replay is offline): give demos "
                         "(--demos, an episode store from `robotrl record`)")
    learner = Learner(algorithm, obs_space, seed=cfg.seed, takeover_penalty=cfg.takeover_penalty)
    if cfg.demos:
        _add_demos(learner, cfg.demos, cfg.env, cfg.classifier)
    return algorithm, learner


def learner_setup(run: Path) -> tuple[Learner, str]:
    """The learner side of a run (its own process, a robot's learner node): algorithm and replay rebuilt from the run
    folder, the spaces from the task config -- no env, so no twin and no MuJoCo on a robot. Returns the learner and
    what ``_resume`` did."""
    cfg = load_run(run)
    if is_task(cfg.env):
        spaces = task_spaces(cfg.env, cfg.env_kwargs)
    else:  # any other gymnasium env: built once for its spaces
        env = make_env(cfg.env, cfg.env_kwargs, cfg.success_key)
        spaces = env.observation_space, env.action_space
        env.close()
    _, learner = _learning(cfg, *spaces)
    return learner, _resume(learner, run, EpisodeStore(run / "episodes.zarr", mode="r"))


def _add_demos(learner: Learner, demos: str, env_id: str, classifier: str | None) -> None:
    """The demos into the learner; with a reward ``classifier`` their rewards and ends are its verdicts, never the
    ones recorded with them (the twin's truth)."""
    store = EpisodeStore(demos)
    if not store.n_episodes:
        raise ValueError(f"demos {demos}: no complete episodes in the store")
    judge = None
    if classifier:
        from robotrl.reward_classifier import SuccessClassifier

        judge = SuccessClassifier.load(classifier).verdicts
    try:
        learner.add_demos(store, judge)
    except ValueError as exc:  # the replay buffer's shape check: recorded on another task or with other cameras
        tasks = ", ".join(sorted({m.task for m in store.metas()}))
        raise ValueError(f"demos {demos} (recorded on {tasks}) do not fit {env_id}: {exc}; record demos on "
                         f"{env_id} with `robotrl record --env {env_id} --out ...`") from None


def _resume(learner: Learner, run: Path, store: EpisodeStore) -> str:
    """Rebuild the learner from the run folder: networks and counters from checkpoint.pt, the replay buffers from
    the stored episodes. Returns what happened, for the user: resumed, continued without a checkpoint, or fresh."""
    checkpoint = run / CHECKPOINT
    if checkpoint.exists():
        learner.load(checkpoint)
    learner.env_steps = learner.episodes = 0
    for _, rows in store.episodes():
        learner.ingest(rows)
    where = f"at env step {learner.env_steps} ({learner.episodes} stored episodes)"
    if checkpoint.exists():
        return f"resumed {run} {where} from {CHECKPOINT} ({learner.algorithm.num_updates} updates)"
    if learner.episodes:  # e.g. killed before its first checkpoint: keep the data, say that the networks are new
        return (f"continued {run} {where} with fresh networks: it has no {CHECKPOINT} (stopped before the first), "
                "so the replay buffers were rebuilt from its episodes")
    return f"started {run} fresh"


class _SigtermStop:
    """Within ``with``: SIGTERM (what ros2 launch, systemd and docker stop send) sets ``signal`` instead of killing
    the process, so the training loop ends between two steps and saves; the previous handler comes back after.
    Signal handlers exist in the main thread only: elsewhere SIGTERM keeps its handler."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._installed, self._previous = False, None

    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum: int, _frame) -> None:
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> _SigtermStop:
        if threading.current_thread() is threading.main_thread():
            self._previous, self._installed = signal.signal(signal.SIGTERM, self._handle), True
        return self

    def __exit__(self, *_exc) -> None:
        if self._installed:  # None: a handler not set from Python; the default is the closest we can restore
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)


def train(cfg: RunConfig, run: str | Path, processes: bool = False, progress: bool = True) -> list[dict]:
    """Train (or resume) the run in ``run``; returns the evaluation history. SIGTERM stops it cleanly (checkpoint,
    metrics; it returns), Ctrl-C too, after which KeyboardInterrupt is raised again."""
    run = Path(run)
    _flush_denormals()
    env, algorithm, learner = _build(cfg)  # a start that fails leaves no run folder behind
    save_run(cfg, run)
    store = EpisodeStore(run / "episodes.zarr", mode="a")
    tqdm.write(_resume(learner, run, store))
    tqdm.write(_threads_line(algorithm))
    random_steps = _random_steps(cfg)
    bar = tqdm(total=cfg.total_steps, initial=learner.env_steps, desc=f"{cfg.algo} on {cfg.env}", unit="step",
               disable=not progress)
    metrics = _Metrics(run, cfg, learner.env_steps, bar)
    actor = Actor(env, algorithm.policy, store, cfg.env, FileWeights(run / "weights") if processes else None,
                  random_steps=random_steps, seed=cfg.seed, resume_at=(learner.env_steps, learner.episodes))
    eval_env = make_env(cfg.env, cfg.env_kwargs, cfg.success_key)
    counts = _Counts(algorithm, FileProgress(run / PROGRESS) if processes else None)
    stop, interrupted, learner_proc, limiter = _SigtermStop(), False, None, None
    with stop:
        if processes:
            learner_proc = _start_learner(run)
            if cfg.max_ahead:
                limiter = actor.limiter = RateLimiter(counts.progress, random_steps, cfg.max_ahead, learner_proc.is_alive,
                                                      stop.requested)
        try:
            while actor.env_steps < cfg.total_steps and not stop.requested():
                episode = actor.step()
                bar.update(1)
                if episode is not None:
                    metrics.episode(episode, actor.env_steps, counts)
                    if not processes:
                        learner.ingest(episode["rows"])
                if not processes and actor.env_steps > random_steps and learner.ready():
                    _update(learner, metrics, actor.env_steps, run)
                # The last step evaluates too: every run has at least one evaluation (a curve, metrics.jsonl).
                if (actor.env_steps % cfg.eval_every == 0 or actor.env_steps == cfg.total_steps) and not stop.requested():
                    if limiter is not None:  # evaluate the weights of every update the data so far paid for
                        limiter.wait(actor.stored_steps, max_ahead=0, counter="published_updates")
                    actor.poll_weights()
                    row = metrics.evaluate(algorithm.policy, eval_env, actor, counts)
                    if not processes:
                        learner.save(run / CHECKPOINT)
                    if cfg.stop_success is not None and row["success"] is not None and row["success"] >= cfg.stop_success:
                        break
        except KeyboardInterrupt:
            interrupted, stop.signal = True, "SIGINT"
        finally:
            bar.close()
            store.close()
            _stop_learner(run, learner_proc)
            if learner_proc is None and actor.env_steps:
                learner.save(run / CHECKPOINT)
        if stop.signal:
            metrics.stop(stop.signal, actor, counts)
        metrics.close()
    plot_curve(metrics.history, run / "learning_curve.png", cfg.env)
    if interrupted:
        raise KeyboardInterrupt
    return metrics.history


def _threads_line(algorithm: Algorithm) -> str:
    why = "num_threads in the learner config" if algorithm.config.num_threads else \
        f"num_threads 0: half of {os.cpu_count()} cores, the measured default for a shared machine"
    return f"learner: {torch.get_num_threads()} torch threads ({why})"


def _random_steps(cfg: RunConfig) -> int:
    """Uniform random actions first (no updates meanwhile): none with demos, else 1000."""
    return cfg.random_steps if cfg.random_steps is not None else (0 if cfg.demos else 1000)


def _update(learner: Learner, metrics: _Metrics, env_steps: int, run: Path) -> None:
    """One update of the one-process loop; its statistics to TensorBoard every 100, a checkpoint after the first 100."""
    stats = learner.update()
    n = learner.algorithm.num_updates
    if n % 100 == 0:
        metrics.learner_stats(stats, env_steps)
    if n == FIRST_CHECKPOINT:
        learner.save(run / CHECKPOINT)


class _Counts:
    """The learner's real counters (Algorithm.counters: "updates" and the algorithm's own): the algorithm's in one
    process; in two, those the learner process reports (the actor's copy never updates), or the resumed
    checkpoint's until it has reported."""

    def __init__(self, algorithm: Algorithm, progress: FileProgress | None):
        self.algorithm, self.progress = algorithm, progress

    def __call__(self) -> dict[str, int]:
        seen = self.progress.read() if self.progress is not None else {}
        return {k: seen.get(k, v) for k, v in self.algorithm.counters().items()}


class _Metrics:
    """What evaluations and stops leave: metrics.jsonl rows, TensorBoard scalars, best.pt, the progress bar."""

    def __init__(self, run: Path, cfg: RunConfig, resumed_at: int, bar: tqdm):
        from torch.utils.tensorboard import SummaryWriter

        self.run, self.cfg, self.bar = run, cfg, bar
        self.history = [r for r in _keep_rows(run / METRICS, resumed_at) if _is_eval(r)]
        # wall_s is the run's training time across resumes: it goes on from the last row kept
        self.start = time.time() - (self.history[-1].get("wall_s", 0.0) if self.history else 0.0)
        self.best = _best_key(run / BEST)
        self.tb = SummaryWriter(str(run / "tb"))
        self.rates: list[float] = []  # intervention rates of the episodes since the last evaluation
        self.score: dict[str, str] = postfix(self.history[-1]["success"], self.history[-1]["return"]) if self.history else {}

    def episode(self, episode: dict, env_steps: int, counts: _Counts) -> None:
        self.rates.append(episode["intervention_rate"])
        self.tb.add_scalar("train/episode_return", episode["meta"].ret, env_steps)
        self.tb.add_scalar("train/episode_success", float(episode["meta"].success), env_steps)
        self.tb.add_scalar("train/intervention_rate", episode["intervention_rate"], env_steps)
        self._show(env_steps, counts())

    def learner_stats(self, stats: dict[str, float], env_steps: int) -> None:
        """TensorBoard, and metrics.jsonl rows of event "learner" (Q values, losses; the operator page plots them)."""
        for k, v in stats.items():
            self.tb.add_scalar(f"learner/{k}", v, env_steps)
        self._write({"event": "learner", "env_steps": env_steps, **{k: round(float(v), 6) for k, v in stats.items()}})

    def evaluate(self, policy: Policy, env: gym.Env, actor: Actor, counts: _Counts) -> dict:
        """Evaluate on the selection seeds, write the row, keep best.pt."""
        n, learner = self.cfg.eval_episodes, counts()
        success, ret = evaluate(policy, env, n, SELECT_SEED)
        row = {"event": "eval", "env_steps": actor.env_steps, "success": success,
               "success_ci": None if success is None else [round(x, 4) for x in wilson_interval(success, n)],
               "episodes": n, "return": ret, **_learner_fields(actor.env_steps, learner),
               "torch_threads": torch.get_num_threads(),
               "weights_version": actor.weights_version,
               "intervention_rate": float(np.mean(self.rates)) if self.rates else 0.0, "wall_s": time.time() - self.start}
        key = _key(row)
        row["best"] = self.best is None or key >= self.best  # >=: a tie goes to the later, more trained policy
        if row["best"]:
            save_atomic({"policy": policy.state_dict(), "eval": row}, self.run / BEST)
            self.best = key
        self.rates = []
        self.history.append(row)
        self._write(row)
        if success is not None:
            self.tb.add_scalar("eval/success", success, actor.env_steps)
        self.tb.add_scalar("eval/return", ret, actor.env_steps)
        self.tb.add_scalar("learner/updates", row["updates"], actor.env_steps)
        if "utd" in row:
            self.tb.add_scalar("learner/utd", row["utd"], actor.env_steps)
        self.score = postfix(success, ret)
        self._show(actor.env_steps, learner)
        return row

    def stop(self, signal_name: str, actor: Actor, counts: _Counts) -> None:
        row = {"event": "stop", "signal": signal_name, "env_steps": actor.env_steps, "stored_steps": actor.stored_steps,
               **_learner_fields(actor.env_steps, counts()), "wall_s": time.time() - self.start}
        self._write(row)
        tqdm.write(f"stopped by {signal_name} at env step {actor.env_steps} ({row['updates']} updates): {CHECKPOINT} "
                   f"and {METRICS} saved; the same command resumes at env step {actor.stored_steps} (the last stored "
                   "episode)")

    def close(self) -> None:
        self.tb.close()

    def _show(self, env_steps: int, counters: dict[str, int]) -> None:
        fields = _learner_fields(env_steps, counters)
        self.bar.set_postfix(self.score, updates=fields["updates"],
                             **({"utd": f"{fields['utd']:.2f}"} if "utd" in fields else {}), refresh=False)

    def _write(self, row: dict) -> None:
        with open(self.run / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")


def _learner_fields(env_steps: int, counters: dict[str, int]) -> dict:
    """A metrics row's learner counts: its updates (and any other counter the algorithm reports) and, for an
    algorithm with a critic, the effective update-to-data ratio (critic updates per env step, random warm-up
    included), to hold against the learner config's utd."""
    fields: dict = {k: v for k, v in counters.items() if k != "critic_updates"}
    if "critic_updates" in counters:
        fields["utd"] = round(counters["critic_updates"] / max(env_steps, 1), 4)
    return fields


def load_history(run: str | Path) -> list[dict]:
    """The evaluation rows of a run's metrics.jsonl."""
    return [r for r in _read_rows(Path(run) / METRICS) if _is_eval(r)]


def _read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _is_eval(row: dict) -> bool:
    return row.get("event", "eval") == "eval"  # runs from before rows had events hold evaluations only


def _key(row: dict) -> tuple[float, float]:
    """best.pt's order: success rate, then mean return; an env without a success flag: mean return."""
    return (row["success"] or 0.0, row["return"])


def _best_key(path: Path) -> tuple[float, float] | None:
    if not path.exists():
        return None
    return _key(torch.load(path, map_location="cpu", weights_only=False)["eval"])


def _keep_rows(path: Path, resumed_at: int) -> list[dict]:
    """The metrics rows of a resumed run, less evaluations after the env step it resumes at (they evaluated steps
    whose episode was dropped; they come again), which are removed from the file too."""
    rows = _read_rows(path)
    kept = [r for r in rows if not (_is_eval(r) and r["env_steps"] > resumed_at)]
    if len(kept) < len(rows):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(path)
    return kept


def _flush_denormals() -> None:
    """With sparse rewards, Q-values, gradients and Adam moments decay toward zero, and x86 CPUs handle denormal
    floats in microcode: updates measured ~10x slower without this (process-wide, so set by the process owner)."""
    torch.set_flush_denormal(True)


def _start_learner(run: Path) -> mp.Process:
    (run / "STOP").unlink(missing_ok=True)
    (run / PAUSE).unlink(missing_ok=True)
    (run / PROGRESS).unlink(missing_ok=True)  # the actor waits on this learner's counters, not a previous one's
    # spawn, never fork: the parent may hold a GL context (MuJoCo rendering) and torch threads.
    proc = mp.get_context("spawn").Process(target=_learner_process, args=(str(run),), daemon=True)
    proc.start()
    return proc


def _stop_learner(run: Path, proc: mp.Process | None) -> None:
    """Ask the learner process to stop (it saves its checkpoint) and wait for it."""
    if proc is None:
        return
    (run / "STOP").touch()
    proc.join(timeout=60)
    (run / "STOP").unlink(missing_ok=True)


class _StopFileOrSigterm:
    """serve()'s stop check in the learner process: the STOP file train() writes, or SIGTERM sent to this process."""

    def __init__(self, path: Path):
        self.path, self.signalled = path, False
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, _signum: int, _frame) -> None:
        self.signalled = True

    def exists(self) -> bool:
        return self.signalled or self.path.exists()


def _learner_process(run: str) -> None:
    # Ctrl-C reaches the whole process group: train() stops this process through the STOP file once it has saved.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    learner_main(run)


def learner_main(run: str) -> None:
    """Entry point of the learner process (also `python -m robotrl.runtime.train RUN`): stops, saving its checkpoint,
    on RUN/STOP or SIGTERM."""
    stop = _StopFileOrSigterm(Path(run) / "STOP")
    run_dir = Path(run)
    _flush_denormals()
    cfg = load_run(run_dir)
    learner, _ = learner_setup(run_dir)
    learner.transport = FileWeights(run_dir / "weights")
    serve(learner, run_dir / "episodes.zarr", run_dir / CHECKPOINT, stop, checkpoint_every=cfg.eval_every,
          warmup=_random_steps(cfg), progress=FileProgress(run_dir / PROGRESS), paused=(run_dir / PAUSE).exists)


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


def checkpoint_path(run: str | Path, which: Literal["best", "last"] = "best") -> Path:
    """The file a run's policy is loaded from: "best" is best.pt where an evaluation wrote one, else checkpoint.pt;
    "last" is checkpoint.pt."""
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"no run folder {run}")
    if which == "best" and (run / BEST).exists():
        return run / BEST
    if not (run / CHECKPOINT).exists():
        raise ValueError(f"{run}: no {CHECKPOINT}; train first with `robotrl train <algo> --out {run}`")
    return run / CHECKPOINT


def describe_checkpoint(path: Path) -> str:
    """Which policy a checkpoint file holds, in words: what `robotrl eval` and rollout print before they run it."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if "eval" in blob:
        row = blob["eval"]
        score = f"mean return {row['return']:.3f}" if row["success"] is None else f"success {100 * row['success']:.1f} %"
        return (f"{path} (best evaluation during training: {score} over {row.get('episodes', '?')} episodes at env "
                f"step {row['env_steps']}, {row['updates']} updates)")
    updates = blob["updates"] if "updates" in blob else blob["agent"]["num_updates"]  # older checkpoints: the agent's
    return f"{path} (last: {updates} updates, {blob['env_steps']} env steps)"


def load_algorithm(run: str | Path, checkpoint: Literal["best", "last"] = "best", obs_space: gym.Space | None = None,
                   action_space: gym.spaces.Box | None = None) -> tuple[Algorithm, RunConfig]:
    """The trained algorithm of a run folder (whichever its run.yaml names; act with ``.policy``) and the run's
    config; ``checkpoint``: see checkpoint_path. best.pt holds the policy's weights only (what acting needs),
    checkpoint.pt the whole algorithm. The spaces come from the caller (a robot's RosEnv), else from the task's config
    (a robotrl task: no twin is built) or the run's env made here (any other gymnasium env)."""
    path = checkpoint_path(run, checkpoint)
    cfg = load_run(Path(run))
    if (obs_space is None or action_space is None) and is_task(cfg.env):
        obs_space, action_space = task_spaces(cfg.env, cfg.env_kwargs)
    if obs_space is None or action_space is None:
        env = make_env(cfg.env, cfg.env_kwargs, cfg.success_key)
        obs_space, action_space = env.observation_space, env.action_space
        env.close()
    algorithm = make_algorithm(cfg.algo, obs_space, action_space, cfg.learner, cfg.seed)
    blob = torch.load(path, map_location="cpu", weights_only=False)  # load_state_dict moves tensors where they live
    if "policy" in blob:
        algorithm.policy.load_state_dict(blob["policy"])
    else:
        algorithm.load_state_dict(blob["agent"])
    return algorithm, cfg


def evaluate_run(run: str | Path, episodes: int, seed: int = REPORT_SEED,
                 checkpoint: Literal["best", "last"] = "best") -> tuple[float | None, float]:
    """Success rate (None for an env with no success flag) and mean return of a run's policy on fresh seeds."""
    algorithm, cfg = load_algorithm(run, checkpoint)
    return evaluate(algorithm.policy, make_env(cfg.env, cfg.env_kwargs, cfg.success_key), episodes, seed)


if __name__ == "__main__":
    import sys

    learner_main(sys.argv[1])
