"""The ROS 2 runtime with real rclpy over DDS against the real twin: device nodes, the actor's watchdog,
whole graphs in separate processes (twin + actor + learner), and the launch files."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 200))  # isolate from other runs on this machine

rclpy = pytest.importorskip("rclpy")  # the `ros` extra

from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray, Int64  # noqa: E402

from conftest import free_udp_port  # noqa: E402
from robotrl.config import read_yaml  # noqa: E402
from robotrl.data import EpisodeStore  # noqa: E402
from robotrl.tasks.experts import make_expert  # noqa: E402
from robotrl.ros import convert  # noqa: E402
from robotrl.ros.devices import COMMAND_QOS  # noqa: E402
from robotrl.ros.graph import NodeSpec, load_graph, node_command, params_yaml  # noqa: E402
from robotrl.ros.params import NODE_PARAMS, from_ros  # noqa: E402
from robotrl.ros.nodes import split_node_name  # noqa: E402
from robotrl.ros.ros_env import ObservationLost, RosEnv, Stopped  # noqa: E402
from robotrl.ros.topic_reader import TopicReader  # noqa: E402
from robotrl.ros.twin_node import TwinNode  # noqa: E402

PICK = "robotrl/ArmPickCube-v0"
ROS_WS = Path(__file__).resolve().parents[1] / "ros_ws"


@pytest.fixture
def ros():
    rclpy.init()
    executor = SingleThreadedExecutor()  # as the product nodes spin (robotrl.ros.nodes.spin_in_background)
    thread = threading.Thread(target=executor.spin, daemon=True)
    yield executor, thread
    nodes = executor.get_nodes()
    executor.shutdown()
    for node in nodes:  # before the context goes: a node collected after rclpy.shutdown can crash at exit
        node.destroy_node()
    rclpy.shutdown()


@pytest.fixture
def twin(ros):
    executor, thread = ros
    node = TwinNode(PICK, speed=1.0)
    for n in node.nodes:
        executor.add_node(n)
    thread.start()
    node.start()
    yield node
    node.stop()


@pytest.fixture
def start_twin(tmp_path):
    """The twin as its own process, as in every graph: the tests' actor then shares no interpreter (GIL, garbage
    collector) with the physics loop, so its watchdog sees real topic timing."""
    procs = []

    def start(task: str, **params) -> subprocess.Popen:
        proc = _start("twin", NodeSpec(kind="twin", parameters={"task": task, **params}), tmp_path)
        procs.append(proc)
        return proc

    yield start
    _stop(procs)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)



def exit_codes(procs: dict[str, subprocess.Popen], timeout: float = 15) -> dict[str, int | str]:
    """Each process's exit code once it stops (after a signal), or "killed after N s" for one that does not."""
    codes: dict[str, int | str] = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = f"killed after {timeout:g} s"
    return codes

def test_topic_reader_takes_every_waiting_message_in_one_poll_and_wakes_on_request(ros):
    executor, thread = ros
    pub_node = rclpy.create_node("reader_test_pub")
    executor.add_node(pub_node)
    thread.start()
    reader = TopicReader("reader_test")
    got: dict[str, list[int]] = {"a": [], "b": []}
    for name in got:
        reader.subscribe(Int64, f"/reader_test/{name}", lambda m, n=name: got[n].append(m.data), 10)
    pubs = {name: pub_node.create_publisher(Int64, f"/reader_test/{name}", 10) for name in got}
    wait_for(lambda: all(p.get_subscription_count() for p in pubs.values()))
    for i in range(3):
        for p in pubs.values():
            p.publish(Int64(data=i))
    time.sleep(0.5)  # all six delivered to the reader's queues (DDS does that without anyone polling)
    assert reader.poll(1.0) == 6  # one wake takes every waiting message of every topic
    assert got == {"a": [0, 1, 2], "b": [0, 1, 2]}  # in order, none lost
    t = time.monotonic()
    threading.Timer(0.1, reader.wake).start()
    assert reader.poll(5.0) == 0 and time.monotonic() - t < 2.0  # wake() ends a quiet poll early
    reader.destroy()
    assert reader.poll(0.0) == 0  # a destroyed reader reads nothing and does not raise


def test_bad_commands_are_rejected_with_a_reason_and_the_arm_keeps_its_target(twin, ros):
    executor, _ = ros
    probe = rclpy.create_node("probe")
    executor.add_node(probe)
    target = probe.create_publisher(PoseStamped, "/arm/target_pose", COMMAND_QOS)
    gripper = probe.create_publisher(Float64, "/arm/gripper", COMMAND_QOS)
    joints = probe.create_publisher(Float64MultiArray, "/forward_position_controller/commands", COMMAND_QOS)
    wait_for(lambda: twin.arm_node.count_publishers("/arm/target_pose") > 0 and target.get_subscription_count() > 0)
    with twin.lock:
        before, _ = twin.env.arm.target_pose()
    bad = [(target, convert.pose_stamped(np.array([np.nan, 0, 0.2]), np.array([0, 0, 0, 1.0]), 0, "base"), "non-finite"),
           (target, convert.pose_stamped(np.array([2.0, 0, 0.2]), np.array([1.0, 0, 0, 0]), 0, "base"), "outside the workspace"),
           (target, convert.pose_stamped(np.array([0.5, 0, 0.2]), np.array([0, 0, 0, 3.0]), 0, "base"), "unit quaternion"),
           (gripper, Float64(data=1.5), "not in [0, 1]"),
           (joints, Float64MultiArray(data=[0.0, 0, 0, 0, 0, 0, 9.0]), "outside their limits")]
    for pub, msg, reason in bad:
        pub.publish(msg)
        wait_for(lambda r=reason: any(r in m for m in twin.arm_node.rejected))
    with twin.lock:
        after, _ = twin.env.arm.target_pose()
    np.testing.assert_array_equal(before, after)
    assert len(twin.arm_node.rejected) == len(bad)
    # ... and a good command goes through.
    target.publish(convert.pose_stamped(before + [0, 0, 0.02], np.array([1.0, 0, 0, 0]), 0, "base"))
    wait_for(lambda: abs(twin.env.arm.target_pose()[0][2] - before[2] - 0.02) < 1e-9)


