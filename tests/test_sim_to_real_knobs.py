"""Domain randomization, action latency, control-rate jitter and observation noise from config."""

import gymnasium as gym
import numpy as np

DR = {
    "enabled": True, "mass_scale": (0.5, 1.5), "friction_scale": (0.5, 1.5), "damping_scale": (0.5, 1.5),
    "actuator_gain_scale": (0.8, 1.2), "camera_pos_noise": 0.05, "light_scale": (0.5, 1.0),
}


def test_randomization_changes_physics_within_ranges_and_is_seeded():
    env = gym.make("robotrl/ArmPickCube-v0", randomization=DR).unwrapped
    nominal = env.randomizer._nominal
    env.reset(seed=0)
    m = env.world.model
    massive = nominal["body_mass"] > 0
    mass_ratio = m.body_mass[massive] / nominal["body_mass"][massive]
    assert np.all((mass_ratio >= 0.5) & (mass_ratio <= 1.5)) and mass_ratio.std() > 0.05
    friction_ratio = m.geom_friction[:, 0] / nominal["geom_friction"][:, 0]
    assert np.all((friction_ratio >= 0.5) & (friction_ratio <= 1.5))
    assert np.all(np.abs(m.cam_pos - nominal["cam_pos"]) <= 0.05) and np.any(m.cam_pos != nominal["cam_pos"])
    first = m.body_mass.copy()
    env.reset(seed=1)
    assert not np.array_equal(first, m.body_mass)
    env.reset(seed=0)
    np.testing.assert_array_equal(first, m.body_mass)


def test_randomization_off_restores_nominal():
    env = gym.make("robotrl/ArmReach-v0").unwrapped
    env.reset(seed=0)
    np.testing.assert_array_equal(env.world.model.body_mass, env.randomizer._nominal["body_mass"])


def test_quad_motor_constants_are_randomized():
    env = gym.make("robotrl/QuadHover-v0", randomization=DR).unwrapped
    env.reset(seed=0)
    gains = env.world.model.actuator_gainprm[:, 0] / env.randomizer._nominal["actuator_gainprm"][:, 0]
    assert np.all((gains >= 0.8) & (gains <= 1.2)) and gains.std() > 0


def test_action_latency_delays_the_effect_by_n_steps():
    def z_after(latency):
        env = gym.make("robotrl/ArmReach-v0", action_latency_steps=latency, start_noise=0.0)
        obs, _ = env.reset(seed=0)
        z0, zs = obs["state/ee_pos"][2], []
        for _ in range(4):
            obs, *_ = env.step(np.array([0, 0, -1.0], np.float32))
            zs.append(obs["state/ee_pos"][2] - z0)
        return np.array(zs)

    now, late = z_after(0), z_after(2)
    assert now[0] < -0.01
    assert abs(late[0]) < 2e-3 and abs(late[1]) < 2e-3 and late[2] < -0.01


def test_control_jitter_varies_the_period():
    env = gym.make("robotrl/ArmReach-v0", control_jitter=0.3).unwrapped
    env.reset(seed=0)
    periods = []
    for _ in range(10):
        t = env.world.data.time
        env.step(np.zeros(3, np.float32))
        periods.append(env.world.data.time - t)
    assert min(periods) >= 0.07 - 1e-9 and max(periods) <= 0.13 + 1e-9
    assert np.std(periods) > 0.005


def test_observation_noise():
    clean = gym.make("robotrl/ArmReach-v0")
    noisy = gym.make("robotrl/ArmReach-v0", obs_noise_std=0.01)
    a, _ = clean.reset(seed=0)
    b, _ = noisy.reset(seed=0)
    diff = b["state/ee_pos"] - a["state/ee_pos"]
    assert 0 < np.abs(diff).max() < 0.05
