"""The learner: turns stored episodes into replay, updates an Algorithm (robotrl.learners.base), publishes its
policy's weights as versions, checkpoints. It names only the protocol: what to sample (the algorithm's ``samples``,
``replay``, ``batch_size`` and ``min_replay``) drives it, for SAC and behaviour cloning alike.

Replay follows HIL-SERL: demos and every intervened transition go to the offline buffer, every actor
transition to the online buffer; a "mixed" algorithm's batch is half of each (RLPD), an "offline" one's
(imitation) comes from the offline buffer alone. The buffers are rebuilt from the episode stores on resume, so a
checkpoint holds only what is not on disk already: the algorithm's state (networks, optimizers, counters).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from robotrl.data import EpisodeStore
from robotrl.data.store import transitions
from robotrl.learners.base import Algorithm
from robotrl.learners.replay import MixedSampler, ReplayBuffer, available_memory
from robotrl.runtime.transport import FileProgress, WeightsTransport, save_atomic

DEFAULT_CAPACITY = 100_000  # transitions per buffer, for an algorithm config without `capacity`
FIRST_CHECKPOINT = 100  # updates: a run stopped soon after learning starts still leaves a checkpoint


class Learner:
    """``capacity``: transitions per replay buffer (None: the algorithm config's ``capacity``). At start it reports
    (``log``) the bytes per transition and the replay memory at full capacity, and raises MemoryError naming
    ``capacity`` when that exceeds the memory available. An algorithm may hand the replay ``replay_encoders()``
    (observation key -> a fixed function of each frame, e.g. SAC's frozen conv features), computed once per frame
    as it enters the replay."""

    def __init__(self, algorithm: Algorithm, obs_space, transport: WeightsTransport | None = None, publish_every: int = 50,
                 capacity: int | None = None, seed: int = 0, takeover_penalty: float = 0.0,
                 log: Callable[[str], None] | None = print):
        if algorithm.samples != "transitions":
            raise NotImplementedError(f"{type(algorithm).__name__} samples {algorithm.samples}; the Learner replays "
                                      "transitions only so far (a sequence sampler comes with the first learner that "
                                      "needs one)")
        self.algorithm, self.transport, self.publish_every = algorithm, transport, publish_every
        self.takeover_penalty = takeover_penalty
        action_dim = int(algorithm.action_space.shape[0])
        if capacity is None:
            capacity = int(getattr(algorithm.config, "capacity", DEFAULT_CAPACITY))
        encoders = getattr(algorithm, "replay_encoders", lambda: {})()
        mixed = algorithm.replay == "mixed"
        buffers = 2 if mixed else 1
        # Measured on a 2-row buffer first: a too-large one must fail with this message, not inside numpy.
        probe = ReplayBuffer(obs_space, action_dim, 2, encoders)
        self.replay_bytes = probe.bytes_per_transition * int(capacity) * buffers
        message = replay_memory_report(probe, buffers, int(capacity))
        if log is not None:
            log(message)
        available = available_memory()
        if available is not None and self.replay_bytes > available:
            raise MemoryError(f"{message}: more than the {available / 2**30:.1f} GiB of memory available; lower the "
                              f"learner config's capacity (now {capacity:,}) to at most "
                              f"{int(available / self.replay_bytes * capacity):,}, or use fewer or smaller cameras")
        self.offline = ReplayBuffer(obs_space, action_dim, capacity, encoders)
        # An offline algorithm never samples the actor's own episodes: they are not kept in memory.
        self.online = ReplayBuffer(obs_space, action_dim, capacity, encoders) if mixed else None
        self.sampler = MixedSampler(self.offline, self.online, ratio=0.5) if self.online is not None else self.offline
        self.rng = np.random.default_rng(seed)
        self.env_steps = self.episodes = 0  # actor episodes ingested (demos not counted) and their env steps
        self.version = 0
        self.published_updates = -1  # agent.num_updates when the newest version was published

    # -- data ----------------------------------------------------------------------------------------------
    def add_demos(self, store: EpisodeStore, judge: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None) -> int:
        """Every episode of ``store`` into the offline buffer. ``judge`` (observations -> success per row, e.g. a
        reward classifier's verdicts) re-judges each step by the observation it led to: its reward (1 / 0) and
        end, in place of the recorded ones -- so a run that learns from a classifier's reward takes none from demos
        recorded under another judge (the twin's truth)."""
        n = 0
        for _, rows in store.episodes():
            ep = transitions(rows)
            if judge is not None:
                success = judge({k: v[1:] for k, v in ep["obs"].items()})
                ep["reward"], ep["terminated"] = success.astype(np.float32), success
            self.offline.add_episode(ep)
            n += len(ep["action"])
        return n

    def ingest(self, rows: dict[str, np.ndarray]) -> None:
        """One actor episode: all of it online (for a "mixed" algorithm), its intervened steps offline as well. The policy's step that led
        to a human takeover is charged ``takeover_penalty`` (RLIF): without it, states the human rescues look as
        good as states the policy handles itself, and the policy learns to wait for the rescue."""
        ep = transitions(rows)
        if self.takeover_penalty:
            human = ep["intervention"].astype(bool)
            led_to_takeover = ~human[:-1] & human[1:]  # step t-1 was the policy's, step t the human's
            ep["reward"] = ep["reward"] - self.takeover_penalty * np.append(led_to_takeover, False)
        if self.online is not None:
            self.online.add_episode(ep)
        for t in np.flatnonzero(ep["intervention"]):
            self.offline.add({k: v[t] for k, v in ep["obs"].items()}, ep["action"][t], ep["reward"][t],
                             {k: v[t + 1] for k, v in ep["obs"].items()}, ep["terminated"][t])
        self.env_steps += len(ep["action"])
        self.episodes += 1

    # -- learning ------------------------------------------------------------------------------------------
    def ready(self) -> bool:
        return len(self.sampler) >= max(1, self.algorithm.min_replay)

    def update(self) -> dict[str, float]:
        stats = self.algorithm.update(self.sampler.sample(self.algorithm.batch_size, self.rng))
        if self.transport is not None and self.algorithm.num_updates % self.publish_every == 0:
            self.publish()
        return stats

    def publish(self) -> None:
        self.version += 1
        self.transport.publish(self.version, self.algorithm.policy.state_dict())
        self.published_updates = self.algorithm.num_updates

    def checkpoint_due(self, every: int) -> bool:
        n = self.algorithm.num_updates
        return n == FIRST_CHECKPOINT or n % every == 0

    # -- checkpoints ---------------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Atomic: a crash mid-save leaves the previous checkpoint intact."""
        save_atomic({"agent": self.algorithm.state_dict(), "updates": self.algorithm.num_updates,
                     "env_steps": self.env_steps, "version": self.version, "rng": self.rng.bit_generator.state,
                     **(extra or {})}, path)

    def load(self, path: str | Path) -> dict[str, Any]:
        blob = torch.load(path, map_location="cpu", weights_only=False)  # load_state_dict moves tensors where they live
        self.algorithm.load_state_dict(blob["agent"])
        self.env_steps, self.version = blob["env_steps"], blob["version"]
        self.rng.bit_generator.state = blob["rng"]
        return blob


def replay_memory_report(buffer: ReplayBuffer, buffers: int = 1, capacity: int | None = None) -> str:
    """One line: bytes per transition (and per observation key) and the memory of ``buffers`` buffers like
    ``buffer`` at ``capacity`` (default: its own) transitions."""
    capacity = buffer.capacity if capacity is None else capacity
    keys = ", ".join(f"{k} {v.itemsize * int(np.prod(v.shape[1:])):,}" for k, v in buffer.obs.items())
    total = buffer.bytes_per_transition * capacity * buffers
    return (f"replay: {buffer.bytes_per_transition:,} bytes per transition ({keys}); {buffers} buffer(s) x capacity "
            f"{capacity:,} = {total / 2**30:.2f} GiB at full capacity")


class StopCheck(Protocol):
    def exists(self) -> bool: ...


def serve(learner: Learner, store_path: Path, checkpoint: Path, stop_file: StopCheck, utd_cap: bool = True,
          checkpoint_every: int = 500, poll_seconds: float = 0.05, warmup: int = 0,
          progress: FileProgress | None = None, refresh_every: int = 50,
          paused: Callable[[], bool] = lambda: False) -> None:
    """Learner process loop: tail the actor's store, update while there is data, publish and checkpoint.

    With ``utd_cap``, one update() per env step after the first ``warmup`` (the actor's random steps), as in the
    one-process loop: the update-to-data ratio of the learner config, instead of overfitting the first episodes.
    Idle (waiting for data), it publishes the weights of its last updates, so the actor evaluates every update the
    data paid for. ``progress`` receives its counters (see FileProgress) every 10 updates and when it goes idle.
    It looks for new episodes when idle and every ``refresh_every`` updates: reading the store's index took ~4
    updates' time here (13 ms against 3.5 ms for a small network), and once per update it halved the learner.
    While ``paused()`` (the operator paused learning) it keeps ingesting and makes no update."""
    store = EpisodeStore(store_path)
    reported: dict = {}
    learner.publish()  # version 1: the actor starts from the learner's (possibly resumed) weights
    while not stop_file.exists():
        if not learner.algorithm.num_updates % refresh_every or not _may_update(learner, utd_cap, warmup):
            _ingest_new(learner, store)
        if not paused() and _may_update(learner, utd_cap, warmup):
            learner.update()
            if learner.checkpoint_due(checkpoint_every):
                learner.save(checkpoint)
            if learner.algorithm.num_updates % 10 == 0:
                reported = _report(learner, progress, reported)
        else:
            if learner.published_updates < learner.algorithm.num_updates:
                learner.publish()
            reported = _report(learner, progress, reported)
            time.sleep(poll_seconds)
    learner.save(checkpoint)
    _report(learner, progress, reported)


def _may_update(learner: Learner, utd_cap: bool, warmup: int) -> bool:
    return learner.ready() and (not utd_cap or learner.algorithm.num_updates < learner.env_steps - warmup)


def _ingest_new(learner: Learner, store: EpisodeStore) -> None:
    store.refresh()
    for i in range(learner.episodes, store.n_episodes):  # a resumed learner has ingested the first ones
        learner.ingest(store.episode(i))


def _report(learner: Learner, progress: FileProgress | None, reported: dict) -> dict:
    """Write the learner's counters where they changed since ``reported``; returns what was written."""
    counters = {**learner.algorithm.counters(), "env_steps": learner.env_steps, "ready": learner.ready(),
                "published_updates": learner.published_updates}
    if progress is not None and counters != reported:
        progress.write(**counters)
    return counters
