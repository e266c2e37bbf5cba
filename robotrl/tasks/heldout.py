"""Held-out perturbations: named sets of twin settings whose values lie outside the training ranges, for evaluation
only (``robotrl eval --heldout``), never for training.

``configs/heldout/<the task's config file>`` (e.g. ``arm_pick_cube.yaml``) writes both sides down::

    training: arm_pick_cube_pixels_randomized      # the task config the policies train under
    sets:
      masses: {randomization: {mass_scale: [0.6, 1.5]}}   # training 0.9-1.1: drawn from [0.6, 0.9) and (1.1, 1.5]
      latency: {action_latency_steps: 2}                   # training 1

A set overrides the training config's keys it names. A randomization knob it names is drawn *outside* the training
value (``RandomizationConfig.outside``), the others as in training; a latency must exceed training's; an object's
colour must lie farther from training's on some channel than both colour noises together. A set that does not
leave training fails when the file is loaded, naming the file, the set and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from robotrl.config import ConfigError, StrictModel, config_path, configs_dir, describe_error, read_yaml
from robotrl.tasks import is_task, make_task, task_class, task_spaces
from robotrl.tasks.base import NOISES, SCALES, RandomizationConfig, TaskConfig


class HeldOutFile(StrictModel):
    training: str  # a task config (configs/tasks/ name or path)
    sets: dict[str, dict[str, Any]]  # name -> task config overrides


def heldout_path(env_id: str) -> Path:
    return configs_dir() / "heldout" / task_class(env_id).config_file


def heldout_sets(env_id: str, path: str | Path | None = None) -> tuple[TaskConfig, dict[str, dict[str, Any]]]:
    """The training task config and, per held-out set, its ``gym.make`` keywords (validated: each leaves training)."""
    path = Path(path) if path else heldout_path(env_id)
    if not path.is_file():
        raise ConfigError(f"{path}: no held-out sets for {env_id} (write one: see robotrl/tasks/heldout.py)")
    try:
        spec = HeldOutFile.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    training_file = config_path(spec.training, "tasks")
    training = make_task(env_id, str(training_file)).config
    sets = {}
    for name, overrides in spec.sets.items():
        try:
            sets[name] = _leaves_training(env_id, str(training_file), training, overrides)
        except ValueError as exc:
            raise ConfigError(f"{path}: set {name!r}: {_describe(exc)}") from None
    return training, sets


def _describe(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(describe_error(e) for e in exc.errors())
    return str(exc)


def _leaves_training(env_id: str, training_file: str, training: TaskConfig, overrides: dict[str, Any]) -> dict:
    kwargs = {"config": training_file, **overrides}
    moved = dict(overrides.get("randomization", {}))
    if moved:
        base = training.randomization
        outside = {k: getattr(base, k) for k in moved if k in SCALES + NOISES}
        if "object_rgb" in moved:  # the noise is then around the new colours, which leave training's themselves
            outside.pop("object_rgb_noise", None)
        kwargs["randomization"] = {**moved, "enabled": True, "outside": outside}
        held = RandomizationConfig.model_validate({**base.model_dump(), **kwargs["randomization"]})
        _colours_leave_training(base, held, moved.get("object_rgb", {}))
    if "action_latency_steps" in overrides and overrides["action_latency_steps"] <= training.action_latency_steps:
        raise ValueError(f"action_latency_steps {overrides['action_latency_steps']} is not above training's "
                         f"{training.action_latency_steps}")
    make_task(env_id, **kwargs)  # validates every key
    return kwargs


def _colours_leave_training(train: RandomizationConfig, held: RandomizationConfig, moved: dict[str, Any]) -> None:
    for geom, rgb in moved.items():
        if geom not in train.object_rgb:
            continue  # the scene's own colour is the twin's; TwinEnv checks the names, the test the distance
        gap = np.abs(np.asarray(rgb) - np.asarray(train.object_rgb[geom])).max()
        if gap <= train.object_rgb_noise + held.object_rgb_noise:
            raise ValueError(f"randomization.object_rgb.{geom} {rgb} lies within training's colours")


def trained_outside(env_id: str, run_env_kwargs: dict[str, Any], training: TaskConfig) -> list[str]:
    """Why a run's training settings are not inside the held-out file's training ranges (empty: they are), so its
    held-out sets would not be held out for that run."""
    run = make_task(env_id, **run_env_kwargs).config
    r, t = run.randomization, training.randomization
    problems = []
    if run.action_latency_steps > training.action_latency_steps:
        problems.append(f"action_latency_steps {run.action_latency_steps} > {training.action_latency_steps}")
    if r.enabled:
        for knob in SCALES:
            (lo, hi), (a, b) = getattr(r, knob), getattr(t, knob)
            if lo < a or hi > b:
                problems.append(f"randomization.{knob} {(lo, hi)} outside {(a, b)}")
        problems += [f"randomization.{k} {getattr(r, k)} > {getattr(t, k)}" for k in NOISES if getattr(r, k) > getattr(t, k)]
    return problems


def heldout_envs(env_id: str, run_env_kwargs: dict[str, Any], names: str) -> dict[str, dict[str, Any]]:
    """``gym.make`` keywords of the held-out sets ``names`` (comma-separated, or "all") for a run trained under
    ``run_env_kwargs``: each set's over the run's own, after checking that the run trained inside the sets' training
    ranges (else they would not be held out for it) and sees what they show."""
    if not is_task(env_id):
        raise ValueError(f"--heldout: for robotrl/* tasks only, not {env_id}")
    training, sets = heldout_sets(env_id)
    wanted = list(sets) if names == "all" else names.split(",")
    unknown = [n for n in wanted if n not in sets]
    if unknown:
        raise ValueError(f"--heldout {', '.join(unknown)}: no such set in {heldout_path(env_id)}; sets: {', '.join(sets)}")
    problems = trained_outside(env_id, run_env_kwargs, training)
    if problems:
        raise ValueError(f"--heldout: the run trained outside {heldout_path(env_id)}'s training ranges "
                         f"({'; '.join(problems)}), so its sets are not held out for it")
    envs = {name: {**run_env_kwargs, **sets[name]} for name in wanted}
    spaces = task_spaces(env_id, run_env_kwargs)
    for name, kwargs in envs.items():
        if task_spaces(env_id, kwargs) != spaces:
            raise ValueError(f"--heldout {name}: the run's observations differ from {heldout_path(env_id)}'s training "
                             "config's; train on that config (or one with its observation)")
    return envs
