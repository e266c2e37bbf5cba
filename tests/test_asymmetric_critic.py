"""Asymmetric actor-critic: the twin's truth listed in ``observation.critic_state`` reaches SAC's Q ensemble only; the
policy acts from what a robot has, and a robot without ground truth refuses the setting by name."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robotrl.learners.sac import SACAgent, load_sac_config
from robotrl.tasks.observation import ObservationProcessor, ObservationSpec

ENV_ID = "robotrl/ArmPickCube-v0"
DEPLOYABLE = ["ee_pos", "ee_vel", "gripper"]


def test_the_critic_reads_the_truth_and_the_policy_does_not():
    env = gym.make(ENV_ID, observation={"state": DEPLOYABLE, "critic_state": ["cube_pos"]})
    obs, _ = env.reset(seed=0)
    assert "critic/cube_pos" in obs and "state/cube_pos" not in obs
    np.testing.assert_allclose(obs["critic/cube_pos"], env.unwrapped.object_positions()["cube"], atol=1e-6)

    agent = SACAgent(env.observation_space, env.action_space, load_sac_config({"batch_size": 8}))
    robot_obs = {k: v for k, v in obs.items() if not k.startswith("critic/")}
    assert agent.policy.act(robot_obs).shape == env.action_space.shape  # acts without any truth

    batch = {k: {key: torch.as_tensor(np.repeat(v[None], 8, 0)) for key, v in obs.items()} for k in ("obs", "next_obs")}
    batch.update(action=torch.zeros(8, 4), reward=torch.zeros(8), done=torch.zeros(8))
    feat = agent.critic.encoder(batch["obs"])
    assert feat.shape[1] == agent.critic.encoder.out_dim == 3 + 3 + 1  # the policy's features: no cube
    # The Q ensemble's value moves with the critic-only cube pose (the policy's features held fixed).
    q = [agent.critic.q(agent._with_critic_obs(feat, {**batch["obs"], "critic/cube_pos": torch.full((8, 3), x)}),
                        torch.zeros(8, 4)) for x in (0.0, 0.5)]
    assert not torch.allclose(q[0], q[1])
    assert np.isfinite(agent.update(batch)["critic_loss"])


def test_critic_state_without_ground_truth_fails_naming_the_setting():
    processor = ObservationProcessor(ObservationSpec(state=DEPLOYABLE, critic_state=["cube_pos"]),
                                     {"ee_pos": 3, "ee_vel": 3, "gripper": 1, "cube_pos": 3})
    robot_state = {"ee_pos": np.zeros(3), "ee_vel": np.zeros(3), "gripper": np.ones(1)}  # no tracked cube
    with pytest.raises(ValueError, match="critic_state needs ground truth"):
        processor(robot_state, {})


def test_an_unknown_critic_state_key_is_named():
    with pytest.raises(Exception, match="critic_state.*'cube_speed'"):
        gym.make(ENV_ID, observation={"critic_state": ["cube_speed"]})
