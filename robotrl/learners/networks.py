"""Networks for SAC in the RLPD / HIL-SERL recipe: an observation encoder (state vectors + per-camera CNNs with DrQ
shifts; behaviour cloning uses it too), a tanh-Gaussian actor, a vectorized critic ensemble and an optional
discrete gripper critic.

Observations are always dicts of tensors inside the learner: a plain gymnasium Box space is treated as
``{"state": box}`` (see :func:`dict_space` / :func:`as_obs_dict`), so one code path serves every env.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # CleanRL's bounds; log_std is squashed into them with tanh (smooth gradients)

TensorObs = dict[str, torch.Tensor]  # a batch of observations: key -> (B, ...) tensor


# -- observation spaces ------------------------------------------------------------------------------------


def dict_space(space: gym.Space) -> gym.spaces.Dict:
    """The Dict space the learner works with: a Box becomes ``{"state": box}``."""
    if isinstance(space, gym.spaces.Dict):
        return space
    if isinstance(space, gym.spaces.Box):
        return gym.spaces.Dict({"state": space})
    raise TypeError(f"observation space {space} not supported: use a Box or a Dict of Boxes")


CRITIC_ONLY = "critic/"  # observation keys only a critic reads (ObservationSpec.critic_state), never a policy


def policy_space(space: gym.Space) -> gym.spaces.Dict:
    """The observations a policy reads: every key but the critic-only ones."""
    return gym.spaces.Dict({k: v for k, v in dict_space(space).spaces.items() if not k.startswith(CRITIC_ONLY)})


def as_obs_dict(obs) -> dict:
    """An observation as a dict (a bare array becomes ``{"state": array}``, matching :func:`dict_space`)."""
    return obs if isinstance(obs, dict) else {"state": obs}


def is_image(space: gym.Space) -> bool:
    """uint8 HxWxC boxes are camera images (``images/*`` in robotrl); everything else is a state vector."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


# -- building blocks ---------------------------------------------------------------------------------------


def mlp(in_dim: int, hidden: int, depth: int, layer_norm: bool) -> nn.Sequential:
    """Linear -> [LayerNorm] -> ReLU, ``depth`` times (LayerNorm before the activation, as RLPD)."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(in_dim if i == 0 else hidden, hidden))
        if layer_norm:
            layers.append(nn.LayerNorm(hidden))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def random_shift(img: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation on a uint8 (B, H, W, C) batch: pad by ``pad`` (edge replicate) and crop back at a random
    offset per image. Done as one gather with clamped indices, so it stays uint8 and never builds the padded
    copy (clamping an index into [0, H-1] is exactly edge-replicate padding)."""
    b, h, w, _ = img.shape
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=img.device, generator=generator) - pad
    rows = (torch.arange(h, device=img.device) + shift[:, :1]).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=img.device) + shift[:, 1:]).clamp_(0, w - 1)  # (B, W)
    batch = torch.arange(b, device=img.device)[:, None, None]
    return img[batch, rows[:, :, None], cols[:, None, :]]


class ConvEncoder(nn.Module):
    """One camera: 4 conv layers (3x3, stride 2, 32 channels) -> flatten -> Linear -> LayerNorm -> tanh (DrQ's
    projection; tanh keeps the features bounded for the critic). Input uint8 (B, H, W, C)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int = 32, features: int = 64):
        super().__init__()
        layers: list[nn.Module] = []
        h, w, c = image_shape
        for i in range(4):
            layers += [nn.Conv2d(c if i == 0 else channels, channels, 3, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.conv(torch.zeros(1, c, h, w)).numel()
        self.proj = nn.Sequential(nn.Linear(n_flat, features), nn.LayerNorm(features), nn.Tanh())

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """The conv stack's flattened output for uint8 (B, H, W, C) images: what a frozen encoder caches."""
        x = img.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)  # HWC uint8 -> CHW in [-0.5, 0.5]
        return self.conv(x).flatten(1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, C) images, or (B, n) conv features computed before (a frozen encoder's replay cache:
        the convolutions do not run again)."""
        if img.dim() == 2:
            return self.proj(img.float())
        return self.proj(self.features(img))


class FrameFeatures:
    """A frozen :class:`ConvEncoder`'s conv stack as a replay encoder (robotrl.learners.replay.FrameEncoder): uint8
    frames (N, H, W, C) -> their conv features (N, n) as float16, computed once as each frame enters the replay (half
    the bytes of float32; ~12x smaller than a 96 px frame's pixels). It reads the live module, so weights loaded
    later (a checkpoint) apply to frames added later."""

    def __init__(self, cnn: ConvEncoder, device: torch.device | str = "cpu", chunk: int = 256):
        self.cnn, self.device, self.chunk = cnn, torch.device(device), chunk
        n = cnn.proj[0].in_features
        self.space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float16)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        out = np.empty((len(frames), *self.space.shape), np.float16)
        for i in range(0, len(frames), self.chunk):
            img = torch.as_tensor(frames[i: i + self.chunk], device=self.device)
            out[i: i + self.chunk] = self.cnn.features(img).to(torch.float16).cpu().numpy()
        return out


class ObsEncoder(nn.Module):
    """Dict observation -> one feature vector: the state keys concatenated in sorted key order, then one
    :class:`ConvEncoder` feature per camera (sorted). State-only observations have no parameters at all.

    ``pretrained`` is a path to a ``state_dict`` for :class:`ConvEncoder`'s ``conv`` stack (the user's own
    file; nothing is ever downloaded); it is loaded into every camera's CNN, and ``freeze`` keeps those conv
    weights fixed (HIL-SERL freezes its pretrained vision backbone and trains only the projection).
    """

    def __init__(self, obs_space: gym.Space, image_features: int = 64, channels: int = 32,
                 pretrained: str | Path | None = None, freeze: bool = False):
        super().__init__()
        space = dict_space(obs_space)
        self.state_keys = sorted(k for k, s in space.spaces.items() if not is_image(s))
        self.image_keys = sorted(k for k, s in space.spaces.items() if is_image(s))
        self.state_dim = sum(int(np.prod(space[k].shape)) for k in self.state_keys)
        # ModuleDict keys may not contain "."; camera keys like "images/wrist" are fine but be safe.
        self.cnns = nn.ModuleDict({k.replace(".", "_"): ConvEncoder(space[k].shape, channels, image_features)
                                   for k in self.image_keys})
        if pretrained is not None:
            weights = torch.load(pretrained, map_location="cpu", weights_only=True)
            for cnn in self.cnns.values():
                cnn.conv.load_state_dict(weights)
        if freeze:
            for cnn in self.cnns.values():
                cnn.conv.requires_grad_(False)
        self.out_dim = self.state_dim + image_features * len(self.image_keys)

    def augment(self, obs: TensorObs, pad: int, generator: torch.Generator | None = None) -> TensorObs:
        """The DrQ random shift on every camera (training only); state keys pass through."""
        if not self.image_keys or pad <= 0:
            return obs
        # Cached conv features (2-D, see FrameFeatures) are not images: no shift for them.
        return {**obs, **{k: random_shift(obs[k], pad, generator) for k in self.image_keys if obs[k].dim() == 4}}

    def frame_features(self, device: torch.device | str = "cpu") -> dict[str, FrameFeatures]:
        """Per camera key, its conv stack as a replay encoder; only meaningful while the convs are frozen."""
        return {k: FrameFeatures(self.cnns[k.replace(".", "_")], device) for k in self.image_keys}

    def forward(self, obs: TensorObs) -> torch.Tensor:
        parts = [obs[k].flatten(1).float() for k in self.state_keys]
        parts += [self.cnns[k.replace(".", "_")](obs[k]) for k in self.image_keys]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


# -- actor -------------------------------------------------------------------------------------------------


class GaussianActor(nn.Module):
    """Tanh-squashed Gaussian policy on encoder features: MLP -> (mean, log_std). Written out by hand instead of
    torch.distributions, which costs several Python-level objects and checks per call."""

    def __init__(self, in_dim: int, act_dim: int, hidden: int = 256, depth: int = 2, layer_norm: bool = True):
        super().__init__()
        self.trunk = mlp(in_dim, hidden, depth, layer_norm)
        self.head = nn.Linear(hidden, 2 * act_dim)

    def forward(self, feat: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(action in [-1, 1], log-probability of it), both batched. ``eps``: the standard-normal draw, shape
        (batch, act_dim), when the caller makes it (a compiled learner draws its noise outside the graph)."""
        mean, log_std = self.head(self.trunk(feat)).float().chunk(2, dim=-1)  # the distribution in fp32 (bf16 runs)
        if deterministic:
            return torch.tanh(mean), torch.zeros(mean.shape[0], device=mean.device)
        log_std = (torch.tanh(log_std) + 1.0) * (0.5 * (LOG_STD_MAX - LOG_STD_MIN)) + LOG_STD_MIN
        if eps is None:
            eps = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
        u = torch.addcmul(mean, log_std.exp(), eps)
        # log N(u; mean, std) - log|d tanh(u)/du|, the latter in the stable form log(1 - tanh(u)^2) =
        # 2 (log 2 - u - softplus(-2u)); the constants are summed once, outside the batch.
        logp = (2.0 * (u + F.softplus(-2.0 * u)) - 0.5 * eps.square() - log_std).sum(-1)
        return torch.tanh(u), logp - u.shape[-1] * (0.5 * math.log(2 * math.pi) + 2.0 * math.log(2.0))


# -- critics -----------------------------------------------------------------------------------------------


class EnsembleLinear(nn.Module):
    """N independent linear layers as one batched matmul: weight (N, in, out), bias (N, 1, out).
    Input (N, B, in) -> output (N, B, out) with ``torch.baddbmm``; each member is initialised like nn.Linear."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init (kaiming_uniform(a=sqrt(5)) reduces to this)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with a separate affine (gain, shift) per ensemble member: normalise, then one fused addcmul."""

    def __init__(self, n: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n, 1, dim))
        self.bias = nn.Parameter(torch.zeros(n, 1, dim))
        # A constant identity affine for F.layer_norm: torch 2.13's CPU kernel runs ~2x faster with weight and
        # bias given than without (measured on (2, 256, 256)). Not saved in the state_dict.
        self.register_buffer("one", torch.ones(dim), persistent=False)
        self.register_buffer("zero", torch.zeros(dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:], self.one, self.zero), self.weight)


class CriticEnsemble(nn.Module):
    """N Q-networks Q(features, action) evaluated together: no Python loop over critics, so N = 10 (RLPD) costs
    a few wider matmuls, not 5x the interpreter overhead of N = 2. Output (N, B)."""

    def __init__(self, n: int, in_dim: int, hidden: int = 256, depth: int = 2, layer_norm: bool = True):
        super().__init__()
        self.n = n
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(EnsembleLinear(n, in_dim if i == 0 else hidden, hidden))
            if layer_norm:
                layers.append(EnsembleLayerNorm(n, hidden))
            layers.append(nn.ReLU(inplace=True))
        layers.append(EnsembleLinear(n, hidden, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([feat, action], dim=-1)
        # Every member sees the same input: expand is a stride-0 view, not N copies.
        return self.net(x.expand(self.n, *x.shape)).squeeze(-1)


class Critic(nn.Module):
    """What the critic loss trains: the observation encoder (DrQ: the critic's gradients shape the encoder,
    the actor reads its features detached), the Q ensemble and, optionally, HIL-SERL's discrete gripper critic
    Q(features) -> one value per gripper command, trained DQN-style. Its target copy is Polyak-averaged whole."""

    def __init__(self, encoder: ObsEncoder, act_dim: int, n: int, hidden: int, depth: int, layer_norm: bool,
                 gripper_actions: int = 0, critic_dim: int = 0):
        super().__init__()
        self.encoder = encoder
        # critic_dim: the critic-only observations (asymmetric actor-critic) the Q ensemble reads beside the features;
        # the gripper critic acts, so it reads what the policy reads.
        self.q = CriticEnsemble(n, encoder.out_dim + critic_dim + act_dim, hidden, depth, layer_norm)
        self.gripper = None
        if gripper_actions:
            self.gripper = nn.Sequential(mlp(encoder.out_dim, hidden, depth, layer_norm), nn.Linear(hidden, gripper_actions))


class GaussianPolicyNet(nn.Module):
    """Everything acting needs and nothing else (what an actor process receives): encoder, actor and, with a
    discrete gripper, the gripper critic whose argmax is the gripper command. Modules are shared with the
    learner's :class:`Critic`, not copied."""

    def __init__(self, encoder: ObsEncoder, actor: GaussianActor, gripper: nn.Module | None, gripper_values: list[float]):
        super().__init__()
        self.encoder, self.actor, self.gripper = encoder, actor, gripper
        # A buffer, so it travels in the state_dict: the actor maps gripper indices to commands itself.
        self.register_buffer("gripper_values", torch.tensor(gripper_values, dtype=torch.float32))

    def forward(self, obs: TensorObs, deterministic: bool = False, generator: torch.Generator | None = None,
                gripper_epsilon: float = 0.0) -> torch.Tensor:
        """Batched actions in [-1, 1]; with a gripper critic the last dim is its (epsilon-greedy) command."""
        feat = self.encoder(obs)
        action, _ = self.actor(feat, deterministic, generator)
        if self.gripper is None:
            return action
        idx = self.gripper(feat).argmax(-1)
        if not deterministic and gripper_epsilon > 0:
            n = len(self.gripper_values)
            explore = torch.rand(idx.shape, device=idx.device, generator=generator) < gripper_epsilon
            idx = torch.where(explore, torch.randint(0, n, idx.shape, device=idx.device, generator=generator), idx)
        return torch.cat([action, self.gripper_values[idx, None]], dim=-1)
