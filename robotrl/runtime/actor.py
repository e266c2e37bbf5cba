"""The actor: steps the env with a Policy (the newest weights when a learner sends them), lets a human intervene,
records every episode. It names only the Policy protocol: SAC, behaviour cloning and scripted experts run alike."""

from __future__ import annotations

import difflib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import gymnasium as gym
import numpy as np

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.data.store import Source, step_fields
from robotrl.interventions import InterventionWrapper
from robotrl.policies.base import Policy

if TYPE_CHECKING:  # type hints only: rollout and record, which make envs here, need no torch
    from robotrl.runtime.transport import FileProgress, WeightsTransport


class RateLimiter:
    """Holds an actor in sim to its learner's pace, as a replay rate limiter does: the env steps of its stored
    episodes (after the random warm-up, which the learner does not pay for) may run at most ``max_ahead`` ahead of
    the learner's updates (one per env step). Free, an actor in sim outruns a learner that shares its CPU, and the
    update-to-data ratio silently drops. On a robot nothing waits: the world does not pause for the learner.

    It waits for a learner that has not reported yet (starting up: as if at 0 updates) or is ``ready`` (has a
    batch of data; before that it waits for data itself), only while it is ``alive`` and not once ``stopping``.
    Counts only stored episodes: the learner cannot pay for the episode in progress; waiting for it would deadlock."""

    def __init__(self, progress: FileProgress, warmup: int, max_ahead: int, alive: Callable[[], bool] = lambda: True,
                 stopping: Callable[[], bool] = lambda: False, poll_seconds: float = 0.002):
        self.progress, self.warmup, self.max_ahead = progress, warmup, max_ahead
        self.alive, self.stopping, self.poll_seconds = alive, stopping, poll_seconds
        self._seen: dict[str, Any] = {}  # the learner's last counters read; they only grow

    def wait(self, stored_steps: int, max_ahead: int | None = None, counter: str = "updates") -> None:
        """Return once the learner's ``counter`` is within ``max_ahead`` (default: the limiter's) of the stored
        env steps. ``counter="published_updates"``, ``max_ahead=0``: until the actor can load weights of every
        update its data paid for (before an evaluation)."""
        ahead = self.max_ahead if max_ahead is None else max_ahead
        if not self._seen.get("ready") or self._behind(stored_steps, counter) > ahead:  # else: no file read
            self._seen = self.progress.read()
        while self._behind(stored_steps, counter) > ahead and self.alive() and not self.stopping():
            time.sleep(self.poll_seconds)
            self._seen = self.progress.read()

    def _behind(self, stored_steps: int, counter: str) -> int:
        if self._seen and not self._seen.get("ready"):
            return 0
        return stored_steps - self.warmup - self._seen.get(counter, 0)


