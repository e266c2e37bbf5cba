"""Device samples <-> standard ROS 2 messages. The one place where robotrl's types meet ROS types.

Both sides use REP-103 frames and (x, y, z, w) quaternions, so nothing is re-ordered here; stamps are the
capture times (``stamp_ns``) of the samples, never the time of publishing. robotrl's own contract (a task's
judgement, an operator's label, an episode reset) is typed in the ``robotrl_interfaces`` package (ros_ws/src/robotrl_interfaces),
built into the environment by scripts/build_interfaces.sh (no ROS install) or by colcon on a ROS install.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped, TwistStamped, Vector3
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header

from robotrl.data.store import TELEOP_DEVICES
from robotrl.interfaces import ArmState, CameraIntrinsics, Frame, QuadCommand, QuadState

try:
    from robotrl_interfaces.msg import ActorStep, Judgement, Label, Teleop
    from robotrl_interfaces.srv import Reset
except ImportError as e:  # pragma: no cover - scripts/install.sh builds it
    raise ImportError("robotrl_interfaces (robotrl's ROS messages: ActorStep, Judgement, Label, Teleop, Reset) is not "
                      "built in this Python: "
                      "run scripts/build_interfaces.sh (no ROS install needed), or build ros_ws with colcon") from e

__all__ = ["ActorStep", "Judgement", "Label", "Reset", "Teleop"]  # re-exported: the typed contract's messages and service


def to_time(stamp_ns: int) -> Time:
    return Time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))


def from_time(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def header(stamp_ns: int, frame_id: str) -> Header:
    return Header(stamp=to_time(stamp_ns), frame_id=frame_id)


def _xyz(v) -> np.ndarray:
    return np.array([v.x, v.y, v.z], float)


def _pose(pos: np.ndarray, quat: np.ndarray) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = map(float, pos)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = map(float, quat)
    return p


def pose_stamped(pos: np.ndarray, quat: np.ndarray, stamp_ns: int, frame_id: str) -> PoseStamped:
    return PoseStamped(header=header(stamp_ns, frame_id), pose=_pose(pos, quat))


def pose_arrays(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    o = msg.pose.orientation
    return _xyz(msg.pose.position), np.array([o.x, o.y, o.z, o.w], float)


# -- cameras ---------------------------------------------------------------------------------------------------
def image_msg(frame: Frame, frame_id: str) -> Image:
    h, w, _ = frame.image.shape
    return Image(header=header(frame.stamp_ns, frame_id), height=h, width=w, encoding="rgb8", is_bigendian=0,
                 step=w * 3, data=np.ascontiguousarray(frame.image).tobytes())


def image_array(msg: Image) -> np.ndarray:
    if msg.encoding != "rgb8":
        raise ValueError(f"image encoding {msg.encoding!r} not supported (expected rgb8)")
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


def camera_info_msg(k: CameraIntrinsics, stamp_ns: int, frame_id: str) -> CameraInfo:
    K = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    P = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(header=header(stamp_ns, frame_id), width=k.width, height=k.height, distortion_model="plumb_bob",
                      d=[0.0] * 5, k=K, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=P)


# -- arms ------------------------------------------------------------------------------------------------------
def joint_state_msg(s: ArmState, joint_names: list[str], finger_name: str = "gripper") -> JointState:
    """Arm joints, then the gripper opening in [0, 1] as one extra "joint" (as many ros2_control grippers do)."""
    return JointState(header=header(s.stamp_ns, "base"), name=[*joint_names, finger_name],
                      position=[*map(float, s.q), float(s.gripper)], velocity=[*map(float, s.dq), 0.0])


def ee_twist_msg(s: ArmState) -> TwistStamped:
    msg = TwistStamped(header=header(s.stamp_ns, "base"))
    msg.twist.linear = Vector3(x=float(s.ee_vel[0]), y=float(s.ee_vel[1]), z=float(s.ee_vel[2]))
    return msg


def arm_state(joints: JointState, ee: PoseStamped, twist: TwistStamped) -> ArmState:
    """Rebuild an ArmState from the arm node's three topics; the stamp is the joint reading's."""
    pos, quat = pose_arrays(ee)
    return ArmState(q=np.array(joints.position[:-1]), dq=np.array(joints.velocity[:-1]), ee_pos=pos, ee_quat=quat,
                    ee_vel=_xyz(twist.twist.linear), gripper=float(joints.position[-1]), stamp_ns=from_time(joints.header.stamp))


# -- quadrotors ------------------------------------------------------------------------------------------------
def odometry_msg(s: QuadState) -> Odometry:
    """Pose and world-frame velocity in ``world``; angular velocity in the FLU body frame (``base_link``)."""
    msg = Odometry(header=header(s.stamp_ns, "world"), child_frame_id="base_link")
    msg.pose.pose = _pose(s.pos, s.quat)
    msg.twist.twist.linear = Vector3(x=float(s.vel[0]), y=float(s.vel[1]), z=float(s.vel[2]))
    msg.twist.twist.angular = Vector3(x=float(s.body_rates[0]), y=float(s.body_rates[1]), z=float(s.body_rates[2]))
    return msg


def quad_state(msg: Odometry, armed: bool = True) -> QuadState:
    o = msg.pose.pose.orientation
    return QuadState(pos=_xyz(msg.pose.pose.position), quat=np.array([o.x, o.y, o.z, o.w]), vel=_xyz(msg.twist.twist.linear),
                     body_rates=_xyz(msg.twist.twist.angular), motor_thrusts=np.zeros(4), armed=armed,
                     stamp_ns=from_time(msg.header.stamp))


def ctbr_msg(cmd: QuadCommand, stamp_ns: int) -> TwistStamped:
    """CTBR as a standard message: ``twist.angular`` = FLU body rates (rad/s), ``twist.linear.z`` = collective
    thrust (N)."""
    msg = TwistStamped(header=header(stamp_ns, "base_link"))
    msg.twist.linear.z = float(cmd.thrust)
    msg.twist.angular = Vector3(x=float(cmd.body_rates[0]), y=float(cmd.body_rates[1]), z=float(cmd.body_rates[2]))
    return msg


def velocity_msg(velocity: np.ndarray, stamp_ns: int, yaw_rate: float = 0.0) -> TwistStamped:
    """A world-frame velocity set point (``~/cmd_vel``); zero is the quadrotor's hover."""
    msg = TwistStamped(header=header(stamp_ns, "world"))
    msg.twist.linear = Vector3(x=float(velocity[0]), y=float(velocity[1]), z=float(velocity[2]))
    msg.twist.angular.z = float(yaw_rate)
    return msg


