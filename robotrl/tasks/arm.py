"""Arm tasks: reach, pick a cube, insert a peg. Actions are end-effector position deltas in the base frame
(``action_scale`` metres per step at |action| = 1) plus, where the task uses it, a gripper opening."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from robotrl.config import ConfigError
from robotrl.interfaces import ArmCommand, ArmState
from robotrl.robots import ArmParams, robot_path
from robotrl.safety import ARM_LIMITS, ArmSafetyConfig, ArmSafetyFilter
from robotrl.tasks.base import Points, Task, TaskConfig, check_at_most

Vec2 = tuple[float, float]
Vec3 = tuple[float, float, float]


def ee_command(action: np.ndarray, state: ArmState, action_scale: float) -> ArmCommand:
    """A normalized arm action as a command: an end-effector target ``action_scale`` x delta from the *measured*
    TCP (as on HIL-SERL's robots: a blocked arm never winds up its target, so contact forces stay bounded by
    stiffness * action_scale), and the gripper opening from action[3] when there is one."""
    delta = np.asarray(action[:3], float) * action_scale
    gripper = float((action[3] + 1) / 2) if len(action) > 3 else None
    return ArmCommand("ee_target", ee_pos=state.ee_pos + delta, gripper=gripper)


class ArmTaskConfig(TaskConfig):
    robot: str = "panda"  # configs/robots/<robot>.yaml (its workspace and speed), or a path to such a file
    action_scale: float = Field(0.04, gt=0, le=0.2)  # m of end-effector motion per step at |action| = 1
    start_pos: Vec3 = (0.45, 0.0, 0.25)  # TCP position at reset (m)
    start_noise: float = Field(0.02, ge=0)  # uniform +- noise on the start position (m)
    impedance_time_constant: float = Field(0.03, gt=0.004)  # s; lower = stiffer end-effector (the twin's controller)
    safety: ArmSafetyConfig = ArmSafetyConfig()


def resolve_box(safety: ArmSafetyConfig, robot: ArmParams) -> ArmSafetyConfig:
    """The task's safety config with its box: the robot's workspace where none is given; a given one must lie in it."""
    if safety.box_min is None:
        return safety.model_copy(update={"box_min": robot.workspace_min, "box_max": robot.workspace_max})
    lo, hi = robot.workspace
    if np.any(np.array(safety.box_min) < lo) or np.any(np.array(safety.box_max) > hi):
        raise ConfigError(f"task config keys 'safety.box_min' {list(safety.box_min)} / 'safety.box_max' {list(safety.box_max)} "
                          f"reach outside robot {robot.name}'s workspace {lo.tolist()}..{hi.tolist()} "
                          f"({robot_path(robot.name).name}); shrink the box or leave it out to use the whole workspace")
    return safety


class ArmTask(Task):
    """Shared by every arm task: the action mapping, the safety filter and the end-effector observations."""

    config: ArmTaskConfig
    config_cls: ClassVar = ArmTaskConfig
    robot_kind = "arm"
    limits = ARM_LIMITS
    uses_gripper: ClassVar[bool] = False

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.robot = ArmParams.load(self.config.robot)
        self.safety = resolve_box(self.config.safety, self.robot)
        c, where = self.config, f"robot {self.robot.name}'s max_ee_speed"
        check_at_most(c.action_scale * c.control_hz, "action_scale x control_hz", c.safety.max_speed, "'safety.max_speed'",
                      "the task config", "every full action would hit the speed limit; lower action_scale")
        check_at_most(c.safety.max_speed, "safety.max_speed", self.robot.max_ee_speed, where, robot_path(c.robot).name,
                      "the arm cannot follow it")

    def action_dim(self) -> int:
        return 4 if self.uses_gripper else 3

    def neutral_action(self) -> np.ndarray:
        a = np.zeros(self.action_dim(), np.float32)
        if self.uses_gripper:
            a[3] = 1.0  # open
        return a

    def command(self, action: np.ndarray, reading: ArmState) -> ArmCommand:
        return ee_command(action, reading, self.config.action_scale)

    def safety_filter(self) -> ArmSafetyFilter:
        return ArmSafetyFilter(self.safety)

    def state_dims(self) -> dict[str, int]:
        dims = {"ee_pos": 3, "ee_vel": 3}
        if self.uses_gripper:
            dims["gripper"] = 1
        return dims

    def observe(self, reading: ArmState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        obs = {"ee_pos": reading.ee_pos, "ee_vel": reading.ee_vel}
        if self.uses_gripper:
            obs["gripper"] = np.array([reading.gripper])
        return obs


class ReachConfig(ArmTaskConfig):
    target_low: Vec3 = (0.35, -0.2, 0.05)
    target_high: Vec3 = (0.65, 0.2, 0.35)
    success_radius: float = Field(0.03, gt=0)


class Reach(ArmTask):
    """Bring the TCP within ``success_radius`` of a random target."""

    env_id = "robotrl/ArmReach-v0"
    config: ReachConfig
    config_cls: ClassVar = ReachConfig
    config_file = "arm_reach.yaml"

    @property
    def goals(self) -> tuple[str, ...]:
        return ("target",)

    def sample_goals(self, rng: np.random.Generator) -> Points:
        return {"target": rng.uniform(self.config.target_low, self.config.target_high)}

    def state_dims(self) -> dict[str, int]:
        return {**super().state_dims(), "target_pos": 3, "to_target": 3}

    def observe(self, reading: ArmState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        # The goal relative to the TCP, as the other tasks give it (cube_to_ee): from absolute positions alone an
        # MLP must first learn to subtract, which costs SAC thousands of steps.
        target = goals["target"]
        return {**super().observe(reading, objects, goals), "target_pos": target, "to_target": target - reading.ee_pos}

    def evaluate(self, reading: ArmState, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        dist = float(np.linalg.norm(reading.ee_pos - goals["target"]))
        return -dist, dist < self.config.success_radius, False, {"distance": dist}


class PickCubeConfig(ArmTaskConfig):
    cube_half_size: float = Field(0.02, gt=0.005, lt=0.038)  # must fit the 8 cm gripper
    cube_mass: float = Field(0.05, gt=0)
    cube_low: Vec2 = (0.45, -0.08)  # xy range of the cube at reset
    cube_high: Vec2 = (0.6, 0.08)
    lift_height: float = Field(0.06, gt=0)  # success: cube bottom this high above the table


class PickCube(ArmTask):
    """Grasp the cube and lift it ``lift_height`` above the table."""

    env_id = "robotrl/ArmPickCube-v0"
    config: PickCubeConfig
    config_cls: ClassVar = PickCubeConfig
    config_file = "arm_pick_cube.yaml"
    uses_gripper = True
    objects = ("cube",)
    privileged = ("cube_pos", "cube_to_ee")

    def state_dims(self) -> dict[str, int]:
        return {**super().state_dims(), "cube_pos": 3, "cube_to_ee": 3}

    def observe(self, reading: ArmState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        obs = super().observe(reading, objects, goals)
        if "cube" not in objects:  # untracked (a deployable policy on a bare robot): no cube observations
            return obs
        cube = objects["cube"]
        return {**obs, "cube_pos": cube, "cube_to_ee": reading.ee_pos - cube}

    def evaluate(self, reading: ArmState, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        cube, ee = objects["cube"], reading.ee_pos
        height = cube[2] - self.config.cube_half_size
        reach = float(np.linalg.norm(ee - cube))
        success = height > self.config.lift_height and reach < 0.05
        lost = not (0.1 < cube[0] < 0.9 and abs(cube[1]) < 0.5)
        dense = -reach + 5.0 * min(height, self.config.lift_height) + 2.0 * success
        return dense, bool(success), lost, {"cube_height": height}


class PegInsertConfig(ArmTaskConfig):
    start_pos: Vec3 = (0.5, 0.0, 0.2)
    peg_half_width: float = Field(0.012, gt=0.005, lt=0.03)
    peg_length: float = Field(0.08, gt=0.02)
    clearance: float = Field(0.002, gt=0)  # hole half-width minus peg half-width (m)
    hole_depth: float = Field(0.04, gt=0.005)
    hole_low: Vec2 = (0.45, -0.08)  # xy range of the hole at reset
    hole_high: Vec2 = (0.6, 0.08)
    insert_depth: float = Field(0.03, gt=0)  # success: peg tip this far below the hole's rim


class PegInsert(ArmTask):
    """Insert a peg, held rigidly in the gripper, into a hole fixture with a few mm of clearance. ``hole`` is the
    centre of the hole's rim, ``peg_tip`` the peg's lowest point."""

    env_id = "robotrl/ArmPegInsert-v0"
    config: PegInsertConfig
    config_cls: ClassVar = PegInsertConfig
    config_file = "arm_peg_insert.yaml"
    objects = ("hole", "peg_tip")
    privileged = ("hole_pos", "tip_to_hole")

    def state_dims(self) -> dict[str, int]:
        return {**super().state_dims(), "hole_pos": 3, "tip_to_hole": 3}

    def observe(self, reading: ArmState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        obs = super().observe(reading, objects, goals)
        if "hole" not in objects:  # untracked: no hole observations
            return obs
        hole = objects["hole"]
        return {**obs, "hole_pos": hole, "tip_to_hole": objects["peg_tip"] - hole}

    def evaluate(self, reading: ArmState, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        offset = objects["peg_tip"] - objects["hole"]
        lateral = float(np.linalg.norm(offset[:2]))
        depth = float(-offset[2])
        success = depth > self.config.insert_depth and lateral < self.config.clearance + 0.003
        dense = -lateral - 0.5 * max(0.0, -depth) + depth * (lateral < 0.01) + 2.0 * success
        return dense, bool(success), False, {"insert_depth": depth, "lateral_error": lateral}

