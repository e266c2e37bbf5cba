"""Ros2ControlArm and its kinematic model: the model against the twin's MuJoCo TCP, then the driver over real
rclpy/DDS against the twin served by TwinNode (the same joint_states / forward_position_controller topics a
ros2_control arm serves). The twin does not serve joint_trajectory_controller or a gripper controller: those
commands are checked on the wire by subscribing to them."""

import os
import random

os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 200))  # before rclpy.init: no cross-talk with other runs

import threading  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from robotrl_interfaces.srv import Reset  # noqa: E402  (built by scripts/build_interfaces.sh)
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from robotrl.geometry import quat_multiply  # noqa: E402
from robotrl.hardware.kinematics import SerialChain, panda, quat_conjugate, rotvec_from_quat  # noqa: E402
from robotrl.hardware.ros2_control_arm import JointStatesUnavailable, Ros2ControlArm  # noqa: E402
from robotrl.interfaces import Arm, ArmCommand  # noqa: E402
from robotrl.ros.convert import header  # noqa: E402
from robotrl.ros.devices import COMMAND_QOS  # noqa: E402
from robotrl.ros.twin_node import TwinNode  # noqa: E402
from robotrl.sim.arm import HOME_Q, JOINTS, ArmTwin  # noqa: E402
from robotrl.sim.world import ASSETS, TwinWorld  # noqa: E402

FORWARD = "/forward_position_controller/commands"
TRAJECTORY = "/joint_trajectory_controller/joint_trajectory"
GRIPPER = "/gripper_controller/commands"
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # TCP pointing at the table, as the reach task keeps it


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(rotvec_from_quat(quat_multiply(a, quat_conjugate(b)))))


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _fresh(arm: Ros2ControlArm) -> bool:
    try:
        arm.state()
        return True
    except JointStatesUnavailable:
        return False


# -- kinematics ------------------------------------------------------------------------------------------------
def numeric_jacobian(chain: SerialChain, q: np.ndarray, h: float = 1e-6) -> np.ndarray:
    jac = np.empty((6, chain.n))
    for i in range(chain.n):
        dq = np.zeros(chain.n)
        dq[i] = h
        (p1, r1), (p0, r0) = chain.fk(q + dq), chain.fk(q - dq)
        jac[:3, i] = (p1 - p0) / (2 * h)
        jac[3:, i] = rotvec_from_quat(quat_multiply(r1, quat_conjugate(r0))) / (2 * h)
    return jac


def test_panda_model_matches_the_twin_tcp():
    world = TwinWorld.from_xml(ASSETS / "arm_scene.xml")
    twin, chain, m = ArmTwin(world), panda(), world.model
    np.testing.assert_array_equal(chain.home, HOME_Q)
    np.testing.assert_array_equal(np.c_[chain.lower, chain.upper], [m.joint(j).range for j in JOINTS])
    rng = np.random.default_rng(0)
    for _ in range(10):
        q = rng.uniform(chain.lower, chain.upper)
        world.data.qpos[[m.jnt_qposadr[m.joint(j).id] for j in JOINTS]] = q
        mujoco.mj_forward(m, world.data)
        s, (pos, quat) = twin.state(), chain.fk(q)
        assert np.linalg.norm(pos - s.ee_pos) < 1e-3
        assert angle_between(quat, s.ee_quat) < 0.01


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    planar = SerialChain([(1.0, 0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0)], [-3, -3], [3, 3], modified=False)
    pos, quat = planar.fk(np.array([0.0, np.pi / 2]))  # classic DH: a two-link planar arm bent 90 deg
    np.testing.assert_allclose(pos, [1.0, 1.0, 0.0], atol=1e-12)
    assert angle_between(quat, [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]) < 1e-9
    for chain in (panda(), planar):
        for _ in range(3):
            q = rng.uniform(chain.lower, chain.upper)
            np.testing.assert_allclose(chain.jacobian(q), numeric_jacobian(chain, q), atol=1e-6)


def test_ik_reaches_poses_within_limits_and_pulls_the_elbow_home():
    chain, rng = panda(), np.random.default_rng(2)
    for _ in range(5):
        q0 = rng.uniform(chain.lower + 0.3, chain.upper - 0.3)
        pos, quat = chain.fk(q0 + rng.uniform(-0.2, 0.2, chain.n))
        q = chain.ik(q0, pos, quat)
        reached_pos, reached_quat = chain.fk(q)
        assert np.linalg.norm(reached_pos - pos) < 1e-4 and angle_between(reached_quat, quat) < 1e-3
    q = chain.ik(HOME_Q, np.array([2.0, 0.0, 0.5]), DOWN)  # out of reach: best effort, inside the limits
    assert np.all(q >= chain.lower) and np.all(q <= chain.upper)
    # Redundancy: from an elbow swung away from home along the null space, the posture pull brings it back.
    elbow_out = HOME_Q + 0.4 * np.linalg.svd(chain.jacobian(HOME_Q))[2][-1]
    pos, quat = chain.fk(elbow_out)
    goal = pos + [0.05, 0.0, 0.0]
    pulled, free = chain.ik(elbow_out, goal, quat), chain.ik(elbow_out, goal, quat, posture_gain=0.0)
    assert np.linalg.norm(chain.fk(pulled)[0] - goal) < 1e-4
    assert np.linalg.norm(pulled - HOME_Q) < np.linalg.norm(free - HOME_Q) - 0.05


