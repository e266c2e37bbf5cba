"""Learners on torch, each an :class:`~robotrl.learners.base.Algorithm` built by name with :func:`make_algorithm`
from configs/learners/<name>.yaml: SAC in the RLPD / HIL-SERL recipe (:mod:`~robotrl.learners.sac`) and
behaviour cloning (:mod:`~robotrl.learners.bc`); shared pieces in :mod:`~robotrl.learners.networks` (encoder,
actor, critic ensemble) and :mod:`~robotrl.learners.replay` (ring buffer, 50/50 demo/online sampler). The training
loop is :mod:`robotrl.runtime` (actor, learner, one process or two), which names only the Algorithm protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import gymnasium as gym

from robotrl.config import ConfigError, configs_dir, load_config
from robotrl.learners.base import Algorithm, LearnerConfig
from robotrl.learners.bc import BCAgent, BCConfig
from robotrl.learners.replay import MixedSampler, ReplayBuffer, to_torch
from robotrl.learners.sac import SACAgent, SACConfig, load_sac_config

# name -> (algorithm class, its config model); the defaults are configs/learners/<name>.yaml
ALGORITHMS: dict[str, tuple[type, type[LearnerConfig]]] = {
    "sac": (SACAgent, SACConfig),
    "bc": (BCAgent, BCConfig),
}


def _entry(name: str) -> tuple[type, type[LearnerConfig]]:
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown learner {name!r}; known: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


def load_learner_config(name: str, *sources: str | Path | Mapping[str, Any] | None) -> LearnerConfig:
    """configs/learners/<name>.yaml, then each YAML file or dict in ``sources`` overriding it key by key, validated
    by the learner's strict config model (a bad key fails naming the file and the key)."""
    return load_config(_entry(name)[1], configs_dir() / "learners" / f"{name}.yaml", *sources)


def make_algorithm(name: str, obs_space: gym.Space, action_space: gym.spaces.Box,
                   overrides: str | Path | Mapping[str, Any] | None = None, seed: int = 0) -> Algorithm:
    """The learner ``name`` (see ALGORITHMS) for these spaces, its config from its YAML and ``overrides``."""
    cls, _ = _entry(name)
    return cls(obs_space, action_space, load_learner_config(name, overrides), seed)


__all__ = ["ALGORITHMS", "Algorithm", "BCAgent", "BCConfig", "LearnerConfig", "MixedSampler", "ReplayBuffer",
           "SACAgent", "SACConfig", "load_learner_config", "load_sac_config", "make_algorithm", "to_torch"]
