"""Human interventions: a wrapper that lets a teleop source take over the policy's action.

Any input device (SpaceMouse, keyboard, the web UI's topic, a scripted "human") sits behind ``TeleopSource``.
When it returns an action, that action is executed instead of the policy's and the step is flagged
(``info["intervention"]``, ``info["action"]`` = what was executed, ``info["intervention_source"]`` = the source's
kind, its ``source`` attribute), so the learner can put it in both the demo/intervention buffer and the online
buffer (HIL-SERL) and the episode store records who acted (robotrl.data.store.INTERVENTION_SOURCES).
"""

from __future__ import annotations

from typing import Callable, Protocol

import gymnasium as gym
import numpy as np

from robotrl.policies import Policy

Obs = dict[str, np.ndarray]


class TeleopSource(Protocol):
    """A source may also name, after a poll that returned an action, the ``device`` that gave it (recorded as who
    acted, e.g. "keyboard") and the command's ``age_ms`` (recorded per step); both None or absent: not known."""

    source: str  # its kind, as the store records it: "teleop" (a human at a device), "scripted", "shield"

    def reset(self) -> None: ...

    def poll(self, obs: Obs) -> np.ndarray | None:
        """The human's action for this step, or None while the human is hands-off."""
        ...


class Trigger(Protocol):
    def reset(self) -> None: ...

    def __call__(self, obs: Obs) -> bool:
        """Whether the human takes over at this observation (called every step, hands-on or not)."""
        ...


class ScriptedIntervener:
    """A scripted "human": when ``takes_over(obs)`` holds, acts with ``expert`` plus Gaussian noise for at
    least ``hold_steps`` steps, then lets go. Deterministic under ``seed``."""

    source = "scripted"

    def __init__(self, expert: Policy, takes_over: Trigger | Callable[[Obs], bool], hold_steps: int = 5,
                 noise: float = 0.1, seed: int = 0):
        self.expert, self.takes_over, self.hold_steps, self.noise = expert, takes_over, hold_steps, noise
        self.rng = np.random.default_rng(seed)
        self._left = 0

    def reset(self) -> None:
        self._left = 0
        self.expert.reset()
        if hasattr(self.takes_over, "reset"):  # a Trigger; a plain function keeps no state
            self.takes_over.reset()

    def poll(self, obs: Obs) -> np.ndarray | None:
        action = self.expert.act(obs)  # always run: a stateful expert tracks the task phase while hands-off too
        fire = self.takes_over(obs)  # likewise the trigger, so it sees the whole episode
        if self._left == 0 and fire:
            self._left = self.hold_steps
        if self._left == 0:
            return None
        self._left -= 1
        return np.clip(action + self.rng.normal(0, self.noise, action.shape), -1, 1).astype(np.float32)


class CubeDrift:
    """ArmPickCube trigger, the way a person watching the robot steps in: the gripper has not come closer to the
    cube for ``patience`` steps (drifting away or stalled) while the cube is still on the table and the gripper is
    not at it. A policy that heads for the cube is left alone, however far it starts."""

    def __init__(self, patience: int = 5, at_cube: float = 0.03, progress: float = 0.005, on_table: float = 0.03):
        self.patience, self.at_cube, self.progress, self.on_table = patience, at_cube, progress, on_table
        self.reset()

    def reset(self) -> None:
        self._best, self._stale = np.inf, 0

    def __call__(self, obs: Obs) -> bool:
        dist = float(np.linalg.norm(obs["state/cube_to_ee"]))
        if dist < self._best - self.progress:
            self._best, self._stale = dist, 0
        else:
            self._stale += 1
        if self._stale >= self.patience and dist > self.at_cube and obs["state/cube_pos"][2] < self.on_table:
            self._best, self._stale = dist, 0  # a fresh chance for the policy once the human lets go
            return True
        return False


class InterventionWrapper(gym.Wrapper):
    """Executes the teleop action whenever the source offers one; logs the per-episode intervention rate.
    ``info["intervention_source"]``: the source's kind on its steps ("unknown" for a source that names none),
    None on the policy's."""

    def __init__(self, env: gym.Env, source: TeleopSource):
        super().__init__(env)
        self.source = source
        self.kind = str(getattr(source, "source", "unknown"))
        self._obs: Obs | None = None
        self._steps = self._intervened = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.source.reset()
        self._obs, self._steps, self._intervened = obs, 0, 0
        return obs, info

    def step(self, action):
        human = self.source.poll(self._obs)
        executed = np.asarray(action if human is None else human, np.float32)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        self._obs = obs
        self._steps += 1
        self._intervened += human is not None
        device = getattr(self.source, "device", None)
        info = {**info, "intervention": human is not None,
                "intervention_source": None if human is None else device or self.kind,
                "action": executed, "intervention_rate": self._intervened / self._steps}
        if human is not None and getattr(self.source, "age_ms", None) is not None:
            info["teleop_age_ms"] = self.source.age_ms
        return obs, reward, terminated, truncated, info
