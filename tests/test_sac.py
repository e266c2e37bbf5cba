"""SAC learner (RLPD / HIL-SERL recipe): the vectorized ensemble is exact, targets track, temperature tunes,
sampling is 50/50, Box and image observations work, checkpoints resume exactly, and it learns to reach."""

import copy
import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import robotrl  # noqa: F401  (registers the envs)
from robotrl.config import ConfigError
from robotrl.data import EpisodeRecorder, EpisodeStore
from robotrl.runtime.actor import record_episode
from robotrl.tasks.experts import make_expert
from robotrl.learners import MixedSampler, ReplayBuffer, SACAgent, SACConfig, load_sac_config, to_torch
from robotrl.learners.networks import CriticEnsemble, EnsembleLayerNorm, ObsEncoder, random_shift
from robotrl.learners.throughput import fill_random
from robotrl.runtime.train import RunConfig, train

SMALL = {"hidden": 32, "batch_size": 16, "image_features": 8, "cnn_channels": 8, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These nets are small: one thread is as fast, and does not collapse when another process shares the cores
    (two OpenMP threads then wait on each other at every op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ensemble_equals_separate_critics():
    """One batched pass == N ordinary Linear/LayerNorm/ReLU MLPs built from each member's slice of the weights."""
    torch.manual_seed(0)
    n, feat_dim, act_dim, hidden, batch = 5, 6, 3, 16, 9
    ens = CriticEnsemble(n, feat_dim + act_dim, hidden, depth=2, layer_norm=True)
    with torch.no_grad():  # distinct LayerNorm affines per member, so a shared one would be caught
        for p in ens.parameters():
            p.add_(0.1 * torch.randn_like(p))
    feat, action = torch.randn(batch, feat_dim), torch.randn(batch, act_dim)
    out = ens(feat, action)
    assert out.shape == (n, batch)
    x = torch.cat([feat, action], -1)
    for i in range(n):
        layers = []
        for module in ens.net:
            if isinstance(module, nn.ReLU):
                layers.append(nn.ReLU())
                continue
            if isinstance(module, EnsembleLayerNorm):
                ln = nn.LayerNorm(hidden)
                ln.weight.data, ln.bias.data = module.weight[i, 0].clone(), module.bias[i, 0].clone()
                layers.append(ln)
            else:
                lin = nn.Linear(*module.weight.shape[1:])
                lin.weight.data, lin.bias.data = module.weight[i].T.clone(), module.bias[i, 0].clone()
                layers.append(lin)
        single = nn.Sequential(*layers)
        torch.testing.assert_close(out[i], single(x).squeeze(-1), rtol=1e-5, atol=1e-5)


def test_polyak_update_and_target_min_subset():
    env = gym.make("Pendulum-v1")
    agent = SACAgent(env.observation_space, env.action_space, SACConfig(**SMALL, n_critics=4, critic_subset=2))
    buffer = ReplayBuffer(env.observation_space, 1, 100)
    fill_random(buffer, env, 64)
    before = [p.detach().clone() for p in agent.target.parameters()]
    agent.update(buffer.sample(16, np.random.default_rng(0)))
    tau = agent.config.tau
    for old, new, online in zip(before, agent.target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(new, (1 - tau) * old + tau * online.detach())
    assert not torch.equal(before[0], next(agent.target.parameters()))


@pytest.mark.parametrize("target_entropy, direction", [(10.0, 1), (-50.0, -1)])
def test_temperature_moves_toward_target_entropy(target_entropy, direction):
    """Entropy below the target -> temperature rises; above -> it falls."""
    env = gym.make("Pendulum-v1")
    agent = SACAgent(env.observation_space, env.action_space, SACConfig(**SMALL, target_entropy=target_entropy))
    buffer = ReplayBuffer(env.observation_space, 1, 100)
    fill_random(buffer, env, 64)
    rng = np.random.default_rng(0)
    start = agent.config.init_temperature
    temps = [agent.update(buffer.sample(16, rng))["temperature"] for _ in range(5)]
    assert all(direction * (b - a) > 0 for a, b in zip([start, *temps], temps))


def test_mixed_sampler_is_exactly_half_and_half():
    space = gym.spaces.Box(-1, 1, (2,), np.float32)
    offline, online = ReplayBuffer(space, 1, 50), ReplayBuffer(space, 1, 50)
    rng = np.random.default_rng(0)
    sampler = MixedSampler(offline, online)
    for _ in range(10):
        offline.add(np.zeros(2), [0.0], 1.0, np.zeros(2), False)  # reward marks the source
    assert sampler.sample(8, rng)["reward"].tolist() == [1.0] * 8  # online still empty: all offline
    for _ in range(30):
        online.add(np.zeros(2), [0.0], 0.0, np.zeros(2), False)
    for n in (256, 7):
        batch = sampler.sample(n, rng)
        assert len(batch["reward"]) == n and batch["reward"].sum() == round(n / 2)
    assert MixedSampler(offline, online, ratio=0.25).sample(100, rng)["reward"].sum() == 25
    # UTD: update() cuts the batch into consecutive mini-batches; each of them is half and half as well.
    for mini in np.split(sampler.sample(4 * 16, rng)["reward"], 4):
        assert mini.sum() == 8


def test_replay_ring_keeps_uint8_and_overwrites_oldest():
    space = gym.spaces.Dict({"images/cam": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
                             "state/x": gym.spaces.Box(-1, 1, (1,), np.float32)})
    buffer = ReplayBuffer(space, 1, capacity=3)
    for i in range(5):
        obs = {"images/cam": np.full((4, 4, 3), i, np.uint8), "state/x": np.array([i], np.float32)}
        buffer.add(obs, [0.0], float(i), obs, i == 4)
    assert len(buffer) == 3 and buffer.obs["images/cam"].dtype == np.uint8
    assert sorted(buffer.reward.tolist()) == [2.0, 3.0, 4.0]
    batch = buffer.sample(32, np.random.default_rng(0))
    assert batch["obs"]["images/cam"].dtype == np.uint8 and batch["obs"]["images/cam"].shape == (32, 4, 4, 3)
    assert np.array_equal(batch["done"], batch["reward"] == 4.0)


def test_random_shift_is_a_shift_with_edge_padding():
    img = torch.arange(2 * 8 * 8 * 3, dtype=torch.int64).reshape(2, 8, 8, 3).to(torch.uint8)
    assert torch.equal(random_shift(img, 0), img)
    out = random_shift(img, 4, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and out.dtype == torch.uint8
    for b in range(2):  # every output pixel is an input pixel of the same image
        assert set(out[b].reshape(-1, 3)[:, 0].tolist()) <= set(img[b].reshape(-1, 3)[:, 0].tolist())


def test_box_observation_env_trains(tmp_path):
    """A plain Box observation space (Pendulum) runs through the whole product loop: store, replay, updates."""
    history = train(RunConfig(env="Pendulum-v1", learner=SMALL, total_steps=260, eval_every=260, eval_episodes=1, random_steps=40),
                    tmp_path / "run", progress=False)
    assert [(h["env_steps"], h["success"]) for h in history] == [(260, None)]  # Pendulum reports no success: scored by return
    assert history[-1]["updates"] > 0  # the learner ingests finished episodes: 200-step Pendulum, then updates
    assert "state.obs" in EpisodeStore(tmp_path / "run" / "episodes.zarr").keys


def test_dict_observation_with_camera_updates():
    env = gym.make("robotrl/ArmReach-v0", observation={"cameras": ["wrist"], "image_size": 32})
    agent = SACAgent(env.observation_space, env.action_space, SACConfig(**SMALL, utd=2))
    assert agent.critic.encoder.image_keys == ["images/wrist"]
    assert agent.critic.encoder.state_keys == ["state/ee_pos", "state/ee_vel", "state/target_pos", "state/to_target"]
    buffer = ReplayBuffer(env.observation_space, 3, 100)
    obs = fill_random(buffer, env, 40)
    rng = np.random.default_rng(0)
    before = [p.detach().clone() for p in agent.critic.encoder.parameters()]
    for _ in range(2):
        stats = agent.update(buffer.sample(32, rng))
        assert all(np.isfinite(v) for v in stats.values())
    assert agent.num_critic_updates == 4 and agent.num_updates == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.critic.encoder.parameters()))  # critic trains CNN
    action = agent.policy.act(obs)
    assert action.shape == (3,) and np.all(np.abs(action) <= 1)
    env.close()


def test_discrete_gripper_head():
    env = gym.make("robotrl/ArmPickCube-v0")
    cfg = SACConfig(**SMALL, discrete_gripper=True, gripper_values=[-1.0, 0.0, 1.0])
    agent = SACAgent(env.observation_space, env.action_space, cfg)
    assert agent.cont_dim == 3 and agent.target_entropy == -3.0
    buffer = ReplayBuffer(env.observation_space, 4, 100)
    obs = fill_random(buffer, env, 40)
    stats = agent.update(buffer.sample(16, np.random.default_rng(0)))
    assert stats["gripper_loss"] > 0
    actions = np.stack([agent.policy.act(obs) for _ in range(20)])
    assert actions.shape == (20, 4) and set(actions[:, 3].tolist()) <= {-1.0, 0.0, 1.0}
    assert "gripper.1.weight" in agent.policy.state_dict()


def test_state_dict_round_trip_resumes_identically():
    env = gym.make("robotrl/ArmReach-v0")
    cfg = SACConfig(**SMALL, n_critics=4, critic_subset=2, utd=2)
    buffer = ReplayBuffer(env.observation_space, 3, 200)
    obs = fill_random(buffer, env, 100)
    rng = np.random.default_rng(0)
    a = SACAgent(env.observation_space, env.action_space, cfg, seed=0)
    for _ in range(3):
        a.update(buffer.sample(32, rng))
    blob = io.BytesIO()
    torch.save(a.state_dict(), blob)
    batch = buffer.sample(32, rng)

    b = SACAgent(env.observation_space, env.action_space, cfg, seed=123)  # different init and noise
    blob.seek(0)
    b.load_state_dict(torch.load(blob, weights_only=False))
    assert (b.num_updates, b.num_critic_updates) == (3, 6)
    np.testing.assert_array_equal(a.policy.act(obs), b.policy.act(obs))  # same sampled action: the noise stream resumed too
    assert a.update(copy.deepcopy(batch)) == b.update(copy.deepcopy(batch))
    for p, q in zip(a.critic.parameters(), b.critic.parameters()):
        assert torch.equal(p, q)

    c = SACAgent(env.observation_space, env.action_space, cfg, seed=7)  # an actor process: policy weights only
    c.policy.load_state_dict(a.policy.state_dict())
    np.testing.assert_array_equal(a.policy.act(obs, deterministic=True), c.policy.act(obs, deterministic=True))


def test_config_file_matches_code_defaults(tmp_path):
    assert load_sac_config() == SACConfig()  # the YAML documents the defaults, nothing drifts
    with pytest.raises(ConfigError, match="critic_subset"):
        load_sac_config({"n_critics": 2, "critic_subset": 3})
    with pytest.raises(ConfigError, match="unknown key"):
        load_sac_config({"ensemble": 10})


def test_pretrained_encoder_weights_load_and_freeze(tmp_path):
    space = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)})
    source = ObsEncoder(space, 8, 8)
    path = tmp_path / "conv.pt"
    torch.save(source.cnns["images/front"].conv.state_dict(), path)
    loaded = ObsEncoder(space, 8, 8, pretrained=path, freeze=True)
    for p, q in zip(source.cnns["images/front"].conv.parameters(), loaded.cnns["images/front"].conv.parameters()):
        assert torch.equal(p, q) and not q.requires_grad
    assert all(p.requires_grad for p in loaded.cnns["images/front"].proj.parameters())


