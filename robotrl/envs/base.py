"""TwinEnv: a task (robotrl.tasks, no MuJoCo) played on the MuJoCo twin, as a gymnasium env.

The task gives the spaces, the observation, the action -> command mapping and the judgement; this class adds what
only a simulator has: physics, the scene and its resets, rendering, and the sim-to-real knobs (action latency,
control-rate jitter, observation noise, domain randomization). RosEnv plays the same task over ROS topics.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from robotrl.config import ConfigError
from robotrl.geometry import xyzw_from_wxyz
from robotrl.safety import SafetyReport
from robotrl.sim.camera import TwinCamera
from robotrl.sim.randomization import Randomizer
from robotrl.sim.world import TwinWorld
from robotrl.tasks.base import ConfigSource, Points, Task
from robotrl.tasks.observation import ObservationProcessor

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


class TwinEnv(gym.Env):
    """Subclasses set ``task_cls`` and implement the ``_``-prefixed scene hooks."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}
    task_cls: ClassVar[type[Task]]
    render_camera: ClassVar[str] = "front"
    object_geoms: ClassVar[tuple[str, ...]] = ()  # the task's object geoms, whose colours randomization varies

    def __init__(self, config: ConfigSource = None, render_mode: str | None = None, **overrides: Any):
        self.task = self.task_cls(config, **overrides)
        self.config = self.task.config
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} not supported; allowed: None, 'rgb_array'")
        self.render_mode = render_mode
        self.world = self._build_world()
        spec = self.config.observation
        names = [self.world.model.camera(i).name for i in range(self.world.model.ncam)]
        try:
            self.processor = ObservationProcessor(spec, self.task.state_dims(), names)
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__} config: {exc}") from None
        self.cameras = {c: TwinCamera(self.world, c, *(2 * [self._render_size(c)])) for c in spec.cameras}
        self._render_cam: TwinCamera | None = None
        self.randomizer = Randomizer(self.world, self.config.randomization, self.object_geoms)
        self.control_dt = self.task.control_dt
        self.max_episode_steps = self.task.max_episode_steps
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}
        self.action_space = self.task.action_space
        self.observation_space = self.processor.space
        self.goals: Points = {}
        self._pending: deque[np.ndarray] = deque()
        self._steps = 0

    def _render_size(self, camera: str) -> int:
        """Square render size: the policy's image size, enlarged so that the configured crop of it is that size."""
        spec = self.config.observation
        left, top, right, bottom = spec.crop.get(camera, (0.0, 0.0, 1.0, 1.0))
        return math.ceil(spec.image_size / min(right - left, bottom - top))

    # -- scene hooks -----------------------------------------------------------------------------------------
    def _build_world(self) -> TwinWorld: raise NotImplementedError
    def _reset_scene(self, rng: np.random.Generator) -> Points:
        """Place the robot and the objects for a new episode; returns the episode's goals (task.sample_goals)."""
        raise NotImplementedError
    def _read_devices(self) -> None:
        """Set ``self.reading`` once after each physics advance: observations, the judgement and the next
        action's safety check all use that one reading (as a real robot's loop would)."""
        raise NotImplementedError
    def _apply(self, command: Any) -> SafetyReport:
        """Filter a device command through the task's safety filter and send it."""
        raise NotImplementedError
    def object_positions(self) -> Points:
        """The task's tracked objects (name -> xyz, base/world frame) now: the twin's ground truth."""
        return {}

    def object_poses(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """name -> (xyz, (x, y, z, w)) of the tracked objects: a body's orientation, identity for a point (site)."""
        out = {}
        for name, pos in self.object_positions().items():
            try:
                out[name] = (pos, xyzw_from_wxyz(self.world.data.body(name).xquat))
            except KeyError:
                out[name] = (pos, IDENTITY)
        return out

    def advance(self, seconds: float) -> None:
        """Run physics for ``seconds`` (0: none) and read the devices (the twin node's tick)."""
        if seconds > 0:
            self.world.advance(seconds)
        self._read_devices()

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.randomizer.apply(self.np_random)
        self.goals = self._reset_scene(self.np_random)
        self._read_devices()
        self.task.reset(self.reading, self.object_positions(), self.goals)
        self.processor.reset()
        self._pending = deque([self.task.neutral_action()] * self.config.action_latency_steps)
        self._steps = 0
        return self._observe(), {"success": False, "cost": 0.0, "violations": ()}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{type(self).__name__}.step: action shape {action.shape}, expected {self.action_space.shape}")
        self._pending.append(action)
        executed = self._pending.popleft()
        report = self._apply(self.task.command(executed, self.reading))
        period = self.control_dt
        if self.config.control_jitter:
            period *= 1.0 + self.np_random.uniform(-self.config.control_jitter, self.config.control_jitter)
        self.advance(period)
        self._steps += 1
        j = self.task.judge(self.reading, self.object_positions(), self.goals, executed, report)
        terminated = j.failed or (j.success and self.config.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps
        info = {"success": j.success, "is_success": j.success, "cost": report.cost, "costs": j.costs,
                "violations": report.violations, **j.info}
        return self._observe(), j.reward(self.config.reward), bool(terminated), bool(truncated), info

    def _observe(self) -> dict[str, np.ndarray]:
        state = self.task.observe(self.reading, self.object_positions(), self.goals)
        if self.config.obs_noise_std:
            state = {k: np.asarray(v, np.float32) + self.np_random.normal(0, self.config.obs_noise_std, np.shape(v))
                     for k, v in state.items()}
        return self.processor(state, {name: cam.read().image for name, cam in self.cameras.items()})

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._render_cam is None:
            self._render_cam = TwinCamera(self.world, self.render_camera, 320, 240)
        return self._render_cam.read().image

    def close(self):
        for cam in [*self.cameras.values(), self._render_cam]:
            if cam is not None:
                cam.close()