class Actor:
    """One env step of ``policy`` per ``step()`` (``policy.reset()`` at every episode start). With a ``transport``,
    new weights are loaded into the policy every ``poll_every`` steps without stopping; if the learner is gone the
    actor simply keeps its last weights. With a ``limiter`` (sim), a step first waits for the learner to keep up
    (see RateLimiter)."""

    def __init__(self, env: gym.Env, policy: Policy, store: EpisodeStore, task: str, transport: WeightsTransport | None = None,
                 random_steps: int = 0, poll_every: int = 10, seed: int = 0, resume_at: tuple[int, int] = (0, 0),
                 limiter: RateLimiter | None = None):
        """``resume_at``: (env steps, episodes) already done by this run, so a resumed actor continues the
        episode seed sequence and the random warm-up where they stopped."""
        self.env, self.policy, self.transport, self.limiter = env, policy, transport, limiter
        self.recorder = EpisodeRecorder(store)
        self.task, self.robot, self.in_twin = task, robot_name(env), in_twin(env)
        self.random_steps, self.poll_every, self.seed = random_steps, poll_every, seed
        self.weights_version = -1
        self.env_steps, self.episodes = resume_at
        self.stored_steps = self.env_steps  # env steps of the episodes in the store (the one in progress is not)
        self.recording = False  # an episode is in progress (reset done, not yet stored)
        self.last_stored = store.n_episodes - 1  # the store index of the newest episode (-1: none yet)
        self.env.action_space.seed(seed)
        self._obs: Any = None  # the current observation; None: the next step() starts an episode
        self.last_info: dict[str, Any] = {}  # the last step's info (the operator's page shows it)
        self.last_policy_action: np.ndarray | None = None  # what the policy proposed at the last step
        self.last_source = ""  # who acted at the last step (the store's intervention source)
        self.episode_step = 0  # steps of the episode in progress

    def _begin(self):
        self.recording = False
        obs, _ = self.env.reset(seed=self.seed + self.episodes)
        self.policy.reset()
        self.recorder.start(obs)
        self.recording = True
        self._return, self._intervened, self._success, self.episode_step = 0.0, False, False, 0
        return obs

    def drop_episode(self) -> None:
        """Drop the episode in progress (it never reaches the store), e.g. after the robot lost its observations
        mid-episode; the next step() starts it over."""
        self.recording, self._obs = False, None

    def cut_episode(self) -> dict[str, Any] | None:
        """Store the episode in progress as it stands, truncated (the operator stopped the robot), if it has a
        step; the next step() starts a new one. Returns its summary, as step() does."""
        if not self.recording or not self.recorder.steps:
            self.recording, self._obs = False, None
            return None
        return self._finish()

    def poll_weights(self) -> bool:
        if self.transport is None:
            return False
        new = self.transport.poll(self.weights_version)
        if new is None:
            return False
        self.weights_version, weights = new
        self.policy.load_state_dict(weights)
        return True

    def step(self) -> dict[str, Any] | None:
        """Act once (starting an episode first if none is in progress); returns a summary of the episode when this
        step ended one (it is then in the store)."""
        if self._obs is None:
            self._obs = self._begin()
        if self.limiter is not None:
            self.limiter.wait(self.stored_steps)
        if self.transport is not None and self.env_steps % self.poll_every == 0:
            self.poll_weights()
        random = self.env_steps < self.random_steps
        action = self.env.action_space.sample() if random else self.policy.act(self._obs)
        self.last_policy_action = np.asarray(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        executed = info.get("action", action)
        # Who acted, the cost per safety limit, and the judgements by provenance (step_fields); success is the
        # env's own verdict (envs that report none: never, see SuccessInfo).
        fields = step_fields(info, acted_by="random" if random else "policy")
        intervened, success, self.last_source = fields["intervention"], fields["success"], fields["source"]
        self.recorder.step(executed, reward, obs, terminated, **fields)
        self._obs, self._return, self.last_info = obs, self._return + float(reward), info
        self._success = success
        self._intervened |= intervened
        self.env_steps += 1
        self.episode_step += 1
        return self._finish() if terminated or truncated else None

    def _finish(self) -> dict[str, Any]:
        meta = EpisodeMeta(source="intervention" if self._intervened else "online", task=self.task, robot=self.robot,
                           success=self._success, ret=self._return, seed=self.seed + self.episodes, twin=self.in_twin)
        index = self.recorder.finish(meta)
        self.last_stored = index  # before `recording` drops: a label arriving now finds the episode it means
        self.recording = False
        summary = {"index": index, "rows": self.recorder.last_rows, "meta": meta,
                   "intervention_rate": self.last_info.get("intervention_rate", 0.0)}
        self.episodes += 1
        self.stored_steps = self.env_steps
        self._obs = None  # the next step() starts the next episode (an operator may first reset the scene)
        return summary


class PendingLabels:
    """An operator's labels of episodes still in progress, by the actor's number of the episode, until it is stored.
    The actor is its store's only writer, so the index of its episode k counts back from the last one it stored."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, Any]] = []  # (episode number, label)

    def add(self, number: int, label: Any) -> None:
        self._pending.append((number, label))

    def discard(self, number: int) -> int:
        """Forget the labels of episode ``number`` (dropped, never stored); returns how many there were."""
        kept = [(k, lab) for k, lab in self._pending if k != number]
        lost, self._pending = len(self._pending) - len(kept), kept
        return lost

    def take_stored(self, actor: Actor) -> list[tuple[int, Any]]:
        """(store index, label) of every label whose episode ``actor`` has stored since; the others wait."""
        done = [(k, lab) for k, lab in self._pending if k < actor.episodes]
        self._pending = [(k, lab) for k, lab in self._pending if k >= actor.episodes]
        return [(actor.last_stored - (actor.episodes - 1 - k), lab) for k, lab in done]


def robot_name(env: gym.Env) -> str:
    """The robot a robotrl task runs ("" for other envs): stored with every episode."""
    return str(getattr(getattr(env.unwrapped, "config", None), "robot", ""))


def in_twin(env: gym.Env) -> bool:
    """Whether ``env``'s episodes happen in the MuJoCo twin, stored with every episode: an env over a robot's topics
    says so with ``in_twin`` (robotrl.ros.RosEnv); any other env is the twin."""
    return bool(getattr(env.unwrapped, "in_twin", True))


def episode_steps(env: gym.Env, policy: Policy, seed: int) -> Iterator[tuple[Any, Any, float, bool, dict]]:
    """One episode of ``policy`` (reset first), as (obs, action, reward, terminated, info) per step, after a first
    (reset obs, None, 0.0, False, reset info)."""
    obs, info = env.reset(seed=seed)
    policy.reset()
    yield obs, None, 0.0, False, info
    done = False
    while not done:
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        yield obs, action, float(reward), terminated, info


def record_episode(env: gym.Env, policy: Policy, recorder: EpisodeRecorder, seed: int, source: Source,
                   task: str, keep_failures: bool = True) -> tuple[EpisodeMeta, bool | None]:
    """Run one episode of ``policy`` and commit it to the recorder's store; returns its
    metadata and the success the env reported (None for an env that reports none: stored as False).
    ``keep_failures=False``: an episode the env reports as failed is dropped, never written (a demo set of
    successes); one whose env reports no success at all is kept."""
    ret, info = 0.0, {}
    for obs, action, reward, terminated, info in episode_steps(env, policy, seed):
        if action is None:
            recorder.start(obs)
        else:
            recorder.step(action, reward, obs, terminated, **step_fields(info))
            ret += reward
    meta = EpisodeMeta(source=source, task=task, robot=robot_name(env), success=step_fields(info)["success"], ret=ret,
                       seed=seed, twin=in_twin(env))
    if keep_failures or info.get("success") is not False:
        recorder.finish(meta)
    return meta, info.get("success")


class DictObservation(gym.ObservationWrapper):
    """A Box-observation env (any gymnasium env) seen as ``{"state/obs": obs}``: the episode store, replay and
    networks all speak observation dicts."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict({"state/obs": env.observation_space})

    def observation(self, obs):
        return {"state/obs": obs}


class SuccessInfo(gym.Wrapper):
    """An env's success flag as ``info["success"]`` (a bool), the one key robotrl reads; absent when the env
    reports none. ``key``: where the env reports it; None: "success", or "is_success" (gymnasium-robotics)."""

    def __init__(self, env: gym.Env, key: str | None = None):
        super().__init__(env)
        self.key = key

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        flag = info.get(self.key) if self.key else info.get("success", info.get("is_success"))
        info = {k: v for k, v in info.items() if k not in ("success", "is_success")}
        if flag is not None:
            info["success"] = bool(flag)
        return obs, reward, terminated, truncated, info


def success_rate(flags: list[bool | None]) -> float | None:
    """Mean of the success flags episodes reported (``info.get("success")``); None when the env reports none."""
    reported = [f for f in flags if f is not None]
    return float(np.mean(reported)) if reported else None


def postfix(success: float | None, ret: float) -> dict[str, str]:
    """A progress bar's score: the success rate, or the mean return where the env reports no success."""
    return {"return": f"{ret:.1f}"} if success is None else {"success": f"{success:.0%}"}


def check_env_id(env_id: str) -> None:
    """A one-line error for an id gymnasium does not know, naming the closest registered ones."""
    if env_id in gym.registry or ":" in env_id:  # "module:Env-v0" registers its env on import
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.7)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(f"unknown env id {env_id!r}; {hint}`robotrl envs` lists robotrl's tasks, any registered gymnasium id works")


