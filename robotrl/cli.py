"""The robotrl command line: `robotrl --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

EPILOG = """Examples:
  robotrl envs
  robotrl rollout --env robotrl/ArmPickCube-v0 --policy scripted --episodes 10 --video pick.mp4
  robotrl record --env robotrl/ArmPickCube-v0 --policy scripted --episodes 10 --out demos/pick.zarr
  robotrl data info demos/pick.zarr
  robotrl label demos/pick.zarr --episode 3 --success yes --steps 40-52   # an operator's label
  robotrl train classifier --store demos/pick.zarr --out clf.pt --cameras front,wrist   # reward from labels
  robotrl train sac --env robotrl/ArmPickCube-v0 --demos demos/pick.zarr --config sac_pick --out runs/pick
  robotrl train bc --env robotrl/ArmPickCube-v0 --demos demos/pick.zarr --out runs/pick_bc   # behaviour cloning
  robotrl eval --run runs/pick --episodes 200    # best.pt on fresh seeds, success rate with its 95 % interval
  robotrl bench learner --config sac_pick        # is compile / bf16 faster on this machine?
  robotrl train sac --env Pendulum-v1 --out runs/pendulum    # any gymnasium env; no success flag: scored by return"""


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from robotrl import ENVS

    for env_id in ENVS:
        env = gym.make(env_id)
        u = env.unwrapped
        doc = (type(u).__doc__ or "").strip().splitlines()[0]
        print(f"{env_id:28s} action {u.action_space.shape[0]}-D at {u.config.control_hz:g} Hz, "
              f"{u.max_episode_steps} steps  {doc}")
        env.close()
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from robotrl.runtime.actor import episode_steps, make_env, postfix, success_rate

    video_path = _video_path(args.video)
    render = {"render_mode": "rgb_array"} if (args.video or args.frames) else {}
    env = make_env(args.env, {**task_kwargs(args.env, args.config, args.cameras), **render}, args.success_key)
    policy = make_policy(env, args.policy, args.env, args.checkpoint)
    frames_dir = Path(args.frames) if args.frames else None
    for folder in (video_path.parent if video_path else None, frames_dir):  # now, not after every episode ran
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    video: list[np.ndarray] = []
    flags, returns, costs = [], [], []
    bar = tqdm(range(args.episodes), desc=f"{args.policy} on {args.env}", unit="ep", disable=args.quiet)
    for ep in bar:
        ret, cost = 0.0, 0.0
        for step, (obs, _, reward, _, info) in enumerate(episode_steps(env, policy, args.seed + ep)):
            ret, cost = ret + reward, cost + info.get("cost", 0.0)
            if video_path and ep < args.video_episodes:
                video.append(env.render())
            if frames_dir and ep < args.video_episodes:
                _save_frames(frames_dir, ep, step, env.render(), obs)
        flags.append(info.get("success"))
        returns.append(ret)
        costs.append(cost)
        bar.set_postfix(postfix(success_rate(flags), float(np.mean(returns))))
    env.close()
    if video_path:
        import imageio.v3 as iio

        iio.imwrite(video_path, np.stack(video), fps=env.metadata.get("render_fps", 30) * args.video_speed)
        print(f"video: {video_path} ({len(video)} frames)")
    if frames_dir:
        print(f"frames: {frames_dir}/")
    print(f"env {args.env}  policy {args.policy}  episodes {args.episodes}")
    cost = f"  mean safety cost {np.mean(costs):.2f}" if "cost" in info else ""  # other envs report no cost
    print(_score(success_rate(flags), float(np.mean(returns)), args.episodes) + cost)
    return 0


def _score(success: float | None, ret: float, episodes: int) -> str:
    """Mean return, and where the env reports success the success rate with its 95 % interval."""
    return f"mean return {ret:.3f}" + ("" if success is None else f"  success rate {_rate(success, episodes)}")


def _rate(success: float, episodes: int) -> str:
    """'77.5 % (95 % CI 62-88 %, 40 episodes)': a rate from few episodes says how little it knows."""
    from robotrl.runtime.evaluate import wilson_interval

    low, high = wilson_interval(success, episodes)
    return f"{100 * success:.1f} % (95 % CI {100 * low:.0f}-{100 * high:.0f} %, {episodes} episodes)"


VIDEO_SUFFIXES = (".mp4", ".gif")


def _video_path(video: str | None) -> Path | None:
    """--video checked before any episode runs: a bad name would otherwise fail after all of them."""
    if video and Path(video).suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--video {video}: name a {' or '.join(VIDEO_SUFFIXES)} file")
    return Path(video) if video else None


def task_kwargs(env_id: str, config: str | None = None, cameras: str | None = None, reward: str | None = None) -> dict:
    """gym.make keywords of a robotrl task from --config (a file or a configs/tasks/ name), --cameras and
    --reward; other gymnasium envs take none of them."""
    from robotrl.config import config_path
    from robotrl.runtime.actor import check_env_id
    from robotrl.tasks import is_task

    check_env_id(env_id)
    given = {"--config / --task-config": config, "--cameras": cameras, "--reward": reward}
    if not is_task(env_id):
        if any(given.values()):
            raise ValueError(f"{' and '.join(k for k, v in given.items() if v)}: for robotrl/* tasks only, not {env_id}")
        return {}
    kwargs = {"config": config_path(config, "tasks") if config else None, "observation": {"cameras": cameras.split(",")} if cameras else None,
              "reward": reward}
    return {k: v for k, v in kwargs.items() if v is not None}


