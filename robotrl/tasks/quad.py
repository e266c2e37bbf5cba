"""Quadrotor tasks. Actions are collective thrust and FLU body rates (CTBR), normalized: thrust = (a0 + 1) / 2 *
max_thrust, rates = a[1:] * max_body_rate. Observations follow "Learning to Fly in Seconds": position, rotation
matrix, linear and angular velocity, plus the vector to the goal."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from robotrl.geometry import quat_to_matrix
from robotrl.interfaces import QuadCommand, QuadState
from robotrl.robots import QuadParams, robot_path
from robotrl.safety import QUAD_LIMITS, QuadSafetyConfig, QuadSafetyFilter
from robotrl.tasks.base import Points, Task, TaskConfig, check_at_most

Vec3 = tuple[float, float, float]


def ctbr_command(action: np.ndarray, max_thrust: float, max_body_rate: float) -> QuadCommand:
    """A normalized action as CTBR: thrust = (a0 + 1) / 2 * max_thrust, rates = a[1:] * max_body_rate."""
    a = np.asarray(action, float)
    return QuadCommand("ctbr", thrust=(a[0] + 1) / 2 * max_thrust, body_rates=a[1:] * max_body_rate)


class QuadTaskConfig(TaskConfig):
    control_hz: float = Field(50.0, gt=0, le=500)
    robot: str = "crazyflie"  # configs/robots/<robot>.yaml, or a path to such a file
    max_body_rate: float = Field(6.0, gt=0)  # rad/s at |action| = 1
    # The twin's start state around the first goal (on a robot: wherever it is).
    init_pos_noise: float = Field(0.3, ge=0)  # m, uniform start offset from the first goal
    init_vel_noise: float = Field(0.3, ge=0)  # m/s
    init_tilt_noise: float = Field(0.3, ge=0)  # rad, roll and pitch
    init_rate_noise: float = Field(0.5, ge=0)  # rad/s
    crash_height: float = Field(0.05, ge=0)  # m: lower counts as hitting the floor (episode fails)
    safety: QuadSafetyConfig = QuadSafetyConfig()


class QuadTask(Task):
    config: QuadTaskConfig
    config_cls: ClassVar = QuadTaskConfig
    robot_kind = "quad"
    limits = QUAD_LIMITS

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.robot = QuadParams.load(self.config.robot)
        c, airframe = self.config, robot_path(self.config.robot).name
        check_at_most(c.max_body_rate, "max_body_rate", c.safety.max_body_rate, "'safety.max_body_rate'", "the task config",
                      "every full action would hit the rate limit; lower max_body_rate")
        check_at_most(c.safety.max_body_rate, "safety.max_body_rate", self.robot.max_body_rate,
                      f"robot {self.robot.name}'s max_body_rate", airframe, "the airframe's rate loop clips beyond it")

    def action_dim(self) -> int:
        return 4

    def neutral_action(self) -> np.ndarray:
        """Hover thrust, zero rates."""
        return np.array([2 * self.robot.hover_thrust / self.robot.max_thrust - 1, 0, 0, 0], np.float32)

    def command(self, action: np.ndarray, reading: QuadState) -> QuadCommand:
        return ctbr_command(action, self.robot.max_thrust, self.config.max_body_rate)

    def safety_filter(self) -> QuadSafetyFilter:
        return QuadSafetyFilter(self.config.safety, self.robot.max_thrust)

    def goal(self, goals: Points) -> np.ndarray:
        """The goal the quadrotor flies to now."""
        raise NotImplementedError

    def state_dims(self) -> dict[str, int]:
        return {"pos": 3, "rotation": 9, "vel": 3, "body_rates": 3, "to_goal": 3}

    def observe(self, reading: QuadState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        return {"pos": reading.pos, "rotation": quat_to_matrix(reading.quat).ravel(), "vel": reading.vel,
                "body_rates": reading.body_rates, "to_goal": self.goal(goals) - reading.pos}

    def crashed(self, reading: QuadState) -> bool:
        return float(reading.pos[2]) < self.config.crash_height


class HoverConfig(QuadTaskConfig):
    target: Vec3 = (0.0, 0.0, 1.0)
    tolerance: float = Field(0.1, gt=0)  # m from the target
    max_speed_stable: float = Field(0.2, gt=0)  # m/s
    hold_seconds: float = Field(1.0, gt=0)  # success: within tolerance this long without a break
    # Reward at the set point, falling off as exp(-(error / tolerance)^2). The distance term alone changes by only
    # 0.1 per step between a 15 cm and a 5 cm hover, too little for the critic to resolve: without it learned
    # hovers sat 10-30 cm off the set point.
    precision_bonus: float = Field(1.0, ge=0)
    # Per squared distance of the action from hover (hover thrust, zero rates), as in Learning to Fly in Seconds.
    action_cost: float = Field(0.1, ge=0)


class Hover(QuadTask):
    """Fly to the set point from a random state and hover there."""

    env_id = "robotrl/QuadHover-v0"
    config: HoverConfig
    config_cls: ClassVar = HoverConfig
    config_file = "quad_hover.yaml"

    @property
    def goals(self) -> tuple[str, ...]:
        return ("target",)

    def sample_goals(self, rng: np.random.Generator) -> Points:
        return {"target": np.asarray(self.config.target, float)}

    def goal(self, goals: Points) -> np.ndarray:
        return goals["target"]

    def reset(self, reading: QuadState, objects: Points, goals: Points) -> None:
        super().reset(reading, objects, goals)
        self.stable_steps = 0

    def evaluate(self, reading: QuadState, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        c, s = self.config, reading
        err, speed, spin = np.linalg.norm(self.goal(goals) - s.pos), np.linalg.norm(s.vel), np.linalg.norm(s.body_rates)
        stable = err < c.tolerance and speed < c.max_speed_stable
        self.stable_steps = self.stable_steps + 1 if stable else 0
        success = self.stable_steps >= c.hold_seconds * c.control_hz
        effort = float(np.sum((np.asarray(action, float) - self.neutral_action()) ** 2))
        # Positive while near the set point: staying airborne pays.
        dense = 1.0 - err - 0.1 * speed - 0.02 * spin + c.precision_bonus * np.exp(-(err / c.tolerance) ** 2) - c.action_cost * effort
        return float(dense), bool(success), self.crashed(s), {"position_error": float(err)}


class WaypointsConfig(QuadTaskConfig):
    n_waypoints: int = Field(3, ge=1, le=10)
    waypoint_low: Vec3 = (-1.0, -1.0, 0.6)
    waypoint_high: Vec3 = (1.0, 1.0, 1.6)
    start: Vec3 = (0.0, 0.0, 1.0)  # the twin's start point (m)
    tolerance: float = Field(0.15, gt=0)  # m: a waypoint counts as passed this close


class Waypoints(QuadTask):
    """Pass a random sequence of waypoints in order. The goals are the waypoints (``waypoint0`` ...); which one
    is next is the task's episode progress."""

    env_id = "robotrl/QuadWaypoints-v0"
    config: WaypointsConfig
    config_cls: ClassVar = WaypointsConfig
    config_file = "quad_waypoints.yaml"

    @property
    def goals(self) -> tuple[str, ...]:
        return tuple(f"waypoint{i}" for i in range(self.config.n_waypoints))

    def sample_goals(self, rng: np.random.Generator) -> Points:
        c = self.config
        return dict(zip(self.goals, rng.uniform(c.waypoint_low, c.waypoint_high, size=(c.n_waypoints, 3))))

    def reset(self, reading: QuadState, objects: Points, goals: Points) -> None:
        super().reset(reading, objects, goals)
        self.reached = 0
        self.last_dist = float(np.linalg.norm(self.goal(goals) - reading.pos))

    def goal(self, goals: Points) -> np.ndarray:
        return goals[self.goals[min(self.reached, len(self.goals) - 1)]]

    def next_goal(self, goals: Points) -> np.ndarray:
        return goals[self.goals[min(self.reached + 1, len(self.goals) - 1)]]

    def state_dims(self) -> dict[str, int]:
        return {**super().state_dims(), "to_next_goal": 3, "progress": 1}

    def observe(self, reading: QuadState, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        obs = super().observe(reading, objects, goals)
        return {**obs, "to_next_goal": self.next_goal(goals) - reading.pos, "progress": np.array([self.reached / len(self.goals)])}

    def evaluate(self, reading: QuadState, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        pos, n = reading.pos, len(self.goals)
        dist = float(np.linalg.norm(self.goal(goals) - pos))
        dense = 5.0 * (self.last_dist - dist)
        if dist < self.config.tolerance and self.reached < n:
            self.reached += 1
            dense += 1.0
            dist = float(np.linalg.norm(self.goal(goals) - pos))
        self.last_dist = dist
        return dense, self.reached == n, self.crashed(reading), {"waypoints_reached": self.reached}
