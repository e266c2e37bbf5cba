"""Task definitions without MuJoCo (robotrl.tasks.base.Task), one per twin env id, and their scripted experts."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from robotrl.tasks.base import Judgement, Task, TaskConfig

TASKS = {
    "robotrl/ArmReach-v0": "robotrl.tasks.arm:Reach",
    "robotrl/ArmPickCube-v0": "robotrl.tasks.arm:PickCube",
    "robotrl/ArmPegInsert-v0": "robotrl.tasks.arm:PegInsert",
    "robotrl/QuadHover-v0": "robotrl.tasks.quad:Hover",
    "robotrl/QuadWaypoints-v0": "robotrl.tasks.quad:Waypoints",
}


def task_class(env_id: str) -> type[Task]:
    if env_id not in TASKS:
        raise ValueError(f"unknown task {env_id!r}; tasks: {', '.join(TASKS)}")
    module, name = TASKS[env_id].split(":")
    return getattr(import_module(module), name)


def make_task(env_id: str, config: Any = None, **overrides: Any) -> Task:
    """The task of a robotrl env id, configured as ``gym.make(env_id, config=..., **overrides)`` would be."""
    return task_class(env_id)(config, **overrides)


__all__ = ["TASKS", "Judgement", "Task", "TaskConfig", "make_task", "task_class"]
