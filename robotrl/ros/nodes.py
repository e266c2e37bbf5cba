"""The processes of a robotrl graph, one per node kind: ``python -m robotrl.ros.nodes <kind> [--ros-args ...]``.

    twin     the MuJoCo twin serving the device topics (robotrl.ros.twin_node)
    camera   a hardware camera (driver: realsense | opencv) behind a CameraNode; name it <camera>_camera
    arm      a ros2_control arm (hardware.Ros2ControlArm: /joint_states in, a position controller out) behind an ArmNode
    quad     a PX4 / ArduPilot quadrotor over MAVLink behind a QuadNode
    actor    RosEnv + policy + watchdog + episode store. ``policy``: scripted (the task's expert), a run folder
             (the trained policy of any learner), or learn: act for a learner node in ``run``, whose learner is
             ``algo`` (sac, bc) with ``learner`` overrides and optional ``demos``
    learner  trains from the actor's store and publishes weight versions (``~/weights_version``)
    classifier  a reward classifier judging the task's camera frames: robotrl_interfaces/Judgement on ``~/judgement``
             (robotrl.ros.classifier_node), an actor's ``judge`` on a robot
    ui       the operator's page (robotrl.ros.ui_node): cameras, take-over on /teleop/command, labels, scene ready, pause
             learning, E-STOP straight to the devices' ~/estop, /operator/hold for the actor

Parameters are ROS parameters (``ros2 param list`` shows them), validated by the node kind's model in
robotrl.ros.params, the same that validates a graph file (configs/graphs/*.yaml) before anything starts;
mappings and lists (``task_kwargs``, ``learner``, ``joint_names``) travel as YAML text, because ROS parameters
have no dict type. ``max_obs_age`` 0 means 1.5 control periods. With ``teleop`` the
actor merges a human's /teleop/* input (robotrl.ros.teleop); intervened steps are flagged in the store. Every actor
records the operator's /operator/label into its store; with ``wait_ready`` it homes the arm and waits for the
operator's /operator/ready before each episode, and steps nothing while /operator/hold says so (robotrl.ros.operator).

A node is named as in any ROS launch file, ``--ros-args -r __node:=<name>`` (default: the kind); that name goes
to the process's main node only, and helper nodes are named after it (``<name>_observations``, the actor's
topic reader; ``<name>_ros2_control``, the arm driver's client), so every name in the graph is unique.
SIGINT and SIGTERM (what ``ros2 launch`` sends) stop a process cleanly: its work ends (an actor between steps, a
learner with a checkpoint), its executor thread is joined, its nodes are destroyed and the context is shut down.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import robotrl  # noqa: F401  first: registers the tasks, selects headless GL

import rclpy
from pydantic import ValidationError
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Int64

from robotrl.config import describe_error
from robotrl.ros.params import NODE_PARAMS, NodeParams, from_ros, to_ros

STOPPING = threading.Event()  # set by SIGINT / SIGTERM: every node process's main loop ends when it is set

def declared(node: Node, kind: str) -> NodeParams:
    """Declare ``kind``'s parameters on ``node`` (``ros2 param list`` shows them) and return them validated by the
    kind's model (robotrl.ros.params), the one that validated the graph file; a bad value stops the process with
    the node, the key and the rule."""
    model = NODE_PARAMS[kind]
    defaults = {k: v for k, v in to_ros(model.model_construct()).items() if k in model.model_fields
                and not model.model_fields[k].is_required()}
    dynamic = ParameterDescriptor(dynamic_typing=True)  # the model checks types, with better messages than rcl
    values = {}
    for name in model.model_fields:
        value = node.declare_parameter(name, defaults.get(name), dynamic).value
        if value is not None:
            values[name] = value
    try:
        return from_ros(kind, values)
    except ValidationError as exc:
        raise SystemExit(f"{kind} node {node.get_name()}: " + "; ".join(describe_error(e, "parameter ") for e in exc.errors())) from None


def split_node_name(kind: str, args: list[str]) -> tuple[str, list[str]]:
    """(this process's node name, its ROS arguments less the remap that named it).

    A launch file's ``Node(name=...)`` and ``robotrl launch`` name a node with ``-r __node:=<name>``, which rcl
    applies to every node of the process: the actor's topic reader and the arm's ros2_control client took the
    main node's name, and rcl warned "Publisher already registered for node name". Taken out of the process-wide
    arguments, the name goes to the main node alone. Other remaps (topics, ``__ns``) still apply to every node."""
    name, rest, in_ros_args = kind, [], False
    it = iter(args)
    for arg in it:
        if arg == "--ros-args":
            in_ros_args = True
        elif arg == "--":
            in_ros_args = False
        elif in_ros_args and arg in ("-r", "--remap"):
            rule = next(it, None)
            if rule is not None and rule.startswith("__node:="):
                name = rule.removeprefix("__node:=")
                continue
            rest += [arg] if rule is None else [arg, rule]
            continue
        rest.append(arg)
    return name, rest


def parameters_before_node(name: str, kind: str) -> NodeParams:
    """The parameters of a process whose node needs them to be built: read through a short-lived node of the
    same name (so the params file applies to it), destroyed before the real one exists."""
    probe = Node(name)
    params = declared(probe, kind)
    probe.destroy_node()
    return params


class BackgroundExecutor(SingleThreadedExecutor):
    """A SingleThreadedExecutor spinning its nodes in a thread of its own until ``shutdown()``, which stops and
    joins that thread. A daemon thread that returns from an rclpy wait while the interpreter finalizes is ended
    by pthread_exit inside rclpy's C++ frames, which cannot unwind: the process aborts with "terminate called
    without an active exception" (the twin did, on every stop). So every node process shuts its executors down
    before it ends (``main`` does it for any left)."""

    running: list["BackgroundExecutor"] = []  # not yet shut down, in this process

    def __init__(self, *nodes: Node):
        super().__init__()
        for n in nodes:
            self.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True, name="ros-executor")
        self._thread.start()
        BackgroundExecutor.running.append(self)

    def _spin(self) -> None:
        try:
            self.spin()
        except ExternalShutdownException:  # the context was shut down under it: a stop too
            pass

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        done = super().shutdown(timeout_sec)  # flags the shutdown and wakes the wait; the spin loop then returns
        self._thread.join(timeout_sec)  # any callback in progress finishes first
        if self in BackgroundExecutor.running:
            BackgroundExecutor.running.remove(self)
        return done and not self._thread.is_alive()


def spin_in_background(*nodes: Node) -> BackgroundExecutor:
    # One thread: rclpy's MultiThreadedExecutor hands every message to a thread pool, which at the 100 Hz x 5
    # topics an actor reads cost a whole core in futex traffic and starved the twin on 2 cores. Callbacks here
    # only store messages or serve short services, so one thread keeps up.
    return BackgroundExecutor(*nodes)


# -- twin ------------------------------------------------------------------------------------------------------
def twin_main(name: str) -> None:
    from robotrl.ros.twin_node import TwinNode

    p = parameters_before_node(name, "twin")
    twin = TwinNode(p.task, p.task_kwargs, p.speed, p.seed, p.rate_hz, p.camera_hz, name=name, objects=p.objects)
    declared(twin, "twin")  # visible to `ros2 param list` on the serving node
    executor = spin_in_background(*twin.nodes)
    try:
        twin.start()
        twin.get_logger().info(f"serving {p.task} at {p.speed}x real time")
        _wait_for_shutdown()
    finally:
        executor.shutdown()  # first: a reset being served waits for the physics thread
        twin.stop()


# -- hardware drivers ------------------------------------------------------------------------------------------
def camera_main(name: str) -> None:
    from robotrl.ros.devices import CameraNode

    p = parameters_before_node(name, "camera")
    if p.driver == "realsense":
        from robotrl.hardware.realsense import RealSenseCamera

        camera = RealSenseCamera(p.serial or None, width=p.width, height=p.height, fps=p.fps, depth=p.depth, name=p.camera)
    else:  # opencv: the parameter model allows nothing else
        from robotrl.hardware.opencv_camera import OpenCVCamera

        source = int(p.source) if p.source.isdigit() else p.source
        camera = OpenCVCamera(source, width=p.width, height=p.height, fps=p.fps, name=p.camera)
    node = CameraNode(camera, name=name, rate_hz=p.fps)
    declared(node, "camera")
    spin_in_background(node)
    _wait_for_shutdown()  # then destroying the node (rclpy.try_shutdown) stops its capture thread, which closes the camera


def arm_main(name: str) -> None:
    from robotrl.hardware.ros2_control_arm import Ros2ControlArm
    from robotrl.robots import ArmParams
    from robotrl.ros.devices import ArmNode

    p = parameters_before_node(name, "arm")
    client = Node(f"{name}_ros2_control")  # the driver's subscriptions live on their own node, spun with ArmNode's
    arm = Ros2ControlArm(client, joint_names=p.joint_names or None,
                         interface=p.interface, controller=p.controller or None, gripper_joint=p.gripper_joint or None,
                         gripper_range=tuple(p.gripper_range), gripper_topic=p.gripper_topic or None)
    node = ArmNode(arm, name=name, rate_hz=p.rate_hz, workspace=ArmParams.load(p.robot).workspace)
    declared(node, "arm")
    spin_in_background(node, client)
    _wait_for_shutdown()


def quad_main(name: str) -> None:
    from robotrl.hardware.mavlink_quad import MavlinkQuadrotor
    from robotrl.ros.devices import QuadNode
    from robotrl.robots import QuadParams

    p = parameters_before_node(name, "quad")
    params = QuadParams.load(p.robot)
    quad = MavlinkQuadrotor(p.connection, mass=params.mass, max_thrust_n=params.max_thrust, flavour=p.flavour)
    node = QuadNode(quad, name=name, rate_hz=p.rate_hz, max_thrust=params.max_thrust, max_body_rate=params.max_body_rate)
    declared(node, "quad")
    executor = spin_in_background(node)
    try:
        _wait_for_shutdown()
    finally:
        executor.shutdown()  # no timer reads the link while it closes
        quad.close()


# -- actor -----------------------------------------------------------------------------------------------------
def actor_main(name: str) -> None:
    from robotrl.data import EpisodeStore
    from robotrl.learners import make_algorithm
    from robotrl.policies import Deterministic
    from robotrl.tasks.experts import make_expert
    from robotrl.ros import convert
    from robotrl.ros.devices import COMMAND_QOS
    from robotrl.ros.ros_env import ObservationLost, ResetFailed, RosEnv, Stopped
    from robotrl.runtime.actor import Actor
    from robotrl.runtime.train import RunConfig, checkpoint_path, describe_checkpoint, load_algorithm, save_run
    from robotrl.runtime.transport import FileWeights

    from robotrl.ros.operator import HOLD_TOPIC, READY_TOPIC, OperatorFlag, OperatorLabels

    node = Node(name)
    p = declared(node, "actor")
    executor = spin_in_background(node)
    env = RosEnv(node, p.task, p.task_kwargs, twin=p.twin, max_obs_age=p.max_obs_age, stop=STOPPING, judge=p.judge,
                 ready=READY_TOPIC if p.wait_ready else "", in_twin=p.in_twin)
    ros_env = env
    if p.teleop:
        from robotrl.interventions import InterventionWrapper
        from robotrl.ros.teleop import RosTeleop

        env = InterventionWrapper(env, RosTeleop(node, env.task))
    transport, run = None, Path(p.run) if p.run else None
    if p.policy == "scripted":
        policy = make_expert(env)
    elif p.policy == "learn":  # act for a learner node (in ``run``): fresh weights now, the learner's as they come
        cfg = RunConfig(env=p.task, env_kwargs=p.task_kwargs, algo=p.algo,
                        learner=p.learner, demos=p.demos or None, seed=p.seed)
        save_run(cfg, run)
        policy = make_algorithm(cfg.algo, env.observation_space, env.action_space, cfg.learner, cfg.seed).policy
        transport = FileWeights(run / "weights")
    else:  # a run folder (any learner): its best.pt (else checkpoint.pt) or, with checkpoint "last", checkpoint.pt
        node.get_logger().info(f"policy: {describe_checkpoint(checkpoint_path(p.policy, p.checkpoint))}")
        # The spaces are RosEnv's: no twin is built to load a policy. Deployed, it acts on its mode, as `robotrl
        # eval` measured it; exploration noise belongs to "learn".
        policy = Deterministic(load_algorithm(p.policy, p.checkpoint, env.observation_space, env.action_space)[0].policy)
    store_path = Path(p.store) if p.store else run / "episodes.zarr"  # the parameter model asks for one of them
    store = EpisodeStore(store_path, mode="a")
    labels = OperatorLabels(node, store)  # before the actor's first reset, which may wait for the operator
    hold = OperatorFlag(node, HOLD_TOPIC, default=False)
    ros_env.idle = labels.apply  # labels given while the actor waits for the operator's ready land at once
    try:
        actor = Actor(env, policy, store, p.task, transport, random_steps=p.random_steps, poll_every=10, seed=p.seed)
        labels.actor = actor
        versions = node.create_publisher(Int64, "~/weights_version", 10)
        steps = node.create_publisher(convert.ActorStep, "~/step", COMMAND_QOS)
        node.get_logger().info(f"acting on {p.task} with policy {p.policy!r}, episodes into {store_path}")
        while not STOPPING.is_set() and (p.episodes <= 0 or actor.episodes < p.episodes):
            if hold.value:  # the operator holds the robot: keep what was recorded, step nothing until released
                if actor.recording and actor.cut_episode() is not None:
                    node.get_logger().warning("robot held by the operator: the episode in progress is stored as it stands")
                labels.apply()
                time.sleep(0.02)
                continue
            try:
                episode = actor.episodes  # the index the episode of this step gets (step() may begin it)
                done = actor.step()
                info, proposed = actor.last_info, actor.last_policy_action
                steps.publish(convert.actor_step_msg(ros_env.state.stamp_ns, episode, actor.episode_step, proposed,
                                                     info.get("action", proposed), actor.last_source,
                                                     info.get("intervention_rate", 0.0)))
            except ObservationLost as lost:  # the watchdog already held the robot; drop the episode, wait, go on
                node.get_logger().error(f"episode dropped: {lost}")
                while env.unwrapped.silent and not STOPPING.is_set():
                    time.sleep(0.05)
                labels.dropped()
                actor.drop_episode()
                continue
            except ResetFailed as failed:  # e.g. homing refused while E-STOP is latched: no episode until it works
                node.get_logger().error(f"{failed}; trying again every second", throttle_duration_sec=10.0)
                STOPPING.wait(1.0)
                continue
            labels.apply()
            if done is not None:
                meta, judged = done["meta"], done["rows"].get("classifier/success")
                versions.publish(Int64(data=actor.weights_version))
                verdict = f"success {meta.success}" if judged is None else f"classifier success {bool(judged[-1])}"
                node.get_logger().info(f"episode {done['index']}: {verdict}, return {meta.ret:.2f}, "
                                       f"weights v{actor.weights_version}")
    except Stopped:  # the signal came while a step (or the first reset) waited for the robot
        pass
    finally:
        executor.shutdown()  # first: the watchdog would hold on the topics the stopping graph leaves silent
        store.close()
        env.close()


# -- classifier ------------------------------------------------------------------------------------------------
def classifier_main(name: str) -> None:
    import torch

    from robotrl.ros.classifier_node import ClassifierJudge

    # One frame at a time through a small CNN: one thread. With two on a busy 2-core machine a judgement took 150 ms
    # (OpenMP workers spinning for each other) instead of 1 ms, and the actor's watchdog found the topic silent.
    torch.set_num_threads(1)
    node = Node(name)
    p = declared(node, "classifier")
    executor = spin_in_background(node)  # parameter services; the frames are read in this thread (TopicReader)
    judge = ClassifierJudge(node, p.task, p.task_kwargs, p.model, None if p.threshold < 0 else p.threshold, p.rate_hz)
    node.get_logger().info(f"judging {', '.join(judge.cameras)} with {p.model} (threshold {judge.model.threshold:.3f}) "
                           f"on {node.resolve_topic_name('~/judgement')}")
    try:
        while not STOPPING.is_set():
            judge.poll(0.1)
    finally:
        executor.shutdown()
        judge.close()


# -- learner ---------------------------------------------------------------------------------------------------
class AnnouncedWeights:
    """A weights transport that also announces each version on a topic, so the graph sees learning advance."""

    def __init__(self, inner, node: Node):
        self.inner, self._pub = inner, node.create_publisher(Int64, "~/weights_version", 10)

    def publish(self, version: int, weights) -> None:
        self.inner.publish(version, weights)
        self._pub.publish(Int64(data=version))

    def poll(self, have: int):
        return self.inner.poll(have)


def learner_main(name: str) -> None:
    from robotrl.ros.operator import LEARNING_TOPIC, OperatorFlag
    from robotrl.runtime.learner import serve
    from robotrl.runtime.train import _flush_denormals, learner_setup
    from robotrl.runtime.transport import FileWeights

    node = Node(name)
    p = declared(node, "learner")
    learning = OperatorFlag(node, LEARNING_TOPIC, default=True)
    spin_in_background(node)
    run = Path(p.run)
    deadline = time.monotonic() + p.wait_s
    while not ((run / "run.yaml").exists() and (run / "episodes.zarr").exists()):  # the actor creates both
        if STOPPING.is_set():
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"learner: no {run}/run.yaml and episodes.zarr after {p.wait_s} s; is the actor running with run={run}?")
        time.sleep(0.2)
    _flush_denormals()
    learner, resumed = learner_setup(run)
    node.get_logger().info(resumed)
    learner.transport = AnnouncedWeights(FileWeights(run / "weights"), node)
    node.get_logger().info(f"learning from {run / 'episodes.zarr'}")
    serve(learner, run / "episodes.zarr", run / "checkpoint.pt", _StopFile(run / "STOP"), paused=lambda: not learning.value)


class _StopFile:
    """serve() ends, checkpoint saved, once ``stop_file.exists()``: the STOP file, or SIGINT / SIGTERM too."""

    def __init__(self, path: Path):
        self.path = path

    def exists(self) -> bool:
        return STOPPING.is_set() or self.path.exists()


# -- the operator's page ---------------------------------------------------------------------------------------
def ui_main(name: str) -> None:
    from robotrl.ros.ui_node import UiBridge
    from robotrl.ui.server import UiServer

    node = Node(name)
    p = declared(node, "ui")
    bounds = None
    if p.robot:
        from robotrl.robots import ArmParams

        lo, hi = ArmParams.load(p.robot).workspace
        bounds = {"min": list(map(float, lo)), "max": list(map(float, hi))}
    bridge = UiBridge(node, p.devices, p.cameras, p.ee_pose, p.judgement, None if p.threshold < 0 else p.threshold,
                      p.actor, bounds, p.teleop_hz, p.scene_reset)
    executor = spin_in_background(node)
    run = Path(p.run) if p.run else None
    server = UiServer(bridge.console, bridge.frames, p.host, p.port, p.token or None, run_dir=run,
                      store=run / "episodes.zarr" if run else None).start()
    node.get_logger().info(f"operator page: {server.url}")
    feed = None
    if p.spacemouse:
        from robotrl.ui.spacemouse import SpaceMouse, SpaceMouseFeed

        feed = SpaceMouseFeed(SpaceMouse(), bridge.console)
    try:
        _wait_for_shutdown()
    finally:
        if feed is not None:
            feed.close()
            feed.reader.close()
        server.stop()
        bridge.close()
        executor.shutdown()


def _wait_for_shutdown() -> None:
    while not STOPPING.wait(0.1):
        pass


MAINS = {"twin": twin_main, "camera": camera_main, "arm": arm_main, "quad": quad_main, "actor": actor_main, "learner": learner_main,
         "classifier": classifier_main, "ui": ui_main}


def _on_stop_signal(_signum: int, _frame) -> None:
    # Only a flag, which the main loops check: an exception raised here (KeyboardInterrupt) would surface wherever
    # the main thread is, e.g. inside rclpy's C++ converting a message, which turns it into a RuntimeError. Later
    # signals (Ctrl-C reaches every process of a launch and the launcher signals them too; ros2 launch escalates
    # SIGINT to SIGTERM) change nothing; a stop that hangs ends with the launchers' SIGKILL, 10 s after SIGINT.
    STOPPING.set()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in MAINS or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv and argv[0] in ("-h", "--help") else 2)
    name, ros_args = split_node_name(argv[0], argv[1:])
    # Our signal handlers, not rclpy's: rclpy's shuts the context down inside the handler, under threads still
    # using it. Ours ask the main loop to end; the node's work then ends in order, and the teardown below runs.
    signal.signal(signal.SIGINT, _on_stop_signal)
    signal.signal(signal.SIGTERM, _on_stop_signal)
    rclpy.init(args=["robotrl", *ros_args], signal_handler_options=SignalHandlerOptions.NO)
    try:
        MAINS[argv[0]](name)
    finally:
        for executor in list(BackgroundExecutor.running):
            executor.shutdown()
        context = rclpy.get_default_context()
        rclpy.try_shutdown()  # destroys every node of the process, then shuts the context down
        context.destroy()  # its DDS participant goes now, not after Fast DDS's own statics at interpreter exit


if __name__ == "__main__":
    main()