def make_policy(env, name: str, env_id: str, checkpoint: str = "best"):
    """A Policy: "scripted" (the task's expert, acting as it does), "random" (uniform over the action space), "hold"
    (the robot holds still: only a human moves it) or a run folder (its trained policy from the ``checkpoint`` named, best or last, printed; acting deterministically)."""
    if name == "random":
        from robotrl.policies import RandomPolicy

        return RandomPolicy(env.action_space)
    if name == "hold":
        from robotrl.tasks.teleop import HoldPolicy

        return HoldPolicy(env.unwrapped.task)
    if name == "scripted":
        from robotrl.tasks.experts import EXPERTS, make_expert

        if env_id not in EXPERTS:
            raise ValueError(f"no scripted expert for {env_id}; use --policy random or a run folder")
        return make_expert(env)
    if not Path(name).is_dir():
        raise ValueError(f"no run folder {name}; --policy takes scripted, random or a run folder")
    from robotrl.runtime.train import load_run

    trained_on = load_run(Path(name)).env
    if trained_on != env_id:
        raise ValueError(f"run {name} was trained on {trained_on}, not {env_id}")
    from robotrl.policies import Deterministic

    return Deterministic(_load_printed(name, checkpoint).policy)


def _load_printed(run: str, checkpoint: str):
    """A run's trained algorithm (any learner), after printing which checkpoint file it comes from."""
    from robotrl.runtime.train import checkpoint_path, describe_checkpoint, load_algorithm

    print(f"policy: {describe_checkpoint(checkpoint_path(run, checkpoint))}", flush=True)
    return load_algorithm(run, checkpoint)[0]


def cmd_record(args: argparse.Namespace) -> int:
    """Record episodes. A demo set holds successes: failed episodes are left out (and counted) unless
    --keep-failures, and recording goes on until --episodes successes are stored or --max-episodes have run."""
    from tqdm import tqdm

    from robotrl.data import EpisodeRecorder, EpisodeStore
    from robotrl.runtime.actor import make_env, postfix, record_episode, success_rate

    filtering = args.source == "demo" and not args.keep_failures
    limit = args.max_episodes or (RECORD_ATTEMPTS * args.episodes if filtering else args.episodes)
    if limit < args.episodes:
        raise ValueError(f"--max-episodes {limit} is below --episodes {args.episodes}")
    env = make_env(args.env, task_kwargs(args.env, args.config, args.cameras), args.success_key)
    policy = make_policy(env, args.policy, args.env, args.checkpoint)
    store = EpisodeStore(args.out, mode="a")
    recorder = EpisodeRecorder(store)
    flags, returns, stored, failed_seeds = [], [], 0, []
    wanted = "successful demos" if filtering else "episodes"
    bar = tqdm(total=args.episodes, desc=f"recording {args.policy} -> {args.out}", unit="demo" if filtering else "ep",
               disable=args.quiet)
    while stored < args.episodes and len(flags) < limit:
        seed = args.seed + len(flags)
        meta, success = record_episode(env, policy, recorder, seed, args.source, args.env, keep_failures=not filtering)
        flags.append(success)
        returns.append(meta.ret)
        if success is False:
            failed_seeds.append(seed)
        if not (filtering and success is False):
            stored += 1
            bar.update()
        bar.set_postfix(postfix(success_rate(flags), float(np.mean(returns))))
    bar.close()
    env.close()
    runs, rate = len(flags), success_rate(flags)
    if failed_seeds:
        fate = (f"left out of {args.out} (--keep-failures keeps them)" if filtering
                else f"kept in {args.out}, tagged success=false")
        print(f"warning: {len(failed_seeds)} of {runs} episodes failed ({_seeds(failed_seeds)}): {fate}", file=sys.stderr)
    print(f"recorded {stored} {wanted} to {args.out} (store now holds {store.n_episodes})"
          + (f"; {len(failed_seeds)} failed episodes left out" if filtering else ""))
    print(_score(rate, float(np.mean(returns)), runs))
    if stored < args.episodes:
        print(f"robotrl record: error: gave up after {runs} episodes (--max-episodes) with {stored} of {args.episodes} "
              f"successful demos: the policy succeeds in {_rate(rate or 0.0, runs)}. Check it with `robotrl rollout`, "
              f"raise --max-episodes, or keep every episode with --keep-failures", file=sys.stderr)
        return 1
    return 0


RECORD_ATTEMPTS = 3  # record gives up after this many episodes per successful demo asked for (--max-episodes)


def _seeds(seeds: list[int], show: int = 10) -> str:
    more = f", ... {len(seeds) - show} more" if len(seeds) > show else ""
    return "seed" + ("s " if len(seeds) > 1 else " ") + ", ".join(map(str, seeds[:show])) + more


