"""The learner: turns stored episodes into replay, updates SAC, publishes versioned weights, checkpoints.

Replay follows HIL-SERL: demos and every intervened transition go to the offline buffer, every actor
transition to the online buffer, and each batch is half of each (RLPD). The buffers are rebuilt from the
episode stores on resume, so a checkpoint holds only what is not on disk already: networks, optimizers,
temperature and counters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from robotrl.data import EpisodeStore
from robotrl.data.store import transitions
from robotrl.learning.replay import MixedSampler, ReplayBuffer
from robotrl.learning.sac import SACAgent
from robotrl.runtime.transport import FileProgress, WeightsTransport, save_atomic

FIRST_CHECKPOINT = 100  # updates: a run stopped soon after learning starts still leaves a checkpoint


class Learner:
    def __init__(self, agent: SACAgent, obs_space, transport: WeightsTransport | None = None, publish_every: int = 50,
                 capacity: int = 1_000_000, seed: int = 0, takeover_penalty: float = 0.0):
        self.agent, self.transport, self.publish_every = agent, transport, publish_every
        self.takeover_penalty = takeover_penalty
        act_dim = agent.act_dim
        self.offline = ReplayBuffer(obs_space, act_dim, capacity)
        self.online = ReplayBuffer(obs_space, act_dim, capacity)
        self.sampler = MixedSampler(self.offline, self.online, ratio=0.5)
        self.rng = np.random.default_rng(seed)
        self.env_steps = self.episodes = 0  # actor episodes ingested (demos not counted) and their env steps
        self.version = 0
        self.published_updates = -1  # agent.num_updates when the newest version was published

    # -- data ----------------------------------------------------------------------------------------------
    def add_demos(self, store: EpisodeStore) -> int:
        n = 0
        for _, rows in store.episodes():
            ep = transitions(rows)
            self.offline.add_episode(ep)
            n += len(ep["action"])
        return n

    def ingest(self, rows: dict[str, np.ndarray]) -> None:
        """One actor episode: all of it online, its intervened steps offline as well. The policy's step that led
        to a human takeover is charged ``takeover_penalty`` (RLIF): without it, states the human rescues look as
        good as states the policy handles itself, and the policy learns to wait for the rescue."""
        ep = transitions(rows)
        if self.takeover_penalty:
            human = ep["intervention"].astype(bool)
            led_to_takeover = ~human[:-1] & human[1:]  # step t-1 was the policy's, step t the human's
            ep["reward"] = ep["reward"] - self.takeover_penalty * np.append(led_to_takeover, False)
        self.online.add_episode(ep)
        for t in np.flatnonzero(ep["intervention"]):
            self.offline.add({k: v[t] for k, v in ep["obs"].items()}, ep["action"][t], ep["reward"][t],
                             {k: v[t + 1] for k, v in ep["obs"].items()}, ep["terminated"][t])
        self.env_steps += len(ep["action"])
        self.episodes += 1

    # -- learning ------------------------------------------------------------------------------------------
    def ready(self) -> bool:
        return len(self.sampler) >= self.agent.config.batch_size

    def update(self) -> dict[str, float]:
        cfg = self.agent.config
        stats = self.agent.update(self.sampler.sample(cfg.batch_size * cfg.utd, self.rng))
        if self.transport is not None and self.agent.num_updates % self.publish_every == 0:
            self.publish()
        return stats

    def publish(self) -> None:
        self.version += 1
        self.transport.publish(self.version, self.agent.policy_state_dict())
        self.published_updates = self.agent.num_updates

    def checkpoint_due(self, every: int) -> bool:
        n = self.agent.num_updates
        return n == FIRST_CHECKPOINT or n % every == 0

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Atomic: a crash mid-save leaves the previous checkpoint intact."""
        save_atomic({"agent": self.agent.state_dict(), "env_steps": self.env_steps, "version": self.version,
                     "rng": self.rng.bit_generator.state, **(extra or {})}, path)

    def load(self, path: str | Path) -> dict[str, Any]:
        blob = torch.load(path, map_location=self.agent.device, weights_only=False)
        self.agent.load_state_dict(blob["agent"])
        self.env_steps, self.version = blob["env_steps"], blob["version"]
        self.rng.bit_generator.state = blob["rng"]
        return blob


class StopCheck(Protocol):
    def exists(self) -> bool: ...


def serve(learner: Learner, store_path: Path, checkpoint: Path, stop_file: StopCheck, utd_cap: bool = True,
          checkpoint_every: int = 500, poll_seconds: float = 0.05, warmup: int = 0,
          progress: FileProgress | None = None, refresh_every: int = 50) -> None:
    """Learner process loop: tail the actor's store, update while there is data, publish and checkpoint.

    With ``utd_cap``, one update() per env step after the first ``warmup`` (the actor's random steps), as in the
    one-process loop: the update-to-data ratio of the learner config, instead of overfitting the first episodes.
    Idle (waiting for data), it publishes the weights of its last updates, so the actor evaluates every update the
    data paid for. ``progress`` receives its counters (see FileProgress) every 10 updates and when it goes idle.
    It looks for new episodes when idle and every ``refresh_every`` updates: reading the store's index took ~4
    updates' time here (13 ms against 3.5 ms for a small network), and once per update it halved the learner."""
    store = EpisodeStore(store_path)
    reported: dict = {}
    learner.publish()  # version 1: the actor starts from the learner's (possibly resumed) weights
    while not stop_file.exists():
        if not learner.agent.num_updates % refresh_every or not _may_update(learner, utd_cap, warmup):
            _ingest_new(learner, store)
        if _may_update(learner, utd_cap, warmup):
            learner.update()
            if learner.checkpoint_due(checkpoint_every):
                learner.save(checkpoint)
            if learner.agent.num_updates % 10 == 0:
                reported = _report(learner, progress, reported)
        else:
            if learner.published_updates < learner.agent.num_updates:
                learner.publish()
            reported = _report(learner, progress, reported)
            time.sleep(poll_seconds)
    learner.save(checkpoint)
    _report(learner, progress, reported)


def _may_update(learner: Learner, utd_cap: bool, warmup: int) -> bool:
    return learner.ready() and (not utd_cap or learner.agent.num_updates < learner.env_steps - warmup)


def _ingest_new(learner: Learner, store: EpisodeStore) -> None:
    store.refresh()
    for i in range(learner.episodes, store.n_episodes):  # a resumed learner has ingested the first ones
        learner.ingest(store.episode(i))


def _report(learner: Learner, progress: FileProgress | None, reported: dict) -> dict:
    """Write the learner's counters where they changed since ``reported``; returns what was written."""
    agent = learner.agent
    counters = {"updates": agent.num_updates, "critic_updates": agent.num_critic_updates, "env_steps": learner.env_steps,
                "ready": learner.ready(), "published_updates": learner.published_updates}
    if progress is not None and counters != reported:
        progress.write(**counters)
    return counters
