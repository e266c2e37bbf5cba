"""The robotrl command line: `robotrl --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

EPILOG = """Examples:
  robotrl envs
  robotrl rollout --env robotrl/ArmPickCube-v0 --policy scripted --episodes 10 --video pick.mp4
  robotrl record --env robotrl/ArmPickCube-v0 --policy scripted --episodes 10 --out demos/pick.zarr
  robotrl data info demos/pick.zarr
  robotrl train sac --env robotrl/ArmPickCube-v0 --demos demos/pick.zarr --out runs/pick
  robotrl eval --run runs/pick --episodes 20"""


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
    import gymnasium as gym
    from tqdm import tqdm

    overrides = {}
    if args.cameras:
        overrides["cameras"] = args.cameras.split(",")
    env = gym.make(args.env, config=args.config, render_mode="rgb_array" if (args.video or args.frames) else None, **overrides)
    policy = make_policy(env, args.policy)
    video: list[np.ndarray] = []
    frames_dir = Path(args.frames) if args.frames else None
    if frames_dir:
        frames_dir.mkdir(parents=True, exist_ok=True)
    successes, returns, costs = [], [], []
    bar = tqdm(range(args.episodes), desc=f"{args.policy} on {args.env}", unit="ep", disable=args.quiet)
    for ep in bar:
        obs, info = env.reset(seed=args.seed + ep)
        if hasattr(policy, "reset"):
            policy.reset()
        done, ret, cost, step = False, 0.0, 0.0, 0
        while not done:
            action = policy(obs) if policy is not None else env.action_space.sample()
            obs, reward, terminated, truncated, info = env.step(action)
            done, ret, cost, step = terminated or truncated, ret + reward, cost + info["cost"], step + 1
            if args.video and ep < args.video_episodes:
                video.append(env.render())
            if frames_dir and ep < args.video_episodes:
                _save_frames(frames_dir, ep, step, env.render(), obs)
        successes.append(info["success"])
        returns.append(ret)
        costs.append(cost)
        bar.set_postfix(success=f"{np.mean(successes):.0%}")
    env.close()
    if args.video:
        import imageio.v3 as iio

        iio.imwrite(args.video, np.stack(video), fps=env.unwrapped.config.control_hz * args.video_speed)
        print(f"video: {args.video} ({len(video)} frames)")
    if frames_dir:
        print(f"frames: {frames_dir}/")
    print(f"env {args.env}  policy {args.policy}  episodes {args.episodes}")
    print(f"mean return {np.mean(returns):.3f}  mean safety cost {np.mean(costs):.2f}")
    print(f"success rate {np.mean(successes):.2%}")
    return 0


def make_policy(env, name: str):
    """"scripted" (the task's expert), "random" (None: sample the action space) or a run folder (its policy)."""
    if name == "random":
        return None
    if name == "scripted":
        from robotrl.experts import make_expert

        return make_expert(env)
    from robotrl.runtime.train import load_agent

    agent, cfg = load_agent(name)
    if cfg.env != env.spec.id:
        raise ValueError(f"run {name} was trained on {cfg.env}, not {env.spec.id}")
    return lambda obs: agent.act(obs, deterministic=True)


def cmd_record(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from tqdm import tqdm

    from robotrl.data import EpisodeRecorder, EpisodeStore
    from robotrl.data.store import record_episode

    overrides = {"cameras": args.cameras.split(",")} if args.cameras else {}
    env = gym.make(args.env, config=args.config, **overrides)
    policy = make_policy(env, args.policy)
    store = EpisodeStore(args.out, mode="a")
    recorder = EpisodeRecorder(store)
    successes = []
    bar = tqdm(range(args.episodes), desc=f"recording {args.policy} -> {args.out}", unit="ep", disable=args.quiet)
    for ep in bar:
        meta = record_episode(env, policy, recorder, args.seed + ep, args.source, args.env)
        successes.append(meta.success)
        bar.set_postfix(success=f"{np.mean(successes):.0%}")
    env.close()
    print(f"recorded {args.episodes} episodes to {args.out} (store now holds {store.n_episodes})")
    print(f"success rate {np.mean(successes):.2%}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    import json

    from robotrl.data import EpisodeStore

    print(json.dumps(EpisodeStore(args.path).summary(), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from robotrl.config import read_yaml
    from robotrl.learning.sac import load_sac_config
    from robotrl.runtime.train import RunConfig, train

    sac = {**(read_yaml(args.config) if args.config else {}), **({"utd": args.utd} if args.utd else {})}
    load_sac_config(args.config, sac)  # validate now: a bad key fails naming the file, not minutes into training
    env_kwargs = {"cameras": args.cameras.split(",")} if args.cameras else {}
    if args.reward:
        env_kwargs["reward"] = args.reward
    cfg = RunConfig(env=args.env, env_kwargs=env_kwargs, sac=sac, demos=args.demos, human=args.human, seed=args.seed,
                    total_steps=args.steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes)
    history = train(cfg, args.out, processes=args.processes, progress=not args.quiet)
    if history:
        print(f"final eval success rate {history[-1]['success']:.2%} after {history[-1]['env_steps']} env steps")
    print(f"run: {args.out} (learning_curve.png, metrics.jsonl, TensorBoard: tensorboard --logdir {args.out}/tb)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from robotrl.runtime.train import evaluate_run

    success, ret = evaluate_run(args.run, args.episodes, args.seed)
    print(f"run {args.run}  episodes {args.episodes}  mean return {ret:.3f}")
    print(f"success rate {success:.2%}")
    return 0


def _save_frames(folder: Path, ep: int, step: int, render: np.ndarray, obs: dict) -> None:
    import imageio.v3 as iio

    iio.imwrite(folder / f"ep{ep:03d}_step{step:04d}_render.png", render)
    for key, value in obs.items():
        if key.startswith("images/"):
            iio.imwrite(folder / f"ep{ep:03d}_step{step:04d}_{key.split('/', 1)[1]}.png", value)


def _episode_args(p: argparse.ArgumentParser) -> None:
    """What every command that runs episodes of a task takes."""
    p.add_argument("--env", required=True, help="task id, e.g. robotrl/ArmPickCube-v0 (see `robotrl envs`)")
    p.add_argument("--policy", default="scripted", help="scripted (the task's expert), random, or a run folder from `robotrl train` (default: scripted)")
    p.add_argument("--episodes", type=int, default=10, help="number of episodes (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i (default: 0)")
    p.add_argument("--config", help="YAML file overriding the task's config (see configs/tasks/)")
    p.add_argument("--cameras", help="comma-separated cameras to add as image observations, e.g. front,wrist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
        "rollout", help="run a policy in the twin and print its success rate",
        description="Run episodes of a task with a scripted expert or random actions; print the success rate, "
        "optionally save a video or PNG frames of the cameras.",
    )
    _episode_args(p)
    p.add_argument("--video", help="write a video of the first episodes here (.mp4 or .gif)")
    p.add_argument("--video-episodes", type=int, default=3, help="episodes recorded to --video/--frames (default: 3)")
    p.add_argument("--video-speed", type=float, default=1.0, help="playback speed factor of the video (default: 1)")
    p.add_argument("--frames", help="write PNG frames (render + every camera) of the first episodes to this folder")
    p.set_defaults(fn=cmd_rollout)

    p = sub.add_parser(
        "record", help="record episodes into a zarr episode store",
        description="Run a policy and append every complete episode to a zarr episode store (created if "
        "missing). A crash loses at most the episode in progress.",
    )
    _episode_args(p)
    p.add_argument("--out", required=True, help="episode store path, e.g. demos/pick.zarr")
    p.add_argument("--source", choices=["demo", "intervention", "online", "eval"], default="demo", help="episode source tag (default: demo)")
    p.set_defaults(fn=cmd_record)

    train = sub.add_parser("train", help="train a policy in the twin", description="Train a policy; see `robotrl train sac --help`.")
    train_sub = train.add_subparsers(dest="algo", required=True, metavar="ALGORITHM")
    p = train_sub.add_parser(
        "sac", help="SAC in the RLPD / HIL-SERL recipe",
        description="Train SAC (RLPD / HIL-SERL recipe) on a task, from scratch or from demonstrations, optionally "
        "with a scripted human intervening. Writes a run folder (checkpoint, episodes, TensorBoard, learning "
        "curve); running the same --out again resumes it.",
    )
    p.add_argument("--env", required=True, help="task id, e.g. robotrl/ArmPickCube-v0")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds a checkpoint)")
    p.add_argument("--demos", help="episode store with demonstrations (see `robotrl record`)")
    p.add_argument("--config", help="learner YAML overriding configs/learners/sac.yaml")
    p.add_argument("--steps", type=int, default=20_000, help="env steps to train for, in total (default: 20000)")
    p.add_argument("--utd", type=int, help="update-to-data ratio (critic steps per env step)")
    p.add_argument("--eval-every", type=int, default=1000, help="env steps between evaluations (default: 1000)")
    p.add_argument("--eval-episodes", type=int, default=20, help="episodes per evaluation (default: 20)")
    p.add_argument("--reward", choices=["sparse", "dense"], help="override the task's reward type")
    p.add_argument("--cameras", help="comma-separated cameras for image observations, e.g. wrist")
    p.add_argument("--human", choices=["none", "scripted"], default="none", help="a scripted human intervenes (ArmPickCube)")
    p.add_argument("--processes", action="store_true", help="actor and learner in separate processes (as on a robot)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="evaluate a trained run", description="Run a trained policy deterministically on fresh seeds and print its success rate.")
    p.add_argument("--run", required=True, help="run folder written by `robotrl train`")
    p.add_argument("--episodes", type=int, default=20, help="episodes (default: 20)")
    p.add_argument("--seed", type=int, default=20_000, help="seed of the first episode (default: 20000)")
    p.set_defaults(fn=cmd_eval)

    data = sub.add_parser("data", help="inspect episode stores", description="Inspect zarr episode stores.")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    p = data_sub.add_parser("info", help="summarize a store", description="Episodes, steps, sources, success rate, keys and size of a store.")
    p.add_argument("path", help="episode store path")
    p.set_defaults(fn=cmd_data_info)

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
    from robotrl.config import ConfigError
    from robotrl.data import StoreError

    try:
        return args.fn(args)
    except (ConfigError, StoreError, ValueError) as exc:
        print(f"robotrl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
