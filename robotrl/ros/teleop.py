"""Teleop over ROS: the human's input as topics any device or UI can publish (SpaceMouse driver, joystick,
the web intervention UI), behind the TeleopSource interface that InterventionWrapper merges.

    /teleop/active   std_msgs/Bool     the deadman: the human is in control while True messages keep coming
    /teleop/twist    geometry_msgs/Twist  linear x, y, z = end-effector motion in action units [-1, 1]
    /teleop/gripper  std_msgs/Float64  -1 closed .. 1 open (the task's gripper action)

A human whose ``active`` messages stop for ``deadman_s`` is no longer in control (a crashed UI never keeps
steering); a twist older than that counts as zero motion.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from std_msgs.msg import Bool, Float64

from robotrl.ros.devices import COMMAND_QOS


class RosTeleop:
    source = "teleop"  # a human at an input device (robotrl.interventions.TeleopSource)

    def __init__(self, node: Node, action_dim: int, prefix: str = "/teleop", deadman_s: float = 0.5):
        self.action_dim, self.deadman_s = action_dim, deadman_s
        self._lock = threading.Lock()
        self._active_at = self._twist_at = -np.inf
        self._twist, self._gripper = np.zeros(3), 1.0
        node.create_subscription(Bool, f"{prefix}/active", self._on_active, COMMAND_QOS)
        node.create_subscription(Twist, f"{prefix}/twist", self._on_twist, COMMAND_QOS)
        node.create_subscription(Float64, f"{prefix}/gripper", self._on_gripper, COMMAND_QOS)

    def _on_active(self, msg: Bool) -> None:
        with self._lock:
            self._active_at = time.monotonic() if msg.data else -np.inf

    def _on_twist(self, msg: Twist) -> None:
        with self._lock:
            self._twist, self._twist_at = np.array([msg.linear.x, msg.linear.y, msg.linear.z]), time.monotonic()

    def _on_gripper(self, msg: Float64) -> None:
        with self._lock:
            self._gripper = float(msg.data)

    def reset(self) -> None:
        """Episodes do not change who is in control."""

    def poll(self, obs) -> np.ndarray | None:
        now = time.monotonic()
        with self._lock:
            if now - self._active_at > self.deadman_s:
                return None
            motion = self._twist if now - self._twist_at <= self.deadman_s else np.zeros(3)
            action = np.zeros(self.action_dim, np.float32)
            action[:3] = np.clip(np.nan_to_num(motion), -1, 1)
            if self.action_dim > 3:
                action[3] = np.clip(np.nan_to_num(self._gripper, nan=1.0), -1, 1)
            return action
