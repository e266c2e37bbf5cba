"""Task definitions without MuJoCo (robotrl.tasks.base.Task), one per twin env id, and their scripted experts."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import gymnasium as gym

from robotrl.tasks.base import Judgement, Task, TaskConfig
from robotrl.tasks.observation import ObservationProcessor

TASKS = {
    "robotrl/ArmReach-v0": "robotrl.tasks.arm:Reach",
    "robotrl/ArmPickCube-v0": "robotrl.tasks.arm:PickCube",
    "robotrl/ArmPegInsert-v0": "robotrl.tasks.arm:PegInsert",
    "robotrl/QuadHover-v0": "robotrl.tasks.quad:Hover",
    "robotrl/QuadWaypoints-v0": "robotrl.tasks.quad:Waypoints",
}


def is_task(env_id: str) -> bool:
    """A robotrl task (config, cameras, reward type, safety cost), not any other gymnasium env."""
    return env_id in TASKS


def task_class(env_id: str) -> type[Task]:
    if env_id not in TASKS:
        raise ValueError(f"unknown task {env_id!r}; tasks: {', '.join(TASKS)}")
    module, name = TASKS[env_id].split(":")
    return getattr(import_module(module), name)


def make_task(env_id: str, config: Any = None, **overrides: Any) -> Task:
    """The task of a robotrl env id, configured as ``gym.make(env_id, config=..., **overrides)`` would be."""
    return task_class(env_id)(config, **overrides)


def task_spaces(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    """(observation space, action space) of a robotrl task under ``gym.make`` keywords, without building its twin:
    what a policy is built for, on a robot as in the twin."""
    task = make_task(env_id, **{k: v for k, v in (env_kwargs or {}).items() if k != "render_mode"})
    return ObservationProcessor(task.config.observation, task.state_dims()).space, task.action_space


__all__ = ["TASKS", "Judgement", "Task", "TaskConfig", "is_task", "make_task", "task_class", "task_spaces"]