def cmd_data_info(args: argparse.Namespace) -> int:
    import json

    from robotrl.data import EpisodeStore

    store = EpisodeStore(args.path)
    returns = [m.ret for m in store.metas()]
    info = {**store.summary(), "mean_return": float(np.mean(returns)) if returns else None}
    print(json.dumps(info, indent=2))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    """Add an operator's label to a recorded episode, or let the scripted operator label a twin's store."""
    from robotrl.data import EpisodeStore
    from robotrl.labels import ScriptedOperator, parse_rows

    store = EpisodeStore(args.store, mode="label")  # labels only: recorded rows are never rewritten
    if args.scripted:
        given = [f for f, v in (("--episode", args.episode), ("--success", args.success), ("--steps", args.steps)) if v is not None]
        if given:
            raise ValueError(f"--scripted labels the episodes itself: drop {', '.join(given)}")
        lo, _, hi = args.delay.partition("-")
        try:
            delay = (int(lo), int(hi or lo))
        except ValueError:
            raise ValueError(f"--delay {args.delay!r}: rows as MIN-MAX, e.g. 2-5") from None
        operator = ScriptedOperator(delay=delay, miss_rate=args.miss, max_episodes=args.budget, max_frames=args.frame_budget,
                                    seed=args.seed, source=args.source)
        report = operator.label(store)
        print(f"{store.path}: scripted operator (source {args.source!r}, seed {args.seed}, {delay[0]}-{delay[1]} rows late, "
              f"misses {args.miss:g}) {report}")
        return 0
    if args.episode is None or (args.success is None and args.steps is None):
        raise ValueError("give --episode N with --success yes|no and/or --steps FIRST-LAST (or --scripted, in the twin)")
    n = store.n_episodes
    if not -n <= args.episode < n:
        raise ValueError(f"{store.path}: episode {args.episode} out of range ({n} complete episodes)")
    i = args.episode % n
    rows = store.episode_slice(i).stop - store.episode_slice(i).start
    steps = parse_rows(args.steps, rows) if args.steps is not None else None
    success = None if args.success is None else args.success == "yes"
    index = store.add_label(i, success=success, steps=steps, source=args.source)
    marked = f", success on rows {args.steps} ({int(steps.sum())} of {rows} rows)" if steps is not None else ""
    print(f"{store.path}: added {args.source} label #{index} to episode {i}: outcome "
          f"{'-' if success is None else args.success}{marked}; recorded data unchanged")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    """Train the reward classifier on a store's operator labels; report it on held-out episodes; save it."""
    from robotrl.data import EpisodeStore
    from robotrl.reward_classifier import train_classifier

    store = EpisodeStore(args.store)
    cameras = args.cameras.split(",") if args.cameras else [k.split("/", 1)[1] for k in store.obs_keys if k.startswith("images/")]
    if not cameras:
        raise ValueError(f"{store.path}: no camera frames (images/*) to learn from; keys: {', '.join(store.obs_keys)} "
                         "(record with --cameras front,wrist)")
    keys = [f"images/{c}" for c in cameras]
    model, report = train_classifier(store, keys, steps=args.steps, batch_size=args.batch_size, val_fraction=args.held_out,
                                     min_precision=args.min_precision, seed=args.seed, progress=not args.quiet,
                                     rounds=args.rounds, guard=args.guard, encoder=args.encoder, members=args.members,
                                     recall_slack=args.recall_slack)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out, info={"store": str(store.path), "keys": keys, "report": {**vars(report), "sources": list(report.sources)}})
    print(report)
    print(f"classifier: {out} (keys {', '.join(keys)}, threshold {model.threshold:.3f}; "
          "robotrl.reward_classifier.SuccessClassifier.load, ClassifierReward)")
    return 0


def learner_overrides(algo: str, config: str | None, **flags: Any) -> tuple[Path | None, dict[str, Any]]:
    """The learner config (a YAML file or a configs/learners/ name) and the command's flags that were given, as
    overrides of configs/learners/<algo>.yaml, validated now: a bad key fails naming the file, before anything is
    written."""
    from robotrl.config import config_path, read_yaml
    from robotrl.learners import load_learner_config

    learner_file = config_path(config, "learners") if config else None
    given = {k: v for k, v in flags.items() if v}
    load_learner_config(algo, learner_file, given)
    return learner_file, {**(read_yaml(learner_file) if learner_file else {}), **given}