@pytest.mark.slow
def test_expert_picks_through_ros_and_a_silent_camera_makes_the_actor_hold(ros, start_twin):
    """The actor sees images/front through ROS and the expert picks the cube; then the twin's camera drops out
    (its ~/cameras fault switch) and the actor commands hold within two control periods."""
    from std_srvs.srv import SetBool

    start_twin(PICK, task_kwargs={"observation": {"cameras": ["front"], "image_size": 48}}, camera_hz=20.0)
    executor, thread = ros
    actor = rclpy.create_node("actor")
    executor.add_node(actor)
    thread.start()
    # 2 Hz control: the hold is due 1.5 periods after the last frame, and "within two periods" then leaves
    # 250 ms for a loaded CI machine's scheduling of the watchdog timer.
    env = RosEnv(actor, PICK, {"observation": {"cameras": ["front"], "image_size": 48}, "control_hz": 2})
    expert = make_expert(env)
    obs, _ = env.reset()
    expert.reset()
    assert obs["images/front"].shape == (48, 48, 3) and obs["images/front"].std() > 0
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        done = terminated or truncated
    assert info["success"] and reward == 1.0 and terminated
    obs, _ = env.reset()
    expert.reset()
    for _ in range(3):
        obs, *_ = env.step(expert.act(obs))
    dropout = actor.create_client(SetBool, "/twin/cameras")
    assert dropout.wait_for_service(timeout_sec=10)
    dropout.call_async(SetBool.Request(data=False))
    wait_for(lambda: env.silent is not None, timeout=5)
    last_frame = env._images["front"].received
    when = next(t for t, reason in env.holds if "/front_camera/image" in reason)
    assert when - last_frame <= 2 * env.control_dt, f"hold came {when - last_frame:.3f} s after the last frame"
    with pytest.raises(ObservationLost, match="/front_camera/image"):
        env.step(expert.act(obs))
    time.sleep(0.5)  # the hold target is where the arm was: it stops
    assert np.linalg.norm(convert._xyz(env.link.twist.items[-1][1].twist.linear)) < 0.02


