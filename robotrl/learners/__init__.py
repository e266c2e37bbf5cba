"""Learners on torch. SAC in the RLPD / HIL-SERL recipe: :mod:`robotrl.learning.sac` (agent, config,
evaluation), :mod:`~robotrl.learning.networks` (encoder, actor, critic ensemble) and
:mod:`~robotrl.learning.replay` (ring buffer, 50/50 demo/online sampler). The training loop is
:mod:`robotrl.runtime` (actor, learner, one process or two)."""

from robotrl.learning.replay import MixedSampler, ReplayBuffer, to_torch
from robotrl.learning.sac import SACAgent, SACConfig, evaluate, load_sac_config

__all__ = ["MixedSampler", "ReplayBuffer", "SACAgent", "SACConfig", "evaluate", "load_sac_config", "to_torch"]
