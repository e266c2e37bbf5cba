"""Pretrain the per-camera conv stack that SAC/BC load with ``pretrained_encoder`` (and freeze with
``freeze_encoder: true``), with nothing downloaded: frames from the twin (the scripted expert with random
perturbations) or from an episode store (demos), and an auxiliary objective: predict the step's state vectors
from each camera frame (standardized, a linear head per camera, DrQ shifts as augmentation).

Targets: the ``state/*`` keys the frames come with. In the twin these may include the object's true pose
(``state/cube_pos``): a sim-only pretraining target, never an input of the actor; from a robot's store they are
proprioception only (``--targets`` picks keys). Writes the conv ``state_dict`` (what ``ObsEncoder`` loads into every
camera's CNN) and ``<out>.json`` with its provenance and a measurement: held-out R^2 of a ridge probe from the frozen
conv features to each target, pretrained against a random (seeded, untrained) conv stack of the same shape.

    .venv/bin/python scripts/pretrain_encoder.py --env robotrl/ArmPickCube-v0 --cameras front,wrist --out encoder.pt
    .venv/bin/python scripts/pretrain_encoder.py --store demos/pick.zarr --targets state/ee_pos,state/gripper --out enc.pt
    robotrl train sac ... (learner: pretrained_encoder: encoder.pt, freeze_encoder: true)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import robotrl  # noqa: F401  (registers the envs)
from robotrl.learners.networks import ConvEncoder, random_shift


def twin_frames(env_id: str, cameras: list[str], image_size: int, episodes: int, noise: float, seed: int,
                task_config: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(images by key, states by key, episode id per frame) from the scripted expert, each action perturbed with
    probability ``noise`` by a uniform random one (frames off the expert's path too), in the twin as ``task_config``
    (a file or a configs/tasks/ name) sets it up: with its randomization, every episode's lighting, camera poses and
    colours are drawn anew, and the encoder learns features that hold across them."""
    from robotrl.config import config_path
    from robotrl.tasks.experts import make_expert

    config = {"config": config_path(task_config, "tasks")} if task_config else {}
    # state None: every state the twin computes (the cube's pose too) as a target, whatever the config observes
    env = gym.make(env_id, **config, observation={"cameras": cameras, "image_size": image_size, "state": None})
    expert = make_expert(env)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    rows: list[dict] = []
    ids: list[int] = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        expert.reset()
        done = False
        while not done:
            rows.append(obs)
            ids.append(ep)
            action = expert.act(obs)
            if rng.random() < noise:
                action = env.action_space.sample()
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    env.close()
    images = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k.startswith("images/")}
    states = {k: np.stack([np.asarray(r[k], np.float32).reshape(-1) for r in rows]) for k in rows[0] if k.startswith("state/")}
    return images, states, np.asarray(ids)


