"""Behaviour cloning: regress the demonstrated action from the observation. An
:class:`~robotrl.learners.base.Algorithm` that learns from the offline replay only (demos, and any intervened steps),
so it runs through the same train loop, run folder, eval and ROS nodes as SAC; the actor's own episodes are stored
but not learned from.

The network is SAC's observation encoder (state keys concatenated, a CNN per camera with DrQ shifts) under an MLP
whose output goes through tanh: a deterministic policy with actions in [-1, 1].

Loss: mean squared error between the tanh output and the demonstrated action. Scripted experts (and a steady
teleoperator) are deterministic and unimodal: one action per state. MSE is the maximum likelihood of a Gaussian of
fixed variance around the output, and the policy acts on that mean. A Gaussian NLL with a learned variance would fit
the same mean and add a per-state variance that nothing uses, while letting the loss down-weight the states the
network finds hard (where the variance grows), which are the ones that matter most here: the few steps where
the expert closes the gripper or changes phase. Multimodal demos (several humans) need a multimodal policy
(diffusion), not a wider Gaussian.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

import gymnasium as gym
import torch
from pydantic import Field
from torch import nn

from robotrl.config import configs_dir, load_config
from robotrl.learners.base import LearnerConfig, default_threads, resolve_device
from robotrl.learners.networks import ObsEncoder, TensorObs, dict_space, mlp, policy_space
from robotrl.learners.replay import Batch, split, to_torch
from robotrl.policies.torch_policy import TorchPolicy


class BCConfig(LearnerConfig):
    """configs/learners/bc.yaml documents the defaults."""

    batch_size: int = Field(256, ge=1)  # transitions per gradient step
    capacity: int = Field(100_000, ge=2)  # transitions the (offline) replay holds; a T-step episode takes T+1 rows
    steps_per_update: int = Field(4, ge=1)  # gradient steps per update() call (one call per env step in training)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)  # AdamW's decoupled weight decay
    hidden: int = Field(256, ge=1)
    depth: int = Field(2, ge=1)
    layer_norm: bool = True
    obs_noise: float = Field(0.0, ge=0)  # std of Gaussian noise added to state inputs in training (0: none)
    image_features: int = Field(64, ge=1)
    cnn_channels: int = Field(32, ge=1)
    augment_pad: int = Field(4, ge=0)  # DrQ random shift in pixels (0: no augmentation)
    pretrained_encoder: str | None = None
    freeze_encoder: bool = False


def load_bc_config(*sources: str | Path | Mapping[str, Any] | None) -> BCConfig:
    """configs/learners/bc.yaml, then each YAML file or dict in ``sources`` overriding it key by key."""
    return load_config(BCConfig, configs_dir() / "learners" / "bc.yaml", *sources)


class BCNet(nn.Module):
    """Observation dict -> encoder -> MLP -> tanh: a batch of actions in [-1, 1]."""

    def __init__(self, obs_space: gym.spaces.Dict, act_dim: int, cfg: BCConfig):
        super().__init__()
        self.encoder = ObsEncoder(obs_space, cfg.image_features, cfg.cnn_channels, cfg.pretrained_encoder,
                                  cfg.freeze_encoder)
        self.trunk = mlp(self.encoder.out_dim, cfg.hidden, cfg.depth, cfg.layer_norm)
        self.head = nn.Linear(cfg.hidden, act_dim)

    def forward(self, obs: TensorObs) -> torch.Tensor:
        return torch.tanh(self.head(self.trunk(self.encoder(obs))))


class BCAgent:
    """Behaviour cloning: ``update()`` takes ``steps_per_update`` gradient steps of MSE to the demonstrated actions."""

    samples: Literal["transitions", "sequences"] = "transitions"
    replay: Literal["mixed", "offline"] = "offline"  # demos and intervened steps only
    min_replay = 1  # demos are all there at the start; batches are drawn with replacement

    def __init__(self, obs_space: gym.Space, action_space: gym.spaces.Box, config: BCConfig | None = None,
                 seed: int = 0):
        self.config = cfg = config or BCConfig()
        torch.set_num_threads(cfg.num_threads or default_threads())
        self.device = resolve_device(cfg.device)
        self.obs_space, self.action_space = dict_space(obs_space), action_space
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
            torch.manual_seed(seed)
            self.net = BCNet(policy_space(self.obs_space), int(action_space.shape[0]), cfg).to(self.device)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.generator = torch.Generator(self.device).manual_seed(seed)  # augmentation noise: resumable
        self.policy = TorchPolicy(self.net, policy_space(self.obs_space).spaces, self.device)
        self.num_updates = 0

    @property
    def batch_size(self) -> int:
        return self.config.batch_size * self.config.steps_per_update

    def counters(self) -> dict[str, int]:
        return {"updates": self.num_updates, "gradient_steps": self.num_updates * self.config.steps_per_update}

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        batch = to_torch(batch, self.device)
        n = batch["action"].shape[0]
        if n % cfg.steps_per_update:
            raise ValueError(f"update: batch of {n} transitions does not split into steps_per_update="
                             f"{cfg.steps_per_update} mini-batches")
        losses = []
        for mini in split(batch, cfg.steps_per_update):
            obs = self.net.encoder.augment(mini["obs"], cfg.augment_pad, self.generator)
            if cfg.obs_noise:
                obs = {k: v + cfg.obs_noise * torch.randn(v.shape, device=v.device, generator=self.generator)
                       if k in self.net.encoder.state_keys else v for k, v in obs.items()}
            loss = (self.net(obs) - mini["action"].float().clamp(-1.0, 1.0)).square().mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
        self.num_updates += 1
        return {"bc_loss": float(torch.stack(losses).mean())}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "num_updates": self.num_updates,
                "rng": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(state["rng"])
