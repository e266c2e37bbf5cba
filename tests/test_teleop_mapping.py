"""TeleopMapping on the MuJoCo twins: a human's normalised input (linear, yaw, gripper) becomes the task's action --
end-effector motion and the gripper on an arm, velocity and yaw-rate setpoints on a quadrotor (never raw CTBR).
Durations are counted in control steps, never wall-clock time."""

import gymnasium as gym
import numpy as np
import pytest

import robotrl  # noqa: F401  (registers the envs)
from robotrl.tasks import Task, make_task
from robotrl.tasks.teleop import TeleopMapping

QUIET = {"init_pos_noise": 0.0, "init_vel_noise": 0.0, "init_tilt_noise": 0.0, "init_rate_noise": 0.0,
         "terminate_on_success": False}
ZERO = np.zeros(3)


def yaw_of(obs: dict) -> float:
    rotation = obs["state/rotation"][-9:].reshape(3, 3)
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def fly(env: gym.Env, mapping: TeleopMapping, obs: dict, steps: int, linear=ZERO, yaw: float = 0.0,
        gripper: float | None = None) -> tuple[dict, list[dict], list[np.ndarray]]:
    seen, actions = [], []
    for _ in range(steps):
        action = mapping(obs, np.asarray(linear, float), yaw, gripper)
        assert env.action_space.contains(action)
        obs, _, terminated, _, info = env.step(action)
        assert not terminated and info["cost"] == 0, info
        seen.append(obs)
        actions.append(action)
    return obs, seen, actions


@pytest.fixture
def quad():
    env = gym.make("robotrl/QuadHover-v0", **QUIET)
    mapping = TeleopMapping(env.unwrapped.task)
    obs, _ = env.reset(seed=0)
    mapping.reset()
    yield env, mapping, obs, int(env.unwrapped.task.config.control_hz)  # steps per second
    env.close()


