"""The reward classifier learns success from camera frames of real rollouts and replaces a task's reward."""

import gymnasium as gym
import numpy as np
import pytest

from robotrl.data import EpisodeMeta, EpisodeRecorder, EpisodeStore
from robotrl.policies import Stateless
from robotrl.tasks.experts import make_expert
from robotrl.reward_classifier import ClassifierReward, SuccessClassifier, calibrate_threshold, train_classifier

ENV = dict(observation={"cameras": ["front"], "image_size": 48}, terminate_on_success=False, episode_seconds=4.0)


def record(path, episodes=24):
    """Scripted pick episodes (success frames once the cube is up) and random ones (never a success)."""
    env = gym.make("robotrl/ArmPickCube-v0", **ENV)
    expert = make_expert(env)
    store = EpisodeStore(path, mode="a")
    rec = EpisodeRecorder(store)
    for seed in range(episodes):
        scripted = seed % 2 == 0
        obs, _ = env.reset(seed=seed)
        expert.reset()
        rec.start(obs)
        done = False
        while not done:
            action = expert.act(obs) if scripted else env.action_space.sample()
            obs, r, terminated, truncated, info = env.step(action)
            rec.step(action, r, obs, terminated, success=info["success"])
            done = terminated or truncated
        rec.finish(EpisodeMeta(source="demo", task="pick", success=info["success"]))
    return store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = record(tmp_path_factory.mktemp("clf") / "frames.zarr")
    model, report = train_classifier(store, ["images/front"], steps=600, batch_size=32, progress=False)
    return store, model, report


@pytest.mark.slow
def test_classifier_separates_success_frames(trained):
    _, _, report = trained
    assert report.positives > 20 and report.n_val > 0
    assert report.val_accuracy >= 0.9
    assert report.val_precision >= 0.9


class Idle(Stateless):
    def act(self, obs, deterministic=False):
        return np.zeros(4, np.float32)


@pytest.mark.slow
def test_wrapper_rewards_lifting_and_not_idling(trained, tmp_path):
    _, model, _ = trained
    path = tmp_path / "clf.pt"
    model.save(path, gym.make("robotrl/ArmPickCube-v0", **ENV).observation_space)
    loaded = SuccessClassifier.load(path)
    assert loaded.threshold == model.threshold
    env = ClassifierReward(gym.make("robotrl/ArmPickCube-v0", **ENV), loaded, terminate=False)
    expert = make_expert(env)
    for policy, want in ((expert, True), (Idle(), False)):
        obs, _ = env.reset(seed=100)
        expert.reset()
        rewards = []
        for _ in range(40):
            obs, r, *_ = env.step(policy.act(obs))
            rewards.append(r)
        assert (max(rewards) == 1.0) == want


def test_threshold_calibration_prefers_precision():
    probs = np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert calibrate_threshold(probs, labels, min_precision=1.0) == pytest.approx(0.7)


def test_store_without_labels_or_keys_fails_clearly(tmp_path, trained):
    store, _, _ = trained
    with pytest.raises(ValueError, match="no data/images.wrist"):
        train_classifier(store, ["images/wrist"], steps=1, progress=False)