def _start(name: str, spec: NodeSpec, tmp: Path) -> subprocess.Popen:
    params = tmp / f"{name}.yaml"
    params.write_text(params_yaml(name, spec))
    return subprocess.Popen(node_command(name, spec, params), cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.slow
def test_graph_processes_learn_through_ros_and_the_actor_outlives_the_learner(tmp_path, ros):
    """sim_learn: twin, actor and learner as separate processes over DDS. Episodes land in the store, weight
    versions advance and reach the actor (it announces the version it acted with); killing the learner leaves
    the actor acting on its last weights."""
    executor, thread = ros
    probe = rclpy.create_node("probe")
    versions: list[int] = []
    probe.create_subscription(Int64, "/actor/weights_version", lambda m: versions.append(m.data), 10)
    executor.add_node(probe)
    thread.start()
    graph = load_graph("sim_learn")
    graph.nodes["twin"].parameters["speed"] = 3.0
    procs = {name: _start(name, spec, tmp_path) for name, spec in graph.nodes.items()}
    run = tmp_path / graph.nodes["actor"].parameters["run"]
    try:
        def alive(names=("twin", "actor", "learner")):
            dead = {n: procs[n].stderr.read()[-3000:] for n in names if procs[n].poll() is not None}
            assert not dead, f"graph node(s) exited: {dead}"

        wait_for(lambda: alive() or (versions and max(versions) >= 2), timeout=300)
        store = EpisodeStore(run / "episodes.zarr")
        assert store.n_episodes >= 2 and store.n_episodes >= len(versions)
        procs["learner"].send_signal(signal.SIGKILL)
        procs["learner"].wait()
        seen, last = len(versions), _latest(run)
        wait_for(lambda: alive(("twin", "actor")) or len(versions) >= seen + 2, timeout=120)
        assert versions[-1] == last  # acting on the last weights the learner published
        store.refresh()
        assert store.n_episodes >= seen + 2
    finally:
        _stop(procs.values())


def _latest(run: Path) -> int:
    try:
        return int((run / "weights" / "LATEST").read_text())
    except (FileNotFoundError, ValueError):
        return -1


def _run_launch_file(path: Path, monkeypatch, graph: str | None) -> tuple[list[dict], str]:
    """Execute a launch file with recording stand-ins for launch, launch_ros and ament_index_python: ROS 2's
    launch packages have no pip wheels, so this is the one boundary these tests cannot install. Returns the
    Node actions it made and its default graph."""
    import importlib.util
    import types

    made: list[dict] = []

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    def record(cls_name):
        return type(cls_name, (), {"__init__": lambda self, *a, **kw: self.__dict__.update(kw, args=a)})

    fakes = {
        "launch": {"LaunchDescription": record("LaunchDescription")},
        "launch.actions": {"DeclareLaunchArgument": record("DeclareLaunchArgument"), "OpaqueFunction": record("OpaqueFunction")},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration},
        "launch_ros.actions": {"Node": lambda **kw: made.append(kw)},
        "ament_index_python.packages": {"get_package_share_directory": lambda pkg: str(ROS_WS / "src" / pkg)},
    }
    for name, attrs in fakes.items():
        monkeypatch.setitem(__import__("sys").modules, name, types.SimpleNamespace(**attrs))
    spec = importlib.util.spec_from_file_location("launch_file", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    argument, opaque = description.args[0]
    opaque.function({"graph": graph or argument.default_value})
    return made, argument.default_value


HARDWARE_GRAPH = ROS_WS / "src/robotrl_bringup/config/hardware_pick.yaml"  # configs/graphs/hardware_pick.yaml


def _with_the_hardware_classifier(monkeypatch, tmp_path: Path) -> None:
    """The hardware graph names a classifier file (relative to where it is launched), which must exist to load it."""
    from test_hardware_graph import save_classifier

    monkeypatch.chdir(tmp_path)
    classifier = read_yaml(HARDWARE_GRAPH)["nodes"]["classifier"]["parameters"]
    save_classifier(tmp_path / classifier["model"], classifier["task_kwargs"])


@pytest.mark.parametrize("launch_file, graph, default", [("sim", "sim_pick", "sim_pick"), ("sim", "sim_learn", "sim_pick"), ("sim", "sim_hover", "sim_pick"),
                                                         ("hardware", None, str(HARDWARE_GRAPH))])
def test_the_launch_files_start_the_graph_nodes_with_their_parameters(launch_file, graph, default, monkeypatch, tmp_path):
    _with_the_hardware_classifier(monkeypatch, tmp_path)
    made, default_graph = _run_launch_file(ROS_WS / f"src/robotrl_bringup/launch/{launch_file}.launch.py", monkeypatch, graph)
    assert default_graph == default
    described = load_graph(graph or default).nodes
    assert len(made) == len(described)
    for node, (name, spec) in zip(made, described.items()):
        assert node["package"] == "robotrl_bringup" and node["executable"] == "robotrl_node"
        assert node["arguments"] == [spec.kind] and node["parameters"] == [spec.ros_parameters()] and node["name"] == name
        assert NODE_PARAMS[spec.kind].model_validate(spec.parameters) == from_ros(spec.kind, spec.ros_parameters())
        # `robotrl launch` starts the same node: same kind, name (as launch_ros passes it) and parameters.
        cmd = node_command(name, spec, tmp_path / "p.yaml")
        assert cmd[cmd.index("robotrl.ros.nodes") + 1] == spec.kind
        assert cmd[cmd.index("--ros-args"):].count(f"__node:={name}") == 1
        assert __import__("yaml").safe_load(params_yaml(name, spec)) == {name: {"ros__parameters": spec.ros_parameters()}}
    setup = (ROS_WS / "src/robotrl_bringup/setup.py").read_text()
    assert '"robotrl_node = robotrl.ros.nodes:main"' in setup


def test_a_node_process_takes_its_name_out_of_the_process_wide_remaps():
    """`-r __node:=<name>` (a launch file's Node(name=...)) would rename every node of the process; the process
    gives it to its main node only and keeps every other ROS argument."""
    args = ["--ros-args", "--params-file", "p.yaml", "-r", "__node:=picker", "--remap", "/a:=/b", "-r", "__ns:=/robot"]
    assert split_node_name("actor", args) == ("picker", ["--ros-args", "--params-file", "p.yaml", "--remap", "/a:=/b", "-r", "__ns:=/robot"])
    assert split_node_name("actor", ["--ros-args", "--remap", "__node:=x", "--", "-r", "__node:=y"]) == ("x", ["--ros-args", "--", "-r", "__node:=y"])
    assert split_node_name("twin", []) == ("twin", [])


@pytest.mark.parametrize("node, parameters, key", [
    ("twin", "{task: robotrl/ArmPickCube-v0, speed: fast}", "speed"),  # ran on for 20 s until killed, once
    ("actor", "{polcy: scripted, store: s.zarr}", "polcy"),
    ("actor", "{task: robotrl/ArmPickCube-v0, task_kwargs: {control_hz: -1}, store: s.zarr}", "task_kwargs"),
    ("actor", "{policy: learn, run: r, learner: {utd: zero}}", "utd"),
    ("camera", "{driver: kinect}", "driver"),
    ("classifier", "{model: runs/missing.pt}", "no classifier file runs/missing.pt"),
])
def test_robotrl_launch_of_a_graph_with_a_bad_parameter_names_file_node_and_key_and_spawns_nothing(tmp_path, node, parameters, key):
    store = tmp_path / "store.zarr"  # the actor would create it on start
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"nodes:\n  {node}:\n    kind: {node}\n    parameters: {parameters}\n"
                   f"  other:\n    kind: actor\n    parameters: {{store: {store}}}\n")
    res = subprocess.run([sys.executable, "-m", "robotrl.cli", "launch", str(bad), "--timeout", "30"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert str(bad) in res.stderr and f"node '{node}'" in res.stderr and key in res.stderr, res.stderr
    assert "robotrl launch:" not in res.stdout and not store.exists()  # nothing was started


def test_the_quadrotor_hovers_through_ros(ros):
    """QuadHover's twin behind the QuadNode topics: a position set point on /quad/cmd_pose brings it to a
    stable hover, seen on /quad/odom; a NaN set point is rejected and changes nothing."""
    from nav_msgs.msg import Odometry

    executor, thread = ros
    twin = TwinNode("robotrl/QuadHover-v0", speed=2.0)
    pilot = rclpy.create_node("pilot")
    odom: list = []
    pilot.create_subscription(Odometry, "/quad/odom", lambda m: odom.append(convert.quad_state(m)), qos_profile_sensor_data)
    setpoint = pilot.create_publisher(PoseStamped, "/quad/cmd_pose", COMMAND_QOS)
    for n in [*twin.nodes, pilot]:
        executor.add_node(n)
    thread.start()
    twin.start()
    try:
        goal = np.array([0.3, -0.2, 1.2])
        wait_for(lambda: setpoint.get_subscription_count() > 0 and odom)
        setpoint.publish(convert.pose_stamped(np.array([np.nan, 0, 1]), np.array([0, 0, 0, 1.0]), 0, "world"))
        wait_for(lambda: any("non-finite" in r for r in twin.devices[0].rejected))
        setpoint.publish(convert.pose_stamped(goal, np.array([0, 0, 0, 1.0]), 0, "world"))
        start = odom[-1].stamp_ns
        wait_for(lambda: odom[-1].stamp_ns - start > 6e9, timeout=30)  # 6 s of sim time
        last_second = [s for s in odom if s.stamp_ns > odom[-1].stamp_ns - 1e9]
        errors = [np.linalg.norm(s.pos - goal) for s in last_second]
        assert max(errors) < 0.1 and max(np.linalg.norm(s.vel) for s in last_second) < 0.2
        assert np.all(np.diff([s.stamp_ns for s in odom]) > 0)  # capture stamps, in order
    finally:
        twin.stop()


def test_episodes_on_a_robot_are_not_stored_as_the_twins(ros):
    from robotrl.runtime.actor import in_twin

    node = rclpy.create_node("provenance")
    envs = [RosEnv(node, PICK, twin=""), RosEnv(node, PICK), RosEnv(node, PICK, twin="", in_twin=True)]
    try:
        assert not in_twin(envs[0])  # a robot's: /arm/home starts its episodes
        assert in_twin(envs[1])  # the twin node's ~/reset starts them
        assert in_twin(envs[2])  # the twin serving as a bare robot
    finally:  # each env's topic reader is a node: left alive, it stays in the next test's graph
        for env in envs:
            env.close()
        node.destroy_node()


def test_a_latched_estop_refuses_homing_and_no_episode_starts_until_rearmed(ros, start_twin):
    """E-STOP goes to the device, not the actor: while latched, the arm's ~/home (what a robot's reset calls) is
    refused with the reason, RosEnv raises ResetFailed naming the service instead of starting an episode from
    wherever the arm stopped, and after ~/rearm the episode starts."""
    from std_srvs.srv import Trigger

    from robotrl.ros.ros_env import ResetFailed

    start_twin(PICK)
    executor, thread = ros
    actor = rclpy.create_node("actor")
    executor.add_node(actor)
    thread.start()
    env = RosEnv(actor, PICK, twin="")  # as on a robot: episodes start with /arm/home

    def call(service: str):
        client = actor.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=60)
        future = client.call_async(Trigger.Request())
        wait_for(future.done, timeout=10)
        return future.result()

    assert call("/arm/estop").success
    with pytest.raises(ResetFailed, match="/arm/home failed: .*E-STOP is latched"):
        env.reset()
    assert call("/arm/rearm").success
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)


