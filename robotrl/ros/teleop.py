"""Teleop over ROS: the human's input as topics any device or UI can publish (SpaceMouse driver, joystick,
the web intervention UI), behind the TeleopSource interface that InterventionWrapper merges.

    /teleop/command  robotrl_interfaces/Teleop  one typed input: device, active, linear, yaw, gripper, and the stamp
                                                the device gave it (the operator's page; recorded: device and age)
    /teleop/active   std_msgs/Bool        the deadman: the human is in control while True messages keep coming
    /teleop/twist    geometry_msgs/Twist  linear x, y, z and angular z, each in [-1, 1] (REP-103: z up)
    /teleop/gripper  std_msgs/Float64     -1 closed .. 1 open
The plain topics are for tools that speak them (teleop_twist_keyboard, joy); their steps are recorded as "teleop",
with no age.

The task's TeleopMapping (robotrl.tasks.teleop) turns them into its action: end-effector motion and the gripper
on an arm, velocity and yaw-rate setpoints on a quadrotor. A human whose input stops for ``deadman_s`` is no longer
in control (a crashed UI never keeps steering); a twist older than that counts as zero motion. Until a gripper
message comes the mapping keeps its own (open at an episode's start); a quadrotor ignores it.
Bad messages never reach the mapping: a non-finite twist counts as zero motion, a non-finite gripper value is
dropped, a typed command with an unknown device or a value outside [-1, 1] is dropped with a warning naming it.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from std_msgs.msg import Bool, Float64

from robotrl.ros import convert
from robotrl.ros.devices import COMMAND_QOS
from robotrl.tasks.base import Task
from robotrl.tasks.teleop import TeleopMapping


class RosTeleop:
    source = "teleop"  # a human at an input device (robotrl.interventions.TeleopSource)

    def __init__(self, node: Node, mapping: TeleopMapping | Task, prefix: str = "/teleop", deadman_s: float = 0.5):
        self.mapping = mapping if isinstance(mapping, TeleopMapping) else TeleopMapping(mapping)
        self.deadman_s, self._log, self._clock = deadman_s, node.get_logger(), node.get_clock()
        self.device: str | None = None  # after a poll that returned an action: the typed command's device
        self.age_ms: float | None = None  # and its age; None from the plain topics
        self._lock = threading.Lock()
        self._typed: convert.TeleopInput | None = None  # the last typed command, while it is the input in force
        self._active_at = self._twist_at = -np.inf
        self._twist = np.zeros(4)  # linear x, y, z, angular z
        self._gripper: float | None = None  # a new gripper command, until the next poll hands it to the mapping
        node.create_subscription(Bool, f"{prefix}/active", self._on_active, COMMAND_QOS)
        node.create_subscription(Twist, f"{prefix}/twist", self._on_twist, COMMAND_QOS)
        node.create_subscription(Float64, f"{prefix}/gripper", self._on_gripper, COMMAND_QOS)
        node.create_subscription(convert.Teleop, f"{prefix}/command", self._on_command, COMMAND_QOS)

    def _on_command(self, msg) -> None:
        try:
            cmd = convert.teleop(msg)
        except ValueError as e:
            self._log.warning(f"teleop command dropped: {e}", throttle_duration_sec=1.0)
            return
        now = time.monotonic()
        with self._lock:
            if not cmd.active:
                self._active_at, self._typed = -np.inf, None
                return
            self._active_at = self._twist_at = now
            self._twist = np.append(cmd.linear, cmd.yaw)
            if cmd.gripper is not None:
                self._gripper = cmd.gripper
            self._typed = cmd

    def _on_active(self, msg: Bool) -> None:
        with self._lock:
            self._active_at = time.monotonic() if msg.data else -np.inf
            self._typed = None

    def _on_twist(self, msg: Twist) -> None:
        twist = np.array([msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.z])
        if not np.isfinite(twist).all():
            self._log.warning(f"teleop twist {twist} is not finite: zero motion", throttle_duration_sec=1.0)
            twist = np.zeros(4)
        with self._lock:
            self._twist, self._twist_at, self._typed = twist, time.monotonic(), None

    def _on_gripper(self, msg: Float64) -> None:
        if not np.isfinite(msg.data):
            self._log.warning(f"teleop gripper {msg.data} is not finite: dropped", throttle_duration_sec=1.0)
            return
        with self._lock:
            self._gripper = float(msg.data)

    def reset(self) -> None:
        """Episodes do not change who is in control; the mapping starts its episode (hover, gripper open)."""
        with self._lock:
            self.mapping.reset()

    def poll(self, obs) -> np.ndarray | None:
        now = time.monotonic()
        with self._lock:
            typed = self._typed
            self.device, self.age_ms = (None, None) if typed is None else \
                (typed.device, (self._clock.now().nanoseconds - typed.stamp_ns) / 1e6)
            if now - self._active_at > self.deadman_s:
                return None
            twist = self._twist if now - self._twist_at <= self.deadman_s else np.zeros(4)
            gripper, self._gripper = self._gripper, None
            return self.mapping(obs, twist[:3], float(twist[3]), gripper)
