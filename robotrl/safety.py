"""Safety filters: every command, sim or real, passes through one before it reaches a device.

A filter clips what can be clipped, replaces what cannot (non-finite numbers, leaving the geofence) with the
device's safe command, and reports each violation kind so constrained learners get a cost signal
(``info["cost"]``, ``info["violations"]``) and operators get a logged reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from pydantic import Field, model_validator

from robotrl.config import StrictModel
from robotrl.interfaces import ArmCommand, ArmState, QuadCommand, QuadState

Vec3 = tuple[float, float, float]


def _all_finite(*values) -> bool:
    return all(v is None or bool(np.isfinite(v).all()) for v in values)


@dataclass(frozen=True)
class SafetyReport:
    violations: tuple[str, ...] = ()

    @property
    def cost(self) -> float:
        """1 when any limit was hit this step: the per-step cost of a constrained MDP."""
        return float(bool(self.violations))


class _BoxConfig(StrictModel):
    @model_validator(mode="after")
    def _ordered(self):
        if self.box_min is None or self.box_max is None:
            if (self.box_min is None) != (self.box_max is None):
                raise ValueError("give both box_min and box_max, or neither (the robot's workspace)")
            return self
        lo, hi = np.asarray(self.box_min), np.asarray(self.box_max)
        if np.any(lo >= hi):
            raise ValueError(f"box_min {self.box_min} must be below box_max {self.box_max} on every axis")
        return self


# The limit kinds each filter reports (SafetyReport.violations): a task's per-limit costs have one entry each.
ARM_LIMITS = ("nonfinite", "speed", "workspace", "rotation_speed", "gripper_range")
QUAD_LIMITS = ("nonfinite", "geofence", "thrust", "body_rate", "tilt", "speed")


class ArmSafetyConfig(_BoxConfig):
    # The task's end-effector box (m, robot base frame), inside the robot's workspace; None: all of the workspace
    # (configs/robots/<robot>.yaml, the one definition; the arm task fills it in).
    box_min: Vec3 | None = None
    box_max: Vec3 | None = None
    max_speed: float = Field(0.8, gt=0)  # m/s of the end-effector target, at most the robot's max_ee_speed
    max_rotation_speed: float = Field(1.5, gt=0)  # rad/s of the end-effector target


class ArmSafetyFilter:
    """Workspace box, target speed limit and finite-number check for end-effector commands."""

    def __init__(self, config: ArmSafetyConfig):
        if config.box_min is None:
            raise ValueError("ArmSafetyFilter needs a box: an arm task fills in its robot's workspace (ArmTask.safety_filter)")
        self.config = config
        self._lo, self._hi = np.asarray(config.box_min), np.asarray(config.box_max)

    def filter(self, cmd: ArmCommand, state: ArmState, target_pos: np.ndarray, dt: float) -> tuple[ArmCommand, SafetyReport]:
        """``target_pos`` is the controller's current target, ``state`` the measured arm; ``dt`` the control period."""
        violations: list[str] = []
        if not _all_finite(cmd.ee_pos, cmd.ee_quat, cmd.ee_rotvec, cmd.q, cmd.gripper):
            return ArmCommand("ee_target", ee_pos=state.ee_pos, ee_quat=state.ee_quat), SafetyReport(("nonfinite",))
        if cmd.mode == "joint":
            return cmd, SafetyReport()  # joint limits are enforced by the servo's range on every robot
        # Speed: an absolute target may lead the measured TCP by at most max_speed * dt (this also bounds the
        # impedance controller's contact force); a delta may move the target by at most that much.
        if cmd.mode == "ee_delta":
            origin = target_pos
            goal = origin + (np.zeros(3) if cmd.ee_pos is None else np.asarray(cmd.ee_pos, float))
        else:
            origin = state.ee_pos
            goal = target_pos if cmd.ee_pos is None else np.asarray(cmd.ee_pos, float)
        step = goal - origin
        max_step = self.config.max_speed * dt
        if np.linalg.norm(step) > max_step * (1 + 1e-9):
            step *= max_step / np.linalg.norm(step)
            violations.append("speed")
        goal = origin + step
        clipped = np.clip(goal, self._lo, self._hi)
        if np.any(clipped != goal):
            violations.append("workspace")
        rotvec = cmd.ee_rotvec
        if rotvec is not None:
            angle, max_angle = float(np.linalg.norm(rotvec)), self.config.max_rotation_speed * dt
            if angle > max_angle:
                rotvec = np.asarray(rotvec) * (max_angle / angle)
                violations.append("rotation_speed")
        gripper = cmd.gripper
        if gripper is not None and not 0.0 <= gripper <= 1.0:
            gripper = float(np.clip(gripper, 0.0, 1.0))
            violations.append("gripper_range")
        safe = replace(cmd, ee_pos=clipped if cmd.mode == "ee_target" else clipped - target_pos, ee_rotvec=rotvec, gripper=gripper)
        return safe, SafetyReport(tuple(violations))


