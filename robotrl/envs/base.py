"""TwinEnv: the gymnasium env shared by every task on the MuJoCo twin.

A task = a world (devices + objects) + how actions become device commands + reward/success/reset. This base
class owns what every task shares: config loading, seeding, the safety filter hook, action latency and
control-rate jitter, observation noise, domain randomization, cameras and rendering.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import gymnasium as gym
import numpy as np
from pydantic import Field

from robotrl.config import ConfigError, StrictModel, configs_dir, load_config
from robotrl.safety import SafetyReport
from robotrl.sim.camera import TwinCamera
from robotrl.sim.randomization import RandomizationConfig, Randomizer
from robotrl.sim.world import TwinWorld

ConfigSource = str | Path | Mapping[str, Any] | None


class EnvConfig(StrictModel):
    control_hz: float = Field(10.0, gt=0, le=1000)  # policy rate
    episode_seconds: float = Field(10.0, gt=0)
    reward: Literal["sparse", "dense"] = "sparse"
    terminate_on_success: bool = True
    cameras: list[str] = []  # adds images/<camera> observations when non-empty
    image_size: int = Field(96, ge=16, le=1024)
    obs_noise_std: float = Field(0.0, ge=0)  # Gaussian noise on every state/* observation
    action_latency_steps: int = Field(0, ge=0, le=50)  # actions take effect this many control steps late
    control_jitter: float = Field(0.0, ge=0, lt=1)  # control period varies uniformly by +- this fraction
    randomization: RandomizationConfig = RandomizationConfig()


class TwinEnv(gym.Env):
    """Subclasses set ``config_cls``/``config_file`` and implement the ``_``-prefixed task hooks."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}
    config_cls: ClassVar[type[EnvConfig]] = EnvConfig
    config_file: ClassVar[str] = ""  # default YAML under configs/tasks/
    render_camera: ClassVar[str] = "front"
    # The task's tracked reference points (a cube, a target, a hole): object_positions() gives them, the twin
    # node publishes them on /objects/<name>/pose, and on hardware a tracker must.
    objects: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ConfigSource = None, render_mode: str | None = None, **overrides: Any):
        default = configs_dir() / "tasks" / self.config_file if self.config_file else None
        self.config = load_config(self.config_cls, default, config, overrides or None)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} not supported; allowed: None, 'rgb_array'")
        self.render_mode = render_mode
        self.world = self._build_world()
        valid_cams = [self.world.model.camera(i).name for i in range(self.world.model.ncam)]
        bad = [c for c in self.config.cameras if c not in valid_cams]
        if bad:
            raise ConfigError(f"{type(self).__name__} config key 'cameras': unknown camera(s) {bad}; allowed: {valid_cams}")
        self.cameras = {c: TwinCamera(self.world, c, self.config.image_size, self.config.image_size) for c in self.config.cameras}
        self._render_cam: TwinCamera | None = None
        self.randomizer = Randomizer(self.world, self.config.randomization)
        self.control_dt = 1.0 / self.config.control_hz
        self.max_episode_steps = int(round(self.config.episode_seconds * self.config.control_hz))
        self.metadata = {**self.metadata, "render_fps": self.config.control_hz}

        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self._action_dim(),), dtype=np.float32)
        spaces: dict[str, gym.Space] = {
            f"state/{k}": gym.spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32) for k, n in self._state_dims().items()
        }
        s = self.config.image_size
        for cam in self.cameras:
            spaces[f"images/{cam}"] = gym.spaces.Box(0, 255, shape=(s, s, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._pending: deque[np.ndarray] = deque()
        self._steps = 0

    # -- task hooks ----------------------------------------------------------------------------------------
    def _build_world(self) -> TwinWorld: raise NotImplementedError
    def _action_dim(self) -> int: raise NotImplementedError
    def _state_dims(self) -> dict[str, int]: raise NotImplementedError
    def _reset_task(self, rng: np.random.Generator) -> None: raise NotImplementedError
    def _apply_action(self, action: np.ndarray) -> SafetyReport: raise NotImplementedError
    def _read_devices(self) -> None:
        """Read device states once after each physics advance; reward, observations and the next action's
        safety check all use that one reading (as a real robot's loop would)."""
        raise NotImplementedError
    def _state_obs(self) -> dict[str, np.ndarray]: raise NotImplementedError
    def object_positions(self) -> dict[str, np.ndarray]:
        """Positions of :attr:`objects` (name -> xyz in the base/world frame) now."""
        return {}
    def _evaluate(self) -> tuple[float, bool, bool, dict]:
        """(dense reward, success, failed) after a step; ``failed`` ends the episode (crash, object lost)."""
        raise NotImplementedError

    def neutral_action(self) -> np.ndarray:
        """The action that holds still; fills the latency queue at reset."""
        return np.zeros(self.action_space.shape, np.float32)

    # -- gymnasium API -------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.randomizer.apply(self.np_random)
        self._reset_task(self.np_random)
        self._read_devices()
        self._pending = deque([self.neutral_action()] * self.config.action_latency_steps)
        self._steps = 0
        return self._observe(), {"success": False, "cost": 0.0, "violations": ()}

    def step(self, action):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{type(self).__name__}.step: action shape {action.shape}, expected {self.action_space.shape}")
        self._pending.append(action)
        report = self._apply_action(self._pending.popleft())
        period = self.control_dt
        if self.config.control_jitter:
            period *= 1.0 + self.np_random.uniform(-self.config.control_jitter, self.config.control_jitter)
        self.world.advance(period)
        self._read_devices()
        self._steps += 1
        dense, success, failed, extra = self._evaluate()
        reward = dense if self.config.reward == "dense" else float(success)
        terminated = failed or (success and self.config.terminate_on_success)
        truncated = self._steps >= self.max_episode_steps
        info = {"success": success, "is_success": success, "cost": report.cost, "violations": report.violations, **extra}
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def _observe(self) -> dict[str, np.ndarray]:
        obs = {f"state/{k}": np.asarray(v, np.float32) for k, v in self._state_obs().items()}
        if self.config.obs_noise_std:
            for k, v in obs.items():
                obs[k] = (v + self.np_random.normal(0, self.config.obs_noise_std, v.shape)).astype(np.float32)
        for name, cam in self.cameras.items():
            obs[f"images/{name}"] = cam.read().image
        return obs

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
