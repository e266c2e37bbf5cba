"""Learners on torch. SAC in the RLPD / HIL-SERL recipe: :mod:`robotrl.learning.sac` (agent, config, a
single-process training loop), :mod:`~robotrl.learning.networks` (encoder, actor, critic ensemble) and
:mod:`~robotrl.learning.replay` (ring buffer, 50/50 demo/online sampler)."""

from robotrl.learning.replay import MixedSampler, ReplayBuffer, to_torch
from robotrl.learning.sac import SACAgent, SACConfig, collect_episodes, evaluate, load_sac_config, train_sac

__all__ = ["MixedSampler", "ReplayBuffer", "SACAgent", "SACConfig", "collect_episodes", "evaluate",
           "load_sac_config", "to_torch", "train_sac"]
