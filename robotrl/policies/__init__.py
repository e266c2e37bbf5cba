"""Policies behind one protocol (robotrl.policies.base.Policy): the actor and every tool call only that.
Torch-backed ones (SAC's GaussianPolicy, TorchPolicy) live in robotrl.policies.torch_policy (imports torch)."""

from robotrl.policies.base import ChunkPolicy, Deterministic, Obs, Policy, RandomPolicy, Stateless

__all__ = ["ChunkPolicy", "Deterministic", "Obs", "Policy", "RandomPolicy", "Stateless"]