def store_frames(path: str, cameras: list[str] | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    from robotrl.data import EpisodeStore

    store = EpisodeStore(path)
    keys = [k for k in store.obs_keys if k.startswith("images/") and (not cameras or k.split("/", 1)[1] in cameras)]
    states = [k for k in store.obs_keys if k.startswith("state/")]
    images, vectors, ids = {k: [] for k in keys}, {k: [] for k in states}, []
    for i in range(store.n_episodes):
        ep = store.episode(i, keys + states)
        for k in keys:
            images[k].append(ep[k])
        for k in states:
            vectors[k].append(np.asarray(ep[k], np.float32).reshape(len(ep[k]), -1))
        ids.append(np.full(len(ep[keys[0]]), i))
    store.close()
    return ({k: np.concatenate(v) for k, v in images.items()}, {k: np.concatenate(v) for k, v in vectors.items()},
            np.concatenate(ids))


@torch.no_grad()
def conv_features(conv: ConvEncoder, frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    return np.concatenate([conv.features(torch.as_tensor(frames[i: i + chunk])).numpy() for i in range(0, len(frames), chunk)])


def ridge_r2(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray,
             lams: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)) -> np.ndarray:
    """Held-out R^2 per target column of a ridge regression on standardized features, the best of a few penalties
    (lam * frames) per column; the same procedure for every encoder compared."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    a, b = np.c_[a, np.ones(len(a))], np.c_[b, np.ones(len(b))]
    total = np.maximum(((y_te - y_te.mean(0)) ** 2).sum(0), 1e-12)
    best = np.full(y_tr.shape[1], -np.inf)
    for lam in lams:
        w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ y_tr)
        best = np.maximum(best, 1.0 - ((b @ w - y_te) ** 2).sum(0) / total)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="robotrl/ArmPickCube-v0", help="twin env to render frames from (without --store)")
    p.add_argument("--task-config", help="the twin's task config (a YAML file or a configs/tasks/ name), e.g. one "
                   "with randomization: frames under what training will vary (without --store)")
    p.add_argument("--store", help="an episode store with camera frames (demos) instead of the twin")
    p.add_argument("--cameras", default="front,wrist")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--episodes", type=int, default=30, help="twin episodes (expert with random perturbations)")
    p.add_argument("--noise", type=float, default=0.3, help="probability of a random action per twin step")
    p.add_argument("--targets", help="comma-separated state keys to predict (default: every state/* key)")
    p.add_argument("--channels", type=int, default=32, help="conv channels: the learner config's cnn_channels")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pad", type=int, default=4, help="DrQ shift augmentation in pixels")
    p.add_argument("--holdout", type=float, default=0.2, help="share of episodes held out for the probe")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="where the conv state_dict goes (provenance: <out>.json)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    cameras = [c for c in args.cameras.split(",") if c]
    if args.store:
        images, states, ids = store_frames(args.store, cameras)
        source = {"store": str(Path(args.store).resolve()), "episodes": int(ids.max()) + 1}
    else:
        images, states, ids = twin_frames(args.env, cameras, args.image_size, args.episodes, args.noise, args.seed,
                                          args.task_config)
        source = {"twin": args.env, "task_config": args.task_config, "episodes": args.episodes, "policy": "scripted expert", "random_action_prob": args.noise,
                  "seeds": [args.seed, args.seed + args.episodes - 1]}
    if not images:
        sys.exit("no camera frames: record with --cameras, or name cameras that exist")
    targets = args.targets.split(",") if args.targets else sorted(states)
    missing = [k for k in targets if k not in states]
    if missing:
        sys.exit(f"targets {missing} not among the frames' state keys {sorted(states)}")
    y = np.concatenate([states[k] for k in targets], 1)
    columns = [f"{k}[{i}]" for k in targets for i in range(states[k].shape[1])]
    episodes = np.unique(ids)
    held = np.random.default_rng(args.seed).permutation(episodes)[: max(1, int(len(episodes) * args.holdout))]
    test = np.isin(ids, held)
    train = ~test
    mu, sd = y[train].mean(0), y[train].std(0) + 1e-6
    y_std = ((y - mu) / sd).astype(np.float32)
    keys = sorted(images)
    shape = images[keys[0]].shape[1:]
    print(f"{len(ids)} frames x {len(keys)} cameras {shape}, {len(episodes)} episodes ({len(held)} held out); "
          f"targets {targets}", flush=True)

    torch.manual_seed(args.seed)
    random_conv = ConvEncoder(shape, args.channels)  # the reference: a seeded, untrained stack
    net = ConvEncoder(shape, args.channels)
    net.load_state_dict(random_conv.state_dict())
    n_flat = net.proj[0].in_features
    heads = nn.ModuleDict({k.replace("/", "_"): nn.Linear(n_flat, y.shape[1]) for k in keys})
    opt = torch.optim.Adam([*net.conv.parameters(), *heads.parameters()], lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_rows = np.flatnonzero(train)
    y_t = torch.as_tensor(y_std)
    for step in range(1, args.steps + 1):
        loss = 0.0
        for k in keys:
            idx = rng.choice(train_rows, args.batch)
            img = random_shift(torch.as_tensor(images[k][idx]), args.pad, gen) if args.pad else torch.as_tensor(images[k][idx])
            loss = loss + (heads[k.replace("/", "_")](net.features(img)) - y_t[idx]).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == 1:
            print(f"step {step}: loss {float(loss.detach()) / len(keys):.4f}", flush=True)

    probe = {}
    for name, conv in (("pretrained", net), ("random", random_conv)):
        r2 = np.mean([ridge_r2(conv_features(conv, images[k][train]), y_std[train], conv_features(conv, images[k][test]),
                               y_std[test]) for k in keys], 0)
        probe[name] = {"mean_r2": round(float(r2.mean()), 4), **{c: round(float(v), 4) for c, v in zip(columns, r2)}}
        print(f"held-out ridge probe R^2 ({name} conv): mean {r2.mean():.3f}", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.conv.state_dict(), out)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    provenance = {
        "weights": out.name, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "architecture": {"module": "robotrl.learners.networks.ConvEncoder.conv", "image_shape": list(shape),
                         "channels": args.channels, "load_with": {"pretrained_encoder": str(out), "cnn_channels": args.channels}},
        "data": {**source, "cameras": keys, "frames": int(len(ids)), "downloaded": False},
        "objective": {"kind": "state regression (auxiliary)", "targets": targets, "head": "linear per camera",
                      "loss": "MSE on standardized targets", "augment_pad": args.pad, "steps": args.steps,
                      "batch_per_camera": args.batch, "lr": args.lr, "seed": args.seed,
                      "note": "object-pose targets exist only in the twin: they shape the encoder, never an actor input"},
        "probe": {"held_out_episodes": [int(e) for e in sorted(held)], "held_out_frames": int(test.sum()), **probe},
        "git_commit": commit, "torch": torch.__version__, "python": platform.python_version(),
        "seconds": round(time.time() - start, 1),
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(json.dumps({"probe": probe, "weights": str(out)}))


if __name__ == "__main__":
    main()
