"""Every safety violation kind is clipped or replaced, and flagged; the env reports it as a cost."""

import gymnasium as gym
import numpy as np
import pytest

from robotrl.interfaces import ArmCommand, ArmState, QuadCommand, QuadState
from robotrl.geometry import quat_from_euler
from robotrl.safety import ArmSafetyConfig, ArmSafetyFilter, QuadSafetyConfig, QuadSafetyFilter

DT = 0.1


def arm_state(pos=(0.5, 0.0, 0.2)):
    pos = np.array(pos, float)
    return ArmState(np.zeros(7), np.zeros(7), pos, np.array([1.0, 0, 0, 0]), np.zeros(3), 1.0, 0)


@pytest.fixture
def arm_filter():
    return ArmSafetyFilter(ArmSafetyConfig(box_min=(0.3, -0.3, 0.01), box_max=(0.7, 0.3, 0.4), max_speed=0.5))


def test_arm_within_limits_passes_unchanged(arm_filter):
    target = np.array([0.5, 0.0, 0.2])
    cmd = ArmCommand("ee_delta", ee_pos=np.array([0.01, -0.02, 0.0]), gripper=0.5)
    safe, report = arm_filter.filter(cmd, arm_state(), target, DT)
    assert report.violations == () and report.cost == 0.0
    np.testing.assert_allclose(safe.ee_pos, cmd.ee_pos)


def test_arm_speed_is_clipped(arm_filter):
    target = np.array([0.5, 0.0, 0.2])
    safe, report = arm_filter.filter(ArmCommand("ee_delta", ee_pos=np.array([0.2, 0, 0])), arm_state(), target, DT)
    assert report.violations == ("speed",) and report.cost == 1.0
    assert np.linalg.norm(safe.ee_pos) == pytest.approx(0.5 * DT)
    # An absolute target may lead the measured TCP (not the old target) by at most max_speed * dt.
    lagging = arm_state((0.45, 0.0, 0.2))
    safe, report = arm_filter.filter(ArmCommand("ee_target", ee_pos=np.array([0.52, 0, 0.2])), lagging, target, DT)
    assert report.violations == ("speed",)
    np.testing.assert_allclose(safe.ee_pos, [0.5, 0, 0.2])


def test_arm_workspace_box_is_enforced(arm_filter):
    target = np.array([0.69, 0.0, 0.02])
    safe, report = arm_filter.filter(ArmCommand("ee_delta", ee_pos=np.array([0.03, 0, -0.03])), arm_state(target), target, DT)
    assert "workspace" in report.violations
    np.testing.assert_allclose(target + safe.ee_pos, [0.7, 0.0, 0.01])
    safe, report = arm_filter.filter(ArmCommand("ee_target", ee_pos=np.array([0.72, 0, 0.2])), arm_state((0.69, 0, 0.2)), np.array([0.69, 0, 0.2]), DT)
    assert report.violations == ("workspace",)
    np.testing.assert_allclose(safe.ee_pos, [0.7, 0, 0.2])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_arm_nonfinite_becomes_hold(arm_filter, bad):
    state = arm_state((0.45, 0.1, 0.15))
    safe, report = arm_filter.filter(ArmCommand("ee_delta", ee_pos=np.array([0.0, bad, 0.0])), state, np.array([0.5, 0, 0.2]), DT)
    assert report.violations == ("nonfinite",)
    assert safe.mode == "ee_target"
    np.testing.assert_allclose(safe.ee_pos, state.ee_pos)  # hold where the arm is


def test_arm_rotation_and_gripper_range(arm_filter):
    cmd = ArmCommand("ee_delta", ee_pos=np.zeros(3), ee_rotvec=np.array([0, 0, 1.0]), gripper=1.7)
    safe, report = arm_filter.filter(cmd, arm_state(), np.array([0.5, 0, 0.2]), DT)
    assert set(report.violations) == {"rotation_speed", "gripper_range"}
    assert np.linalg.norm(safe.ee_rotvec) == pytest.approx(1.5 * DT)
    assert safe.gripper == 1.0


def quad_state(pos=(0.0, 0.0, 1.0), tilt=0.0):
    return QuadState(np.array(pos, float), quat_from_euler(tilt, 0, 0), np.zeros(3), np.zeros(3), np.zeros(4), True, 0)


@pytest.fixture
def quad_filter():
    return QuadSafetyFilter(QuadSafetyConfig(box_min=(-1, -1, 0), box_max=(1, 1, 2), max_body_rate=5.0, max_tilt=0.8, max_speed=2.0), max_thrust=0.6)


def test_quad_ctbr_limits(quad_filter):
    safe, report = quad_filter.filter(QuadCommand("ctbr", thrust=0.3, body_rates=np.array([1.0, -1.0, 0.5])), quad_state())
    assert report.violations == ()
    safe, report = quad_filter.filter(QuadCommand("ctbr", thrust=0.9, body_rates=np.array([9.0, -1.0, -7.0])), quad_state())
    assert set(report.violations) == {"thrust", "body_rate"}
    assert safe.thrust == 0.6
    np.testing.assert_allclose(safe.body_rates, [5.0, -1.0, -5.0])


def test_quad_tilt_triggers_backup_hold(quad_filter):
    safe, report = quad_filter.filter(QuadCommand("ctbr", thrust=0.3), quad_state(tilt=1.0))
    assert "tilt" in report.violations
    assert safe.mode == "position"
    np.testing.assert_allclose(safe.position, [0, 0, 1])


def test_quad_geofence_outside_holds_nearest_inside_point(quad_filter):
    safe, report = quad_filter.filter(QuadCommand("ctbr", thrust=0.3), quad_state(pos=(1.3, 0.0, 1.0)))
    assert report.violations == ("geofence",)
    assert safe.mode == "position"
    np.testing.assert_allclose(safe.position, [1.0, 0.0, 1.0])
    safe, report = quad_filter.filter(QuadCommand("position", position=np.array([0.0, 3.0, 1.0])), quad_state())
    assert report.violations == ("geofence",)
    np.testing.assert_allclose(safe.position, [0.0, 1.0, 1.0])


def test_quad_speed_and_nonfinite(quad_filter):
    safe, report = quad_filter.filter(QuadCommand("velocity", velocity=np.array([3.0, 4.0, 0.0])), quad_state())
    assert report.violations == ("speed",)
    assert np.linalg.norm(safe.velocity) == pytest.approx(2.0)
    safe, report = quad_filter.filter(QuadCommand("ctbr", thrust=float("nan")), quad_state())
    assert report.violations == ("nonfinite",) and safe.mode == "position"


def test_bad_box_is_rejected():
    with pytest.raises(ValueError, match="box_min"):
        ArmSafetyConfig(box_min=(0.5, 0, 0), box_max=(0.4, 1, 1))


def test_env_reports_cost_and_survives_nan_actions():
    env = gym.make("robotrl/ArmReach-v0")
    env.reset(seed=0)
    before = env.unwrapped.arm.state().ee_pos
    _, _, _, _, info = env.step(np.array([np.nan, 0.0, 0.0], np.float32))
    assert info["violations"] == ("nonfinite",) and info["cost"] == 1.0
    assert np.linalg.norm(env.unwrapped.arm.state().ee_pos - before) < 0.01
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["cost"] == 0.0
