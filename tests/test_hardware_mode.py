"""In the twin's hardware mode the learner gets only what a robot gives it: cameras and proprioception in, the reward
classifier's verdicts as reward and end. The twin's truth (the cube's pose, its own success and failure) is recorded
for evaluation only and never reaches a replay batch or a reward -- here even when it disagrees with the classifier."""

import gymnasium as gym
import numpy as np
import pytest

from robotrl.data import EpisodeStore
from robotrl.learners.sac import SACAgent
from robotrl.reward_classifier import SuccessClassifier
from robotrl.runtime.actor import make_env, record_episode
from robotrl.runtime.train import RunConfig, train
from robotrl.tasks import make_task
from robotrl.tasks.experts import make_expert

ENV_ID = "robotrl/ArmPickCube-v0"
TASK = {"reward": "sparse", "observation": {"state": ["ee_pos", "ee_vel", "gripper"], "cameras": ["front", "wrist"],
                                            "image_size": 32}}


def classifier(path, always: bool) -> str:
    """A classifier whose verdict is fixed: 'always' success or never (threshold below or above any probability)."""
    space = gym.make(ENV_ID, **TASK).observation_space
    model = SuccessClassifier(space, ["images/front", "images/wrist"])
    model.threshold = -1.0 if always else 2.0
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Scripted demos recorded under the twin's truth: they end on its success with reward 1."""
    from robotrl.data import EpisodeRecorder

    path = tmp_path_factory.mktemp("hw") / "demos.zarr"
    env = make_env(ENV_ID, TASK)
    expert, rec = make_expert(env), EpisodeRecorder(EpisodeStore(path, mode="a"))
    wins = [record_episode(env, expert, rec, 100 + i, "demo", ENV_ID)[1] for i in range(3)]
    assert all(wins)  # the truth says success: a classifier that says otherwise must win below
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("always", [False, True])
def test_no_truth_reaches_a_replay_batch_or_a_reward(tmp_path, demos, monkeypatch, always):
    batches = []
    update = SACAgent.update
    monkeypatch.setattr(SACAgent, "update", lambda self, batch: batches.append(batch) or update(self, batch))
    cfg = RunConfig(env=ENV_ID, env_kwargs=TASK, demos=demos, classifier=classifier(tmp_path / "clf.pt", always),
                    total_steps=120, eval_every=120, eval_episodes=1,
                    learner={"batch_size": 16, "image_features": 8, "cnn_channels": 4, "num_threads": 1})
    train(cfg, tmp_path / "run", progress=False)
    assert batches
    privileged = {f"state/{k}" for k in make_task(ENV_ID).privileged}
    for batch in batches:
        assert set(batch["obs"]) == {"state/ee_pos", "state/ee_vel", "state/gripper", "images/front", "images/wrist"}
        assert not privileged & set(batch["obs"]) and not privileged & set(batch["next_obs"])
        # Demos ended on the truth's success with reward 1; the classifier's verdict replaced both.
        assert np.all(np.asarray(batch["reward"]) == float(always))
        assert np.all(np.asarray(batch["done"]) == always)
    run = EpisodeStore(tmp_path / "run" / "episodes.zarr")
    assert run.n_episodes
    for i in range(run.n_episodes):
        judged = run.judgements(i)
        rows = run.episode(i, ["reward", "classifier/success"])  # step rows: reward of step t on row t; verdicts per observation
        assert np.all(rows["reward"][:-1] == float(always)) and np.all(rows["classifier/success"][1:] == always)
        assert "truth" in judged  # recorded beside it, for evaluation
    if not always:  # never judged a success: every episode ran to its time limit, whatever the truth saw
        steps = make_task(ENV_ID, **TASK).max_episode_steps
        assert all(run.episode_slice(i).stop - run.episode_slice(i).start == steps + 1 for i in range(run.n_episodes))