def make_env(env_id: str, env_kwargs: dict, success_key: str | None = None) -> gym.Env:
    """``gym.make`` for any registered env, with Dict observations and its success flag in ``info["success"]``."""
    check_env_id(env_id)
    env = SuccessInfo(gym.make(env_id, **env_kwargs), success_key)
    return env if isinstance(env.observation_space, gym.spaces.Dict) else DictObservation(env)


def make_actor_env(env_id: str, env_kwargs: dict, human: str, seed: int, success_key: str | None = None,
                   classifier: str | None = None) -> gym.Env:
    """The training env: with a reward ``classifier`` (a file from `robotrl train classifier`) its reward and success
    are the classifier's; with ``human == "scripted"`` a scripted human intervenes."""
    env = make_env(env_id, env_kwargs, success_key)
    if classifier:
        from robotrl.reward_classifier import ClassifierReward, SuccessClassifier

        if not Path(classifier).is_file():
            raise ValueError(f"reward classifier {classifier}: no such file; train one with `robotrl train classifier`")
        env = ClassifierReward(env, SuccessClassifier.load(classifier))
    if human == "none":
        return env
    from robotrl.tasks.experts import make_expert
    from robotrl.interventions import CubeDrift, ScriptedIntervener

    if env_id != "robotrl/ArmPickCube-v0":
        raise ValueError(f"the scripted human exists for robotrl/ArmPickCube-v0 only, not {env_id}")
    return InterventionWrapper(env, ScriptedIntervener(make_expert(env), CubeDrift(), hold_steps=5, noise=0.1, seed=seed))
