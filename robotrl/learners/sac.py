"""SAC in the RLPD / HIL-SERL recipe: LayerNorm critics in a vectorized ensemble with a random-subset min target,
high update-to-data ratio, symmetric demo/online sampling, DrQ image shifts and an optional discrete gripper
critic. Single-process and sampling-agnostic: :meth:`SACAgent.update` takes any dict batch (see replay.py). An
:class:`~robotrl.learners.base.Algorithm`: its ``policy`` is a :class:`~robotrl.policies.torch_policy.GaussianPolicy`.

    agent = SACAgent(env.observation_space, env.action_space, load_sac_config({"utd": 20, "n_critics": 10}))
    action = agent.policy.act(obs)                               # one observation in, one action out
    stats = agent.update(sampler.sample(agent.batch_size, rng))  # batch_size = config.batch_size * config.utd
"""

from __future__ import annotations

import copy
import math
import shutil
from pathlib import Path
from typing import Any, Literal, Mapping

import gymnasium as gym
import torch
from pydantic import Field, model_validator

from robotrl.config import configs_dir, load_config
from robotrl.learners.base import LearnerConfig, default_threads, resolve_device
from robotrl.learners.networks import CRITIC_ONLY, Critic, GaussianActor, GaussianPolicyNet, ObsEncoder, dict_space, policy_space
from robotrl.learners.replay import Batch, split, to_torch
from robotrl.policies.torch_policy import GaussianPolicy


class SACConfig(LearnerConfig):
    """Defaults follow HIL-SERL; the RLPD setting is ``n_critics: 10, utd: 20`` (configs/learners/sac.yaml)."""

    batch_size: int = Field(256, ge=1)  # transitions per gradient step (a call to update() takes batch_size * utd)
    # Transitions each replay buffer (offline, online) holds; a T-step episode takes T+1 rows. The learner prints
    # the bytes per transition and refuses to start when both buffers at full capacity exceed the free memory.
    capacity: int = Field(100_000, ge=2)
    discount: float = Field(0.97, gt=0, le=1)
    lr: float = Field(3e-4, gt=0)  # actor, critic and temperature
    init_temperature: float = Field(0.01, gt=0)
    target_entropy: float | None = None  # None: -(number of continuous action dims)
    n_critics: int = Field(2, ge=1)
    critic_subset: int = Field(2, ge=1)  # target = min over a random subset of this many critics
    utd: int = Field(1, ge=1)  # critic updates per update() call (one call per env step in robotrl.runtime)
    hidden: int = Field(256, ge=1)
    depth: int = Field(2, ge=1)  # hidden layers in the actor, critic and gripper MLPs
    layer_norm: bool = True
    tau: float = Field(0.005, gt=0, le=1)  # Polyak rate of the target critic (encoder included)
    backup_entropy: bool = False  # subtract alpha * log pi(a'|s') in the target (RLPD: true, HIL-SERL: false)
    image_features: int = Field(64, ge=1)  # per-camera feature size
    cnn_channels: int = Field(32, ge=1)
    augment_pad: int = Field(4, ge=0)  # DrQ random shift in pixels (0: no augmentation)
    pretrained_encoder: str | None = None  # path to a state_dict for the conv stack (never downloaded)
    freeze_encoder: bool = False  # keep the conv stack fixed (with a pretrained one)
    # With freeze_encoder: each camera frame's conv features are computed once, as it enters the replay, and the
    # replay keeps them (float16) instead of its pixels; an update then runs no convolution (and no DrQ shift,
    # which would need one). Ignored without freeze_encoder.
    cache_features: bool = True
    discrete_gripper: bool = False  # last action dim from a DQN-style critic over gripper_values
    gripper_values: list[float] = Field(default_factory=lambda: [-1.0, 1.0], min_length=2)
    gripper_epsilon: float = Field(0.1, ge=0, le=1)  # epsilon-greedy gripper exploration in act()
    # HIL-SERL's grasp penalty, charged to the gripper critic's reward only, for a command that changes the
    # gripper's state (closing a fully open gripper, opening one that is not). Without it the critic's preference
    # for holding a lifted cube shrank to its own noise as the policy learned to re-grasp (opening then costs only
    # a few steps), and the argmax gripper chattered: ArmPickCube fell from 100 % to 70-82 % eval success late in
    # training while the arm's actor stayed good (it scored 100 % with an earlier gripper critic).
    grasp_penalty: float = Field(0.02, ge=0)
    gripper_state_key: str = "state/gripper"  # the observed gripper opening, 1 = fully open (for grasp_penalty)
    # bf16: matmuls under autocast in bfloat16 (CPUs with AVX512-BF16 or AMX, CUDA Ampere and newer); weights,
    # optimizer state, losses and the policy's distribution stay float32. Faster on some CPUs, slower on others
    # (at 256x256 with compile: 1.36x fp32 eager on one 2-core CPU, 0.78x on an AVX512-BF16 Xeon): measure with
    # `robotrl bench learner`.
    precision: Literal["fp32", "bf16"] = "fp32"
    # torch.compile the critic and actor losses (forward and backward fused into generated kernels). The first
    # update compiles for ~20-30 s (cached on disk after); needs a C++ compiler on CPU. Same math as eager.
    compile: bool = False
    # device, num_threads: LearnerConfig's

    @model_validator(mode="after")
    def _subset_fits(self) -> "SACConfig":
        if self.critic_subset > self.n_critics:
            raise ValueError(f"critic_subset ({self.critic_subset}) must be <= n_critics ({self.n_critics})")
        return self