def test_training_from_demos_updates_from_the_first_step(tmp_path):
    """The demo path: expert episodes in a store -> offline buffer -> 50/50 batches from the first step."""
    env = gym.make("robotrl/ArmReach-v0")
    store = EpisodeStore(tmp_path / "demos.zarr", mode="a")
    recorder, expert = EpisodeRecorder(store), make_expert(env)
    for seed in (100, 101):
        record_episode(env, expert, recorder, seed, "demo", "robotrl/ArmReach-v0")
    store.close()
    history = train(RunConfig(env="robotrl/ArmReach-v0", demos=str(tmp_path / "demos.zarr"), learner={**SMALL, "batch_size": 4},
                              total_steps=30, eval_every=30, eval_episodes=1), tmp_path / "run", progress=False)
    assert history[-1]["updates"] == 30  # no random warm-up with demos: one update per env step


@pytest.mark.slow
def test_learns_arm_reach(tmp_path):
    """Fails if the learner is broken: SAC from scratch on the real twin, dense reward, UTD 2 (random actions: ~5 %).
    A budget with room rather than one seed's curve: seeds 0-5 first reached 80 % (20-episode evaluations every
    500 steps) at 2k-4.5k env steps, identically with mujoco 4.0.0 and 3.17.0 on an Intel Xeon; the test stops at
    the first 80 % and allows 8k."""
    cfg = RunConfig(env="robotrl/ArmReach-v0", env_kwargs={"reward": "dense"}, total_steps=8000, random_steps=500,
                    eval_every=500, eval_episodes=20, stop_success=0.8,
                    learner={"hidden": 128, "batch_size": 128, "utd": 2, "device": "cpu"})
    history = train(cfg, tmp_path / "run", progress=False)
    assert max(h["success"] for h in history) >= 0.8, history


