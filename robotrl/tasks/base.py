"""Task: what a job asks of a robot, without MuJoCo and without ROS. The twin env (robotrl.envs: Task + MuJoCo
world + resets) and RosEnv (Task + topics) consume the same task object, so a policy sees the same observations
and the same action mapping in the twin, through ROS against the twin, and on the robot.

A task is a pure function of what a robot can give it, per control step:
- ``reading``: the device's typed state (ArmState, QuadState: robotrl.interfaces),
- ``objects``: tracked reference points, name -> xyz (a cube, a hole: from a tracker, or the twin's truth),
- ``goals``: where the job wants the robot, name -> xyz (set by the twin at reset, or by an operator on a robot).
It gives back the state observation (``observe``), the device command for a normalized action (``command``,
before the safety filter), and its judgement (``judge``: reward, success, failed, a cost per safety limit).
Episode progress that the observation shows (QuadWaypoints' next waypoint) lives in the task between
``reset(goals)`` and the next reset, and advances in ``judge``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import gymnasium as gym
import numpy as np
from pydantic import Field, field_validator, model_validator

from robotrl.config import ConfigError, StrictModel, configs_dir, load_config
from robotrl.safety import SafetyReport
from robotrl.tasks.observation import ObservationSpec

ConfigSource = str | Path | Mapping[str, Any] | None
Range = tuple[float, float]
Points = dict[str, np.ndarray]


RGB = tuple[float, float, float]
SCALES = ("mass_scale", "friction_scale", "damping_scale", "actuator_gain_scale", "light_scale", "surface_tint")
NOISES = ("camera_pos_noise", "camera_angle_noise", "light_pos_noise", "object_rgb_noise")


class RandomizationConfig(StrictModel):
    """The twin's domain randomization (a robot ignores it). Multiplicative scales are drawn uniformly from
    [low, high] per element; (1, 1) disables one knob. Noises are uniform offsets in [-noise, noise]."""

    enabled: bool = False
    mass_scale: Range = (0.9, 1.1)  # every body mass (and inertia, consistently)
    friction_scale: Range = (0.8, 1.2)  # sliding friction of every geom
    damping_scale: Range = (0.8, 1.2)  # joint damping
    actuator_gain_scale: Range = (0.95, 1.05)  # motor constants: actuator gains (rotor thrust, servos)
    camera_pos_noise: float = Field(0.01, ge=0)  # m, uniform offset of every camera position
    camera_angle_noise: float = Field(0.02, ge=0)  # rad, small random rotation of every camera
    light_scale: Range = (0.6, 1.4)  # diffuse intensity of every light
    light_pos_noise: float = Field(0.2, ge=0)  # m
    surface_tint: Range = (0.85, 1.15)  # per RGB channel, every material's colour (the table's texture, floors)
    object_rgb_noise: float = Field(0.08, ge=0, le=1)  # per RGB channel, the task's objects (cube, peg, hole)
    object_rgb: dict[str, RGB] = {}  # geom name -> its colour before the noise, in place of the scene's
    # Held-out evaluation only (robotrl.tasks.heldout fills it): per knob, the training value its draws avoid -- a
    # scale is drawn from its range minus this one, a noise's offsets lie beyond this one on every component.
    outside: dict[str, Range | float] = {}

    @field_validator("object_rgb")
    @classmethod
    def _rgb_in_unit_cube(cls, rgb: dict[str, RGB]) -> dict[str, RGB]:
        bad = {k: v for k, v in rgb.items() if not all(0.0 <= c <= 1.0 for c in v)}
        if bad:
            raise ValueError(f"colours are RGB in [0, 1]: {bad}")
        return rgb

    @model_validator(mode="after")
    def _outside_leaves_room(self) -> "RandomizationConfig":
        for knob, avoid in self.outside.items():
            if knob in SCALES:
                (lo, hi), (a, b) = getattr(self, knob), (avoid if isinstance(avoid, tuple) else (avoid, avoid))
                if not (lo < a or hi > b):
                    raise ValueError(f"outside.{knob}: {knob} {(lo, hi)} lies inside {(a, b)}: no value is left to draw")
            elif knob in NOISES:
                if isinstance(avoid, tuple) or not getattr(self, knob) > avoid:
                    raise ValueError(f"outside.{knob}: {knob} {getattr(self, knob)} must exceed the single value {avoid}")
            else:
                raise ValueError(f"outside.{knob}: not a knob; knobs: {', '.join(SCALES + NOISES)}")
        return self


class TaskConfig(StrictModel):
    control_hz: float = Field(10.0, gt=0, le=1000)  # policy rate
    episode_seconds: float = Field(10.0, gt=0)
    reward: Literal["sparse", "dense"] = "sparse"
    terminate_on_success: bool = True
    observation: ObservationSpec = ObservationSpec()  # what the policy sees: state keys, cameras, crops, stacking
    # The twin's sim-to-real knobs; a robot has the real thing and ignores them.
    obs_noise_std: float = Field(0.0, ge=0)  # Gaussian noise on every state observation
    action_latency_steps: int = Field(0, ge=0, le=50)  # actions take effect this many control steps late
    control_jitter: float = Field(0.0, ge=0, lt=1)  # control period varies uniformly by +- this fraction
    randomization: RandomizationConfig = RandomizationConfig()


@dataclass(frozen=True)
class Judgement:
    """A task's verdict on one control step."""

    dense: float  # the shaped reward; a sparse task's reward is float(success)
    success: bool
    failed: bool  # ends the episode (a crash, the object lost)
    costs: dict[str, float] = field(default_factory=dict)  # per safety limit: 1.0 where it was hit this step
    info: dict[str, Any] = field(default_factory=dict)  # task-specific diagnostics (distances, heights)
    source: str = "task"  # who judged: the task (tracked objects; the twin's truth), a classifier, an operator

    def reward(self, kind: Literal["sparse", "dense"]) -> float:
        """The task's reward of this kind; another judge's ``dense`` is its reward as given."""
        return self.dense if kind == "dense" or self.source != "task" else float(self.success)


