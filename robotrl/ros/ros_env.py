"""RosEnv: a task (robotrl.tasks) played over the device topics: the same task object as the twin env gives the
spaces, the observation (through the same observation processor: crops and resizes any camera frame to the
policy's image size), the action mapping, the safety filter and the judgement, so one learner and one policy run
in the twin, through ROS against the twin, and on the robot. Nothing here imports MuJoCo.

Observations are aligned by capture stamp, never by arrival: a step waits for the device reading one control
period after the last one, then takes the tracked objects and goals of that reading's stamp (``/objects/<name>/pose``,
``/goals/<name>/pose``: from the twin, or a tracker and whatever sets goals on a robot, at the state rate) and the
camera frame nearest to it. The task judges the step from the same reading, objects and goals -- or, with
``judge``, whoever publishes robotrl_interfaces/Judgement on that topic (a reward classifier), at that reading's
stamp; then a deployable task (one whose observation needs no tracked object) tracks none, and a classifier's
verdict (one with a probability) is reported as a classifier's (``success_probability``: the store's classifier/
columns), never as the env's own truth. The judgement used goes
out on the actor's ``~/judgement``, stamped with the reading's stamp. With ``ready`` (on a robot: the operator's
``/operator/ready``, std_msgs/Empty) a reset, once the arm is home, waits for the operator to say the scene is set --
a ready sent after the reset began -- and says so on ``~/waiting_ready`` (Bool, latched) while it waits. A watchdog
on the steady (wall) clock -- it must work when sim time stops too -- commands hold when any observation
topic goes silent for ``max_obs_age`` or the policy misses its deadline, and refuses new commands until fresh data
arrives.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Empty, Float64
from std_srvs.srv import Trigger

from robotrl.geometry import quat_from_euler
from robotrl.interfaces import ArmState, QuadState
from robotrl.ros import convert
from robotrl.ros.devices import COMMAND_QOS
from robotrl.ros.topic_reader import TopicReader
from robotrl.safety import SafetyReport
from robotrl.tasks import Judgement, make_task
from robotrl.tasks.observation import ObservationProcessor


# A state (the actor waits for the operator, or not): its last value reaches a subscriber that matched later too.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def camera_topic(camera: str) -> str:
    """The image topic of a task's camera: what a CameraNode named ``<camera>_camera`` (hardware or the twin's)
    publishes."""
    return f"/{camera}_camera/image"


class ObservationLost(RuntimeError):
    """An observation topic went silent; the message names it. The robot has been told to hold."""


class ResetFailed(RuntimeError):
    """The reset service (the twin's ~/reset, a device's home) answered failure; the message names it and says why.
    No episode starts from a robot that did not reach its start."""


class Stopped(Exception):
    """RosEnv's ``stop`` event was set while it waited for the robot (the process is stopping)."""


class _Stamped:
    """The last few messages of one topic, by capture stamp, with the steady time the newest arrived."""

    def __init__(self, depth: int = 32):
        self.items: deque[tuple[int, Any]] = deque(maxlen=depth)
        self.received = -np.inf

    def add(self, stamp_ns: int, value: Any) -> None:
        self.items.append((stamp_ns, value))
        self.received = time.monotonic()

    def nearest(self, stamp_ns: int) -> tuple[int, Any] | None:
        return min(self.items, key=lambda it: abs(it[0] - stamp_ns), default=None)

    def at(self, stamp_ns: int) -> tuple[int, Any] | None:
        """The message nearest ``stamp_ns`` once one at or after it has arrived (None before): a topic published
        at the state rate, whose message of this stamp may still be on its way."""
        return self.nearest(stamp_ns) if self.items and self.items[-1][0] >= stamp_ns else None