def test_a_human_on_the_teleop_topics_takes_over_and_the_steps_are_flagged(ros, start_twin):
    from geometry_msgs.msg import Twist, Vector3
    from std_msgs.msg import Bool

    from robotrl.interventions import InterventionWrapper
    from robotrl.ros.teleop import RosTeleop

    start_twin(PICK)
    executor, thread = ros
    actor, human = rclpy.create_node("actor"), rclpy.create_node("human")
    for n in (actor, human):
        executor.add_node(n)
    thread.start()
    ros_env = RosEnv(actor, PICK)
    env = InterventionWrapper(ros_env, RosTeleop(actor, ros_env.task))
    active = human.create_publisher(Bool, "/teleop/active", COMMAND_QOS)
    twist = human.create_publisher(Twist, "/teleop/twist", COMMAND_QOS)
    obs, _ = env.reset()
    policy = np.array([0.0, 0.0, -1.0, 1.0], np.float32)  # the policy heads down; the human lifts
    _, _, _, _, info = env.step(policy)
    assert not info["intervention"]
    wait_for(lambda: active.get_subscription_count() > 0 and twist.get_subscription_count() > 0)
    z0 = env.unwrapped.state.ee_pos[2]
    for _ in range(5):
        active.publish(Bool(data=True))
        twist.publish(Twist(linear=Vector3(z=1.0)))
        time.sleep(0.05)
        _, _, _, _, info = env.step(policy)
        assert info["intervention"] and info["action"][2] == 1.0
    assert env.unwrapped.state.ee_pos[2] > z0 + 0.05  # the arm went up: the human's action was executed
    assert info["intervention_source"] == "teleop" and "teleop_age_ms" not in info  # plain topics: no device, no age
    time.sleep(0.6)  # the deadman lapses: the policy is back
    _, _, _, _, info = env.step(policy)
    assert not info["intervention"]

    # The typed command (the operator's page): its device and its age are recorded; a bad one never acts.
    command = human.create_publisher(convert.Teleop, "/teleop/command", COMMAND_QOS)
    wait_for(lambda: command.get_subscription_count() > 0)

    def send(device: str, active: bool, z: float) -> None:
        stamp = human.get_clock().now().nanoseconds - 20_000_000  # given at the device 20 ms ago
        command.publish(convert.teleop_msg(device, active, [0.0, 0.0, z], 0.0, None, stamp))
        time.sleep(0.05)

    send("mouse", True, 1.0)  # no such device
    send("spacemouse", True, 2.0)  # out of range
    _, _, _, _, info = env.step(policy)
    assert not info["intervention"]
    send("spacemouse", True, 1.0)
    _, _, _, _, info = env.step(policy)
    assert info["intervention"] and info["intervention_source"] == "spacemouse" and info["action"][2] == 1.0
    assert 20 <= info["teleop_age_ms"] < 2000, info["teleop_age_ms"]
    send("spacemouse", False, 0.0)  # release: the policy acts at the next step, not after the deadman
    _, _, _, _, info = env.step(policy)
    assert not info["intervention"]