def check_at_most(value: float, key: str, limit: float, limit_key: str, source: str, why: str) -> None:
    """One limit concept bounds the next (action scale <= safety limit <= what the robot can do): a config that
    breaks the order fails naming both keys and where the bound comes from."""
    if value > limit * (1 + 1e-9):
        raise ConfigError(f"task config key '{key}' ({value:g}) is above {limit_key} ({limit:g}, {source}): {why}")


class Task:
    """Subclasses set the class attributes and implement ``state_dims``, ``observe``, ``command``, ``evaluate``;
    stateful ones extend ``reset``."""

    env_id: ClassVar[str]  # the twin env's gymnasium id, robotrl/<Task>-v0
    config_cls: ClassVar[type[TaskConfig]] = TaskConfig
    config_file: ClassVar[str] = ""  # default YAML under configs/tasks/
    robot_kind: ClassVar[Literal["arm", "quad"]]
    objects: ClassVar[tuple[str, ...]] = ()  # tracked reference points, published on /objects/<name>/pose
    # State observations computed from tracked objects: ground truth in the twin, a tracker on a robot. A policy
    # that sees none of them (``observation.state`` without them, plus cameras) is deployable on a bare robot.
    privileged: ClassVar[tuple[str, ...]] = ()
    limits: ClassVar[tuple[str, ...]] = ()  # the safety filter's limit kinds: one cost each

    def __init__(self, config: ConfigSource = None, **overrides: Any):
        default = configs_dir() / "tasks" / self.config_file if self.config_file else None
        self.config = load_config(self.config_cls, default, config, overrides or None)
        self.control_dt = 1.0 / self.config.control_hz
        self.max_episode_steps = int(round(self.config.episode_seconds * self.config.control_hz))
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.action_dim(),), dtype=np.float32)

    @property
    def deployable(self) -> bool:
        """Whether the policy's observation holds nothing computed from tracked objects."""
        return not set(self.privileged) & set(self.config.observation.state or self.state_dims())

    @property
    def goals(self) -> tuple[str, ...]:
        """Goal names, published on /goals/<name>/pose (the twin samples them at reset)."""
        return ()

    # -- what a subclass defines -----------------------------------------------------------------------------
    def action_dim(self) -> int:
        raise NotImplementedError

    def neutral_action(self) -> np.ndarray:
        """The action that holds still."""
        return np.zeros(self.action_dim(), np.float32)

    def state_dims(self) -> dict[str, int]:
        """Every state observation the task can give, name -> size; ``observation.state`` picks among them."""
        raise NotImplementedError

    def observe(self, reading: Any, objects: Points, goals: Points) -> dict[str, np.ndarray]:
        """Every state observation (names without ``state/``) from one reading."""
        raise NotImplementedError

    def command(self, action: np.ndarray, reading: Any) -> Any:
        """The device command for a normalized action, before the safety filter."""
        raise NotImplementedError

    def safety_filter(self) -> Any:
        """A fresh safety filter for this task's limits (robotrl.safety)."""
        raise NotImplementedError

    def sample_goals(self, rng: np.random.Generator) -> Points:
        """The goals of a new episode (the twin's reset; on a robot an operator sets them)."""
        return {}

    def evaluate(self, reading: Any, objects: Points, goals: Points, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        """(dense reward, success, failed, info) after a step; ``action`` is the one executed."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------------------
    def reset(self, reading: Any, objects: Points, goals: Points) -> None:
        """A new episode starts from this reading with these goals (stateful tasks extend it)."""
        missing = set(self.goals) - set(goals)
        if missing:
            raise ValueError(f"{type(self).__name__}.reset: goals {sorted(missing)} missing")

    def judge(self, reading: Any, objects: Points, goals: Points, action: np.ndarray, report: SafetyReport) -> Judgement:
        dense, success, failed, info = self.evaluate(reading, objects, goals, action)
        return Judgement(float(dense), bool(success), bool(failed), self.costs(report), info)

    def costs(self, report: SafetyReport) -> dict[str, float]:
        """1.0 per safety limit the step's command hit, 0.0 for the others."""
        return {limit: float(limit in report.violations) for limit in self.limits}
