"""Held-out perturbation sets lie outside what training draws; randomized runs reproduce under their seed."""

import gymnasium as gym
import numpy as np
import pytest

from robotrl.config import ConfigError, config_path
from robotrl.tasks.heldout import heldout_envs, heldout_sets

ENV_ID = "robotrl/ArmPickCube-v0"
TRAINING = str(config_path("arm_pick_cube_pixels_randomized", "tasks"))
SMALL = {"observation": {"state": ["ee_pos", "ee_vel", "gripper"], "cameras": ["front"], "image_size": 16}}


def draws(env_kwargs: dict, seeds: range) -> list[dict]:
    """The twin's randomized model values after each reset (small camera: only the draws matter here)."""
    env = gym.make(ENV_ID, **{**env_kwargs, **SMALL}).unwrapped
    nominal, m, out = env.randomizer._nominal, env.world.model, []
    cube = m.body("cube").id
    for seed in seeds:
        env.reset(seed=seed)
        out.append({
            "mass": m.body_mass[cube] / nominal["body_mass"][cube],
            "friction": m.geom_friction[m.geom("cube").id, 0] / nominal["geom_friction"][m.geom("cube").id, 0],
            "light": (m.light_diffuse / np.maximum(nominal["light_diffuse"], 1e-9))[:, 0],
            "camera": np.abs(m.cam_pos - nominal["cam_pos"]),
            "cube_rgb": m.geom_rgba[m.geom("cube").id, :3].copy(),
            "latency": env.config.action_latency_steps,
        })
    return out


def test_held_out_values_never_occur_in_training_draws():
    training, sets = heldout_sets(ENV_ID)
    train = draws({"config": TRAINING}, range(40))
    held = {name: draws(kwargs, range(40)) for name, kwargs in sets.items()}
    t = training.randomization
    assert all(t.mass_scale[0] <= d["mass"] <= t.mass_scale[1] for d in train)
    assert all(not t.mass_scale[0] <= d["mass"] <= t.mass_scale[1] for d in held["masses"])
    assert all(not t.friction_scale[0] <= d["friction"] <= t.friction_scale[1] for d in held["friction"])
    assert all(np.all(d["light"] < t.light_scale[0]) for d in held["lighting_camera"])
    assert all(np.all(d["camera"] > t.camera_pos_noise) for d in held["lighting_camera"])
    assert all(np.all(d["camera"] <= t.camera_pos_noise + 1e-12) for d in train)
    red = np.array(t.object_rgb["cube"])
    assert all(np.abs(d["cube_rgb"] - red).max() <= t.object_rgb_noise + 1e-6 for d in train)
    assert all(np.abs(d["cube_rgb"] - red).max() > 2 * t.object_rgb_noise for d in held["cube_colour"])
    assert {d["latency"] for d in held["latency"]} == {2} and {d["latency"] for d in train} == {1}
    # Each set moves only its own knob: the others are drawn as in training.
    assert all(t.friction_scale[0] <= d["friction"] <= t.friction_scale[1] for d in held["masses"])


def test_a_set_inside_training_fails_naming_the_file_and_the_set(tmp_path):
    path = tmp_path / "heldout.yaml"
    path.write_text(f"training: {TRAINING}\nsets:\n  mild: {{randomization: {{mass_scale: [0.95, 1.05]}}}}\n")
    with pytest.raises(ConfigError, match=r"heldout.yaml: set 'mild'.*mass_scale"):
        heldout_sets(ENV_ID, path)
    path.write_text(f"training: {TRAINING}\nsets:\n  slow: {{action_latency_steps: 1}}\n")
    with pytest.raises(ConfigError, match="set 'slow': action_latency_steps 1 is not above training's 1"):
        heldout_sets(ENV_ID, path)


def test_eval_refuses_a_run_that_trained_outside_the_training_ranges_or_sees_otherwise():
    inside = {"config": TRAINING}
    assert set(heldout_envs(ENV_ID, inside, "all")) == {"masses", "friction", "latency", "lighting_camera", "cube_colour"}
    wide = {"config": TRAINING, "randomization": {"mass_scale": [0.5, 1.5]}}
    with pytest.raises(ValueError, match=r"trained outside .*mass_scale \(0.5, 1.5\)"):
        heldout_envs(ENV_ID, wide, "masses")
    with pytest.raises(ValueError, match="observations differ"):
        heldout_envs(ENV_ID, {}, "latency")  # state observations
    with pytest.raises(ValueError, match="no such set .* sets: masses"):
        heldout_envs(ENV_ID, inside, "gravity")


def test_a_randomized_run_is_reproducible_under_its_seed():
    def trajectory(seed: int) -> np.ndarray:
        env = gym.make(ENV_ID, config=TRAINING, **SMALL)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        rows = [np.concatenate([obs["state/ee_pos"], obs["images/front"].ravel() / 255.0])]
        for _ in range(15):
            obs, *_ = env.step(env.action_space.sample())
            rows.append(np.concatenate([obs["state/ee_pos"], obs["images/front"].ravel() / 255.0]))
        return np.array(rows)

    np.testing.assert_array_equal(trajectory(3), trajectory(3))
    assert not np.array_equal(trajectory(3), trajectory(4))