def test_the_quadrotor_hovers_through_ros_and_the_mavlink_driver(ros):
    """The robot's path end to end: a ROS pilot -> QuadNode -> MavlinkQuadrotor -> MAVLink over UDP loopback ->
    the twin as a PX4-like vehicle. Arming goes through the node's ~/arm service; the twin's own state is checked."""
    from nav_msgs.msg import Odometry
    from std_srvs.srv import Trigger

    from robotrl.hardware.mavlink_quad import MavlinkQuadrotor
    from robotrl.ros.devices import QuadNode
    from robotrl.sim.mavlink_endpoint import TwinMavlinkVehicle
    from robotrl.sim.quad import QuadTwin

    port = free_udp_port()
    twin = QuadTwin("crazyflie")
    vehicle = TwinMavlinkVehicle(twin, f"udpout:127.0.0.1:{port}")
    quad = MavlinkQuadrotor(f"udpin:127.0.0.1:{port}", mass=twin.mass, max_thrust_n=twin.max_thrust)
    executor, thread = ros
    node = QuadNode(quad, rate_hz=50, max_thrust=twin.max_thrust)
    pilot = rclpy.create_node("pilot")
    odom: list = []
    pilot.create_subscription(Odometry, "/quad/odom", lambda m: odom.append(convert.quad_state(m)), qos_profile_sensor_data)
    setpoint = pilot.create_publisher(PoseStamped, "/quad/cmd_pose", COMMAND_QOS)
    arm = pilot.create_client(Trigger, "/quad/arm")
    for n in (node, pilot):
        executor.add_node(n)
    thread.start()
    try:
        goal = np.array([0.2, 0.1, 1.0])
        assert arm.wait_for_service(timeout_sec=10)
        future = arm.call_async(Trigger.Request())
        wait_for(future.done, timeout=15)
        assert future.result().success
        end = time.monotonic() + 25
        while time.monotonic() < end:  # a pilot streams set points at 20 Hz, as PX4 offboard requires
            setpoint.publish(convert.pose_stamped(goal, np.array([0, 0, 0, 1.0]), 0, "world"))
            truth = vehicle.truth
            if np.linalg.norm(truth.pos - goal) < 0.05 and np.linalg.norm(truth.vel) < 0.1:
                break
            time.sleep(0.05)
        assert np.linalg.norm(vehicle.truth.pos - goal) < 0.1, vehicle.truth.pos
        wait_for(lambda: odom and np.linalg.norm(odom[-1].pos - vehicle.truth.pos) < 0.05)  # /quad/odom is ENU truth
    finally:
        quad.close()
        vehicle.close()


UNCLEAN = ("already registered", "terminate called", "Traceback", "Fatal Python error")  # what a clean run never prints


@pytest.mark.slow
def test_robotrl_launch_runs_the_pick_graph_to_the_end_cleanly_with_unique_node_names(tmp_path, ros):
    """`robotrl launch sim_pick` as a user runs it: twin and actor as separate processes over DDS; the scripted
    expert picks the cube through ROS in every episode; the graph stops when the actor has done its episodes, and
    every process ends cleanly (exit 0, no rcl warning about a duplicate node name, no C++ abort at exit). While it
    runs, no two nodes of the graph share a name."""
    executor, thread = ros
    probe = rclpy.create_node("names_probe")
    executor.add_node(probe)
    thread.start()
    log = tmp_path / "launch.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "robotrl.cli", "launch", "sim_pick", "--timeout", "240"], cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    seen: set[tuple[str, str]] = set()
    try:
        end = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < end:
            names = [(ns, n) for n, ns in probe.get_node_names_and_namespaces() if n != "names_probe"]
            assert len(names) == len(set(names)), f"duplicate node names in the graph: {sorted(names)}"
            seen.update(names)
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert proc.wait() == 0, output
    assert not [u for u in UNCLEAN if u in output], output
    assert "when stopped" not in output, output  # every node the launcher stopped exited with 0
    assert {n for _, n in seen} >= {"twin", "arm", "actor", "actor_observations"}
    store = EpisodeStore(tmp_path / "runs/ros_pick/episodes.zarr")
    assert store.n_episodes == 3 and all(m.success for m in store.metas())


