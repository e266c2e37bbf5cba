"""SAC's weights after a fixed number of updates from a fixed seed and fixed data: the reference that shows a
refactor left SAC's behaviour unchanged.

    python tests/sac_reference.py --save /tmp/before.pt   # exact weights on this machine (compare with --compare)
    python tests/sac_reference.py --write                 # refresh tests/data/sac_reference.json (CI's tolerance check)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from robotrl.learners.sac import SACAgent, load_sac_config

REFERENCE = Path(__file__).parent / "data" / "sac_reference.json"
UPDATES = 20
CASES = {  # name -> (learner overrides, image size or 0)
    "state_gripper": ({"utd": 2, "discrete_gripper": True, "hidden": 64, "batch_size": 32, "device": "cpu"}, 0),
    "image": ({"hidden": 32, "batch_size": 8, "image_features": 8, "cnn_channels": 8, "device": "cpu"}, 24),
}


def spaces(image: int) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = {"state/ee_pos": gym.spaces.Box(-1, 1, (3,), np.float32), "state/gripper": gym.spaces.Box(0, 1, (1,), np.float32)}
    if image:
        obs["images/wrist"] = gym.spaces.Box(0, 255, (image, image, 3), np.uint8)
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, (4,), np.float32)


def batch(obs_space: gym.spaces.Dict, n: int, rng: np.random.Generator) -> dict:
    def obs() -> dict:
        return {k: (rng.integers(0, 256, (n, *s.shape), dtype=np.uint8) if s.dtype == np.uint8
                    else rng.uniform(0, 1, (n, *s.shape)).astype(np.float32)) for k, s in obs_space.spaces.items()}

    action = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
    action[:, -1] = np.sign(action[:, -1])
    return {"obs": obs(), "next_obs": obs(), "action": action, "reward": rng.uniform(0, 1, n).astype(np.float32),
            "done": (rng.uniform(0, 1, n) < 0.1).astype(np.float32)}


def run(name: str, updates: int = UPDATES) -> SACAgent:
    overrides, image = CASES[name]
    torch.set_num_threads(1)
    obs_space, action_space = spaces(image)
    agent = SACAgent(obs_space, action_space, load_sac_config(overrides), seed=3)
    rng = np.random.default_rng(7)
    for _ in range(updates):
        agent.update(batch(obs_space, agent.config.batch_size * agent.config.utd, rng))
    return agent


def summary(name: str) -> dict[str, float]:
    """Per network, the sum and the sum of squares of what the updates changed (weights after minus weights at
    init: the learning, not the seeded init, sets these numbers); plus the temperature."""
    trained, init = run(name), run(name, updates=0)
    out = {}
    for part in ("critic", "actor"):
        delta = torch.cat([(p - p0).detach().flatten().double() for p, p0 in
                           zip(getattr(trained, part).parameters(), getattr(init, part).parameters())])
        out[f"{part}_delta_sum"], out[f"{part}_delta_sumsq"] = float(delta.sum()), float(delta.square().sum())
    out["log_alpha"] = float(trained.log_alpha.detach())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save", help="torch.save every case's full state_dict here")
    parser.add_argument("--compare", help="compare with a file written by --save: exact equality of every tensor")
    parser.add_argument("--write", action="store_true", help=f"write the summaries to {REFERENCE}")
    args = parser.parse_args()
    states = {name: run(name).state_dict() for name in CASES}
    if args.save:
        torch.save(states, args.save)
    if args.compare:
        before = torch.load(args.compare, weights_only=False)
        for name in CASES:
            for part in ("critic", "target", "actor"):
                for key, value in before[name][part].items():
                    assert torch.equal(value, states[name][part][key]), f"{name} {part}.{key} differs"
            assert torch.equal(before[name]["log_alpha"], states[name]["log_alpha"]), f"{name} log_alpha differs"
        print(f"identical: {', '.join(CASES)} after {UPDATES} updates each")
    if args.write:
        REFERENCE.write_text(json.dumps({name: summary(name) for name in CASES}, indent=1) + "\n")


if __name__ == "__main__":
    main()
