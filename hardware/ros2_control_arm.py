"""Ros2ControlArm: the Arm interface for any arm that runs ros2_control (Franka, UR, xArm, Kinova), as a client
of the topics its controllers serve.

    in   /joint_states                                  sensor_msgs/JointState (joint_state_broadcaster)
    out  /<controller>/commands                         std_msgs/Float64MultiArray  (forward_command_controller /
                                                        JointGroupPositionController), or with
                                                        ``interface="trajectory"``
         /<controller>/joint_trajectory                 trajectory_msgs/JointTrajectory (joint_trajectory_controller)
         gripper topic, e.g. /gripper_controller/commands  std_msgs/Float64MultiArray

joint_trajectory_controller also offers the FollowJointTrajectory action, which reports progress and errors;
it lives in control_msgs, which has no pip wheel (no ROS install here), so this driver uses the controller's
plain topic interface.

ros2_control position interfaces have no Cartesian impedance: end-effector commands are turned into joint
targets by this driver's own kinematic model (hardware.kinematics) and ``ArmCommand.stiffness`` is ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from builtin_interfaces.msg import Duration
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robotrl.geometry import quat_from_rotvec, quat_multiply
from robotrl.hardware.kinematics import SerialChain, panda
from robotrl.interfaces import ArmCommand, ArmState
from robotrl.ros.convert import from_time
from robotrl.ros.devices import COMMAND_QOS

Interface = Literal["forward", "trajectory"]
_DEFAULT_CONTROLLER = {"forward": "forward_position_controller", "trajectory": "joint_trajectory_controller"}
_HOME_PERIOD_S = 0.05  # command period of the blocking home() loop


def _duration(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class JointStatesUnavailable(RuntimeError):
    """No usable joint reading: none arrived yet, or the newest is older than ``max_age``. Names the topic."""


@dataclass(frozen=True)
class _Reading:
    q: np.ndarray
    dq: np.ndarray
    stamp_ns: int  # capture time, from the JointState header
    received: float  # local time.monotonic() at arrival: the robot's clock need not be comparable with ours


class Ros2ControlArm:
    """Arm interface over ros2_control topics, on an rclpy ``node`` that the caller spins (in another thread:
    ``state()`` reads what the subscription last delivered, and ``home()`` blocks on fresh readings).

    ``joint_names``: the arm's joints in the order of ``chain``, as /joint_states names them (default
    ``joint1..jointN``); /joint_states may list them in any order, mixed with other joints. ``gripper_joint``:
    the /joint_states entry of the gripper, whose position maps to the 0..1 opening through ``gripper_range`` =
    (position when closed, position when fully open) -- the same range scales gripper commands; ``None``: no
    gripper reading (``ArmState.gripper`` is NaN). ``gripper_topic``: Float64MultiArray topic of the gripper's
    position controller (``None``: none; gripper commands are then ignored with a warning).

    Safety: non-finite commands raise ``ValueError`` and publish nothing; joint targets are clipped to the
    chain's limits and never sent more than ``max_joint_step`` rad from the measured joints, so one command
    never jumps the arm (call ``command`` at the control rate to get somewhere); commands need a joint reading
    younger than ``max_age`` s. With the trajectory interface, each target is reached over ``horizon`` s.
    """

    def __init__(self, node: Node, chain: SerialChain | None = None, joint_names: Sequence[str] | None = None, *,
                 interface: Interface = "forward", controller: str | None = None,
                 joint_states_topic: str = "/joint_states", gripper_joint: str | None = "gripper",
                 gripper_range: tuple[float, float] = (0.0, 1.0),
                 gripper_topic: str | None = "/gripper_controller/commands",
                 max_age: float = 0.25, max_joint_step: float = 0.05, horizon: float = 0.1):
        if interface not in _DEFAULT_CONTROLLER:
            raise ValueError(f"interface {interface!r}: allowed {list(_DEFAULT_CONTROLLER)}")
        self.node, self.chain = node, chain or panda()
        self.n_joints = self.chain.n
        self.joint_names = list(joint_names or [f"joint{i + 1}" for i in range(self.n_joints)])
        if len(self.joint_names) != self.n_joints:
            raise ValueError(f"{len(self.joint_names)} joint names for a {self.n_joints}-joint chain")
        if gripper_range[0] == gripper_range[1]:
            raise ValueError(f"gripper_range {gripper_range}: closed and open positions must differ")
        self.interface, self.horizon = interface, horizon
        self.max_age, self.max_joint_step = max_age, max_joint_step
        self.gripper_joint, self.gripper_range = gripper_joint, gripper_range
        self.joint_states_topic = node.resolve_topic_name(joint_states_topic)
        controller = controller or _DEFAULT_CONTROLLER[interface]
        if interface == "forward":
            self._joint_pub = node.create_publisher(Float64MultiArray, f"/{controller}/commands", COMMAND_QOS)
        else:
            self._joint_pub = node.create_publisher(JointTrajectory, f"/{controller}/joint_trajectory", COMMAND_QOS)
        self._gripper_pub = node.create_publisher(Float64MultiArray, gripper_topic, COMMAND_QOS) if gripper_topic else None
        self._lock = threading.Lock()
        self._reading: _Reading | None = None
        self._gripper = float("nan")
        self._target: tuple[np.ndarray, np.ndarray] | None = None  # end-effector target of ee_* commands
        node.create_subscription(JointState, joint_states_topic, self._on_joint_states, qos_profile_sensor_data)

    # -- Arm interface ---------------------------------------------------------------------------------------
    def state(self) -> ArmState:
        r = self._fresh_reading()
        pos, quat = self.chain.fk(r.q)
        return ArmState(q=r.q.copy(), dq=r.dq.copy(), ee_pos=pos, ee_quat=quat, ee_vel=self.chain.jacobian(r.q)[:3] @ r.dq,
                        gripper=self._gripper, stamp_ns=r.stamp_ns)

    def command(self, cmd: ArmCommand) -> None:
        """Publish one joint target (and gripper opening); returns at once."""
        self._check_finite(cmd)
        q = self._fresh_reading().q
        if cmd.mode == "joint":
            if cmd.q is None or np.shape(cmd.q) != (self.n_joints,):
                raise ValueError(f"ArmCommand(mode='joint') needs q with {self.n_joints} joint positions, got {cmd.q}")
            self._target = None
            self._send(self._clip_to_limits(np.asarray(cmd.q, dtype=np.float64)), q)
        elif cmd.mode in ("ee_target", "ee_delta"):
            pos, quat = self._ee_goal(cmd, q)
            self._target = (pos, quat)
            self._send(self.chain.ik(q, pos, quat), q)
        else:
            raise ValueError(f"unknown ArmCommand mode {cmd.mode!r}; allowed: ee_target, ee_delta, joint")
        if cmd.gripper is not None:
            self._send_gripper(float(cmd.gripper))

    def home(self, timeout: float = 10.0, tolerance: float = 0.01) -> None:
        """Move to the chain's home posture in ``max_joint_step`` steps; blocks until every joint is within
        ``tolerance`` rad of it (``TimeoutError`` after ``timeout`` s)."""
        self._target = None
        deadline = time.monotonic() + timeout
        while True:
            q = self._fresh_reading().q
            self._send(self.chain.home, q)
            if np.abs(self.chain.home - q).max() < tolerance:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"home: joints still {np.round(self.chain.home - q, 3).tolist()} rad from home "
                                   f"after {timeout} s")
            time.sleep(_HOME_PERIOD_S)

    def stop(self) -> None:
        """Hold: the measured joint positions become the target."""
        self._target = None
        q = self._fresh_reading().q
        self._send(q, q)

    # -- joint states ------------------------------------------------------------------------------------------
    def _on_joint_states(self, msg: JointState) -> None:
        index = {name: i for i, name in enumerate(msg.name)}
        position = np.asarray(msg.position, dtype=np.float64)
        if self.gripper_joint in index and np.isfinite(position[index[self.gripper_joint]]):
            closed, opened = self.gripper_range
            self._gripper = float((position[index[self.gripper_joint]] - closed) / (opened - closed))
        if not all(name in index for name in self.joint_names):
            return  # a message about other joints (a gripper driver may publish its own on the same topic)
        rows = [index[name] for name in self.joint_names]
        q, stamp_ns = position[rows], from_time(msg.header.stamp)
        if not np.isfinite(q).all():
            return
        dq = self._velocity(msg, rows, q, stamp_ns)
        with self._lock:
            self._reading = _Reading(q, dq, stamp_ns, time.monotonic())

    def _velocity(self, msg: JointState, rows: list[int], q: np.ndarray, stamp_ns: int) -> np.ndarray:
        """Measured velocities; where the hardware reports none (empty or NaN: position-only interfaces), the
        difference quotient of the last two readings by their capture stamps (zero for the first one)."""
        if len(msg.velocity) == len(msg.name):
            dq = np.asarray(msg.velocity, dtype=np.float64)[rows]
            if np.isfinite(dq).all():
                return dq
        prev = self._reading
        if prev is None or stamp_ns <= prev.stamp_ns:
            return np.zeros(self.n_joints)
        return (q - prev.q) / ((stamp_ns - prev.stamp_ns) * 1e-9)

    def _fresh_reading(self) -> _Reading:
        with self._lock:
            r = self._reading
        if r is None:
            raise JointStatesUnavailable(f"no {self.joint_states_topic} received yet with joints {self.joint_names} "
                                         f"(is the robot's joint_state_broadcaster running, and this node spun?)")
        age = time.monotonic() - r.received
        if age > self.max_age:
            raise JointStatesUnavailable(f"{self.joint_states_topic} is stale: the last reading arrived {age:.2f} s ago "
                                         f"(max_age {self.max_age} s)")
        return r

    # -- commands ----------------------------------------------------------------------------------------------
    def _check_finite(self, cmd: ArmCommand) -> None:
        fields = {"ee_pos": cmd.ee_pos, "ee_quat": cmd.ee_quat, "ee_rotvec": cmd.ee_rotvec, "q": cmd.q,
                  "gripper": cmd.gripper, "stiffness": cmd.stiffness}
        bad = [k for k, v in fields.items() if v is not None and not np.isfinite(np.asarray(v, dtype=np.float64)).all()]
        if bad:
            message = f"rejected ArmCommand({cmd.mode!r}): non-finite {', '.join(bad)}; nothing sent"
            self.node.get_logger().error(message)
            raise ValueError(message)

    def _ee_goal(self, cmd: ArmCommand, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Absolute TCP goal of an ee_* command; offsets and omitted fields refer to the current target (the
        measured pose when there is none), as on the twin's impedance controller."""
        pos, quat = self._target or self.chain.fk(q)
        if cmd.mode == "ee_target":
            pos = pos if cmd.ee_pos is None else np.asarray(cmd.ee_pos, dtype=np.float64)
            quat = quat if cmd.ee_quat is None else np.asarray(cmd.ee_quat, dtype=np.float64)
        else:
            pos = pos if cmd.ee_pos is None else pos + np.asarray(cmd.ee_pos, dtype=np.float64)
            quat = quat if cmd.ee_rotvec is None else quat_multiply(quat_from_rotvec(cmd.ee_rotvec), quat)
        return pos, quat / np.linalg.norm(quat)

    def _clip_to_limits(self, q: np.ndarray) -> np.ndarray:
        clipped = np.clip(q, self.chain.lower, self.chain.upper)
        if not np.array_equal(clipped, q):
            bad = [self.joint_names[i] for i in np.flatnonzero(clipped != q)]
            self.node.get_logger().warning(f"joint target of {bad} clipped to the joint limits", throttle_duration_sec=1.0)
        return clipped

    def _send(self, target: np.ndarray, measured: np.ndarray) -> None:
        """Publish ``target`` moved at most ``max_joint_step`` from ``measured`` (scaled as a whole, so the arm
        heads straight for the target in joint space), inside the joint limits."""
        delta = target - measured
        largest = np.abs(delta).max()
        if largest > self.max_joint_step:
            delta *= self.max_joint_step / largest
        q = np.clip(measured + delta, self.chain.lower, self.chain.upper).tolist()
        if self.interface == "forward":
            self._joint_pub.publish(Float64MultiArray(data=q))
        else:
            # A zero header stamp tells joint_trajectory_controller to start the trajectory on arrival.
            point = JointTrajectoryPoint(positions=q, time_from_start=_duration(self.horizon))
            self._joint_pub.publish(JointTrajectory(joint_names=self.joint_names, points=[point]))

    def _send_gripper(self, opening: float) -> None:
        if self._gripper_pub is None:
            self.node.get_logger().warning("gripper command ignored: no gripper_topic configured", throttle_duration_sec=5.0)
            return
        closed, opened = self.gripper_range
        self._gripper_pub.publish(Float64MultiArray(data=[closed + float(np.clip(opening, 0.0, 1.0)) * (opened - closed)]))
