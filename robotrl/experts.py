"""Scripted experts: one per task, acting from the state observations only (no privileged simulator access),
so they also serve as scripted "humans" for interventions and as demonstration sources."""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
import numpy as np

Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def _toward(delta: np.ndarray, scale: float, gain: float = 1.0) -> np.ndarray:
    """Action (in [-1, 1]) that moves by ``delta`` metres, given ``scale`` metres per unit action."""
    return np.clip(gain * delta / scale, -1.0, 1.0)


class ReachExpert:
    def __init__(self, env: gym.Env):
        self.scale = env.unwrapped.config.action_scale

    def reset(self) -> None:
        pass

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return _toward(obs["state/target_pos"] - obs["state/ee_pos"], self.scale).astype(np.float32)


class PickCubeExpert:
    """Above the cube -> down -> close -> lift. The phase advances on what the observations show."""

    def __init__(self, env: gym.Env):
        cfg = env.unwrapped.config
        self.scale, self.half = cfg.action_scale, cfg.cube_half_size
        self.lift_to = cfg.lift_height + 0.06

    def reset(self) -> None:
        self.phase, self.closing_steps = "approach", 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ee, cube, grip = obs["state/ee_pos"], obs["state/cube_pos"], float(obs["state/gripper"][0])
        xy_err = np.linalg.norm(cube[:2] - ee[:2])
        if self.phase == "approach":
            goal, g = np.array([cube[0], cube[1], cube[2] + 0.08]), 1.0
            if xy_err < 0.01 and abs(ee[2] - goal[2]) < 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            goal, g = np.array([cube[0], cube[1], cube[2] - 0.005]), 1.0
            if abs(ee[2] - goal[2]) < 0.008:
                self.phase = "close"
        if self.phase == "close":
            goal, g = np.array([cube[0], cube[1], cube[2] - 0.005]), -1.0
            self.closing_steps += 1
            if self.closing_steps >= 3 and grip < 2 * self.half / 0.08 + 0.05:
                self.phase = "lift"
        if self.phase == "lift":
            goal, g = np.array([ee[0], ee[1], self.lift_to]), -1.0
            if grip < 0.1:  # closed on nothing: the cube slipped, start over
                self.phase, self.closing_steps = "approach", 0
        return np.append(_toward(goal - ee, self.scale, 1.5), g).astype(np.float32)


class PegInsertExpert:
    """Align the peg tip over the hole, then descend; the impedance controller's compliance absorbs contact."""

    def __init__(self, env: gym.Env):
        self.scale = env.unwrapped.config.action_scale

    def reset(self) -> None:
        pass

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        off = obs["state/tip_to_hole"]  # peg tip minus hole rim centre
        lateral = np.linalg.norm(off[:2])
        dz = 0.015 - off[2] if lateral > 0.003 else -0.02  # hover 1.5 cm above the rim until aligned
        return _toward(np.array([-off[0], -off[1], dz]), self.scale, 1.2).astype(np.float32)


def make_expert(env: gym.Env) -> Policy:
    """The scripted expert of a registered robotrl task."""
    env_id = env.spec.id if env.spec else ""
    if env_id not in EXPERTS:
        raise ValueError(f"no scripted expert for env {env_id!r}; experts exist for: {', '.join(EXPERTS)}")
    return EXPERTS[env_id](env)


EXPERTS: dict[str, type] = {
    "robotrl/ArmReach-v0": ReachExpert,
    "robotrl/ArmPickCube-v0": PickCubeExpert,
    "robotrl/ArmPegInsert-v0": PegInsertExpert,
}