def test_a_stop_ends_a_ros_env_wait_at_once(ros):
    """RosEnv's ``stop`` event (the actor node sets it on SIGINT / SIGTERM) ends a wait for the robot with
    Stopped, not after the 60 s startup timeout."""
    executor, thread = ros
    node = rclpy.create_node("stopping_actor")
    executor.add_node(node)
    thread.start()
    stop = threading.Event()
    env = RosEnv(node, PICK, twin="/nobody", stop=stop, startup_timeout=60.0)
    threading.Timer(0.3, stop.set).start()
    t = time.monotonic()
    with pytest.raises(Stopped):
        env.reset()  # nobody serves /nobody/reset
    assert time.monotonic() - t < 30
    env.close()


@pytest.mark.slow
def test_node_processes_have_unique_node_names_and_stop_cleanly_on_sigint_and_sigterm(tmp_path, ros):
    """A twin, an actor acting forever and a ros2_control arm driver (against the twin's /joint_states, as on a
    robot): each helper node (the actor's topic reader, the driver's client) has a name of its own, and SIGINT or
    SIGTERM (what ros2 launch sends) stops each process with exit code 0 and nothing unclean in its output."""
    executor, thread = ros
    probe = rclpy.create_node("names_probe")
    episodes: list[int] = []
    probe.create_subscription(Int64, "/actor/weights_version", lambda m: episodes.append(m.data), 10)
    executor.add_node(probe)
    thread.start()
    pick = load_graph("sim_pick").nodes
    specs = {"twin": pick["twin"], "actor": NodeSpec(kind="actor", parameters={**pick["actor"].parameters, "episodes": 0}),
             "robot_arm": NodeSpec(kind="arm")}
    procs = {}
    for name, spec in specs.items():
        (tmp_path / f"{name}.yaml").write_text(params_yaml(name, spec))
        with (tmp_path / f"{name}.log").open("w") as out:
            procs[name] = subprocess.Popen(node_command(name, spec, tmp_path / f"{name}.yaml"), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    expected = {"twin", "arm", "actor", "actor_observations", "robot_arm", "robot_arm_ros2_control"}
    try:
        def names() -> list[str]:
            dead = {n: (tmp_path / f"{n}.log").read_text()[-3000:] for n, p in procs.items() if p.poll() is not None}
            assert not dead, f"node process(es) exited: {dead}"
            return [n for n, _ in probe.get_node_names_and_namespaces() if n != "names_probe"]

        wait_for(lambda: set(names()) >= expected and episodes, timeout=180)  # up, and the actor has ended an episode
        seen = Counter(names())  # each once (a stale name another test's process left behind may linger in DDS)
        assert {n: seen[n] for n in expected} == dict.fromkeys(expected, 1), sorted(seen.elements())
    finally:
        for name, sig in (("actor", signal.SIGTERM), ("robot_arm", signal.SIGTERM), ("twin", signal.SIGINT)):
            procs[name].send_signal(sig)
        codes = exit_codes(procs)
    logs = {n: (tmp_path / f"{n}.log").read_text() for n in procs}
    assert codes == {"twin": 0, "actor": 0, "robot_arm": 0}, logs
    assert not {n: u for n, log in logs.items() for u in UNCLEAN if u in log}, logs
    assert EpisodeStore(tmp_path / pick["actor"].parameters["store"]).n_episodes >= 1  # closed cleanly on SIGTERM


@pytest.mark.slow
def test_the_quad_expert_hovers_through_ros_env_and_a_silent_odom_means_hover_then_land(ros, start_twin):
    """QuadHover through RosEnv (CTBR at 50 Hz over /quad/ctbr): the scripted pilot succeeds. Then the twin's
    process freezes (SIGSTOP: odometry silent): the actor commands hover at once and, as the hold lasts, land;
    when the process runs again it executes them and the quadrotor comes down."""
    twin = start_twin("robotrl/QuadHover-v0")
    executor, thread = ros
    actor = rclpy.create_node("actor")
    executor.add_node(actor)
    thread.start()
    env = RosEnv(actor, "robotrl/QuadHover-v0", max_obs_age=0.5)  # tolerant of a loaded CI machine; the
    env.link.land_after = 0.5                                     # hold's timing is tested on the arm above
    expert, info = make_expert(env), {}
    for _attempt in range(3):  # as the actor node does, an episode cut by a transport hiccup is flown again
        try:
            obs, _ = env.reset()
            expert.reset()
            done = False
            while not done:
                obs, reward, terminated, truncated, info = env.step(expert.act(obs))
                done = terminated or truncated
            break
        except ObservationLost:
            wait_for(lambda: env.silent is None)
    assert info.get("success"), "the scripted pilot did not hover through ROS"
    twin.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: any("/quad/odom silent" in r for _, r in env.holds), timeout=5)
        wait_for(lambda: any("landing" in r for _, r in env.holds), timeout=5)
    finally:
        twin.send_signal(signal.SIGCONT)
    wait_for(lambda: env.link.odom.items and env.link.odom.items[-1][1].pose.pose.position.z < 0.1, timeout=20)


