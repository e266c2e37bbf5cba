"""The twin as hardware: a MuJoCo task world stepped in real time (or ``speed`` x), served through the very
device nodes a robot runs (robotrl.ros.devices), so a graph cannot tell them apart.

On top of the device topics it serves what a lab would get elsewhere: ``/clock`` (sim time, for
``use_sim_time``), ``/objects/<name>/pose`` (ground truth, as from motion capture), ``/goals/<name>/pose`` (the
episode's goals, which the twin samples at reset; on a robot whatever sets goals publishes them), ``~/reset``
(robotrl_interfaces/Reset: a new episode, with the seed asked for or the twin's next; the reply carries the seed
and the capture stamp of the episode's first reading) and, for testing watchdogs, ``~/cameras``
(std_srvs/SetBool: a camera dropout on demand). Objects and goals go out at every state tick with the devices'
stamp. The actor judges the task itself (RosEnv), from the same topics.
"""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from std_srvs.srv import SetBool

from robotrl.envs.base import IDENTITY
from robotrl.ros import convert
from robotrl.ros.devices import ArmNode, CameraNode, DeviceNode, QuadNode

class TwinNode(Node):
    def __init__(self, task: str, task_kwargs: dict | None = None, speed: float = 1.0, seed: int = 0, rate_hz: float = 100.0,
                 camera_hz: float = 10.0, name: str = "twin", objects: bool = True):
        """``speed``: sim seconds per wall second (0: as fast as the CPU allows). ``rate_hz``: state topics per
        sim second. ``camera_hz``: images per sim second. ``objects``: publish the tracked objects' true poses (as
        motion capture would); False serves only what a bare robot serves (devices, cameras, goals)."""
        super().__init__(name)
        self.env = gym.make(task, **(task_kwargs or {})).unwrapped
        self.task, self.speed, self.seed, self.episode = task, speed, seed, 0
        self.lock = threading.RLock()
        self.devices: list[DeviceNode] = []
        if hasattr(self.env, "arm"):
            m = self.env.world.model
            limits = np.array([m.joint(f"joint{i + 1}").range for i in range(self.env.arm.n_joints)]).T
            self.arm_node = ArmNode(self.env.arm, workspace=self.env.task.robot.workspace,
                                    joint_limits=(limits[0], limits[1]), ros2_control=True, rate_hz=0, lock=self.lock,
                                    home=self._home)
            self.devices.append(self.arm_node)
        if hasattr(self.env, "quad"):
            self.devices.append(QuadNode(self.env.quad, rate_hz=0, max_body_rate=self.env.task.robot.max_body_rate, lock=self.lock))
        self.cameras = {n: CameraNode(cam, rate_hz=0, lock=self.lock) for n, cam in self.env.cameras.items()}
        self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        task = self.env.task
        tracked = task.objects if objects else ()
        self._points = {(kind, name): self.create_publisher(PoseStamped, f"/{kind}/{name}/pose", qos_profile_sensor_data)
                        for kind, names in (("objects", tracked), ("goals", task.goals)) for name in names}
        self.create_service(convert.Reset, "~/reset", self._on_reset)
        self.create_service(SetBool, "~/cameras", self._on_cameras)
        self.cameras_on = True
        self._dt, self._camera_every = 1.0 / rate_hz, max(1, round(rate_hz / camera_hz))
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset_done: threading.Event | None = None  # a reset the physics thread is asked to do
        self._reset_seed = -1  # the seed that reset is asked for (-1: the twin's next)
        self._reset_stamp = 0
        self.episode_seed = seed  # the seed of the episode running now

    @property
    def nodes(self) -> list[Node]:
        """Every node this process serves (add them all to one executor)."""
        return [self, *self.devices, *self.cameras.values()]

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="twin-physics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- the physics loop ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._run()
        except Exception:
            if self.context.ok():  # after rclpy.shutdown (Ctrl-C) a publish fails: that is just the end
                raise
        finally:
            with self.lock:
                self.env.close()  # the renderers belong to this thread's GL context: release them here

    def _run(self) -> None:
        # Resets and rendering happen here only: a GL context belongs to the thread that made it.
        self._reset_env(self.seed)
        tick, next_wall = 0, time.monotonic()
        while self._running.is_set():
            if self._reset_done is not None:
                self._reset()
            with self.lock:
                self.env.advance(self._dt)
                stamp = self.env.world.stamp_ns
                frames = ({n: c.camera.read() for n, c in self.cameras.items()}
                          if self.cameras_on and tick % self._camera_every == 0 else {})
                points = {**{("objects", o): pose for o, pose in self.env.object_poses().items() if ("objects", o) in self._points},
                          **{("goals", g): (pos, IDENTITY) for g, pos in self.env.goals.items()}}
            self._clock_pub.publish(Clock(clock=convert.to_time(stamp)))
            for device in self.devices:
                device.publish()
            for key, (pos, quat) in points.items():
                self._points[key].publish(convert.pose_stamped(pos, quat, stamp, "base"))
            for n, frame in frames.items():
                self.cameras[n].publish(frame)
            tick += 1
            if self.speed > 0:
                next_wall += self._dt / self.speed
                time.sleep(max(0.0, next_wall - time.monotonic()))

    def _home(self) -> None:
        """The arm node's ~/home (the reset an actor on hardware calls): the arm teleports home, the sim clock (the
        capture stamps, /clock) runs on rather than back to the keyframe's time. Called under ``self.lock``."""
        now = self.env.world.data.time
        self.env.arm.home()
        self.env.world.data.time = max(now + self._dt, self.env.world.data.time)
        self.env.advance(0.0)  # the reading carries the time

    def _on_cameras(self, request, response):
        self.cameras_on = bool(request.data)
        response.success, response.message = True, f"cameras {'on' if self.cameras_on else 'off (a simulated dropout)'}"
        self.get_logger().warning(response.message)
        return response

    def _on_reset(self, request, response):
        # Done by the physics thread: a reset renders the first observation, and the GL context is that thread's.
        self._reset_seed = int(request.seed)
        done = self._reset_done = threading.Event()
        if self._thread is None or not done.wait(timeout=10.0):
            response.success, response.message = False, "the twin's physics loop is not running"
            return response
        response.success, response.message = True, f"episode {self.episode}"
        response.stamp, response.seed = convert.to_time(self._reset_stamp), self.episode_seed
        return response

    def _reset(self) -> None:
        self.episode += 1
        self._reset_env(self._reset_seed if self._reset_seed >= 0 else self.seed + self.episode)
        done, self._reset_done = self._reset_done, None
        done.set()

    def _reset_env(self, seed: int) -> None:
        self.episode_seed = seed
        with self.lock:
            now = self.env.world.data.time
            self.env.reset(seed=seed)
            self.env.world.data.time = max(now + self._dt, self.env.world.data.time)  # /clock never runs backwards
            self.env.advance(0.0)  # the reading carries the new time
            self._reset_stamp = self.env.world.stamp_ns