def ctbr_command(msg: TwistStamped) -> QuadCommand:
    return QuadCommand("ctbr", thrust=float(msg.twist.linear.z), body_rates=_xyz(msg.twist.angular))


# -- robotrl's own contract (robotrl_interfaces) ----------------------------------------------------------------
JUDGES = ("task", "classifier", "operator")  # Judgement.source: tracked objects / twin truth, a classifier, a person


@dataclass(frozen=True)
class StampedJudgement:
    """A judgement as it travels: of the reading captured at ``stamp_ns``, by ``source`` (one of JUDGES)."""

    stamp_ns: int
    reward: float
    success: bool
    failed: bool
    costs: dict[str, float]  # per safety limit
    source: str
    probability: float | None = None  # P(success) by a classifier; None from a judge that gives none


def judgement_msg(stamp_ns: int, reward: float, success: bool, failed: bool, costs: Mapping[str, float],
                  source: str = "task", probability: float | None = None) -> Judgement:
    """``stamp_ns``: the capture stamp of the reading judged (exact to the nanosecond in ``header.stamp``);
    ``probability``: a classifier's P(success) (NaN on the wire when None)."""
    if source not in JUDGES:
        raise ValueError(f"judgement source {source!r}: expected one of {JUDGES}")
    return Judgement(header=header(stamp_ns, ""), reward=float(reward), success=bool(success), failed=bool(failed),
                     cost_names=[str(k) for k in costs], costs=[float(v) for v in costs.values()], source=source,
                     probability=float("nan") if probability is None else float(probability))


