"""Policies behind one protocol (robotrl.policies.base.Policy): the actor and every tool call only that."""

from robotrl.policies.base import ChunkPolicy, Obs, Policy, RandomPolicy, Stateless

__all__ = ["ChunkPolicy", "Obs", "Policy", "RandomPolicy", "Stateless"]