def cmd_train(args: argparse.Namespace) -> int:
    from robotrl.runtime.train import RunConfig, load_history, train

    _, overrides = learner_overrides(args.algo, args.config, utd=getattr(args, "utd", None))
    classifier = args.reward.removeprefix("classifier:") if args.reward and args.reward.startswith("classifier:") else None
    reward_type = None if classifier else args.reward
    env_kwargs = task_kwargs(args.env, args.task_config, args.cameras, reward_type)
    if "config" in env_kwargs:  # run.yaml keeps the path as text
        env_kwargs["config"] = str(env_kwargs["config"])
    cfg = RunConfig(env=args.env, env_kwargs=env_kwargs, classifier=classifier,
                    algo=args.algo, learner=overrides,
                    demos=args.demos, human=args.human, seed=args.seed, total_steps=args.steps,
                    eval_every=args.eval_every, eval_episodes=args.eval_episodes, success_key=args.success_key,
                    max_ahead=args.max_ahead, random_steps=args.random_steps)
    try:
        history = train(cfg, args.out, processes=args.processes, progress=not args.quiet)
        code = 0
    except KeyboardInterrupt:  # train() saved the checkpoint and metrics first; 130: the shell's code for Ctrl-C
        history, code = load_history(args.out), 130
    if history:
        last = history[-1]
        print(f"last eval after {last['env_steps']} env steps: {_score(last['success'], last['return'], last['episodes'])}")
    written = [name for name in ("best.pt", "checkpoint.pt", "learning_curve.png", "metrics.jsonl") if (Path(args.out) / name).exists()]
    print(f"run: {args.out} ({', '.join([*written, f'TensorBoard: tensorboard --logdir {args.out}/tb'])})")
    print(f"report it on fresh seeds: robotrl eval --run {args.out} --episodes 200")
    return code


def cmd_eval(args: argparse.Namespace) -> int:
    from robotrl.runtime.actor import make_env
    from robotrl.runtime.evaluate import evaluate
    from robotrl.runtime.train import BEST, SELECT_SEED, checkpoint_path, load_run

    algorithm = _load_printed(args.run, args.checkpoint)
    cfg = load_run(Path(args.run))
    picked = checkpoint_path(args.run, args.checkpoint).name == BEST
    if picked and args.seed < SELECT_SEED + cfg.eval_episodes and SELECT_SEED < args.seed + args.episodes:
        print(f"note: seeds {args.seed}-{args.seed + args.episodes - 1} overlap {SELECT_SEED}-"
              f"{SELECT_SEED + cfg.eval_episodes - 1}, which picked best.pt during training: this rate flatters it")
    print(f"run {args.run}  episodes {args.episodes} (seeds {args.seed}-{args.seed + args.episodes - 1})")
    from robotrl.tasks.heldout import heldout_envs

    envs = heldout_envs(cfg.env, cfg.env_kwargs, args.heldout) if args.heldout else {"": cfg.env_kwargs}
    for name, env_kwargs in envs.items():
        success, ret = evaluate(algorithm.policy, make_env(cfg.env, env_kwargs, cfg.success_key), args.episodes, args.seed)
        print(f"{f'held-out {name}: ' if name else ''}{_score(success, ret, args.episodes)}")
    return 0


def cmd_bench_learner(args: argparse.Namespace) -> int:
    import statistics

    import torch
    from tqdm import tqdm

    from robotrl.learners.throughput import VARIANTS, measure_fast_paths, ratio, recommend
    from robotrl.runtime.actor import make_env

    learner_file, sac = learner_overrides("sac", args.config, num_threads=args.threads)
    env = make_env(args.env, task_kwargs(args.env, cameras=args.cameras))
    with tqdm(total=len(VARIANTS) * (args.rounds + 1), desc="timing learner updates", unit="run", disable=args.quiet) as bar:
        def progress(what: str) -> None:
            bar.set_postfix_str(what)
            bar.update(1)

        rates, skipped = measure_fast_paths(env, sac, args.rounds, args.updates, progress=progress)
    env.close()
    print(f"{args.env}, learner {learner_file or 'defaults'}, {torch.get_num_threads()} torch threads, "
          f"{args.rounds} rounds of {args.updates} updates")
    for name in rates:
        print(f"  {name:16s} {statistics.median(rates[name]):7.1f} updates/s  {ratio(rates, name, 'fp32 eager'):.2f}x fp32 eager")
    for name, why in skipped.items():
        print(f"  {name:16s} not run: {why}")
    best = recommend(rates)
    if best == "fp32 eager":
        print("recommendation: keep the defaults (compile: false, precision: fp32); no fast path gains >= 10 % here")
    else:
        keys = ", ".join(f"{k}: {str(v).lower()}" for k, v in VARIANTS[best].items())
        print(f"recommendation: {keys} in your learner config ({ratio(rates, best, 'fp32 eager'):.2f}x fp32 eager here)")
    return 0


def _save_frames(folder: Path, ep: int, step: int, render: np.ndarray, obs: dict) -> None:
    import imageio.v3 as iio

    iio.imwrite(folder / f"ep{ep:03d}_step{step:04d}_render.png", render)
    for key, value in obs.items():
        if key.startswith("images/"):
            iio.imwrite(folder / f"ep{ep:03d}_step{step:04d}_{key.split('/', 1)[1]}.png", value)


def _reward(text: str) -> str:
    if text in ("sparse", "dense") or (text.startswith("classifier:") and len(text) > len("classifier:")):
        return text
    raise argparse.ArgumentTypeError(f"expected sparse, dense or classifier:PATH, got {text!r}")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