@pytest.mark.parametrize("gripper", [False, True])
def test_td_target_bootstraps_from_min_of_target_critics(gripper):
    """r + discount * (1 - done) * min_i Q'_i(s', a') (no entropy term: backup_entropy is off by default), and the
    Double DQN target r + discount * (1 - done) * Q'_gripper(s', argmax_g Q_gripper(s', g)) for the gripper critic:
    the online critic picks the command (here the first, though the target rates the second higher)."""
    env = gym.make("robotrl/ArmPickCube-v0")
    cfg = SACConfig(**SMALL, discrete_gripper=gripper)
    agent = SACAgent(env.observation_space, env.action_space, cfg)
    with torch.no_grad():  # target critics that ignore their input: Q'_1 = 2, Q'_2 = -3; gripper values (1, 5)
        last = agent.target.q.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([2.0, -3.0]).view(2, 1, 1))
        if gripper:
            agent.target.gripper[-1].weight.zero_()
            agent.target.gripper[-1].bias.copy_(torch.tensor([1.0, 5.0]))
            agent.critic.gripper[-1].weight.zero_()
            agent.critic.gripper[-1].bias.copy_(torch.tensor([2.0, 0.0]))
    buffer = ReplayBuffer(env.observation_space, 4, 10)
    fill_random(buffer, env, 10)
    batch = to_torch(buffer.sample(8, np.random.default_rng(0)))
    batch["done"] = torch.tensor([0.0, 1.0] * 4)
    target_q, target_g = agent.td_targets(batch, batch["next_obs"], torch.tensor(0.5), torch.zeros(8, agent.cont_dim), None)
    torch.testing.assert_close(target_q, batch["reward"] + 0.97 * (1 - batch["done"]) * -3.0)
    if gripper:  # the gripper critic's reward carries the grasp penalty
        grasp_reward = batch["reward"] - 0.02 * agent.grasp_changes(batch)
        torch.testing.assert_close(target_g, grasp_reward + 0.97 * (1 - batch["done"]) * 1.0)
    else:
        assert target_g is None