class ArmLink:
    """The arm's topics: readings from ``<arm>/{joint_states, ee_pose, ee_twist}``, commands to
    ``<arm>/{target_pose, gripper}``; hold = the target snaps to the newest measured TCP pose (the nearest point of
    the safety box when outside it)."""

    def __init__(self, env: "RosEnv", prefix: str = "/arm"):
        self.env, node = env, env.node
        self.joints, self.ee, self.twist = _Stamped(), _Stamped(), _Stamped()
        sub = env.reader.subscribe
        sub(JointState, f"{prefix}/joint_states", lambda m: env._add(self.joints, m, m), qos_profile_sensor_data)
        sub(PoseStamped, f"{prefix}/ee_pose", lambda m: env._add(self.ee, m, m), qos_profile_sensor_data)
        sub(TwistStamped, f"{prefix}/ee_twist", lambda m: env._add(self.twist, m, m), qos_profile_sensor_data)
        self._target = node.create_publisher(PoseStamped, f"{prefix}/target_pose", COMMAND_QOS)
        self._gripper = node.create_publisher(Float64, f"{prefix}/gripper", COMMAND_QOS)
        self.topics = {f"{prefix}/joint_states": self.joints}
        self.home_service = f"{prefix}/home"
        self.target_pos: np.ndarray | None = None

    def reading_after(self, stamp_ns: int) -> ArmState | None:
        """The newest complete reading (joints, pose and twist of one stamp) newer than ``stamp_ns``."""
        for t, joints in reversed(self.joints.items):
            if t <= stamp_ns:
                break
            ee, tw = self.ee.nearest(t), self.twist.nearest(t)
            if ee and tw and ee[0] == t == tw[0]:
                return convert.arm_state(joints, ee[1], tw[1])
        return None

    def newest_stamp(self) -> int | None:
        return self.joints.items[-1][0] if self.joints.items else None

    def begin(self, s: ArmState) -> None:
        self.target_pos = s.ee_pos

    def command(self, action: np.ndarray, s: ArmState) -> SafetyReport:
        cmd = self.env.task.command(action, s)
        safe, report = self.env.safety.filter(cmd, s, self.target_pos, self.env.control_dt)
        self.target_pos = safe.ee_pos
        self._target.publish(convert.pose_stamped(safe.ee_pos, s.ee_quat if safe.ee_quat is None else safe.ee_quat, s.stamp_ns, "base"))
        if safe.gripper is not None:
            self._gripper.publish(Float64(data=float(safe.gripper)))
        return report

    def hold(self) -> None:
        if self.ee.items:
            # Where the arm is, brought into the safety box: an arm outside it (a robot's home may be above the task's
            # workspace) would have a hold there rejected by the arm node and keep going to its last target.
            msg = self.ee.items[-1][1]
            pos, quat = convert.pose_arrays(msg)
            box = self.env.safety.config
            inside = np.clip(pos, box.box_min, box.box_max)
            self._target.publish(msg if np.array_equal(inside, pos) else convert.pose_stamped(
                inside, quat, convert.from_time(msg.header.stamp), msg.header.frame_id))


class QuadLink:
    """The quadrotor's topics: readings from ``<quad>/odom``, CTBR commands to ``<quad>/ctbr``; hold = hover
    (zero velocity on ``<quad>/cmd_vel``), then land through ``<quad>/land`` if the hold lasts ``land_after`` s."""

    def __init__(self, env: "RosEnv", prefix: str = "/quad", land_after: float = 2.0):
        self.env, node = env, env.node
        self.odom = _Stamped()
        env.reader.subscribe(Odometry, f"{prefix}/odom", lambda m: env._add(self.odom, m, m), qos_profile_sensor_data)
        self._ctbr = node.create_publisher(TwistStamped, f"{prefix}/ctbr", COMMAND_QOS)
        self._velocity = node.create_publisher(TwistStamped, f"{prefix}/cmd_vel", COMMAND_QOS)
        self._pose = node.create_publisher(PoseStamped, f"{prefix}/cmd_pose", COMMAND_QOS)
        self._land = node.create_client(Trigger, f"{prefix}/land")
        self.topics = {f"{prefix}/odom": self.odom}
        self.home_service = f"{prefix}/stop"
        self.land_after, self._held_since = land_after, None

    def reading_after(self, stamp_ns: int) -> QuadState | None:
        t, msg = self.odom.items[-1] if self.odom.items else (stamp_ns, None)
        return convert.quad_state(msg) if t > stamp_ns else None

    def newest_stamp(self) -> int | None:
        return self.odom.items[-1][0] if self.odom.items else None

    def begin(self, s: QuadState) -> None:
        self._held_since = None

    def command(self, action: np.ndarray, s: QuadState) -> SafetyReport:
        cmd = self.env.task.command(action, s)
        safe, report = self.env.safety.filter(cmd, s)
        if safe.mode == "ctbr":
            self._ctbr.publish(convert.ctbr_msg(safe, s.stamp_ns))
        elif safe.mode == "position":  # the filter's backup: hold the nearest safe point
            self._pose.publish(convert.pose_stamped(safe.position, quat_from_euler(0, 0, safe.yaw), s.stamp_ns, "world"))
        else:
            self._velocity.publish(convert.velocity_msg(safe.velocity, s.stamp_ns, safe.yaw_rate))
        self._held_since = None
        return report

    def hold(self) -> None:
        self._velocity.publish(convert.velocity_msg(np.zeros(3), 0))
        self._held_since = self._held_since or time.monotonic()

    def watch(self) -> None:
        """Called by the watchdog while held: land once the hold has lasted ``land_after``."""
        if self._held_since is not None and time.monotonic() - self._held_since > self.land_after:
            self._held_since = np.inf  # land once
            self.env.hold_log(f"hold lasted {self.land_after} s: landing")
            self._land.call_async(Trigger.Request())


class RosEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, node: Node, task: str, task_kwargs: dict | None = None, twin: str = "/twin", device: str | None = None,
                 max_obs_age: float | None = None, deadline: float | None = None, timeout: float = 5.0, startup_timeout: float = 60.0,
                 stop: threading.Event | None = None, judge: str = "", ready: str = "", in_twin: bool = False):
        """``node``: the actor's node (spun by the caller's executor). ``task``, ``task_kwargs``: the task and its
        config, as for the twin env (robotrl.tasks.make_task). ``twin``: the twin node's name, whose ``~/reset``
        (robotrl_interfaces/Reset) starts episodes ("" on hardware: reset calls the device's home (arm) or stop
        (quad) Trigger service).
        ``device``: the device node's namespace (default /arm or /quad). ``max_obs_age``: seconds an
        observation topic may stay silent (default 1.5 control periods, so a hold comes within two; at least
        0.1 s). ``deadline``: seconds from one command to the next before the watchdog holds (default 2 control
        periods, one to observe and one to think; at least 0.1 s). ``startup_timeout``: how long the first reset waits for the robot.
        ``stop``: once set (by a signal handler, say), any wait for the robot ends within 0.1 s with ``Stopped``.
        ``judge``: a robotrl_interfaces/Judgement topic whose judgement at each reading's stamp gives reward, success
        and failed (the safety costs stay the actor's own); "": the task judges from the tracked objects.
        ``ready``: a std_msgs/Empty topic (the operator's "scene is set"): every reset, after the home / reset call,
        waits for a message on it sent after the reset began, calling ``idle`` (when set) while it waits.
        ``in_twin``: the devices behind the topics are the MuJoCo twin, stored with each episode (a twin serving as a
        bare robot cannot be told from one, so say it; a ``twin`` node implies it)."""
        self.in_twin = bool(twin) or in_twin
        self.task = make_task(task, **(task_kwargs or {}))
        self.config, self.safety = self.task.config, self.task.safety_filter()
        self.processor = ObservationProcessor(self.config.observation, self.task.state_dims())
        self.observation_space, self.action_space = self.processor.space, self.task.action_space
        self.node, self.timeout, self.startup_timeout = node, timeout, startup_timeout
        self.stop = stop or threading.Event()
        self.control_dt = self.task.control_dt
        # Floors of 0.1 s: at 50 Hz, 1.5 periods (30 ms) is below an ordinary Linux scheduling hiccup.
        self.deadline = deadline if deadline is not None else max(2 * self.control_dt, 0.1)
        self.max_obs_age = max_obs_age if max_obs_age else max(1.5 * self.control_dt, 0.1)
        self.max_episode_steps = self.task.max_episode_steps
        self._buffers = threading.Lock()  # guards the topic buffers: the reading thread appends, the stepping thread looks
        # Observation topics are read by whichever thread waits for them (the stepping thread, else the watchdog),
        # not by the caller's executor: see robotrl.ros.topic_reader.
        self.reader = TopicReader(f"{node.get_name()}_observations", node.get_namespace(), node.context)
        link = ArmLink if self.task.robot_kind == "arm" else QuadLink
        self.link = link(self, device or f"/{self.task.robot_kind}")
        # Tracked objects and goals, by topic: published at the state rate, read at a reading's stamp. With another
        # judge, a deployable task needs no object: none is read (a bare robot has none).
        self.tracked = () if judge and self.task.deployable else self.task.objects
        self._points = {f"/{kind}/{name}/pose": _Stamped() for kind, names in (("objects", self.tracked),
                        ("goals", self.task.goals)) for name in names}
        self.goals: dict[str, np.ndarray] = {}  # this episode's, as published at its reset
        self._images = {c: _Stamped(8) for c in self.config.observation.cameras}
        sub = self.reader.subscribe
        for topic, buf in self._points.items():
            sub(PoseStamped, topic, lambda m, b=buf: self._add(b, m, convert.pose_arrays(m)[0]), qos_profile_sensor_data)
        for c, buf in self._images.items():
            sub(Image, camera_topic(c), lambda m, b=buf: self._add(b, m, convert.image_array(m)), qos_profile_sensor_data)
        self._reset = (node.create_client(convert.Reset, f"{twin}/reset") if twin
                       else node.create_client(Trigger, self.link.home_service))
        self._judgement = node.create_publisher(convert.Judgement, "~/judgement", COMMAND_QOS)
        self.judge, self._judged = judge, _Stamped()
        if judge:
            sub(convert.Judgement, judge, lambda m: self._add(self._judged, m, convert.judgement(m)), 10)
        self.ready, self._ready_at = ready, -np.inf  # steady time of the newest ready message
        self.idle: Callable[[], None] | None = None  # called while a reset waits for the operator's ready
        if ready:
            sub(Empty, ready, self._on_ready, COMMAND_QOS)
        self._waiting = node.create_publisher(Bool, "~/waiting_ready", LATCHED_QOS)
        self.topics = {**self.link.topics, **self._points, **{camera_topic(c): b for c, b in self._images.items()},
                       **({judge: self._judged} if judge else {})}
        self.holds: list[tuple[float, str]] = []  # (steady time, reason) of every hold the watchdog commanded
        self.silent: str | None = None  # why observations are stale, while they are
        self._last_command = time.monotonic()
        self._stepping = False
        self.state: ArmState | QuadState | None = None
        node.create_timer(min(0.02, self.control_dt / 5), self._watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # -- topic plumbing --------------------------------------------------------------------------------------
    def _add(self, buf: _Stamped, msg, value) -> None:
        with self._buffers:
            buf.add(convert.from_time(msg.header.stamp), value)

    def _on_ready(self, _msg: Empty) -> None:
        self._ready_at = time.monotonic()

    def _await_ready(self, since: float) -> None:
        """Until a ready message that arrived after ``since`` (steady time): a ready sent during the episode does not
        start the next one."""
        self._waiting.publish(Bool(data=True))
        self.node.get_logger().info(f"waiting for the operator's ready on {self.ready} (the arm is home; set the scene)")
        while self._ready_at <= since:
            self._check_stop()
            self.reader.poll(0.1)
            if self.idle is not None:
                self.idle()
        self._waiting.publish(Bool(data=False))
        self.node.get_logger().info("ready: the episode starts")

    def _reading_after(self, stamp_ns: int):
        return self._wait(lambda: self.link.reading_after(stamp_ns), f"device reading newer than {stamp_ns} ns")

    def _wait(self, ready, what: str):
        end = time.monotonic() + self.timeout
        while True:
            with self._buffers:
                if (value := ready()) is not None:
                    return value
            if self.silent:
                raise ObservationLost(self.silent)
            self._check_stop()
            if time.monotonic() >= end:
                raise ObservationLost(f"{self.node.get_name()}: no {what} within {self.timeout} s; is the robot (or twin) running?")
            self.reader.poll(min(0.1, end - time.monotonic()))  # in slices: a stop is seen within 0.1 s

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped(f"{self.node.get_name()}: stopped while waiting for the robot")

    # -- the watchdog ----------------------------------------------------------------------------------------
    def _watchdog(self) -> None:
        self.reader.poll(0.0, blocking=False)  # while nobody steps, the watchdog drains the topics itself
        now = time.monotonic()
        silent = [t for t, b in self.topics.items() if np.isfinite(b.received) and now - b.received > self.max_obs_age]
        if silent and not self.silent:
            self.silent = f"observation topic {silent[0]} silent for more than {self.max_obs_age:.3f} s"
            self.hold(self.silent)
        elif not silent and self.silent:
            self.node.get_logger().info(f"observations fresh again after: {self.silent}")
            self.silent = None
        if self._stepping and now - self._last_command > self.deadline:
            self._stepping = False  # one hold per miss; the next step() resumes
            self.hold(f"policy missed its deadline ({self.deadline:.3f} s since the last command)")
        if isinstance(self.link, QuadLink):
            self.link.watch()

    def hold(self, reason: str) -> None:
        """The device's safe command (arm: stop where it is; quad: hover, then land), logged with ``reason``."""
        self.hold_log(reason)
        self.link.hold()
        self.reader.wake()  # a step waiting for observations raises ObservationLost now

    def hold_log(self, reason: str) -> None:
        self.holds.append((time.monotonic(), reason))
        self.node.get_logger().warning(f"hold: {reason}")

    # -- gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        end = time.monotonic() + self.startup_timeout
        while not self._reset.wait_for_service(timeout_sec=0.1):
            self._check_stop()
            if time.monotonic() > end:
                raise ObservationLost(f"service {self._reset.srv_name} not available after {self.startup_timeout} s: "
                                      "start the twin (or the device node) first")
        self._stepping, began = False, time.monotonic()
        twin = self._reset.srv_type is convert.Reset
        request = convert.Reset.Request(seed=-1 if seed is None else seed) if twin else Trigger.Request()
        result = self._call(self._reset, request, self.startup_timeout)  # a robot's reset (homing) takes seconds
        if not result.success:
            raise ResetFailed(f"{self._reset.srv_name} failed: {result.message or 'no reason given'}")
        stamp = convert.from_time(result.stamp) if twin else 0  # where the twin's new episode starts
        if self.ready:
            self._await_ready(began)
            with self._buffers:  # the episode starts from a reading taken after the ready, not one from before it
                newest = self.link.newest_stamp()
            stamp = stamp if newest is None else max(stamp, newest + 1)
        self.state = self._reading_after(stamp - 1)
        self.link.begin(self.state)
        self._steps = 0
        objects, self.goals = self._points_at(self.state.stamp_ns)  # the goals of this episode, as published
        self.task.reset(self.state, objects, self.goals)
        self.processor.reset()
        return self._observe(objects, self.goals), {"success": False, "cost": 0.0, "violations": ()}

    def _call(self, client, request, timeout: float):
        future = client.call_async(request)
        end = time.monotonic() + timeout
        while not future.done():
            self._check_stop()
            if time.monotonic() > end:
                raise ObservationLost(f"service {client.srv_name} did not answer within {timeout} s")
            time.sleep(0.001)
        return future.result()

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"RosEnv.step: action shape {action.shape}, expected {self.action_space.shape}")
        if self.silent:
            raise ObservationLost(self.silent)
        s = self.state
        report = self.link.command(action, s)
        self._last_command, self._stepping = time.monotonic(), True
        self.state = self._reading_after(s.stamp_ns + int(self.control_dt * 1e9) - 1)
        self._steps += 1
        objects, goals = self._points_at(self.state.stamp_ns)
        j = self._judge_step(objects, goals, action, report)
        reward = j.reward(self.config.reward)
        self._judgement.publish(convert.judgement_msg(self.state.stamp_ns, reward, j.success, j.failed, j.costs, j.source,
                                                      j.info.get("success_probability")))
        terminated = j.failed or (j.success and self.config.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps
        info = {"success": j.success, "cost": report.cost, "costs": j.costs, "violations": report.violations, **j.info}
        self._stepping = not (terminated or truncated)  # between episodes nobody is late
        return self._observe(objects, goals), reward, bool(terminated), bool(truncated), info

    def _judge_step(self, objects: dict[str, np.ndarray], goals: dict[str, np.ndarray], action: np.ndarray,
                    report: SafetyReport) -> Judgement:
        if not self.judge:
            return self.task.judge(self.state, objects, goals, action, report)
        t = self.state.stamp_ns
        judged = self._wait(lambda: self._judged.at(t), f"judgement on {self.judge}")[1]
        # A classifier's verdict is recorded as one (the store's classifier/ columns), not as the env's own truth:
        # on a robot there is none (task_success None: truth/ holds no success, truth/reward NaN).
        info = {} if judged.probability is None else {"success_probability": judged.probability, "task_success": None}
        return Judgement(judged.reward, judged.success, judged.failed, self.task.costs(report), info, source=judged.source)

    def _points_at(self, t: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(objects, goals) at the reading stamp ``t``, by name."""
        got = {topic: self._wait(lambda b=buf: b.at(t), topic)[1] for topic, buf in self._points.items()}
        objects = {o: got[f"/objects/{o}/pose"] for o in self.tracked}
        return objects, {g: got[f"/goals/{g}/pose"] for g in self.task.goals}

    def _observe(self, objects: dict[str, np.ndarray], goals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = self.state.stamp_ns
        images = {c: self._wait(lambda b=buf: b.nearest(t), f"/{c}_camera/image")[1] for c, buf in self._images.items()}
        return self.processor(self.task.observe(self.state, objects, goals), images)

    def close(self) -> None:
        self._stepping = False
        self.reader.destroy()