def judgement(msg: Judgement) -> StampedJudgement:
    if len(msg.cost_names) != len(msg.costs):
        raise ValueError(f"Judgement: {len(msg.cost_names)} cost names for {len(msg.costs)} costs")
    return StampedJudgement(stamp_ns=from_time(msg.header.stamp), reward=float(msg.reward), success=bool(msg.success),
                            failed=bool(msg.failed), costs=dict(zip(msg.cost_names, map(float, msg.costs))),
                            source=msg.source, probability=None if np.isnan(msg.probability) else float(msg.probability))


@dataclass(frozen=True)
class OperatorLabel:
    """An operator's verdict on an episode as it travels (robotrl_interfaces/Label)."""

    episode: int  # the store's index; -1: the episode in progress, or between episodes the last one stored
    success: bool
    source: str  # "operator" or "operator:<name>"
    stamp_ns: int  # when it was given


def label_msg(episode: int, success: bool, source: str = "operator", stamp_ns: int = 0) -> Label:
    return Label(header=header(stamp_ns, ""), episode=int(episode), success=bool(success), source=source)


def label(msg: Label) -> OperatorLabel:
    """The label of ``msg``; raises ValueError naming the field for an episode below -1 or a source that is not an
    operator's (the store's recorded provenances, truth and classifier, are never added after the fact)."""
    source = msg.source or "operator"
    if source != "operator" and not source.startswith("operator:"):
        raise ValueError(f"Label.source {source!r}: expected 'operator' or 'operator:<name>'")
    if msg.episode < -1:
        raise ValueError(f"Label.episode {msg.episode}: a store index, or -1 for the current (else the last) episode")
    return OperatorLabel(episode=int(msg.episode), success=bool(msg.success), source=source, stamp_ns=from_time(msg.header.stamp))


@dataclass(frozen=True)
class TeleopInput:
    """A human's input at a device as it travels (robotrl_interfaces/Teleop)."""

    device: str  # TELEOP_DEVICES
    active: bool
    linear: np.ndarray  # (3,), each in [-1, 1]
    yaw: float  # in [-1, 1]
    gripper: float | None  # -1 closed .. 1 open; None: no command
    stamp_ns: int  # when the device gave it


def teleop_msg(device: str, active: bool, linear, yaw: float, gripper: float | None, stamp_ns: int) -> Teleop:
    return Teleop(header=header(stamp_ns, ""), device=device, active=bool(active),
                  linear=np.asarray(linear, np.float64), yaw=float(yaw),
                  gripper=float("nan") if gripper is None else float(gripper))


def teleop(msg: Teleop) -> TeleopInput:
    """The input of ``msg``; raises ValueError naming the field for an unknown device, or an axis or gripper that is
    not finite or leaves [-1, 1] (such a message never reaches a robot)."""
    if msg.device not in TELEOP_DEVICES:
        raise ValueError(f"Teleop.device {msg.device!r}: expected one of {', '.join(TELEOP_DEVICES)}")
    gripper = [] if np.isnan(msg.gripper) else [msg.gripper]  # NaN: no gripper command
    for name, values in (("linear", msg.linear), ("yaw", [msg.yaw]), ("gripper", gripper)):
        values = np.asarray(values, np.float64)
        if not np.isfinite(values).all() or np.abs(values).max(initial=0.0) > 1.0:
            raise ValueError(f"Teleop.{name} {values.tolist()}: expected finite values in [-1, 1]")
    return TeleopInput(device=msg.device, active=bool(msg.active), linear=np.asarray(msg.linear, np.float64).copy(),
                       yaw=float(msg.yaw), gripper=None if np.isnan(msg.gripper) else float(msg.gripper),
                       stamp_ns=from_time(msg.header.stamp))


def actor_step_msg(stamp_ns: int, episode: int, step: int, policy_action, executed_action, source: str,
                   intervention_rate: float) -> ActorStep:
    return ActorStep(header=header(stamp_ns, ""), episode=int(episode), step=int(step),
                     policy_action=np.asarray(policy_action, np.float64).ravel().tolist(),
                     executed_action=np.asarray(executed_action, np.float64).ravel().tolist(), source=source,
                     intervention_rate=float(intervention_rate))