def test_grasp_penalty_charges_commands_that_change_the_gripper_state():
    """HIL-SERL's rule: closing a fully open gripper or opening one that is not costs grasp_penalty, in the gripper
    critic's target only; holding a command costs nothing. A task without a gripper observation is told so."""
    env = gym.make("robotrl/ArmPickCube-v0")
    agent = SACAgent(env.observation_space, env.action_space, SACConfig(**SMALL, discrete_gripper=True))
    opening = torch.tensor([[1.0], [1.0], [0.45], [0.45], [0.0]])  # open, open, holding a cube, holding, closed
    command = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0])           # keep open, close, keep closed, open, open
    batch = {"obs": {"state/gripper": opening}, "action": torch.cat([torch.zeros(5, 3), command[:, None]], 1)}
    assert agent.grasp_changes(batch).tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    reach = gym.make("robotrl/ArmReach-v0")
    with pytest.raises(ValueError, match="gripper_state_key 'state/gripper'"):
        SACAgent(reach.observation_space, gym.spaces.Box(-1, 1, (4,)), SACConfig(**SMALL, discrete_gripper=True))
    SACAgent(reach.observation_space, gym.spaces.Box(-1, 1, (4,)), SACConfig(**SMALL, discrete_gripper=True, grasp_penalty=0))