@pytest.mark.slow
def test_the_waypoints_expert_flies_the_twins_waypoints_through_ros(ros, start_twin):
    """QuadWaypoints through RosEnv: the goals come from the twin on /goals/waypoint<i>/pose (the waypoints the
    twin drew for that episode, not any the actor makes up), and the scripted pilot passes all of them in 3 of 3
    episodes."""
    task = "robotrl/QuadWaypoints-v0"
    start_twin(task, seed=0)
    executor, thread = ros
    actor = rclpy.create_node("actor")
    executor.add_node(actor)
    thread.start()
    env = RosEnv(actor, task, max_obs_age=0.5)  # tolerant of a loaded CI machine
    reference = gym.make(task).unwrapped  # the twin's draws: episode k of the twin node resets with seed k
    expert, flown = make_expert(env), []
    while len(flown) < 3:
        try:
            obs, _ = env.reset()
            expert.reset()
            done, info = False, {}
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done = terminated or truncated
            flown.append((env.goals, info))
        except ObservationLost:  # a transport hiccup cut the episode: fly another, as the actor node does
            wait_for(lambda: env.silent is None)
    drawn = []
    for seed in range(1, 20):
        reference.reset(seed=seed)
        drawn.append(reference.goals)
    for goals, info in flown:
        assert any(all(np.allclose(goals[k], d[k], atol=1e-9) for k in goals) for d in drawn), "not the twin's waypoints"
        assert info["success"] and info["waypoints_reached"] == 3, info
    assert len({tuple(g["waypoint0"]) for g, _ in flown}) == 3  # a new draw every episode
    env.close()


def test_a_realsense_640x480_frame_reaches_the_policy_cropped_to_the_tasks_image_size(ros, start_twin):
    """A 640x480 frame from the RealSense driver (the SDK's software device) goes out on /front_camera/image
    through a CameraNode at full size; RosEnv's observation processor crops it as the task config says and
    resizes it to the policy's image size, exactly as the twin env would."""
    pytest.importorskip("pyrealsense2")
    from test_realsense import SERIAL, SoftwareRealSense

    from robotrl.hardware.realsense import RealSenseCamera
    from robotrl.ros.devices import CameraNode
    from robotrl.tasks.observation import crop_resize

    start_twin(PICK)  # the arm and the cube; the camera is the RealSense, not the twin's
    device = SoftwareRealSense(color_size=(640, 480))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :160] = (255, 0, 255)  # the strip the crop cuts away
    frame[:240, 160:400], frame[:240, 400:], frame[240:, 160:400], frame[240:, 400:] = (200, 0, 0), (0, 200, 0), (0, 0, 200), (90, 90, 90)
    pushing = threading.Event()
    pushing.set()

    def push():
        while pushing.is_set():
            device.push(frame)
            time.sleep(1 / 30)

    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    try:
        camera = RealSenseCamera(SERIAL, width=640, height=480, fps=30, devices=[device.device], name="front")
        executor, thread = ros
        actor = rclpy.create_node("actor")
        for n in (CameraNode(camera, rate_hz=30), actor):
            executor.add_node(n)
        thread.start()
        crop = (0.25, 0.0, 1.0, 1.0)  # the right 480 x 480 of the frame
        env = RosEnv(actor, PICK, {"observation": {"cameras": ["front"], "image_size": 64, "crop": {"front": list(crop)}}},
                     max_obs_age=1.0)
        obs, _ = env.reset()
        obs, *_ = env.step(env.task.neutral_action())
        assert env._images["front"].items[-1][1].shape == (480, 640, 3)  # full size on the topic
        image = obs["images/front"]
        assert image.shape == (64, 64, 3) and env.observation_space["images/front"].shape == (64, 64, 3)
        np.testing.assert_array_equal(image, crop_resize(frame, crop, 64))
        assert not np.any(np.all(image == (255, 0, 255), axis=-1))  # nothing of the cropped-away strip
        np.testing.assert_array_equal(image[0, 0], (200, 0, 0))
        np.testing.assert_array_equal(image[-1, -1], (90, 90, 90))
        env.close()
    finally:
        pushing.clear()
        pusher.join(timeout=2)