class QuadSafetyConfig(_BoxConfig):
    box_min: Vec3 = (-2.0, -2.0, 0.0)  # geofence (m, world frame)
    box_max: Vec3 = (2.0, 2.0, 2.5)
    max_body_rate: float = Field(6.0, gt=0)  # rad/s per axis: >= the task's action scale, <= the airframe's
    max_tilt: float = Field(0.9, gt=0, lt=1.57)  # rad; beyond it the filter levels the vehicle
    max_speed: float = Field(3.0, gt=0)  # m/s for velocity commands
    min_thrust_fraction: float = Field(0.0, ge=0, lt=1)  # of max thrust; >0 keeps rotors spinning in flight


class QuadSafetyFilter:
    """Geofence with a backup policy (hold the nearest point inside the fence), tilt and rate limits, thrust
    bounds, speed limit, finite-number check."""

    def __init__(self, config: QuadSafetyConfig, max_thrust: float):
        self.config, self.max_thrust = config, max_thrust
        self._lo, self._hi = np.asarray(config.box_min), np.asarray(config.box_max)

    def filter(self, cmd: QuadCommand, state: QuadState) -> tuple[QuadCommand, SafetyReport]:
        c = self.config
        if not (math.isfinite(cmd.thrust + cmd.yaw + cmd.yaw_rate) and _all_finite(cmd.body_rates, cmd.velocity, cmd.position)):
            return self._hold(state), SafetyReport(("nonfinite",))
        if np.any(state.pos < self._lo) or np.any(state.pos > self._hi):
            return self._hold(state), SafetyReport(("geofence",))
        violations: list[str] = []
        if cmd.mode == "ctbr":
            thrust = min(max(cmd.thrust, c.min_thrust_fraction * self.max_thrust), self.max_thrust)
            if thrust != cmd.thrust:
                violations.append("thrust")
            rates = cmd.body_rates
            if np.abs(rates).max() > c.max_body_rate:
                rates = np.clip(rates, -c.max_body_rate, c.max_body_rate)
                violations.append("body_rate")
            x, y = float(state.quat[0]), float(state.quat[1])
            tilt = math.acos(min(1.0, max(-1.0, 1.0 - 2.0 * (x * x + y * y))))  # angle of body z from world z
            if tilt > c.max_tilt:
                return self._hold(state), SafetyReport((*violations, "tilt"))  # backup: level out, hold position
            return replace(cmd, thrust=thrust, body_rates=rates), SafetyReport(tuple(violations))
        if cmd.mode == "velocity":
            v = np.asarray(cmd.velocity, float)
            speed = float(np.linalg.norm(v))
            if speed > c.max_speed:
                v = v * (c.max_speed / speed)
                violations.append("speed")
            return replace(cmd, velocity=v), SafetyReport(tuple(violations))
        target = np.clip(cmd.position, self._lo, self._hi)
        if np.any(target != cmd.position):
            violations.append("geofence")
        return replace(cmd, position=target), SafetyReport(tuple(violations))

    def _hold(self, state: QuadState) -> QuadCommand:
        """The backup command: hold the nearest point inside the geofence."""
        return QuadCommand("position", position=np.clip(state.pos, self._lo, self._hi), yaw=0.0)
