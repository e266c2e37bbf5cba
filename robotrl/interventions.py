"""Human interventions: a wrapper that lets a teleop source take over the policy's action.

Any input device (SpaceMouse, keyboard, the web UI's topic, a scripted "human") sits behind ``TeleopSource``.
When it returns an action, that action is executed instead of the policy's and the step is flagged
(``info["intervention"]``, ``info["action"]`` = what was executed), so the learner can put it in both the
demo/intervention buffer and the online buffer (HIL-SERL).
"""

from __future__ import annotations

from typing import Callable, Protocol

import gymnasium as gym
import numpy as np

Obs = dict[str, np.ndarray]


class TeleopSource(Protocol):
    def reset(self) -> None: ...

    def poll(self, obs: Obs) -> np.ndarray | None:
        """The human's action for this step, or None while the human is hands-off."""
        ...


class ScriptedIntervener:
    """A scripted "human": when ``takes_over(obs)`` holds, acts with ``expert`` plus Gaussian noise for at
    least ``hold_steps`` steps, then lets go. Deterministic under ``seed``."""

    def __init__(self, expert: Callable[[Obs], np.ndarray], takes_over: Callable[[Obs], bool], hold_steps: int = 5, noise: float = 0.1, seed: int = 0):
        self.expert, self.takes_over, self.hold_steps, self.noise = expert, takes_over, hold_steps, noise
        self.rng = np.random.default_rng(seed)
        self._left = 0

    def reset(self) -> None:
        self._left = 0
        if hasattr(self.expert, "reset"):
            self.expert.reset()

    def poll(self, obs: Obs) -> np.ndarray | None:
        action = self.expert(obs)  # always run: a stateful expert tracks the task phase while hands-off too
        if self._left == 0 and self.takes_over(obs):
            self._left = self.hold_steps
        if self._left == 0:
            return None
        self._left -= 1
        return np.clip(action + self.rng.normal(0, self.noise, action.shape), -1, 1).astype(np.float32)


def cube_drifted_away(max_distance: float = 0.12) -> Callable[[Obs], bool]:
    """ArmPickCube trigger: the gripper is farther than ``max_distance`` from a cube that is still on the table."""

    def check(obs: Obs) -> bool:
        return bool(np.linalg.norm(obs["state/cube_to_ee"]) > max_distance and obs["state/cube_pos"][2] < 0.03)

    return check


class InterventionWrapper(gym.Wrapper):
    """Executes the teleop action whenever the source offers one; logs the per-episode intervention rate."""

    def __init__(self, env: gym.Env, source: TeleopSource):
        super().__init__(env)
        self.source = source
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
        info = {**info, "intervention": human is not None, "action": executed, "intervention_rate": self._intervened / self._steps}
        return obs, reward, terminated, truncated, info
