"""Device nodes: each serves *any* implementation of one device interface (the twin's or a hardware driver)
over standard ROS 2 messages, so a graph cannot tell the twin from the robot.

    arm    ~/joint_states (JointState: joints + "gripper" opening 0..1), ~/ee_pose (PoseStamped),
           ~/ee_twist (TwistStamped)                                                       sensor-data QoS
           ~/target_pose (PoseStamped), ~/gripper (Float64)                                reliable, in
           ~/stop, ~/home, ~/estop, ~/rearm (std_srvs/Trigger)
           with ``ros2_control=True`` (the twin) also what a ros2_control arm serves: /joint_states and
           /forward_position_controller/commands (Float64MultiArray joint positions, reliable, in), so
           hardware.Ros2ControlArm runs against the twin exactly as against a robot
    camera ~/image (Image rgb8), ~/camera_info (CameraInfo)                                sensor-data QoS
    quad   ~/odom (Odometry)                                                                sensor-data QoS
           ~/ctbr (TwistStamped: angular = FLU rates, linear.z = thrust N), ~/cmd_vel (TwistStamped),
           ~/cmd_pose (PoseStamped)                                                         reliable, in
           ~/arm, ~/land, ~/stop, ~/estop, ~/rearm (std_srvs/Trigger)

E-STOP (``~/estop``, the operator's page calls it directly, never through the actor): the device stops (arm: holds
where it is; quadrotor: hovers, then lands after ``land_after_s``) and every command is rejected until ``~/rearm``,
and so are the services that move it (~/home, ~/arm): an actor's reset then fails (RosEnv.ResetFailed) and no episode
starts.
Every incoming command is checked before it reaches the device: non-finite or out-of-range values are
rejected with a logged reason and the device keeps its last safe command. With ``rate_hz`` 0 a node does not
poll its device; its owner calls ``publish()`` (the twin's sim loop does, right after each physics advance).
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from typing import Callable, ContextManager

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import Trigger

from robotrl.geometry import yaw_from_quat
from robotrl.interfaces import Arm, ArmCommand, Camera, Frame, Quadrotor, QuadCommand
from robotrl.ros import convert

COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
Lock = ContextManager | threading.Lock


class DeviceNode(Node):
    """Shared plumbing: a lock around device access, an optional polling timer, Trigger services."""

    def __init__(self, name: str, rate_hz: float, lock: Lock | None, **kwargs):
        super().__init__(name, **kwargs)
        self.lock = lock or nullcontext()
        self.rejected: list[str] = []  # reasons of rejected commands, newest last (also logged)
        self.estopped = False
        if rate_hz > 0:
            self.create_timer(1.0 / rate_hz, self._poll)

    def _serve_estop(self) -> None:
        """~/estop and ~/rearm, for a device that moves."""
        self._trigger("estop", self.estop)
        self._trigger("rearm", self._rearm)

    def estop(self) -> None:
        """Latch and stop the device (called with the lock held)."""
        self.estopped = True
        self._stop_device()

    def _stop_device(self) -> None:
        raise NotImplementedError

    def _rearm(self) -> None:
        self.estopped = False

    def publish(self) -> None:
        raise NotImplementedError

    def _poll(self) -> None:
        # A device with no reading (a robot whose /joint_states has not started yet, a link that dropped) is a state
        # to report and wait out: raised in the executor thread, it would stop every callback of the process.
        try:
            self.publish()
        except Exception as exc:
            self.get_logger().warning(f"no reading to publish: {exc}", throttle_duration_sec=5.0)

    def _trigger(self, name: str, action: Callable[[], None], moves: bool = False) -> None:
        """~/<name> runs ``action``; one that ``moves`` the robot (homing, arming) is refused while E-STOP is latched."""
        def serve(_request, response):
            try:
                if moves and self.estopped:
                    raise RuntimeError("E-STOP is latched: call ~/rearm first")
                with self.lock:
                    action()
                response.success, response.message = True, f"{self.get_name()}: {name} done"
                self.get_logger().info(response.message)
            except Exception as exc:  # e.g. arming denied: the caller gets the reason
                response.success, response.message = False, f"{self.get_name()}: {name} failed: {exc}"
                self.get_logger().error(response.message)
            return response

        self.create_service(Trigger, f"~/{name}", serve)

    def _apply(self, topic: str, command: Callable[[], None]) -> None:
        """Run a device command; a device that refuses (link down, bad state) is logged, the node keeps serving."""
        if self.estopped:
            return self._reject(topic, "E-STOP is latched: call ~/rearm first")
        try:
            with self.lock:
                command()
        except Exception as exc:
            self._reject(topic, f"the device refused: {exc}")

    def _reject(self, topic: str, reason: str) -> None:
        message = f"rejected {self.resolve_topic_name(topic)}: {reason}"
        self.rejected.append(message)
        self.get_logger().warning(message)


class ArmNode(DeviceNode):
    def __init__(self, arm: Arm, name: str = "arm", joint_names: list[str] | None = None, rate_hz: float = 100.0,
                 workspace: tuple[np.ndarray, np.ndarray] | None = None, joint_limits: tuple[np.ndarray, np.ndarray] | None = None,
                 ros2_control: bool = False, lock: Lock | None = None, home: Callable[[], None] | None = None, **kwargs):
        """``workspace``: (min, max) corners of the box (base frame, m) outside which targets are rejected;
        ``joint_limits``: (min, max) joint positions (rad) outside which joint commands are rejected; ``home``: what
        ``~/home`` does (default ``arm.home``; the twin keeps its clock running)."""
        super().__init__(name, rate_hz, lock, **kwargs)
        self.arm, self.workspace, self.joint_limits = arm, workspace, joint_limits
        self.joint_names = joint_names or [f"joint{i + 1}" for i in range(arm.n_joints)]
        self._joints = [self.create_publisher(JointState, t, qos_profile_sensor_data)
                        for t in ("~/joint_states", "/joint_states")[: 2 if ros2_control else 1]]
        self._pose = self.create_publisher(PoseStamped, "~/ee_pose", qos_profile_sensor_data)
        self._twist = self.create_publisher(TwistStamped, "~/ee_twist", qos_profile_sensor_data)
        self.create_subscription(PoseStamped, "~/target_pose", self._on_target, COMMAND_QOS)
        self.create_subscription(Float64, "~/gripper", self._on_gripper, COMMAND_QOS)
        if ros2_control:
            self.create_subscription(Float64MultiArray, "/forward_position_controller/commands", self._on_joints, COMMAND_QOS)
        self._trigger("stop", arm.stop)
        self._trigger("home", home or arm.home, moves=True)
        self._serve_estop()

    def _stop_device(self) -> None:
        self.arm.stop()

    def publish(self) -> None:
        with self.lock:
            s = self.arm.state()
        joints = convert.joint_state_msg(s, self.joint_names)
        for pub in self._joints:
            pub.publish(joints)
        self._pose.publish(convert.pose_stamped(s.ee_pos, s.ee_quat, s.stamp_ns, "base"))
        self._twist.publish(convert.ee_twist_msg(s))

    def _on_target(self, msg: PoseStamped) -> None:
        pos, quat = convert.pose_arrays(msg)
        if not (np.isfinite(pos).all() and np.isfinite(quat).all()):
            return self._reject("~/target_pose", f"non-finite pose {pos.tolist()} {quat.tolist()}")
        if abs(np.linalg.norm(quat) - 1) > 0.01:
            return self._reject("~/target_pose", f"orientation is not a unit quaternion (norm {np.linalg.norm(quat):.3f})")
        if self.workspace is not None and not (np.all(pos >= self.workspace[0]) and np.all(pos <= self.workspace[1])):
            return self._reject("~/target_pose", f"position {np.round(pos, 3).tolist()} outside the workspace box "
                                f"{np.round(self.workspace[0], 3).tolist()}..{np.round(self.workspace[1], 3).tolist()}")
        self._apply("~/target_pose", lambda: self.arm.command(ArmCommand("ee_target", ee_pos=pos, ee_quat=quat)))

    def _on_joints(self, msg: Float64MultiArray) -> None:
        q, topic = np.array(msg.data, float), "/forward_position_controller/commands"
        if q.shape != (self.arm.n_joints,) or not np.isfinite(q).all():
            return self._reject(topic, f"expected {self.arm.n_joints} finite joint positions, got {q.tolist()}")
        if self.joint_limits is not None and not (np.all(q >= self.joint_limits[0]) and np.all(q <= self.joint_limits[1])):
            bad = np.flatnonzero((q < self.joint_limits[0]) | (q > self.joint_limits[1]))
            return self._reject(topic, f"joint(s) {[self.joint_names[i] for i in bad]} outside their limits")
        self._apply(topic, lambda: self.arm.command(ArmCommand("joint", q=q)))

    def _on_gripper(self, msg: Float64) -> None:
        if not (np.isfinite(msg.data) and 0.0 <= msg.data <= 1.0):
            return self._reject("~/gripper", f"opening {msg.data} not in [0, 1]")
        self._apply("~/gripper", lambda: self.arm.command(ArmCommand("ee_target", gripper=float(msg.data))))


class CameraNode(DeviceNode):
    """With ``rate_hz`` > 0 a capture thread of its own reads the camera: ``read()`` blocks up to a frame period
    (it must not hold an executor thread), and a GL-rendered camera must always render from the same thread."""

    def __init__(self, camera: Camera, name: str | None = None, rate_hz: float = 30.0, lock: Lock | None = None, **kwargs):
        super().__init__(name or f"{camera.name}_camera", 0, lock, **kwargs)
        self.camera = camera
        self._image = self.create_publisher(Image, "~/image", qos_profile_sensor_data)
        self._info = self.create_publisher(CameraInfo, "~/camera_info", qos_profile_sensor_data)
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        if rate_hz > 0:
            self._running.set()
            self._thread = threading.Thread(target=self._capture, args=(1.0 / rate_hz,), daemon=True, name=f"{self.get_name()}-capture")
            self._thread.start()

    def _capture(self, period: float) -> None:
        """The capture thread owns the camera: it reads it and, at the end, closes it (a GL renderer must be
        released by the thread that made it)."""
        next_t = time.monotonic()
        try:
            while self._running.is_set():
                try:
                    self.publish()
                except Exception as exc:
                    if not self._running.is_set():  # a failure while shutting down is just the end
                        break
                    self.get_logger().error(f"capture failed: {exc}")
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
        finally:
            if hasattr(self.camera, "close"):
                self.camera.close()

    def publish(self, frame: Frame | None = None) -> None:
        if frame is None:
            with self.lock:
                frame = self.camera.read()
        frame_id = f"{self.camera.name}_optical"
        self._image.publish(convert.image_msg(frame, frame_id))
        self._info.publish(convert.camera_info_msg(frame.intrinsics, frame.stamp_ns, frame_id))

    def destroy_node(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)  # the capture in flight finishes before its publishers go
        super().destroy_node()


class QuadNode(DeviceNode):
    def __init__(self, quad: Quadrotor, name: str = "quad", rate_hz: float = 100.0, max_thrust: float | None = None,
                 max_body_rate: float = 10.0, lock: Lock | None = None, land_after_s: float = 2.0, **kwargs):
        self.quad, self.land_after_s = quad, land_after_s
        super().__init__(name, rate_hz, lock, **kwargs)
        self.max_body_rate = max_body_rate
        self.max_thrust = max_thrust if max_thrust is not None else getattr(quad, "max_thrust", np.inf)
        self._odom = self.create_publisher(Odometry, "~/odom", qos_profile_sensor_data)
        self.create_subscription(TwistStamped, "~/ctbr", self._on_ctbr, COMMAND_QOS)
        self.create_subscription(TwistStamped, "~/cmd_vel", self._on_velocity, COMMAND_QOS)
        self.create_subscription(PoseStamped, "~/cmd_pose", self._on_pose, COMMAND_QOS)
        self._trigger("arm", quad.arm, moves=True)
        self._trigger("land", quad.land)
        self._trigger("stop", quad.stop)
        self._serve_estop()
        self._land_timer = None

    def _stop_device(self) -> None:
        """Hover now, land ``land_after_s`` later unless re-armed meanwhile."""
        self.quad.stop()
        if self._land_timer is None:
            self._land_timer = self.create_timer(self.land_after_s, self._land)

    def _land(self) -> None:
        self.destroy_timer(self._land_timer)
        self._land_timer = None
        if self.estopped:
            with self.lock:
                self.quad.land()

    def _rearm(self) -> None:
        super()._rearm()
        if self._land_timer is not None:
            self.destroy_timer(self._land_timer)
            self._land_timer = None

    def publish(self) -> None:
        with self.lock:
            s = self.quad.state()
        self._odom.publish(convert.odometry_msg(s))

    def _command(self, topic: str, cmd: QuadCommand, values: list[float]) -> None:
        if not np.isfinite(values).all():
            return self._reject(topic, f"non-finite values {values}")
        self._apply(topic, lambda: self.quad.command(cmd))

    def _on_ctbr(self, msg: TwistStamped) -> None:
        cmd = convert.ctbr_command(msg)
        values = [cmd.thrust, *cmd.body_rates]
        if np.isfinite(values).all() and not 0.0 <= cmd.thrust <= self.max_thrust:
            return self._reject("~/ctbr", f"thrust {cmd.thrust:.3f} N outside [0, {self.max_thrust:.3f}]")
        if np.isfinite(values).all() and np.abs(cmd.body_rates).max() > self.max_body_rate:
            return self._reject("~/ctbr", f"body rate {np.abs(cmd.body_rates).max():.2f} rad/s above {self.max_body_rate}")
        self._command("~/ctbr", cmd, values)

    def _on_velocity(self, msg: TwistStamped) -> None:
        v, w = msg.twist.linear, msg.twist.angular
        self._command("~/cmd_vel", QuadCommand("velocity", velocity=np.array([v.x, v.y, v.z]), yaw_rate=w.z), [v.x, v.y, v.z, w.z])

    def _on_pose(self, msg: PoseStamped) -> None:
        pos, quat = convert.pose_arrays(msg)
        self._command("~/cmd_pose", QuadCommand("position", position=pos, yaw=yaw_from_quat(quat)), [*pos, *quat])
