"""Robot configs (configs/robots/*.yaml) without MuJoCo: what tasks, experts, safety limits and drivers read about a
robot -- the one definition of what the hardware can do (airframe rates, thrust, workspace). A task's limits are
checked against it; the device nodes reject commands beyond it. The twin builds its quadrotor from the same config
(robotrl.sim.quad)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from robotrl.config import StrictModel, configs_dir, load_config

GRAVITY = 9.81
HULL_HALF_HEIGHT = 0.12  # of the central box, as a fraction of arm_length; the lowest point of the model
Vec3 = tuple[PositiveFloat, PositiveFloat, PositiveFloat]
Point = tuple[float, float, float]

# Rotor layout of the X configuration, body FLU: (x sign, y sign, spin). spin +1 = clockwise seen from above,
# whose reaction torque on the body is +z (yaw left); diagonal rotors share a spin direction.
ROTORS = ((1, 1, 1), (-1, 1, -1), (-1, -1, 1), (1, -1, -1))  # front-left, back-left, back-right, front-right


class QuadParams(StrictModel):
    """Physical parameters and controller gains of one quadrotor (configs/robots/<name>.yaml)."""

    name: str
    mass: PositiveFloat  # kg
    inertia: Vec3  # diagonal, kg m^2, body FLU
    arm_length: PositiveFloat  # m, centre to each rotor axis (X configuration: rotors on the diagonals)
    thrust_coefficient: PositiveFloat  # kf: rotor thrust = kf * w^2, N/(rad/s)^2
    torque_coefficient: PositiveFloat  # km: rotor drag torque = km * w^2, N m/(rad/s)^2
    max_rotor_speed: PositiveFloat  # rad/s
    motor_time_constant: PositiveFloat  # s, first-order lag of rotor thrust
    linear_drag: NonNegativeFloat = 0.0  # N s/m, world-frame drag force = -linear_drag * velocity
    physics_dt: float = Field(0.002, gt=0, le=0.01)  # s, MuJoCo timestep
    rate_loop_hz: float = Field(250.0, ge=100, le=2000)  # CTBR inner loop rate (physics rate / whole number)
    rate_kp: Vec3  # 1/s: commanded angular acceleration per rad/s of rate error (scaled by inertia -> torque)
    rate_ki: tuple[NonNegativeFloat, NonNegativeFloat, NonNegativeFloat] = (0.0, 0.0, 0.0)  # 1/s^2
    max_body_rate: PositiveFloat  # rad/s, per axis, applied to every command
    kp_att: PositiveFloat  # 1/s, tilt error -> roll/pitch rate
    kp_yaw: PositiveFloat  # 1/s, yaw error -> yaw rate (position mode)
    kp_pos: PositiveFloat  # 1/s, position error -> velocity
    kp_vel: PositiveFloat  # 1/s, velocity error -> acceleration
    ki_vel_z: NonNegativeFloat = 0.0  # 1/s^2, integral of the vertical velocity error (mass / thrust mismatch)
    max_tilt: float = Field(gt=0, lt=math.pi / 2)  # rad, of the thrust vector in velocity / position modes
    max_speed: PositiveFloat  # m/s, of the velocity setpoint in velocity / position modes
    land_speed: PositiveFloat = 0.5  # m/s, descent speed of land()

    @model_validator(mode="after")
    def _check(self) -> "QuadParams":
        ratio = 1.0 / (self.rate_loop_hz * self.physics_dt)
        if ratio < 1.0 - 1e-6 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"rate_loop_hz={self.rate_loop_hz} must be the physics rate 1/physics_dt={1 / self.physics_dt:g} "
                "divided by a whole number"
            )
        if self.motor_time_constant < self.physics_dt:
            raise ValueError("motor_time_constant must be >= physics_dt (the motor filter is explicit Euler)")
        if self.max_thrust <= 1.05 * self.hover_thrust:
            raise ValueError(
                f"thrust-to-weight {self.max_thrust / self.hover_thrust:.2f} is too low to fly: raise "
                "max_rotor_speed or thrust_coefficient"
            )
        return self

    @classmethod
    def load(cls, name_or_path: str | Path, overrides: dict | None = None) -> "QuadParams":
        """Load ``configs/robots/<name>.yaml`` or a YAML path, then apply ``overrides`` (key -> value)."""
        return load_config(cls, robot_path(name_or_path), overrides)

    @property
    def hover_thrust(self) -> float:
        return self.mass * GRAVITY

    @property
    def max_rotor_thrust(self) -> float:
        return self.thrust_coefficient * self.max_rotor_speed**2

    @property
    def max_thrust(self) -> float:
        return 4 * self.max_rotor_thrust

    @property
    def yaw_moment_ratio(self) -> float:
        """Reaction yaw torque per newton of thrust (m): km / kf."""
        return self.torque_coefficient / self.thrust_coefficient

    @property
    def control_every_n_steps(self) -> int:
        return max(1, round(1.0 / (self.rate_loop_hz * self.physics_dt)))

    def rotor_positions(self) -> np.ndarray:
        """(4, 2) rotor x, y in the body frame, in ``ROTORS`` order."""
        a = self.arm_length / math.sqrt(2)
        return np.array([[sx * a, sy * a] for sx, sy, _ in ROTORS])

    def mixer(self) -> np.ndarray:
        """(4, 4) map from (collective thrust, torque x, y, z) to the four rotor thrusts."""
        xy = self.rotor_positions()
        c = self.yaw_moment_ratio
        wrench = np.array([[1.0] * 4, xy[:, 1], -xy[:, 0], [spin * c for _, _, spin in ROTORS]])
        return np.linalg.inv(wrench)

    @property
    def rest_height(self) -> float:
        """Height of the body origin (centre of mass) when the quad stands on the floor: the hull half-height."""
        return HULL_HALF_HEIGHT * self.arm_length


def robot_path(name_or_path: str | Path) -> Path:
    """configs/robots/<name>.yaml, or a YAML path."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") or path.is_file() else configs_dir() / "robots" / f"{name_or_path}.yaml"


class ArmParams(StrictModel):
    """What an arm can do (configs/robots/<name>.yaml): its end-effector workspace and speed."""

    name: str
    workspace_min: Point  # m, end-effector box in the base frame: the arm node rejects targets outside it
    workspace_max: Point
    max_ee_speed: PositiveFloat  # m/s: a task's safety speed limit must not exceed it

    @model_validator(mode="after")
    def _box(self) -> "ArmParams":
        if any(lo >= hi for lo, hi in zip(self.workspace_min, self.workspace_max)):
            raise ValueError(f"workspace_min {self.workspace_min} must be below workspace_max {self.workspace_max} on every axis")
        return self

    @classmethod
    def load(cls, name_or_path: str | Path) -> "ArmParams":
        return load_config(cls, robot_path(name_or_path))

    @property
    def workspace(self) -> tuple[np.ndarray, np.ndarray]:
        return np.array(self.workspace_min), np.array(self.workspace_max)
