"""Policies computed by a torch module: one observation dict in, one action out, weights as the module's state_dict.

:class:`TorchPolicy` runs any module mapping a batch of observation dicts to a batch of actions in [-1, 1]
(behaviour cloning's); :class:`GaussianPolicy` is SAC's tanh-Gaussian policy, sampling with its learner's torch
generator (so acting draws from the same resumable noise stream as learning).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from robotrl.policies.base import Obs


class TorchPolicy:
    """A stateless policy around ``net(obs_batch) -> actions``; ``keys``: the observation keys the net reads (others
    are dropped), ``device``: where it runs."""

    def __init__(self, net: nn.Module, keys: Iterable[str], device: torch.device | str = "cpu"):
        self.net, self.keys, self.device = net, list(keys), torch.device(device)

    def reset(self) -> None:
        pass

    def to_batch(self, obs: Obs | np.ndarray) -> dict[str, torch.Tensor]:
        """One observation -> a batch of one on the policy's device (a bare array is ``{"state": array}``)."""
        obs = obs if isinstance(obs, Mapping) else {"state": obs}
        return {k: torch.as_tensor(np.asarray(obs[k]), device=self.device)[None] for k in self.keys}

    def forward(self, batch: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        return self.net(batch)

    @torch.inference_mode()
    def act(self, obs: Obs | np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self.forward(self.to_batch(obs), deterministic)[0].cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return self.net.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state)


class GaussianPolicy(TorchPolicy):
    """SAC's policy (robotrl.learners.networks.GaussianPolicyNet: encoder, tanh-Gaussian actor and, with a discrete
    gripper, the gripper critic): a sample, or the mean with ``deterministic``; the gripper command is its critic's
    argmax, epsilon-greedy when sampling. Noise comes from ``generator``."""

    def __init__(self, net: nn.Module, keys: Iterable[str], device: torch.device | str, generator: torch.Generator,
                 gripper_epsilon: float = 0.0):
        super().__init__(net, keys, device)
        self.generator, self.gripper_epsilon = generator, gripper_epsilon

    def forward(self, batch: dict[str, torch.Tensor], deterministic: bool) -> torch.Tensor:
        return self.net(batch, deterministic, self.generator, self.gripper_epsilon)