def load_sac_config(*sources: str | Path | Mapping[str, Any] | None) -> SACConfig:
    """configs/learners/sac.yaml, then each YAML file or dict in ``sources`` overriding it key by key."""
    return load_config(SACConfig, configs_dir() / "learners" / "sac.yaml", *sources)


def _mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last (batch) dim, weighted by ``mask`` when given (0 drops a transition)."""
    return x.mean(-1) if mask is None else (x * mask).sum(-1) / mask.sum().clamp_min(1.0)


class SACAgent:
    """Networks, optimizers, temperature and counters of one SAC learner; see :meth:`update` for the schedule."""

    samples: Literal["transitions", "sequences"] = "transitions"
    replay: Literal["mixed", "offline"] = "mixed"  # RLPD: half demos and interventions, half online, per batch

    def __init__(self, obs_space: gym.Space, action_space: gym.spaces.Box, config: SACConfig | None = None,
                 seed: int = 0):
        self.config = cfg = config or SACConfig()
        torch.set_num_threads(cfg.num_threads or default_threads())
        self.device = resolve_device(cfg.device)
        self.obs_space, self.action_space = dict_space(obs_space), action_space
        self.act_dim = int(action_space.shape[0])
        self.cont_dim = self.act_dim - 1 if cfg.discrete_gripper else self.act_dim
        if cfg.discrete_gripper and cfg.grasp_penalty and cfg.gripper_state_key not in self.obs_space.spaces:
            raise ValueError(f"SAC config grasp_penalty needs the gripper opening in the observations, but "
                             f"gripper_state_key {cfg.gripper_state_key!r} is not one of {list(self.obs_space.spaces)}; "
                             f"name the key or set grasp_penalty: 0")
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -float(self.cont_dim)
        # Asymmetric actor-critic (twin only): critic/* observations reach the Q ensemble, never the policy.
        self.critic_keys = sorted(k for k in self.obs_space.spaces if k.startswith(CRITIC_ONLY))
        critic_dim = sum(int(math.prod(self.obs_space[k].shape)) for k in self.critic_keys)
        acting = policy_space(self.obs_space)

        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's global RNG
            torch.manual_seed(seed)
            encoder = ObsEncoder(acting, cfg.image_features, cfg.cnn_channels, cfg.pretrained_encoder,
                                 cfg.freeze_encoder)
            self.critic = Critic(encoder, self.cont_dim, cfg.n_critics, cfg.hidden, cfg.depth, cfg.layer_norm,
                                 len(cfg.gripper_values) if cfg.discrete_gripper else 0, critic_dim).to(self.device)
            self.actor = GaussianActor(encoder.out_dim, self.cont_dim, cfg.hidden, cfg.depth, cfg.layer_norm).to(self.device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        # What acting needs (encoder, actor, gripper critic; modules shared, not copied): what actors receive.
        self.policy_net = GaussianPolicyNet(self.critic.encoder, self.actor, self.critic.gripper,
                                            cfg.gripper_values).to(self.device)
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device, requires_grad=True)

        # Fused Adam: one kernel for all parameters instead of a handful of ops per tensor.
        self.critic_params = [p for p in self.critic.parameters() if p.requires_grad]
        self.actor_params = list(self.actor.parameters())
        self.critic_opt = torch.optim.Adam(self.critic_params, lr=cfg.lr, fused=True)
        # The actor and the temperature step together once per update(): one optimizer, two param groups.
        self.actor_opt = torch.optim.Adam([{"params": self.actor_params}, {"params": [self.log_alpha]}], lr=cfg.lr,
                                          fused=True)
        self._online, self._targets = list(self.critic.parameters()), list(self.target.parameters())
        # The encoder has parameters only with cameras; state-only features are the same tensors for the
        # target critic, so it is run once.
        self._encoder_has_params = any(True for _ in encoder.parameters())

        self.generator = torch.Generator(self.device).manual_seed(seed)  # all sampling noise: resumable
        self.policy = GaussianPolicy(self.policy_net, acting.spaces, self.device, self.generator,
                                     cfg.gripper_epsilon)
        self._bf16 = cfg.precision == "bf16"
        # The losses are pure functions of their inputs (noise is drawn outside), so they compile to one graph each.
        self._critic_loss, self._actor_loss = self.critic_loss, self.actor_loss
        if cfg.compile:
            if self.device.type == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
                raise RuntimeError("SAC config compile: true needs a C++ compiler for torch.compile on CPU; install "
                                   "one (apt-get install g++) or set compile: false")
            # On CPU the generated graph launches its kernels from C++ rather than Python: ~9 % more updates/s.
            options = {"cpp_wrapper": True} if self.device.type == "cpu" else None
            self._critic_loss = torch.compile(self.critic_loss, dynamic=False, options=options)
            self._actor_loss = torch.compile(self.actor_loss, dynamic=False, options=options)
        self.num_updates = 0  # update() calls = actor updates
        self.num_critic_updates = 0

    # -- what the runtime reads -----------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """Transitions per update() call: ``utd`` mini-batches of the config's batch_size."""
        return self.config.batch_size * self.config.utd

    @property
    def min_replay(self) -> int:
        """Updates start once the replay holds one mini-batch (it samples with replacement)."""
        return self.config.batch_size

    def counters(self) -> dict[str, int]:
        return {"updates": self.num_updates, "critic_updates": self.num_critic_updates}

    def replay_encoders(self) -> dict[str, Any]:
        """What the replay computes once per frame (robotrl.learners.replay.FrameEncoder): with a frozen, cached
        encoder, each camera's conv features, which update() then reads in place of the pixels; else nothing."""
        if not (self.config.freeze_encoder and self.config.cache_features):
            return {}
        return self.critic.encoder.frame_features(self.device)

    # -- learning ------------------------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One RLPD step: split ``batch`` (``batch_size * utd`` transitions, torch tensors or numpy) into ``utd``
        mini-batches; take one critic step (+ Polyak update of the target) on each, then ONE actor step and
        ONE temperature step on the last mini-batch. A high UTD thus makes the critic fit fast while the policy
        moves at the usual rate, as in RLPD/REDQ. Optional ``batch["mask"]`` (B,) weights transitions (0 = skip).
        """
        cfg = self.config
        batch = to_torch(batch, self.device)
        n = batch["reward"].shape[0]
        if n % cfg.utd:
            raise ValueError(f"update: batch of {n} transitions does not split into utd={cfg.utd} mini-batches")
        minis = split(batch, cfg.utd)
        alpha = self.log_alpha.detach().exp()
        for mini in minis:
            feat, critic_stats = self._critic_step(mini, alpha)
        actor_stats = self._actor_step(feat, minis[-1]["obs"], minis[-1].get("mask"), alpha)
        self.num_updates += 1
        keys = ["critic_loss", "q", "gripper_loss", "actor_loss", "entropy"]
        values = torch.stack([*critic_stats, *actor_stats]).tolist()  # one device sync for all stats
        return {**dict(zip(keys, values)), "temperature": float(self.log_alpha.detach().exp())}

    @torch.no_grad()
    def td_targets(self, b: Batch, next_obs: dict[str, torch.Tensor], alpha: torch.Tensor, eps: torch.Tensor,
                   subset: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """TD targets r + discount * (1 - done) * V(s') for the Q ensemble and, if any, the gripper critic.
        ``eps``: the policy's noise for a' ~ pi(s'); ``subset``: the critics the target takes its min over (None: all)."""
        cfg = self.config
        next_feat = self.critic.encoder(next_obs)  # the policy reads the online encoder, as when acting
        next_action, next_logp = self.actor(next_feat, eps=eps)
        target_feat = self.target.encoder(next_obs) if self._encoder_has_params else next_feat
        next_q = self.target.q(self._with_critic_obs(target_feat, next_obs), next_action).float()  # (N, B)
        if subset is not None:  # RLPD/REDQ: min over a random subset curbs overestimation
            next_q = next_q[subset]
        next_v = next_q.min(0).values
        if cfg.backup_entropy:
            next_v = next_v - alpha * next_logp
        bootstrap = cfg.discount * (1.0 - b["done"].float())
        target_q = b["reward"] + bootstrap * next_v
        if self.target.gripper is None:
            return target_q, None
        grasp_reward = b["reward"] - cfg.grasp_penalty * self.grasp_changes(b) if cfg.grasp_penalty else b["reward"]
        # Double DQN (as HIL-SERL): the online gripper critic picks the next command, the target one rates it, so
        # the target's own noise is not maximized over.
        next_g = self.critic.gripper(next_feat).argmax(-1, keepdim=True)
        return target_q, grasp_reward + bootstrap * self.target.gripper(target_feat).float().gather(-1, next_g).squeeze(-1)

    def grasp_changes(self, b: Batch) -> torch.Tensor:
        """1.0 where the stored gripper command changes the gripper's state: HIL-SERL's rule, a close command on a
        fully open gripper (opening > 0.9) or an open command on one that is not."""
        opening = b["obs"][self.config.gripper_state_key][:, 0].float()
        command_open = b["action"][:, -1] > 0  # gripper commands are openings in [-1, 1]: > 0 opens
        return (command_open == (opening <= 0.9)).float()

    def critic_loss(self, b: Batch, obs: dict[str, torch.Tensor], next_obs: dict[str, torch.Tensor],
                    alpha: torch.Tensor, eps: torch.Tensor, subset: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, encoder features of ``obs``, mean Q, gripper loss): each critic's own MSE to the TD target,
        summed, plus the gripper critic's DQN loss. ``obs`` / ``next_obs`` are ``b``'s, augmented."""
        mask = b.get("mask")
        with self._autocast():
            target_q, target_g = self.td_targets(b, next_obs, alpha, eps, subset)
            feat = self.critic.encoder(obs)
            q = self.critic.q(self._with_critic_obs(feat, obs), b["action"][:, : self.cont_dim]).float()
            q_gripper = self.critic.gripper(feat).float() if target_g is not None else None
        loss = _mean((q - target_q).square(), mask).sum()
        gripper_loss = torch.zeros((), device=q.device)
        if target_g is not None:
            # DQN on the gripper command: the stored action's nearest gripper value is the discrete action.
            index = (b["action"][:, -1:] - self.policy_net.gripper_values).abs().argmin(-1)
            q_g = q_gripper.gather(1, index[:, None]).squeeze(1)
            gripper_loss = _mean((q_g - target_g).square(), mask)
            loss = loss + gripper_loss
        return loss, feat, q.detach().mean(), gripper_loss.detach()

    def actor_loss(self, feat: torch.Tensor, obs: dict[str, torch.Tensor], mask: torch.Tensor | None,
                   alpha: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha * log pi(a|s) - mean_i Q_i(s, a), the log-probabilities), a = the policy's action for ``eps``;
        ``obs``: the batch's observations (the critic-only ones, if any, reach the Q ensemble)."""
        with self._autocast():
            action, logp = self.actor(feat, eps=eps)
            q = self.critic.q(self._with_critic_obs(feat, obs), action).float().mean(0)  # ensemble mean (RLPD, HIL-SERL)
        return _mean(alpha * logp - q, mask), logp.detach()

    def _with_critic_obs(self, feat: torch.Tensor, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The Q ensemble's input: the encoder's features, then the critic-only observations (sorted keys)."""
        if not self.critic_keys:
            return feat
        return torch.cat([feat, *(obs[k].flatten(1).to(feat.dtype) for k in self.critic_keys)], dim=-1)

    def _noise(self, batch_size: int) -> torch.Tensor:
        return torch.randn((batch_size, self.cont_dim), device=self.device, generator=self.generator)

    def _critic_step(self, b: Batch, alpha: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        cfg, enc, g = self.config, self.critic.encoder, self.generator
        obs, next_obs = b["obs"], b["next_obs"]
        if cfg.augment_pad:  # DrQ: independent random shifts for s and s'
            obs = enc.augment(obs, cfg.augment_pad, g)
            next_obs = enc.augment(next_obs, cfg.augment_pad, g)
        eps = self._noise(b["reward"].shape[0])
        subset = None
        if cfg.critic_subset < cfg.n_critics:
            subset = torch.randperm(cfg.n_critics, device=self.device, generator=g)[: cfg.critic_subset]
        loss, feat, q_mean, gripper_loss = self._critic_loss(b, obs, next_obs, alpha, eps, subset)

        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():  # Polyak: target <- (1 - tau) target + tau online, one fused op over every tensor
            torch._foreach_lerp_(self._targets, self._online, cfg.tau)
        self.num_critic_updates += 1
        return feat.detach(), [loss.detach(), q_mean, gripper_loss]

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16)

    def _actor_step(self, feat: torch.Tensor, obs: dict[str, torch.Tensor], mask: torch.Tensor | None,
                    alpha: torch.Tensor) -> list[torch.Tensor]:
        actor_loss, logp = self._actor_loss(feat, obs, mask, alpha, self._noise(feat.shape[0]))
        # Gradients for the actor only: the critic's weight gradients would be computed and thrown away.
        grads = torch.autograd.grad(actor_loss, self.actor_params)
        for p, grad in zip(self.actor_params, grads):
            p.grad = grad
        # Temperature loss -log_alpha * (logp + target_entropy): its gradient written out directly. alpha grows
        # while the policy's entropy (-logp) is below the target and shrinks above it.
        entropy = -_mean(logp, mask)
        self.log_alpha.grad = (entropy - self.target_entropy).reshape(())
        self.actor_opt.step()
        return [actor_loss.detach(), entropy]

    # -- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything to resume learning exactly (networks, optimizers, temperature, counters, the RNG).
        Tensors are live references, as with nn.Module.state_dict: torch.save it or deepcopy it."""
        return {
            "critic": self.critic.state_dict(), "target": self.target.state_dict(), "actor": self.actor.state_dict(),
            "log_alpha": self.log_alpha.detach(), "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "num_updates": self.num_updates, "num_critic_updates": self.num_critic_updates,
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        self.actor.load_state_dict(state["actor"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.num_updates, self.num_critic_updates = int(state["num_updates"]), int(state["num_critic_updates"])
        self.generator.set_state(state["rng"])
