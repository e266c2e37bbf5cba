"""How fast the SAC learner updates on this machine, and which of its fast paths pay off here.

``compile: true`` and ``precision: bf16`` are faster on some CPUs and slower on others (1.6x SB3's updates/s with
both on one 2-core CPU, 0.91x on another with AVX512-BF16), so the choice is measured, not assumed:
``robotrl bench learner`` times each variant of the user's learner config on the user's task and machine.
``bench/sac_throughput.py`` uses the same timing against stable-baselines3.

One "update" is what one env step buys at UTD 1: sample a batch, a critic step, an actor and temperature step, a
Polyak update. Variants are timed in interleaved rounds and compared within a round (median over rounds), so a
slow spell from another process on the machine hits every variant alike.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from robotrl.learners.replay import ReplayBuffer
from robotrl.learners.sac import SACAgent, load_sac_config

Run = Callable[[int], None]  # run(k): k updates
# The fast paths, as overrides of a learner config.
VARIANTS: dict[str, dict[str, Any]] = {
    "fp32 eager": {"compile": False, "precision": "fp32"},
    "bf16": {"compile": False, "precision": "bf16"},
    "compile": {"compile": True, "precision": "fp32"},
    "compile + bf16": {"compile": True, "precision": "bf16"},
}


def collect(env: gym.Env, steps: int, seed: int = 0) -> ReplayBuffer:
    """A buffer of random-action transitions from the real env."""
    buffer = ReplayBuffer(env.observation_space, env.action_space.shape[0], capacity=steps)
    fill_random(buffer, env, steps, seed)
    return buffer


def fill_random(buffer: ReplayBuffer, env: gym.Env, steps: int, seed: int = 0) -> Any:
    """Add ``steps`` random-action transitions from ``env`` to ``buffer``; returns the last observation."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
    return obs


def updater(env: gym.Env, buffer: ReplayBuffer, sac: dict[str, Any], seed: int = 0) -> Run:
    """``run(k)`` doing k updates of a SACAgent built from the learner overrides ``sac`` (each samples
    batch_size * utd transitions, as in training)."""
    cfg = load_sac_config(sac)
    agent = SACAgent(env.observation_space, env.action_space, cfg, seed)
    rng = np.random.default_rng(seed)
    if encoders := agent.replay_encoders():  # a frozen, cached encoder: the replay holds features, as in training
        buffer = _encoded(buffer, encoders, env.observation_space)

    def run(k: int) -> None:
        for _ in range(k):
            agent.update(buffer.sample(cfg.batch_size * cfg.utd, rng))

    return run


def _encoded(buffer: ReplayBuffer, encoders: dict[str, Any], obs_space: gym.Space) -> ReplayBuffer:
    """``buffer``'s transitions in a buffer that stores the encoders' features in place of their frames."""
    out = ReplayBuffer(obs_space, buffer.action.shape[1], 2 * buffer.capacity, encoders)
    for i in buffer.transitions():
        obs, next_obs = ({k: v[row] for k, v in buffer.obs.items()} for row in (i, buffer.next_index[i]))
        out.add(obs, buffer.action[i], buffer.reward[i], next_obs, bool(buffer.done[i]))
    return out


def rate(run: Run, k: int) -> float:
    """Updates per second over k updates."""
    start = time.perf_counter()
    run(k)
    return k / (time.perf_counter() - start)


def interleaved(runs: dict[str, Run], rounds: int, updates: int, warmup: int = 20,
                progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Updates/s of every run in each of ``rounds`` rounds (a warm-up first: allocator, optimizer state, and
    torch.compile's compilation); ``progress`` hears of each finished run."""
    for name, run in runs.items():
        run(warmup)
        if progress:
            progress(f"warmed up {name}")
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(rounds):
        for name, run in runs.items():
            rates[name].append(rate(run, updates))
            if progress:
                progress(f"round {i + 1}/{rounds}: {name}")
    return rates


def ratio(rates: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of a's updates/s over b's within the same round."""
    return statistics.median(x / y for x, y in zip(rates[a], rates[b]))


def recommend(rates: dict[str, list[float]], base: str = "fp32 eager", margin: float = 1.1) -> str:
    """The variant to use: the fastest, if it beats ``base`` by ``margin`` within rounds (else ``base``: a
    compile costs start-up time and bf16 costs precision, so a small gain is not worth them)."""
    best = max(rates, key=lambda name: ratio(rates, name, base))
    return best if best != base and ratio(rates, best, base) >= margin else base


def measure_fast_paths(env: gym.Env, sac: dict[str, Any], rounds: int = 3, updates: int = 50, transitions: int = 2000,
                       progress: Callable[[str], None] | None = None) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Updates/s per round of every variant of the learner config ``sac`` on ``env``, and the variants that could
    not run here with the reason (e.g. compile without a C++ compiler)."""
    buffer = collect(env, transitions)
    runs, skipped = {}, {}
    for name, overrides in VARIANTS.items():
        try:
            runs[name] = updater(env, buffer, {**sac, **overrides})
        except RuntimeError as exc:
            skipped[name] = str(exc)
    return interleaved(runs, rounds, updates, progress=progress), skipped