# -- the driver against the twin over ROS 2 --------------------------------------------------------------------
class Recorder:
    """Every message on one topic, as a controller on the robot would receive it."""

    def __init__(self, node: Node, msg_type: type, topic: str):
        self.msgs: list = []
        node.create_subscription(msg_type, topic, self.msgs.append, COMMAND_QOS)


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    twin = TwinNode("robotrl/ArmReach-v0")
    executor = SingleThreadedExecutor()
    for n in twin.nodes:
        executor.add_node(n)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    twin.start()
    yield twin, executor
    twin.stop()
    executor.shutdown()
    spinner.join(timeout=5)
    for n in twin.nodes:
        n.destroy_node()
    rclpy.shutdown()


@pytest.fixture
def twin(ros) -> TwinNode:
    """The running twin, reset to a new episode through its ~/reset service (TCP near (0.45, 0, 0.25), down)."""
    twin, _ = ros
    twin.arm_node.rejected.clear()
    return twin


@pytest.fixture
def node(ros, twin):
    """The driver's node (what the robot-side process would own), spun with the twin; a fresh one per test."""
    _, executor = ros
    node = rclpy.create_node(f"ros2_control_client_{random.randint(0, 1_000_000)}")
    executor.add_node(node)
    reset = node.create_client(Reset, "/twin/reset")
    assert reset.wait_for_service(timeout_sec=10)
    done = threading.Event()
    reset.call_async(Reset.Request(seed=-1)).add_done_callback(lambda _: done.set())
    assert done.wait(10)
    yield node
    executor.remove_node(node)
    node.destroy_node()


def connected(arm: Ros2ControlArm, node: Node, topic: str = FORWARD, subscribers: int = 1) -> Ros2ControlArm:
    """Wait for the first joint reading and for DDS discovery of the command topic's subscribers (a message
    published before discovery completes is lost, on a robot as here)."""
    assert wait_until(lambda: _fresh(arm) and node.count_subscribers(topic) >= subscribers, 10)
    return arm


def twin_state(twin: TwinNode):
    with twin.lock:
        return twin.env.arm.state()


def test_state_matches_the_twin_with_capture_stamps(twin, node):
    arm = connected(Ros2ControlArm(node, max_age=5.0), node)
    assert isinstance(arm, Arm)
    with twin.lock:  # set the twin moving (its own impedance controller) so velocities are not trivially zero
        twin.env.arm.command(ArmCommand("ee_target", ee_pos=twin.env.arm.state().ee_pos + [0.0, 0.1, 0.0]))
    time.sleep(0.15)
    twin.stop()  # freeze: the last published reading is the twin's current state
    time.sleep(0.3)
    try:
        # After mj_step MuJoCo's site poses are those of the step's start (one 2 ms step behind qpos); the
        # driver's FK is of the published q, so bring the twin's kinematics up to its qpos before comparing.
        mujoco.mj_forward(twin.env.world.model, twin.env.world.data)
        s, t = arm.state(), twin.env.arm.state()
    finally:
        twin.start()
    assert s.stamp_ns == t.stamp_ns  # the JointState header's capture time, not the arrival time
    np.testing.assert_allclose(s.q, t.q, atol=1e-12)
    np.testing.assert_allclose(s.dq, t.dq, atol=1e-12)
    np.testing.assert_allclose(s.ee_pos, t.ee_pos, atol=1e-6)
    assert angle_between(s.ee_quat, t.ee_quat) < 1e-6
    assert np.linalg.norm(t.ee_vel) > 0.05
    np.testing.assert_allclose(s.ee_vel, t.ee_vel, atol=1e-6)
    assert s.gripper == pytest.approx(t.gripper)