def test_the_quadrotor_flies_forward_at_about_its_max_speed_level_and_without_yawing(quad):
    env, mapping, obs, hz = quad
    assert mapping.max_speed == env.unwrapped.task.robot.max_speed == 1.0  # configs/robots/crazyflie.yaml
    start, yaw0 = obs["state/pos"].copy(), yaw_of(obs)
    obs, seen, _ = fly(env, mapping, obs, 2 * hz, linear=(1.0, 0.0, 0.0))
    moved = obs["state/pos"] - start
    speed = np.mean([o["state/vel"][0] for o in seen[-hz // 2:]])  # the last half second
    assert 0.8 * mapping.max_speed < speed <= 1.05 * mapping.max_speed
    assert moved[0] > 0.6 * mapping.max_speed * 2  # along +x, the world frame's (the twin starts yawed)
    assert abs(moved[1]) < 0.03 and abs(moved[2]) < 0.03
    assert abs(yaw_of(obs) - yaw0) < 0.05


def test_zero_input_hovers_in_place_and_stops_the_quadrotor_after_a_run(quad):
    env, mapping, obs, hz = quad
    start = obs["state/pos"].copy()
    obs, _, actions = fly(env, mapping, obs, 2 * hz, gripper=1.0)  # an arm's "open" means nothing on a quad
    assert np.abs(obs["state/pos"] - start).max() < 0.01
    assert np.abs(np.array(actions)[:, 1:]).max() < 0.01  # no body rate: the old mapping's gripper was full yaw rate
    obs, _, _ = fly(env, mapping, obs, hz, linear=(0.0, 1.0, 0.0))
    obs, _, _ = fly(env, mapping, obs, 2 * hz)  # released: brake, then hold
    held = obs["state/pos"].copy()
    obs, _, _ = fly(env, mapping, obs, hz)
    assert np.linalg.norm(obs["state/vel"]) < 0.05 and np.abs(obs["state/pos"] - held).max() < 0.02
    assert abs(obs["state/pos"][2] - start[2]) < 0.05


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_yaw_input_yaws_the_quadrotor_that_way_in_place(quad, sign):
    """REP-103: positive yaw is counter-clockwise seen from above."""
    env, mapping, obs, hz = quad
    start, yaw0 = obs["state/pos"].copy(), yaw_of(obs)
    obs, _, _ = fly(env, mapping, obs, hz // 2, yaw=sign)
    turned = sign * float(np.angle(np.exp(1j * (yaw_of(obs) - yaw0))))  # wrapped to (-pi, pi]
    assert 0.6 * mapping.max_yaw_rate * 0.5 < turned < 1.1 * mapping.max_yaw_rate * 0.5
    assert np.abs(obs["state/pos"] - start).max() < 0.03


def test_the_quadrotor_mapping_reads_the_newest_frame_of_a_stacked_observation():
    env = gym.make("robotrl/QuadHover-v0", **QUIET, observation={"frame_stack": 3})
    mapping = TeleopMapping(env.unwrapped.task)
    obs, _ = env.reset(seed=0)
    start = obs["state/pos"][-3:].copy()
    obs, _, _ = fly(env, mapping, obs, 50, linear=(0.0, 0.0, 0.5))
    assert obs["state/pos"][-3:][2] - start[2] > 0.3 and np.abs(obs["state/pos"][-3:][:2] - start[:2]).max() < 0.03
    env.close()


def test_the_arm_moves_its_end_effector_with_the_input_holds_at_zero_and_closes_the_gripper():
    env = gym.make("robotrl/ArmPickCube-v0", terminate_on_success=False)
    task = env.unwrapped.task
    mapping = TeleopMapping(task)
    obs, _ = env.reset(seed=0)
    start = obs["state/ee_pos"].copy()
    obs, _, actions = fly(env, mapping, obs, 5, yaw=1.0)  # yaw: no arm task rotates
    assert np.abs(obs["state/ee_pos"] - start).max() < 0.002
    assert all(np.array_equal(a, [0, 0, 0, 1]) for a in actions)  # hold, gripper open from the start
    obs, _, _ = fly(env, mapping, obs, 3, linear=(1.0, 0.0, 0.0))
    moved = obs["state/ee_pos"] - start
    assert moved[0] > 0.5 * 3 * task.config.action_scale and np.abs(moved[1:]).max() < 0.005
    still = obs["state/ee_pos"].copy()
    obs, _, _ = fly(env, mapping, obs, 5)
    assert np.abs(obs["state/ee_pos"] - still).max() < 0.002
    assert obs["state/gripper"][0] > 0.9
    obs, _, _ = fly(env, mapping, obs, 5, gripper=-1.0)
    assert obs["state/gripper"][0] < 0.1
    obs, _, actions = fly(env, mapping, obs, 3)  # None: as last commanded
    assert obs["state/gripper"][0] < 0.1 and actions[-1][3] == -1.0
    mapping.reset()
    assert mapping(obs, ZERO, 0.0, None)[3] == 1.0  # a new episode starts open
    env.close()


@pytest.mark.parametrize("env_id", ["robotrl/QuadHover-v0", "robotrl/ArmPickCube-v0"])
def test_non_finite_or_misshapen_input_raises(env_id):
    env = gym.make(env_id)
    mapping = TeleopMapping(env.unwrapped.task)
    obs, _ = env.reset(seed=0)
    for linear, yaw, gripper in (([np.nan, 0, 0], 0.0, None), (ZERO, np.inf, None), (ZERO, 0.0, np.nan)):
        with pytest.raises(ValueError, match="non-finite"):
            mapping(obs, np.asarray(linear, float), yaw, gripper)
    with pytest.raises(ValueError, match="shape"):
        mapping(obs, np.zeros(2), 0.0, None)
    env.close()


def test_other_tasks_and_quadrotors_that_cannot_see_their_velocity_are_refused():
    class Juggle(Task):
        env_id = "robotrl/Juggle-v0"

    with pytest.raises(ValueError, match=r"Juggle.*supported kinds: arm.*quad"):
        TeleopMapping(Juggle.__new__(Juggle))
    with pytest.raises(ValueError, match=r"lacks state \['vel', 'rotation'\]"):
        TeleopMapping(make_task("robotrl/QuadHover-v0", observation={"state": ["pos", "to_goal"]}))
