"""The actor: steps the env with the newest policy weights, lets a human intervene, records every episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.interventions import InterventionWrapper
from robotrl.learning.sac import SACAgent
from robotrl.runtime.transport import WeightsTransport


class Actor:
    """One env step per ``step()``. With a ``transport``, new weights are loaded every ``poll_every`` steps
    without stopping; if the learner is gone the actor simply keeps its last weights."""

    def __init__(self, env: gym.Env, agent: SACAgent, store: EpisodeStore, task: str, transport: WeightsTransport | None = None,
                 random_steps: int = 0, poll_every: int = 10, seed: int = 0, resume_at: tuple[int, int] = (0, 0)):
        """``resume_at``: (env steps, episodes) already done by this run, so a resumed actor continues the
        episode seed sequence and the random warm-up where they stopped."""
        self.env, self.agent, self.transport = env, agent, transport
        self.recorder = EpisodeRecorder(store)
        self.task, self.robot = task, str(getattr(getattr(env.unwrapped, "config", None), "robot", ""))
        self.random_steps, self.poll_every, self.seed = random_steps, poll_every, seed
        self.weights_version = -1
        self.env_steps, self.episodes = resume_at
        self.env.action_space.seed(seed)
        self._obs = self._begin()

    def _begin(self):
        obs, _ = self.env.reset(seed=self.seed + self.episodes)
        if hasattr(self.agent, "reset"):  # a stateful policy (a scripted expert) starts its episode too
            self.agent.reset()
        self.recorder.start(obs)
        self._return, self._intervened = 0.0, False
        return obs

    def restart_episode(self) -> None:
        """Drop the episode in progress (it never reaches the store) and start it over, e.g. after the robot
        lost its observations mid-episode."""
        self._obs = self._begin()

    def poll_weights(self) -> bool:
        if self.transport is None:
            return False
        new = self.transport.poll(self.weights_version)
        if new is None:
            return False
        self.weights_version, weights = new
        self.agent.load_policy_state_dict(weights)
        return True

    def step(self) -> dict[str, Any] | None:
        """Act once; returns a summary of the episode when this step ended one (it is then in the store)."""
        if self.transport is not None and self.env_steps % self.poll_every == 0:
            self.poll_weights()
        random = self.env_steps < self.random_steps
        action = self.env.action_space.sample() if random else self.agent.act(self._obs)
        obs, reward, terminated, truncated, info = self.env.step(action)
        intervened = bool(info.get("intervention", False))
        executed = info.get("action", action)
        success = bool(info.get("success", info.get("is_success", False)))  # envs that report none: never
        self.recorder.step(executed, reward, obs, terminated, intervention=intervened, success=success)
        self._obs, self._return = obs, self._return + float(reward)
        self._intervened |= intervened
        self.env_steps += 1
        if not (terminated or truncated):
            return None
        meta = EpisodeMeta(source="intervention" if self._intervened else "online", task=self.task, robot=self.robot,
                           success=success, ret=self._return, seed=self.seed + self.episodes)
        index = self.recorder.finish(meta)
        summary = {"index": index, "rows": self.recorder.last_rows, "meta": meta,
                   "intervention_rate": info.get("intervention_rate", 0.0)}
        self.episodes += 1
        self._obs = self._begin()
        return summary


class DictObservation(gym.ObservationWrapper):
    """A Box-observation env (any gymnasium env) seen as ``{"state/obs": obs}``: the episode store, replay and
    networks all speak observation dicts."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({"state/obs": env.observation_space})

    def observation(self, obs):
        return {"state/obs": obs}


def make_env(env_id: str, env_kwargs: dict) -> gym.Env:
    """``gym.make`` for any registered env, Dict observations or not."""
    env = gym.make(env_id, **env_kwargs)
    return env if isinstance(env.observation_space, gym.spaces.Dict) else DictObservation(env)


def make_actor_env(env_id: str, env_kwargs: dict, human: str, seed: int) -> gym.Env:
    """The training env, with the scripted human wrapped around it when ``human == "scripted"``."""
    env = make_env(env_id, env_kwargs)
    if human == "none":
        return env
    from robotrl.experts import make_expert
    from robotrl.interventions import CubeDrift, ScriptedIntervener

    if env_id != "robotrl/ArmPickCube-v0":
        raise ValueError(f"the scripted human exists for robotrl/ArmPickCube-v0 only, not {env_id}")
    return InterventionWrapper(env, ScriptedIntervener(make_expert(env), CubeDrift(), hold_steps=5, noise=0.1, seed=seed))