def test_missing_or_stale_joint_states_raise_naming_the_topic(twin, node):
    silent = Ros2ControlArm(node, joint_states_topic="/nobody/joint_states")
    with pytest.raises(JointStatesUnavailable, match="no /nobody/joint_states received yet"):
        silent.state()
    arm = connected(Ros2ControlArm(node, max_age=0.2), node)
    sent = Recorder(node, Float64MultiArray, FORWARD)
    assert wait_until(lambda: node.count_subscribers(FORWARD) >= 2)
    arm.state()
    twin.stop()
    time.sleep(0.4)
    try:
        with pytest.raises(JointStatesUnavailable, match=r"/joint_states is stale"):
            arm.state()
        with pytest.raises(JointStatesUnavailable, match=r"/joint_states is stale"):
            arm.command(ArmCommand("ee_delta", ee_pos=np.array([0.01, 0.0, 0.0])))
        time.sleep(0.2)
        assert sent.msgs == []
    finally:
        twin.start()
    assert wait_until(lambda: _fresh(arm))  # recovers by itself once readings flow again


def test_ee_target_drives_the_twin_tcp_to_a_goal_10cm_away(twin, node):
    arm = connected(Ros2ControlArm(node, max_age=1.0), node)
    start = twin_state(twin).ee_pos
    goal = start + np.array([0.0, 0.08, -0.06])
    deadline = time.monotonic() + 8.0
    while time.monotonic() < deadline and np.linalg.norm(twin_state(twin).ee_pos - goal) > 0.003:
        arm.command(ArmCommand("ee_target", ee_pos=goal))
        time.sleep(0.05)  # 20 Hz, a policy's rate
    reached = twin_state(twin)
    assert np.linalg.norm(reached.ee_pos - goal) < 0.01  # the twin's own MuJoCo TCP, not the driver's model
    assert angle_between(reached.ee_quat, DOWN) < 0.05  # orientation held while moving
    assert twin.arm_node.rejected == []
    # ee_delta is relative to the current target: 3 cm up from the goal, then empty deltas keep that target.
    arm.command(ArmCommand("ee_delta", ee_pos=np.array([0.0, 0.0, 0.03])))
    for _ in range(40):
        time.sleep(0.05)
        arm.command(ArmCommand("ee_delta"))
    assert np.linalg.norm(twin_state(twin).ee_pos - (goal + [0.0, 0.0, 0.03])) < 0.01


def test_joint_mode_steps_at_most_max_joint_step_and_reaches_the_target(twin, node):
    arm = connected(Ros2ControlArm(node, max_age=1.0, max_joint_step=0.05), node)
    sent = Recorder(node, Float64MultiArray, FORWARD)
    assert wait_until(lambda: node.count_subscribers(FORWARD) >= 2)
    q0 = arm.state().q
    goal = q0 + np.array([0.3, 0.0, 0.0, 0.2, 0.0, 0.0, -0.2])
    arm.command(ArmCommand("joint", q=goal))
    assert wait_until(lambda: len(sent.msgs) == 1)
    first = np.array(sent.msgs[0].data)
    assert np.abs(first - q0).max() == pytest.approx(0.05, abs=1e-3)  # one bounded step, straight toward the goal
    np.testing.assert_allclose((first - q0) / 0.05, (goal - q0) / 0.3, atol=0.02)
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline and np.abs(twin_state(twin).q - goal).max() > 0.005:
        arm.command(ArmCommand("joint", q=goal))
        time.sleep(0.05)
    np.testing.assert_allclose(twin_state(twin).q, goal, atol=0.01)
    assert twin.arm_node.rejected == []


def test_home_then_stop_holds(twin, node):
    arm = connected(Ros2ControlArm(node, max_age=1.0), node)
    assert np.abs(arm.state().q - HOME_Q).max() > 0.2  # the reach task starts away from home
    arm.home(timeout=15.0)
    np.testing.assert_allclose(twin_state(twin).q, HOME_Q, atol=0.015)
    sent = Recorder(node, Float64MultiArray, FORWARD)
    assert wait_until(lambda: node.count_subscribers(FORWARD) >= 2)
    arm.stop()
    assert wait_until(lambda: len(sent.msgs) == 1)
    np.testing.assert_allclose(sent.msgs[0].data, arm.state().q, atol=0.005)  # the measured joints, held
    held = twin_state(twin).q
    time.sleep(0.5)
    np.testing.assert_allclose(twin_state(twin).q, held, atol=0.005)