def test_bf16_updates_follow_the_fp32_ones():
    """precision: bf16 (autocast matmuls) takes the same step as fp32 up to rounding: from one initialization and
    one batch, the critic and actor parameter changes point the same way, and every statistic is finite."""
    env = gym.make("robotrl/ArmPickCube-v0")
    buffer = ReplayBuffer(env.observation_space, 4, 300)
    fill_random(buffer, env, 300)
    batch = buffer.sample(256, np.random.default_rng(0))
    deltas = {}
    for precision in ("fp32", "bf16"):
        agent = SACAgent(env.observation_space, env.action_space, load_sac_config({"precision": precision, "device": "cpu",
                                                                                  "discrete_gripper": True}), seed=0)
        before = [p.detach().clone() for p in (*agent.critic_params, *agent.actor_params)]
        stats = agent.update(batch)
        assert all(np.isfinite(v) for v in stats.values())
        deltas[precision] = torch.cat([(p.detach() - b).flatten() for p, b in zip((*agent.critic_params, *agent.actor_params), before)])
    cosine = F.cosine_similarity(deltas["fp32"], deltas["bf16"], dim=0)
    assert cosine > 0.9, f"bf16 step differs from fp32: cosine {cosine:.3f}"


@pytest.mark.slow
def test_compiled_losses_match_eager_ones():
    """compile: true runs the same critic and actor losses through torch.compile: on one batch (transition mask,
    critic subset and gripper critic included) the losses and every gradient match the eager ones up to float
    rounding, and a compiled update() trains."""
    env = gym.make("robotrl/ArmPickCube-v0")
    cfg = SACConfig(**SMALL, compile=True, discrete_gripper=True, n_critics=3, critic_subset=2)
    agent = SACAgent(env.observation_space, env.action_space, cfg)
    buffer = ReplayBuffer(env.observation_space, 4, 100)
    fill_random(buffer, env, 100)
    batch = to_torch(buffer.sample(16, np.random.default_rng(0)))
    batch["mask"] = torch.tensor([1.0, 0.0] * 8)
    alpha, subset = torch.tensor(0.3), torch.tensor([0, 2])
    eps = torch.randn(16, agent.cont_dim, generator=torch.Generator().manual_seed(0))
    results = []
    for critic_loss, actor_loss in [(agent.critic_loss, agent.actor_loss), (agent._critic_loss, agent._actor_loss)]:
        loss, feat, q, gripper_loss = critic_loss(batch, batch["obs"], batch["next_obs"], alpha, eps, subset)
        a_loss, logp = actor_loss(feat.detach(), batch["obs"], batch["mask"], alpha, eps)
        results.append([loss, q, gripper_loss, a_loss, logp, *torch.autograd.grad(loss, agent.critic_params),
                        *torch.autograd.grad(a_loss, agent.actor_params)])
    assert agent._critic_loss is not agent.critic_loss  # the second pass really was the compiled one
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    before = [p.detach().clone() for p in agent.critic_params]
    stats = agent.update(buffer.sample(16, np.random.default_rng(1)))
    assert all(np.isfinite(v) for v in stats.values())
    assert all((p != b).any() for p, b in zip(agent.critic_params, before))


def test_sac_updates_match_the_committed_reference():
    """SAC's learning is unchanged by refactors: what 20 updates from a fixed seed and fixed data change in the
    weights matches tests/data/sac_reference.json (written by tests/sac_reference.py before the learner moved
    behind the Algorithm protocol). A tolerance, not equality: floating point differs between CPUs."""
    import json

    import sac_reference

    expected = json.loads(sac_reference.REFERENCE.read_text())
    for name in sac_reference.CASES:
        got = sac_reference.summary(name)
        for key, value in expected[name].items():
            assert got[key] == pytest.approx(value, rel=2e-3, abs=2e-3), f"{name} {key}"