@pytest.mark.slow
def test_the_robots_policy_path_imports_no_mujoco(tmp_path):
    """What runs on a robot -- RosEnv, the actor node's modules and a trained policy from a run folder, the learner
    node's replay and algorithm -- in a fresh interpreter: building them and acting imports no MuJoCo (the spaces
    come from the task config, not from a twin)."""
    from robotrl.runtime.train import RunConfig, train

    run = tmp_path / "run"
    train(RunConfig(env=PICK, learner={"hidden": 32, "batch_size": 8, "device": "cpu"}, total_steps=20, random_steps=10,
                    eval_episodes=1), run, progress=False)
    code = f"""
import sys
import rclpy
import robotrl.ros.nodes  # the actor node's process; actor_main imports the modules below
from robotrl.data import EpisodeStore
from robotrl.learners import make_algorithm
from robotrl.policies import Deterministic
from robotrl.ros.ros_env import RosEnv
from robotrl.runtime.actor import Actor
from robotrl.runtime.train import learner_setup, load_algorithm
from robotrl.tasks.experts import make_expert
from pathlib import Path

rclpy.init()
node = rclpy.create_node("actor")
env = RosEnv(node, {PICK!r})
policy = Deterministic(load_algorithm({str(run)!r})[0].policy)
policy.reset()
assert policy.act(env.observation_space.sample()).shape == env.action_space.shape
make_expert(env).act(env.observation_space.sample())
learner, _ = learner_setup(Path({str(run)!r}))  # the learner node: algorithm and replay rebuilt from the run folder
env.close()
node.destroy_node()
rclpy.shutdown()
assert "mujoco" not in sys.modules, "mujoco imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_device_nodes_limits_are_the_robot_configs(ros, monkeypatch, tmp_path):
    """The twin's arm node rejects targets outside the robot config's workspace (the box the arm task's filter
    defaults to) and its quad node rates beyond the airframe's; the hardware graph's arm node and its actor's task
    name the same robot config."""
    from robotrl.robots import ArmParams, QuadParams

    arm_twin, quad_twin = TwinNode(PICK, name="twin_arm"), TwinNode("robotrl/QuadHover-v0", name="twin_quad")
    try:
        panda, crazyflie = ArmParams.load("panda"), QuadParams.load("crazyflie")
        np.testing.assert_array_equal(np.stack(arm_twin.arm_node.workspace), np.stack(panda.workspace))
        task_filter = arm_twin.env.task.safety_filter()
        np.testing.assert_array_equal(np.stack(arm_twin.arm_node.workspace), np.stack([task_filter._lo, task_filter._hi]))
        assert quad_twin.devices[0].max_body_rate == crazyflie.max_body_rate
        _with_the_hardware_classifier(monkeypatch, tmp_path)
        hardware = load_graph(HARDWARE_GRAPH).nodes
        actor = hardware["actor"].validated()
        from robotrl.tasks import make_task

        assert hardware["arm"].validated().robot == make_task(actor.task, **actor.task_kwargs).config.robot
    finally:
        for twin in (arm_twin, quad_twin):
            twin.env.close()
            for node in twin.nodes:
                node.destroy_node()


def test_a_node_started_by_hand_with_a_bad_parameter_stops_naming_it():
    res = subprocess.run([sys.executable, "-m", "robotrl.ros.nodes", "twin", "--ros-args", "-p", "speed:=fast"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "twin node twin" in res.stderr and "parameter speed" in res.stderr, res.stderr


def test_a_deployable_actor_takes_its_reward_from_a_judge_topic_and_tracks_no_object(ros, start_twin):
    """ArmPickCube from proprioception and a camera, judged by whoever publishes robotrl_interfaces/Judgement on
    /classifier/judgement (here a stand-in judging every arm reading, success from a stamp the test sets): RosEnv
    reads no /objects topic, its observation holds no privileged key, and reward, success and the end of the
    episode are the judge's; the judgement it used goes out on the actor's ~/judgement with its source."""
    from sensor_msgs.msg import JointState

    from robotrl.config import config_path

    start_twin(PICK, task_kwargs={"observation": {"cameras": ["front"], "image_size": 32}}, objects=False)  # a bare robot
    executor, thread = ros
    actor, judge = rclpy.create_node("actor"), rclpy.create_node("classifier")
    published, used, success_from = judge.create_publisher(convert.Judgement, "/classifier/judgement", 10), [], [np.inf]

    def on_reading(msg: JointState) -> None:
        t = convert.from_time(msg.header.stamp)
        win = t >= success_from[0]
        published.publish(convert.judgement_msg(t, float(win), win, False, {}, "classifier"))

    judge.create_subscription(JointState, "/arm/joint_states", on_reading, qos_profile_sensor_data)
    actor.create_subscription(convert.Judgement, "/actor/judgement", lambda m: used.append(convert.judgement(m)), 10)
    for n in (actor, judge):
        executor.add_node(n)
    thread.start()
    env = RosEnv(actor, PICK, {"config": str(config_path("arm_pick_cube_pixels", "tasks")),
                               "observation": {"cameras": ["front"], "image_size": 32}}, judge="/classifier/judgement",
                 max_obs_age=1.0)
    assert env.tracked == () and not any(t.startswith("/objects/") for t in env.topics)
    obs, _ = env.reset()
    assert set(obs) == {"state/ee_pos", "state/ee_vel", "state/gripper", "images/front"}
    _, reward, terminated, _, info = env.step(env.task.neutral_action())
    assert reward == 0.0 and not terminated and not info["success"]
    success_from[0] = env.state.stamp_ns + 1  # the judge calls every later reading a success
    _, reward, terminated, _, info = env.step(env.task.neutral_action())
    assert reward == 1.0 and terminated and info["success"] and set(info["costs"]) == set(env.task.limits)
    wait_for(lambda: len(used) >= 2)
    assert [j.source for j in used[:2]] == ["classifier", "classifier"] and used[1].stamp_ns == env.state.stamp_ns
    topics = [name for name, _ in actor.get_topic_names_and_types()]
    assert "/arm/joint_states" in topics and not any(t.startswith("/objects/") for t in topics)  # none served
    env.close()