def test_trajectory_interface_publishes_one_point_trajectories(twin, node):
    arm = Ros2ControlArm(node, interface="trajectory", horizon=0.25, max_age=1.0)
    sent = Recorder(node, JointTrajectory, TRAJECTORY)
    connected(arm, node, TRAJECTORY)
    s = arm.state()
    goal = s.ee_pos + np.array([0.0, 0.08, -0.06])
    arm.command(ArmCommand("ee_target", ee_pos=goal))
    assert wait_until(lambda: len(sent.msgs) == 1)
    msg = sent.msgs[0]
    assert list(msg.joint_names) == JOINTS and len(msg.points) == 1
    point = msg.points[0]
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 250_000_000)
    q = np.array(point.positions)
    assert np.abs(q - s.q).max() == pytest.approx(arm.max_joint_step, abs=1e-9)  # the IK solution, one step of it
    progressed = np.linalg.norm(goal - s.ee_pos) - np.linalg.norm(goal - panda().fk(q)[0])
    assert progressed > 0.01
    # Joint targets beyond the limits are clipped (joint4's upper limit is -0.0698 rad).
    wide = Ros2ControlArm(node, interface="trajectory", max_age=1.0, max_joint_step=10.0)
    assert wait_until(lambda: _fresh(wide))
    wide.command(ArmCommand("joint", q=np.r_[s.q[:3], 0.5, s.q[4:]]))
    assert wait_until(lambda: len(sent.msgs) == 2)
    np.testing.assert_allclose(sent.msgs[1].points[0].positions, np.r_[s.q[:3], -0.0698, s.q[4:]], atol=1e-9)


def test_nonfinite_commands_raise_and_publish_nothing(twin, node):
    arm = connected(Ros2ControlArm(node, max_age=1.0), node)
    sent, gripper = Recorder(node, Float64MultiArray, FORWARD), Recorder(node, Float64MultiArray, GRIPPER)
    assert wait_until(lambda: node.count_subscribers(FORWARD) >= 2 and node.count_subscribers(GRIPPER) >= 1)
    q = arm.state().q
    bad = [ArmCommand("ee_target", ee_pos=np.array([0.5, np.nan, 0.2])),
           ArmCommand("ee_delta", ee_rotvec=np.array([0.0, np.inf, 0.0])),
           ArmCommand("joint", q=np.r_[q[:6], np.nan]),
           ArmCommand("joint", q=q, gripper=float("nan"))]
    for cmd in bad:
        with pytest.raises(ValueError, match="non-finite"):
            arm.command(cmd)
    time.sleep(0.3)
    assert sent.msgs == [] and gripper.msgs == []
    assert twin.arm_node.rejected == []  # nothing reached the robot for it to reject either


def test_joint_states_by_name_velocity_fallback_and_gripper_scaling(node):
    """A hand-published /joint_states as a robot may send it: joints shuffled, extra joints, no velocities, and a
    Robotiq-like gripper joint (0.8 rad closed, 0 open) reported in separate messages too."""
    topic, gripper_topic = "/lab_arm/joint_states", "/lab_arm/gripper_controller/commands"
    arm = Ros2ControlArm(node, joint_names=[f"arm_j{i}" for i in range(7)], joint_states_topic=topic,
                         gripper_joint="finger", gripper_range=(0.8, 0.0), gripper_topic=gripper_topic,
                         controller="lab_arm_controller", max_age=5.0)
    pub = node.create_publisher(JointState, topic, COMMAND_QOS)
    commands = Recorder(node, Float64MultiArray, gripper_topic)
    assert wait_until(lambda: node.count_subscribers(topic) >= 1 and node.count_subscribers(gripper_topic) >= 1)
    names = ["conveyor", *[f"arm_j{i}" for i in (3, 0, 6, 1, 5, 2, 4)], "finger"]
    q = HOME_Q.copy()

    def joint_state(q: np.ndarray, finger: float, stamp_ns: int) -> JointState:
        by_name = {"conveyor": 9.0, "finger": finger, **{f"arm_j{i}": q[i] for i in range(7)}}
        return JointState(header=header(stamp_ns, "base"), name=names, position=[float(by_name[n]) for n in names])

    pub.publish(joint_state(q, 0.6, 5_000_000_000))
    assert wait_until(lambda: _fresh(arm))
    pub.publish(joint_state(q + 0.001, 0.2, 5_010_000_000))
    assert wait_until(lambda: arm.state().stamp_ns == 5_010_000_000)
    pub.publish(JointState(header=header(5_020_000_000, "base"), name=["finger"], position=[0.0]))
    assert wait_until(lambda: arm.state().gripper == pytest.approx(1.0))
    s = arm.state()
    np.testing.assert_allclose(s.q, q + 0.001)
    np.testing.assert_allclose(s.dq, np.full(7, 0.1), rtol=1e-6)  # 1 mrad in 10 ms, by capture stamps
    assert s.stamp_ns == 5_010_000_000  # a gripper-only message is no arm reading
    arm.command(ArmCommand("joint", q=s.q, gripper=0.25))
    assert wait_until(lambda: len(commands.msgs) == 1)
    assert list(commands.msgs[0].data) == pytest.approx([0.6])  # 1/4 open on a 0.8 (closed) .. 0 (open) range
