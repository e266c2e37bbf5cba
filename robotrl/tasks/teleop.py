"""A human's teleop input as a task's action: one mapping for every robot kind, whatever the device (keys held,
a gamepad, a SpaceMouse, the web UI's topics). Input is normalised to [-1, 1], in the world / base frame (REP-103:
x forward, y left, z up):

    linear   (3,)   motion along x, y, z
    yaw      float  rotation about z, positive counter-clockwise seen from above
    gripper  float  -1 closed .. 1 open; None: as last commanded (open at the start of an episode)

Arms: ``linear`` is the end-effector motion part of the action (``action_scale`` m per step at 1). The arm moves
from where it is measured (robotrl.tasks.arm.ee_command), so zero input holds and a takeover starts from where the
robot is. No arm task commands rotation: ``yaw`` is ignored.

Quadrotors: a human never commands raw CTBR. ``linear`` x the robot's ``max_speed`` is a velocity setpoint,
``yaw`` x ``MAX_YAW_RATE`` a yaw-rate setpoint, both flown by the scripted expert's cascaded controller
(QuadGoalExpert.velocity_action), whose thrust and rate integrals learn the airframe while the human flies. Zero
input hovers (velocity 0). ``gripper`` is ignored.
"""

from __future__ import annotations

import numpy as np

from robotrl.policies.base import Stateless
from robotrl.tasks.arm import ArmTask
from robotrl.tasks.base import Task
from robotrl.tasks.experts import QuadGoalExpert
from robotrl.tasks.quad import QuadTask

# rad/s at |yaw| = 1 (capped at the task's max_body_rate): about 90 deg/s, a calm manual yaw. The robot configs
# have no manual yaw-rate limit, only the rate loop's max_body_rate, far too fast to steer by hand.
MAX_YAW_RATE = 1.5
# What the quadrotor controller reads, name -> size of one frame (a frame-stacked observation ends with the newest).
QUAD_READS = {"vel": 3, "rotation": 9, "body_rates": 3}
QUAD_NEEDS = ("vel", "rotation")  # body_rates only feeds the rate integral, which waits without it


class TeleopMapping:
    """The task's action (float32, in [-1, 1]) for one step of a human's input; ``reset`` per episode."""

    def __init__(self, task: Task):
        self.task = task
        if isinstance(task, ArmTask):
            self.kind = "arm"
        elif isinstance(task, QuadTask):
            self.kind = "quad"
            seen = set(task.config.observation.state or task.state_dims())
            missing = [k for k in QUAD_NEEDS if k not in seen]
            if missing:
                raise ValueError(f"TeleopMapping: {type(task).__name__}'s observation lacks state {missing}, which the "
                                 "quadrotor's velocity controller reads; add them to observation.state")
            self.max_speed = float(task.robot.max_speed)  # m/s, the robot config's setpoint limit
            self.max_yaw_rate = min(MAX_YAW_RATE, task.config.max_body_rate)
            self.pilot = QuadGoalExpert(task)
        else:
            raise ValueError(f"TeleopMapping: no teleop mapping for task {type(task).__name__} "
                             f"({getattr(task, 'env_id', '?')}); supported kinds: arm (ArmTask), quad (QuadTask)")
        self.reset()

    def reset(self) -> None:
        self.gripper = 1.0  # open: an episode starts with the gripper open
        if self.kind == "quad":
            self.pilot.reset()

    def follow(self, executed: np.ndarray) -> None:
        """The action executed at the last step, the policy's or the human's: a takeover continues from it, so the
        gripper stays as the policy left it (a held cube is not dropped by taking over)."""
        if self.kind == "arm" and self.task.uses_gripper:
            self.gripper = float(np.clip(executed[3], -1.0, 1.0))

    def __call__(self, obs: dict[str, np.ndarray], linear: np.ndarray, yaw: float, gripper: float | None) -> np.ndarray:
        linear = np.asarray(linear, float)
        if linear.shape != (3,):
            raise ValueError(f"TeleopMapping: linear must have shape (3,), got {linear.shape}")
        if not (np.isfinite(linear).all() and np.isfinite(yaw) and (gripper is None or np.isfinite(gripper))):
            raise ValueError(f"TeleopMapping: non-finite input: linear {linear}, yaw {yaw}, gripper {gripper}")
        linear, yaw = np.clip(linear, -1.0, 1.0), float(np.clip(yaw, -1.0, 1.0))
        if gripper is not None:
            self.gripper = float(np.clip(gripper, -1.0, 1.0))
        if self.kind == "quad":
            newest = {f"state/{k}": np.asarray(obs[f"state/{k}"])[-n:] for k, n in QUAD_READS.items() if f"state/{k}" in obs}
            action = self.pilot.velocity_action(newest, linear * self.max_speed, yaw * self.max_yaw_rate)
        else:
            action = np.zeros(self.task.action_dim())
            action[:3] = linear
            if self.task.uses_gripper:
                action[3] = self.gripper
        return np.clip(action, -1.0, 1.0).astype(np.float32)


class HoldPolicy(Stateless):
    """The teleop mapping with no input, as a Policy: the arm holds where it is (gripper open), a quadrotor hovers.
    What acts when only the operator should move the robot (`robotrl ui --policy hold`: teleoperated demos)."""

    def __init__(self, task: Task):
        self.mapping = TeleopMapping(task)

    def reset(self) -> None:
        self.mapping.reset()

    def act(self, obs: dict[str, np.ndarray], deterministic: bool = False) -> np.ndarray:
        return self.mapping(obs, np.zeros(3), 0.0, None)
