"""Tasks without MuJoCo: one definition the twin env and RosEnv both play; experts built from the task alone."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from robotrl import ENVS
from robotrl.interfaces import ArmState, QuadState
from robotrl.safety import SafetyReport
from robotrl.tasks import TASKS, make_task
from robotrl.tasks.experts import make_expert


def test_every_twin_env_has_a_task_and_plays_it():
    assert set(TASKS) == set(ENVS)
    for env_id in ENVS:
        env = gym.make(env_id).unwrapped
        task = make_task(env_id)
        assert type(env.task) is type(task) and env.task.env_id == env_id
        assert env.action_space == task.action_space
        assert set(env.observation_space) == {f"state/{k}" for k in task.state_dims()}
        env.close()


def test_tasks_and_experts_import_no_mujoco():
    code = ("import sys; from robotrl.tasks import TASKS, make_task; from robotrl.tasks.experts import make_expert\n"
            "for env_id in TASKS: make_expert(make_task(env_id))\n"
            "assert 'mujoco' not in sys.modules, 'mujoco imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def arm_reading(ee_pos, gripper=1.0) -> ArmState:
    z = np.zeros(7)
    return ArmState(q=z, dq=z, ee_pos=np.asarray(ee_pos, float), ee_quat=np.array([1.0, 0, 0, 0]), ee_vel=np.zeros(3),
                    gripper=gripper, stamp_ns=0)


def test_pick_judges_from_the_reading_and_the_tracked_cube_with_a_cost_per_limit():
    task = make_task("robotrl/ArmPickCube-v0")
    cube_on_table, lifted = np.array([0.5, 0.0, 0.02]), np.array([0.5, 0.0, 0.1])
    task.reset(arm_reading([0.5, 0, 0.2]), {"cube": cube_on_table}, {})
    j = task.judge(arm_reading([0.5, 0, 0.1]), {"cube": lifted}, {}, task.neutral_action(), SafetyReport(("workspace",)))
    assert j.success and not j.failed and j.reward("sparse") == 1.0
    assert j.costs == {"nonfinite": 0.0, "speed": 0.0, "workspace": 1.0, "rotation_speed": 0.0, "gripper_range": 0.0}
    j = task.judge(arm_reading([0.5, 0, 0.2]), {"cube": cube_on_table}, {}, task.neutral_action(), SafetyReport())
    assert not j.success and sum(j.costs.values()) == 0
    assert task.judge(arm_reading([0.5, 0, 0.2]), {"cube": np.array([1.5, 0, 0.02])}, {}, task.neutral_action(),
                      SafetyReport()).failed  # the cube left the table


def test_waypoints_progress_lives_in_the_task_and_moves_the_goal_in_the_observation():
    task = make_task("robotrl/QuadWaypoints-v0", n_waypoints=2)
    goals = {"waypoint0": np.array([1.0, 0, 1]), "waypoint1": np.array([0.0, 1, 1])}
    assert task.goals == ("waypoint0", "waypoint1")

    def at(pos) -> QuadState:
        return QuadState(pos=np.asarray(pos, float), quat=np.array([0.0, 0, 0, 1]), vel=np.zeros(3), body_rates=np.zeros(3),
                         motor_thrusts=np.zeros(4), armed=True, stamp_ns=0)

    with pytest.raises(ValueError, match="waypoint1"):
        task.reset(at([0, 0, 1]), {}, {"waypoint0": goals["waypoint0"]})
    task.reset(at([0, 0, 1]), {}, goals)
    np.testing.assert_allclose(task.observe(at([0, 0, 1]), {}, goals)["to_goal"], [1, 0, 0])
    hover = task.neutral_action()
    assert task.judge(at([1, 0, 1]), {}, goals, hover, SafetyReport()).info["waypoints_reached"] == 1
    obs = task.observe(at([1, 0, 1]), {}, goals)
    np.testing.assert_allclose(obs["to_goal"], [-1, 1, 0])
    assert obs["progress"] == 0.5
    assert task.judge(at([0, 1, 1]), {}, goals, hover, SafetyReport()).success


def test_experts_read_the_task_and_robot_config():
    task = make_task("robotrl/QuadHover-v0", robot="quad_1kg")
    expert = make_expert(task)
    assert expert.mass == task.robot.mass and expert.max_thrust == task.robot.max_thrust
    # Hovering level at the goal, the expert commands about hover thrust: it knows the airframe from config.
    obs = {"state/to_goal": np.zeros(3), "state/vel": np.zeros(3), "state/rotation": np.eye(3).ravel()}
    np.testing.assert_allclose(expert.act(obs)[0], task.neutral_action()[0], atol=1e-6)
    with pytest.raises(ValueError, match="no scripted expert"):
        make_expert(object())


def test_every_limit_has_one_definition_and_the_chain_scale_limit_capability_holds():
    """Each shipped task's limits are checked against its robot when it is built: its safety box lies in the robot's
    workspace (and is the workspace when the task names none), its action scale is within its safety limit, and
    that within what the robot can do. A config that breaks the chain fails naming both keys."""
    from robotrl.config import ConfigError
    from robotrl.robots import ArmParams, QuadParams

    for env_id in TASKS:
        task = make_task(env_id)
        if task.robot_kind == "arm":
            robot = ArmParams.load(task.config.robot)
            lo, hi = np.array(task.safety.box_min), np.array(task.safety.box_max)
            assert np.all(lo >= robot.workspace[0]) and np.all(hi <= robot.workspace[1])
            assert task.config.action_scale * task.config.control_hz <= task.config.safety.max_speed <= robot.max_ee_speed
        else:
            robot = QuadParams.load(task.config.robot)
            assert task.config.max_body_rate <= task.config.safety.max_body_rate <= robot.max_body_rate
    pick = make_task("robotrl/ArmPickCube-v0")
    assert pick.safety.box_min == ArmParams.load("panda").workspace_min  # no second copy of the box in the task YAML
    with pytest.raises(ConfigError, match=r"safety.max_body_rate.*crazyflie's max_body_rate"):
        make_task("robotrl/QuadHover-v0", safety={"max_body_rate": 12.0})
    with pytest.raises(ConfigError, match=r"'max_body_rate'.*'safety.max_body_rate'"):
        make_task("robotrl/QuadHover-v0", max_body_rate=7.0)
    with pytest.raises(ConfigError, match=r"safety.box_max.*outside robot panda's workspace"):
        make_task("robotrl/ArmReach-v0", safety={"box_min": [0.3, -0.3, 0.0], "box_max": [0.9, 0.3, 0.4]})
    with pytest.raises(ConfigError, match=r"action_scale.*safety.max_speed"):
        make_task("robotrl/ArmReach-v0", action_scale=0.1)
    with pytest.raises(ConfigError, match=r"safety.max_speed.*max_ee_speed"):
        make_task("robotrl/ArmReach-v0", safety={"max_speed": 1.5})


def test_a_deployable_observation_holds_no_privileged_key():
    """The pixel config of ArmPickCube gives the policy proprioception and cameras only: nothing computed from the
    cube's tracked pose reaches its observation, in the twin env as in the task's spaces (RosEnv's)."""
    from robotrl.config import config_path
    from robotrl.tasks import task_spaces

    config = config_path("arm_pick_cube_pixels", "tasks")
    assert not make_task("robotrl/ArmPickCube-v0").deployable
    assert make_task("robotrl/ArmPickCube-v0", config).deployable
    env = gym.make("robotrl/ArmPickCube-v0", config=config, observation={"image_size": 32})
    obs, _ = env.reset(seed=0)
    privileged = {f"state/{k}" for k in env.unwrapped.task.privileged}
    assert privileged and not privileged & set(obs) and not privileged & set(env.observation_space.spaces)
    assert set(obs) == {"state/ee_pos", "state/ee_vel", "state/gripper", "images/front", "images/wrist"}
    assert task_spaces("robotrl/ArmPickCube-v0", {"config": config, "observation": {"image_size": 32}})[0] == env.observation_space
    env.close()