def test_frozen_encoder_features_are_computed_once_per_frame_and_updates_run_no_convolution():
    """freeze_encoder + cache_features: the Learner's replay keeps each frame's conv features (float16), computed as
    the frame enters; update() then never runs a convolution, and its losses match an update on the pixels (same
    transitions, no shift) up to float16 rounding."""
    from robotrl.runtime.learner import Learner

    env = gym.make("robotrl/ArmReach-v0", observation={"cameras": ["wrist"], "image_size": 32})
    cfg = SACConfig(**SMALL, freeze_encoder=True, augment_pad=0, capacity=200)
    agent = SACAgent(env.observation_space, env.action_space, cfg, seed=0)
    learner = Learner(agent, env.observation_space, log=None)
    plain = ReplayBuffer(env.observation_space, 3, 200)
    calls = {"n": 0}
    for cnn in agent.critic.encoder.cnns.values():
        cnn.conv.register_forward_hook(lambda m, x, y: calls.__setitem__("n", calls["n"] + len(x[0])))  # frames
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for _ in range(30):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for buffer in (learner.online, plain):
            buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
    assert calls["n"] == 31  # each of the 31 distinct observations went through the convs once
    cached, pixels = learner.online.sample(16, np.random.default_rng(0)), plain.sample(16, np.random.default_rng(0))
    feat = cached["obs"]["images/wrist"]
    assert feat.dtype == np.float16 and feat.ndim == 2 and feat.nbytes * 4 < pixels["obs"]["images/wrist"].nbytes
    assert learner.online.bytes_per_transition < plain.bytes_per_transition / 2
    twin = SACAgent(env.observation_space, env.action_space, cfg, seed=0)
    calls["n"] = 0
    a = agent.update(cached)
    assert calls["n"] == 0  # no convolution in the update
    b = twin.update(pixels)
    for key in ("critic_loss", "q", "actor_loss"):
        assert a[key] == pytest.approx(b[key], rel=1e-2, abs=1e-3), key
    # The policy still acts on pixels (an actor process receives images, not features).
    assert agent.policy.act(obs).shape == (3,)
    assert SACAgent(env.observation_space, env.action_space, SACConfig(**SMALL)).replay_encoders() == {}
    env.close()


@pytest.mark.slow
def test_pretrain_encoder_script_writes_weights_sac_loads_frozen(tmp_path):
    """scripts/pretrain_encoder.py on a few twin episodes: conv weights that SACConfig's pretrained_encoder loads
    into every camera (and freezes), with a provenance JSON (data, objective, probe against a random conv)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "enc.pt"
    script = Path(__file__).parent.parent / "scripts" / "pretrain_encoder.py"
    subprocess.run([sys.executable, str(script), "--env", "robotrl/ArmReach-v0", "--cameras", "wrist", "--image-size", "32",
                    "--channels", "8", "--episodes", "3", "--steps", "5", "--batch", "8", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    provenance = json.loads(out.with_suffix(".pt.json").read_text())
    assert provenance["data"]["downloaded"] is False and provenance["data"]["cameras"] == ["images/wrist"]
    assert {"pretrained", "random"} <= set(provenance["probe"]) and provenance["architecture"]["channels"] == 8
    env = gym.make("robotrl/ArmReach-v0", observation={"cameras": ["wrist"], "image_size": 32})
    agent = SACAgent(env.observation_space, env.action_space,
                     SACConfig(**SMALL, pretrained_encoder=str(out), freeze_encoder=True))
    weights = torch.load(out, weights_only=True)
    conv = agent.critic.encoder.cnns["images/wrist"].conv
    assert all(torch.equal(conv.state_dict()[k], v) for k, v in weights.items())
    assert not any(p.requires_grad for p in conv.parameters()) and set(agent.replay_encoders()) == {"images/wrist"}
    env.close()
    # frames under a task config (the randomized twin training will see); targets: every state the twin has, the
    # cube's pose too, though that config observes proprioception only
    subprocess.run([sys.executable, str(script), "--env", "robotrl/ArmPickCube-v0", "--task-config",
                    "arm_pick_cube_pixels_randomized", "--cameras", "front", "--image-size", "32", "--channels", "8",
                    "--episodes", "2", "--steps", "5", "--batch", "8", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    provenance = json.loads(out.with_suffix(".pt.json").read_text())
    assert provenance["data"]["task_config"] == "arm_pick_cube_pixels_randomized"
    assert "state/cube_pos" in provenance["objective"]["targets"]