SUCCESS_KEY_HELP = "info key where the env reports success, e.g. is_success (default: success or is_success; " \
                   "envs reporting none are scored by return)"


def _episode_args(p: argparse.ArgumentParser) -> None:
    """What every command that runs episodes of a task takes."""
    p.add_argument("--env", required=True, help="robotrl task id, e.g. robotrl/ArmPickCube-v0 (see `robotrl envs`), or any gymnasium env id")
    p.add_argument("--policy", default="scripted", help="scripted (the task's expert), random, or a run folder from `robotrl train` (default: scripted)")
    p.add_argument("--episodes", type=_positive, default=10, help="number of episodes (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i (default: 0)")
    p.add_argument("--config", help="task config overriding the task's defaults: a YAML file or a configs/tasks/ name, e.g. arm_pick_cube (robotrl tasks only)")
    p.add_argument("--cameras", help="comma-separated cameras to add as image observations, e.g. front,wrist (robotrl tasks only)")
    p.add_argument("--success-key", help=SUCCESS_KEY_HELP)
    p.add_argument("--checkpoint", **CHECKPOINT_ARG)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_args(p: argparse.ArgumentParser, algo: str, config_example: str, steps: int) -> None:
    """What every `robotrl train <algo>` takes."""
    p.add_argument("--env", required=True, help="robotrl task id, e.g. robotrl/ArmPickCube-v0, or any gymnasium env id")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds a checkpoint)")
    p.add_argument("--demos", required=algo == "bc", help="episode store with demonstrations (see `robotrl record`)")
    p.add_argument("--config", help=f"learner config overriding configs/learners/{algo}.yaml: a YAML file or a "
                   f"configs/learners/ name, {config_example}")
    p.add_argument("--steps", type=_positive, default=steps, help=f"env steps to train for, in total (default: {steps})")
    p.add_argument("--random-steps", type=int, help="uniform random actions first, without updates (default: 0 with "
                   "--demos, else 1000)")
    p.add_argument("--eval-every", type=_positive, default=1000, help="env steps between evaluations, and at the last step (default: 1000)")
    p.add_argument("--eval-episodes", type=_positive, default=50, help="episodes per evaluation, seeds 10000 + i: they "
                   "pick best.pt (default: 50)")
    p.add_argument("--reward", type=_reward, help="sparse or dense: override the task's reward type (robotrl tasks only); "
                   "classifier:PATH: reward and success from a reward classifier (`robotrl train classifier`), as on a "
                   "robot, while evaluations still judge by the env's own success")
    p.add_argument("--task-config", help="task config overriding the task's defaults: a YAML file or a configs/tasks/ "
                   "name, e.g. arm_pick_cube_pixels (cameras and proprioception only, as a robot sees it; robotrl tasks only)")
    p.add_argument("--cameras", help="comma-separated cameras for image observations, e.g. wrist (robotrl tasks only)")
    p.add_argument("--success-key", help=SUCCESS_KEY_HELP + "; stored in the run for eval and resume")
    p.add_argument("--human", choices=["none", "scripted"], default="none", help="a scripted human intervenes (ArmPickCube)")
    p.add_argument("--processes", action="store_true", help="actor and learner in separate processes (as on a robot)")
    p.add_argument("--max-ahead", type=int, default=100, help="with --processes: env steps the actor may run ahead of "
                   "the learner's updates, so the update-to-data ratio holds; 0: never wait (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_train)


CHECKPOINT_ARG = {"choices": ["best", "last"], "default": "best",
                  "help": "which policy of a run folder: best (best.pt, the best evaluation during training; "
                          "checkpoint.pt where there is none) or last (checkpoint.pt) (default: best)"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="robotrl",
        description="robotrl: robot learning on a MuJoCo twin and real robots through one interface.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the registered tasks", description="List every robotrl/<Task>-v0 env with its action size, rate and episode length.")
    p.set_defaults(fn=cmd_envs)

    p = sub.add_parser(
        "rollout", help="run a policy and print its return and success rate",
        description="Run episodes of a task (or any gymnasium env) with a scripted expert, random actions or a "
        "trained run; print the mean return and, where the env reports success, the success rate; optionally "
        "save a video or PNG frames of the cameras.",
    )
    _episode_args(p)
    p.add_argument("--video", help="write a video of the first episodes here (.mp4 or .gif)")
    p.add_argument("--video-episodes", type=_positive, default=3, help="episodes recorded to --video/--frames (default: 3)")
    p.add_argument("--video-speed", type=float, default=1.0, help="playback speed factor of the video (default: 1)")
    p.add_argument("--frames", help="write PNG frames (render + every camera) of the first episodes to this folder")
    p.set_defaults(fn=cmd_rollout)

    p = sub.add_parser(
        "record", help="record episodes into a zarr episode store",
        description="Run a policy and append complete episodes to a zarr episode store (created if missing): "
        "--episodes successful demos, failed ones counted and left out unless --keep-failures. A crash loses at most "
        "the episode in progress.",
    )
    _episode_args(p)
    p.add_argument("--out", required=True, help="episode store path, e.g. demos/pick.zarr")
    p.add_argument("--source", choices=["demo", "intervention", "online", "eval"], default="demo", help="episode source tag (default: demo)")
    p.add_argument("--keep-failures", action="store_true", help="store failed demos too (tagged success=false) and "
                   "record --episodes episodes, failed or not; by default a demo set holds only successes: failed "
                   "episodes are counted and left out, and recording goes on until --episodes successes are stored "
                   "(sources other than demo keep every episode)")
    p.add_argument("--max-episodes", type=_positive, help=f"give up (exit 1, naming the success rate) after this many "
                   f"episodes without --episodes successes (default: {RECORD_ATTEMPTS} x --episodes)")
    p.set_defaults(fn=cmd_record)

    train = sub.add_parser("train", help="train a policy in the twin", description="Train a policy with a learner (configs/learners/<name>.yaml): sac or bc; see `robotrl train sac --help`. `robotrl train classifier` trains the reward classifier from operator labels.")
    train_sub = train.add_subparsers(dest="algo", required=True, metavar="ALGORITHM")
    run_folder = ("Writes a run folder (checkpoint, episodes, TensorBoard, learning curve, best.pt beside checkpoint.pt); "
                  "running the same --out again resumes it. SIGTERM or Ctrl-C stop it with its checkpoint and metrics "
                  "saved (exit 0 after SIGTERM, 130 after Ctrl-C).")
    p = train_sub.add_parser(
        "sac", help="SAC in the RLPD / HIL-SERL recipe",
        description="Train SAC (RLPD / HIL-SERL recipe) on a task, from scratch or from demonstrations, optionally "
        "with a scripted human intervening. " + run_folder,
    )
    _train_args(p, "sac", "e.g. sac_pick", steps=20_000)
    p.add_argument("--utd", type=_positive, help="update-to-data ratio (critic steps per env step)")
    p = train_sub.add_parser(
        "bc", help="behaviour cloning from demonstrations",
        description="Train a policy by behaviour cloning on the demonstrations of --demos (and any intervened steps), "
        "through the same actor, evaluations and run folder as SAC: one update per env step of the actor, whose own "
        "episodes are stored but not learned from. " + run_folder,
    )
    _train_args(p, "bc", "a YAML file of BCConfig keys", steps=5_000)
    p = train_sub.add_parser(
        "classifier", help="the reward classifier, from operator labels",
        description="Train the success classifier (HIL-SERL's reward) on the operator labels of an episode store -- "
        "never on its truth/ -- split by episode into train / calibration / test; calibrate the threshold for "
        "precision, mine hard negatives (frames scored positive that a label rejects) into another round, print "
        "precision, recall and the confusion on the test episodes, and save the classifier. Label first: "
        "`robotrl label STORE --episode N --success yes|no --steps FIRST-LAST` (or --scripted in the twin).",
    )
    p.add_argument("--store", required=True, help="episode store with operator labels")
    p.add_argument("--out", required=True, help="classifier file to write, e.g. clf.pt")
    p.add_argument("--cameras", help="comma-separated cameras to classify, e.g. front,wrist (default: every camera in the store)")
    p.add_argument("--min-precision", type=float, default=0.99, help="calibrate the threshold for this precision (default: 0.99)")
    p.add_argument("--recall-slack", type=float, default=0.0, help="raise the threshold above the lowest that reaches "
                   "the precision while the calibration recall falls by at most this much, away from negatives that "
                   "score like successes (bench/pixels.py: 0.005; default: 0)")
    p.add_argument("--steps", type=_positive, default=1000, help="updates per round (default: 1000)")
    p.add_argument("--rounds", type=_positive, default=2, help="training rounds; each after the first adds the hard "
                   "negatives mined by the one before (default: 2)")
    p.add_argument("--batch-size", type=_positive, default=128, help="frames per update (default: 128)")
    p.add_argument("--encoder", help="a pretrained conv stack (scripts/pretrain_encoder.py), kept frozen: each frame's "
                   "features are computed once and only the projection and head train (HIL-SERL's recipe); "
                   "default: a CNN trained from scratch")
    p.add_argument("--held-out", type=float, default=0.4, help="fraction of labelled episodes held out, half for "
                   "calibration, half for the test (default: 0.4)")
    p.add_argument("--members", type=_positive, default=1, help="more than 1: an ensemble cross-fitted over this many "
                   "folds of the train and calibration episodes, the threshold calibrated on all of them, each scored "
                   "by the member that never trained on it, so it does not swing with which few episodes calibrate "
                   "(bench/pixels.py uses 4 on 200 labelled episodes; default: 1, one model calibrated on the "
                   "calibration episodes)")
    p.add_argument("--guard", type=int, default=5, help="unmarked rows this close to a success mark are left out: "
                   "the operator's reaction time (default: 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_train_classifier)

    p = sub.add_parser("eval", help="evaluate a trained run", description="Run a trained policy deterministically on "
                       "fresh seeds (never those that picked best.pt) and print its mean return and success rate with "
                       "its 95 % interval.")
    p.add_argument("--run", required=True, help="run folder written by `robotrl train`")
    p.add_argument("--episodes", type=_positive, default=50, help="episodes (default: 50; 200 or more for a final report)")
    p.add_argument("--seed", type=int, default=20_000, help="seed of the first episode (default: 20000; training "
                   "evaluates on 10000 + i)")
    p.add_argument("--checkpoint", **CHECKPOINT_ARG)
    p.add_argument("--heldout", help="evaluate on held-out perturbation sets instead of the run's own task: names from "
                   "configs/heldout/<task>.yaml, comma-separated, or all (values outside the training ranges; "
                   "evaluation only)")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser(
        "label", help="add an operator's labels to an episode store",
        description="Judge recorded episodes after the fact: an episode's outcome (--success) and the rows whose "
        "observation shows success (--steps, inclusive ranges), appended to the store's labels/ (recorded data is "
        "never rewritten; a later label from the same source overrides per field; an actor may keep recording). "
        "In the twin, --scripted lets a scripted operator label every unlabelled episode as a human would: the "
        "outcome, and success held over the last frames a few rows late with occasional misses, within a budget.",
    )
    p.add_argument("store", help="episode store path")
    p.add_argument("--episode", type=int, help="episode index (negative counts from the end)")
    p.add_argument("--success", choices=["yes", "no"], help="the episode's outcome")
    p.add_argument("--steps", help="rows whose observation shows success, e.g. 40-52 or 40-52,60-61 (others: not)")
    p.add_argument("--source", default="operator", help="who labels (default: operator; e.g. operator:alice)")
    p.add_argument("--scripted", action="store_true", help="the scripted operator labels the unlabelled episodes (twin only: it watches truth/)")
    p.add_argument("--budget", type=int, help="with --scripted: episodes to label at most (default: all)")
    p.add_argument("--frame-budget", type=int, help="with --scripted: success frames to mark at most (default: no limit)")
    p.add_argument("--delay", default="2-5", help="with --scripted: the operator's delay in rows, MIN-MAX (default: 2-5)")
    p.add_argument("--miss", type=float, default=0.05, help="with --scripted: chance a success frame goes unmarked (default: 0.05)")
    p.add_argument("--seed", type=int, default=0, help="with --scripted: its seed (default: 0)")
    p.set_defaults(fn=cmd_label)

    data = sub.add_parser("data", help="inspect episode stores", description="Inspect zarr episode stores.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    p = data_sub.add_parser("info", help="summarize a store", description="Episodes, steps, sources, success rate, mean return, keys and size of a store.")
    p.add_argument("path", help="episode store path")
    p.set_defaults(fn=cmd_data_info)

    bench = sub.add_parser("bench", help="measure this machine", description="Measure what depends on this machine.")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="SUBCOMMAND")
    p = bench_sub.add_parser(
        "learner", help="which of the learner's fast paths pay off here",
        description="Time the SAC learner's updates on this machine for a task and learner config: fp32 eager (the "
        "default), precision: bf16, compile: true, and both, in interleaved rounds. Prints updates/s and the "
        "setting to use; bf16 and compile are faster on some CPUs and slower on others. Takes 1-3 minutes "
        "(compiling comes first).",
    )
    p.add_argument("--env", default="robotrl/ArmPickCube-v0", help="task id (default: robotrl/ArmPickCube-v0)")
    p.add_argument("--config", help="learner config: a YAML file or a configs/learners/ name, e.g. sac_pick")
    p.add_argument("--cameras", help="comma-separated cameras for image observations, e.g. wrist (robotrl tasks only)")
    p.add_argument("--rounds", type=_positive, default=3, help="timing rounds (default: 3)")
    p.add_argument("--updates", type=_positive, default=50, help="updates per variant and round (default: 50)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: the learner config's num_threads; 0 there: half the cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_bench_learner)

    p = sub.add_parser(
        "ui", help="the operator's web page on the twin: watch, take over, label, reset, E-STOP",
        description="Serve the operator's page (http://127.0.0.1:8765 by default) driving the in-process actor on the "
        "MuJoCo twin, no ROS needed: live cameras, the policy's and the human's actions, the reward classifier, "
        "take-over by keyboard or gamepad (hold to intervene, release to hand back), success/failure labels, scene "
        "ready, pause/resume learning, E-STOP. Control needs the token printed at start (in the URL's #fragment); "
        "other pages watch. Every episode is recorded, intervened steps with their device. Not a replacement for a "
        "hardware emergency stop.",
    )
    p.add_argument("--env", required=True, help="robotrl task id, e.g. robotrl/ArmPickCube-v0")
    p.add_argument("--policy", default="scripted", help="scripted, random, hold (the robot holds still unless the "
                   "operator takes over: teleoperated demos), or a run folder from `robotrl train` (default: scripted)")
    p.add_argument("--checkpoint", **CHECKPOINT_ARG)
    p.add_argument("--learn", action="store_true", help="with --policy RUN: its learner process goes on learning "
                   "from the episodes recorded here (RUN/episodes.zarr), and the actor loads its new weights")
    p.add_argument("--store", default="runs/ui/episodes.zarr", help="episode store without --learn "
                   "(default: runs/ui/episodes.zarr)")
    p.add_argument("--config", help="task config: a YAML file or a configs/tasks/ name, e.g. arm_pick_cube_pixels")
    p.add_argument("--cameras", help="comma-separated cameras, e.g. front,wrist")
    p.add_argument("--wait-ready", action="store_true", help="after each episode wait for the operator's Scene ready")
    p.add_argument("--spacemouse", action="store_true", help="take over with a SpaceMouse on this host too: hold its "
                   "left button (the deadman) and move the puck")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; remote use: an SSH "
                   "tunnel, see the README)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: any free port)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser(
        "launch", help="start a ROS 2 node graph (no ROS install needed)",
        description="Start the nodes of a graph (configs/graphs/<name>.yaml or a .yaml path), each as its own process "
        "talking ROS 2 over DDS: the same graph `ros2 launch robotrl_bringup sim.launch.py graph:=<name>` starts. "
        "Needs the ros extra: pip install -e '.[ros]'.",
    )
    p.add_argument("graph", help="graph name (e.g. sim_pick, sim_learn) or path to a graph .yaml")
    p.add_argument("--timeout", type=float, default=None, help="stop the graph after this many seconds")
    p.set_defaults(fn=cmd_launch)
    return parser


def cmd_ui(args: argparse.Namespace) -> int:
    import signal
    import time

    from robotrl.runtime.actor import make_actor_env
    from robotrl.runtime.train import load_run
    from robotrl.ui.server import UiServer
    from robotrl.ui.session import TwinSession

    run = Path(args.policy) if args.policy not in ("scripted", "random", "hold") else None
    if args.learn and run is None:
        raise ValueError("--learn needs --policy RUN: a run folder from `robotrl train`, whose learner goes on learning")
    env_kwargs, classifier, success_key = task_kwargs(args.env, args.config, args.cameras), None, None
    if run is not None and run.is_dir() and (run / "run.yaml").exists():  # the task as the run was trained on it
        cfg = load_run(run)
        env_kwargs = env_kwargs if (args.config or args.cameras) else cfg.env_kwargs
        classifier, success_key = cfg.classifier, cfg.success_key  # its reward: the classifier's, if it learned so
    store = run / "episodes.zarr" if args.learn else Path(args.store)
    transport, learner, learning = None, None, None
    if args.learn:
        from robotrl.runtime.train import PAUSE, _start_learner, _stop_learner
        from robotrl.runtime.transport import FileWeights

        transport, learner = FileWeights(run / "weights"), _start_learner(run)

        def learning(on: bool) -> None:  # the learner process pauses while RUN/PAUSE exists
            (run / PAUSE).unlink(missing_ok=True) if on else (run / PAUSE).touch()

    def policy(env):
        if not args.learn:  # deployed: as `robotrl eval` measures it
            return make_policy(env, args.policy, args.env, args.checkpoint)
        # Learning: the run's policy as the learner explores with it (its latest weights arrive from the learner)
        return _load_printed(str(run), "last").policy

    session = TwinSession(lambda: make_actor_env(args.env, env_kwargs, "none", args.seed, success_key, classifier), policy,
                          store, args.env, seed=args.seed, wait_ready=args.wait_ready, transport=transport,
                          learning=learning).start()
    server = UiServer(session.console, session.frames, args.host, args.port, run_dir=run, store=store).start()
    feed = None
    if args.spacemouse:
        from robotrl.ui.spacemouse import SpaceMouse, SpaceMouseFeed

        feed = SpaceMouseFeed(SpaceMouse(), session.console)

    def stop(signum: int, frame) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and SIGTERM stop cleanly even where SIGINT came ignored: a script's background job inherits SIG_IGN,
    # and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"robotrl ui: {args.env} with policy {args.policy}, episodes into {store}")
    print(f"open {server.url}  (the token after # gives control; without it a page only watches)", flush=True)
    if args.host != "127.0.0.1":
        print(f"warning: serving on {args.host}: anyone who can reach it can watch; prefer an SSH tunnel (README)")
    try:
        while session.error is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if feed is not None:
            feed.close()
            feed.reader.close()
        server.stop()
        session.close()
        if learner is not None:
            _stop_learner(run, learner)
    if session.error is not None:
        raise session.error
    return 0


def cmd_launch(args) -> int:
    from robotrl.ros.graph import launch, load_graph

    graph = load_graph(args.graph)
    print(f"robotrl launch: {', '.join(f'{n} ({s.kind})' for n, s in graph.nodes.items())}", flush=True)
    try:
        return launch(graph, timeout=args.timeout)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import faulthandler
    import signal

    import gymnasium as gym

    if sys.__stderr__ is not None:  # `kill -USR1 PID` prints every thread's stack: what a hung process waits on
        faulthandler.register(signal.SIGUSR1, file=sys.__stderr__)

    from robotrl.config import ConfigError
    from robotrl.data import StoreError

    try:
        return args.fn(args)
    except (ConfigError, StoreError, ValueError, gym.error.Error) as exc:  # the user's input: one line, no traceback
        print(f"robotrl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
