"""RosEnv: a gymnasium env over the device topics, with the same spaces, action mapping and safety filter as
the task's twin env, so one learner and one policy run in the twin, through ROS against the twin, and on the
robot.

Observations are aligned by capture stamp, never by arrival: a step waits for the arm reading one control
period after the last one, then takes the object pose, camera frame and task judgement nearest to that
reading's stamp. A watchdog on the steady (wall) clock -- it must work when sim time stops too -- commands
hold when any observation topic goes silent for ``max_obs_age`` or the policy misses its deadline, and
refuses new commands until fresh data arrives.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray
from std_srvs.srv import Trigger

from robotrl.interfaces import ArmCommand, ArmState
from robotrl.ros import convert
from robotrl.ros.devices import COMMAND_QOS
from robotrl.ros.twin_node import OBJECTS


class ObservationLost(RuntimeError):
    """An observation topic went silent; the message names it. The robot has been told to hold."""


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


class RosEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, node: Node, task: str, task_kwargs: dict | None = None, twin: str = "/twin", arm: str = "/arm",
                 max_obs_age: float | None = None, deadline: float | None = None, timeout: float = 5.0, startup_timeout: float = 60.0):
        """``node``: the actor's node (spun by the caller's executor). ``twin``: the twin node's name, whose
        ``~/task`` judges success and ``~/reset`` starts episodes ("" on hardware: reward then comes from
        ``/task`` of a reward-classifier node, reset homes the arm). ``max_obs_age``: seconds an observation
        topic may stay silent (default 1.5 control periods, so a hold comes within two). ``deadline``: seconds
        from one command to the next before the watchdog holds (default 2 control periods: one to observe, one
        to think). ``startup_timeout``: how long the first reset waits for the twin or robot to come up."""
        spec_env = gym.make(task, **(task_kwargs or {}))
        self.spec_env, self.config = spec_env, spec_env.unwrapped.config
        if not hasattr(spec_env.unwrapped, "arm"):
            raise ValueError(f"RosEnv drives arm tasks so far; {task} is not one")
        self.observation_space, self.action_space = spec_env.observation_space, spec_env.action_space
        self.safety = spec_env.unwrapped.safety
        self.node, self.task, self.timeout = node, task, timeout
        self.startup_timeout = startup_timeout
        self.control_dt = 1.0 / self.config.control_hz
        self.deadline = deadline if deadline is not None else 2 * self.control_dt
        self.max_obs_age = max_obs_age if max_obs_age else 1.5 * self.control_dt
        self.max_episode_steps = int(round(self.config.episode_seconds * self.config.control_hz))
        self._new = threading.Condition()
        self._joints, self._ee, self._twist = _Stamped(), _Stamped(), _Stamped()
        self._objects = {o: _Stamped() for o in OBJECTS.get(task, [])}
        self._images = {c: _Stamped(8) for c in self.config.cameras}
        self._judge = _Stamped()
        sub = node.create_subscription
        sub(JointState, f"{arm}/joint_states", lambda m: self._add(self._joints, m, m), qos_profile_sensor_data)
        sub(PoseStamped, f"{arm}/ee_pose", lambda m: self._add(self._ee, m, m), qos_profile_sensor_data)
        sub(TwistStamped, f"{arm}/ee_twist", lambda m: self._add(self._twist, m, m), qos_profile_sensor_data)
        for o, buf in self._objects.items():
            sub(PoseStamped, f"/objects/{o}/pose", lambda m, b=buf: self._add(b, m, convert.pose_arrays(m)[0]), qos_profile_sensor_data)
        for c, buf in self._images.items():
            sub(Image, f"/{c}_camera/image", lambda m, b=buf: self._add(b, m, convert.image_array(m)), qos_profile_sensor_data)
        sub(Float64MultiArray, f"{twin}/task" if twin else "/task", self._on_judge, 10)
        self._target = node.create_publisher(PoseStamped, f"{arm}/target_pose", COMMAND_QOS)
        self._gripper = node.create_publisher(Float64, f"{arm}/gripper", COMMAND_QOS)
        self._reset = node.create_client(Trigger, f"{twin}/reset" if twin else f"{arm}/home")
        self.topics = {f"{arm}/joint_states": self._joints, **{f"/objects/{o}/pose": b for o, b in self._objects.items()},
                       **{f"/{c}_camera/image": b for c, b in self._images.items()}}
        self.holds: list[tuple[float, str]] = []  # (steady time, reason) of every hold the watchdog commanded
        self.silent: str | None = None  # why observations are stale, while they are
        self._last_command = time.monotonic()
        self._stepping = False
        self.state: ArmState | None = None
        node.create_timer(min(0.02, self.control_dt / 5), self._watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # -- topic plumbing --------------------------------------------------------------------------------------
    def _add(self, buf: _Stamped, msg, value) -> None:
        with self._new:
            buf.add(convert.from_time(msg.header.stamp), value)
            self._new.notify_all()

    def _on_judge(self, msg: Float64MultiArray) -> None:
        stamp, reward, success, failed = msg.data
        with self._new:
            self._judge.add(int(stamp), (float(reward), bool(success), bool(failed)))
            self._new.notify_all()

    def _arm_state_after(self, stamp_ns: int) -> ArmState:
        """The newest complete arm reading (joints, pose and twist of one stamp), once one is newer than ``stamp_ns``."""
        def ready():
            for t, joints in reversed(self._joints.items):
                if t <= stamp_ns:
                    break
                ee, tw = self._ee.nearest(t), self._twist.nearest(t)
                if ee and tw and ee[0] == t == tw[0]:
                    return convert.arm_state(joints, ee[1], tw[1])
            return None

        return self._wait(ready, f"arm reading (joint_states, ee_pose, ee_twist) newer than {stamp_ns} ns")

    def _wait(self, ready, what: str):
        end = time.monotonic() + self.timeout
        with self._new:
            while (value := ready()) is None:
                if self.silent:
                    raise ObservationLost(self.silent)
                if time.monotonic() >= end:
                    raise ObservationLost(f"{self.node.get_name()}: no {what} within {self.timeout} s; is the robot (or twin) running?")
                self._new.wait(timeout=end - time.monotonic())
            return value

    # -- the watchdog ----------------------------------------------------------------------------------------
    def _watchdog(self) -> None:
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

    def hold(self, reason: str) -> None:
        """Stop where the arm is: the target snaps to the newest measured TCP pose."""
        self.holds.append((time.monotonic(), reason))
        self.node.get_logger().warning(f"hold: {reason}")
        if self._ee.items:
            self._target.publish(self._ee.items[-1][1])
        with self._new:
            self._new.notify_all()

    # -- gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if not self._reset.wait_for_service(timeout_sec=self.startup_timeout):
            raise ObservationLost(f"service {self._reset.srv_name} not available after {self.startup_timeout} s: "
                                  "start the twin (or the arm node) first")
        self._stepping = False
        result = self._call(self._reset)
        stamp = int(result.message.split("stamp_ns=")[1].split()[0]) if "stamp_ns=" in result.message else 0
        self.state = self._arm_state_after(stamp - 1)
        self._steps = 0
        self.target_pos = self.state.ee_pos
        return self._observe(), {"success": False, "cost": 0.0, "violations": ()}

    def _call(self, client):
        future = client.call_async(Trigger.Request())
        end = time.monotonic() + self.timeout
        while not future.done():
            if time.monotonic() > end:
                raise ObservationLost(f"service {client.srv_name} did not answer within {self.timeout} s")
            time.sleep(0.001)
        return future.result()

    def step(self, action):
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"RosEnv.step: action shape {action.shape}, expected {self.action_space.shape}")
        if self.silent:
            raise ObservationLost(self.silent)
        s = self.state
        cmd = ArmCommand("ee_target", ee_pos=s.ee_pos + action[:3].astype(float) * self.config.action_scale,
                         gripper=float((action[3] + 1) / 2) if len(action) > 3 else None)
        safe, report = self.safety.filter(cmd, s, self.target_pos, self.control_dt)
        self.target_pos = safe.ee_pos
        self._target.publish(convert.pose_stamped(safe.ee_pos, s.ee_quat if safe.ee_quat is None else safe.ee_quat, s.stamp_ns, "base"))
        if safe.gripper is not None:
            self._gripper.publish(Float64(data=float(safe.gripper)))
        self._last_command, self._stepping = time.monotonic(), True
        self.state = self._arm_state_after(s.stamp_ns + int(self.control_dt * 1e9) - 1)
        self._steps += 1
        t = self.state.stamp_ns
        dense, success, failed = self._wait(lambda: self._judge.nearest(t) if self._judge.items and self._judge.items[-1][0] >= t else None,
                                            "task judgement (~/task)")[1]
        reward = dense if self.config.reward == "dense" else float(success)
        terminated = failed or (success and self.config.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps
        info = {"success": success, "cost": report.cost, "violations": report.violations}
        self._stepping = not (terminated or truncated)  # between episodes nobody is late
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def _observe(self) -> dict[str, np.ndarray]:
        s, t = self.state, self.state.stamp_ns
        state = {"ee_pos": s.ee_pos, "ee_vel": s.ee_vel, "gripper": np.array([s.gripper])}
        for o, buf in self._objects.items():
            state[f"{o}_pos"] = self._wait(lambda b=buf: b.nearest(t), f"/objects/{o}/pose")[1]
        if "cube_pos" in state:  # the relative goal observations the twin tasks give (robotrl.envs.arm)
            state["cube_to_ee"] = s.ee_pos - state["cube_pos"]
        if "target_pos" in state:
            state["to_target"] = state["target_pos"] - s.ee_pos
        obs = {k: np.asarray(state[k.split("/", 1)[1]], np.float32) for k in self.observation_space if k.startswith("state/")}
        for c, buf in self._images.items():
            obs[f"images/{c}"] = self._wait(lambda b=buf: b.nearest(t), f"/{c}_camera/image")[1]
        return obs

    def close(self) -> None:
        self._stepping = False
        self.spec_env.close()
