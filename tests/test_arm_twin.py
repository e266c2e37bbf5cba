"""The arm twin on real MuJoCo: kinematics, impedance tracking, hold, joint mode, gripper."""

import numpy as np
import pytest

from robotrl.interfaces import Arm, ArmCommand
from robotrl.sim.arm import HOME_Q, ArmTwin
from robotrl.sim.world import ASSETS, TwinWorld


@pytest.fixture
def arm():
    world = TwinWorld.from_xml(ASSETS / "arm_scene.xml")
    twin = ArmTwin(world)
    twin.home()
    return twin


def test_implements_interface_and_panda_home_pose(arm):
    assert isinstance(arm, Arm)
    s = arm.state()
    np.testing.assert_allclose(s.q, HOME_Q, atol=1e-6)
    # Panda "ready" pose: TCP 0.307 m forward, 0.487 m up, pointing down (180 deg about x).
    np.testing.assert_allclose(s.ee_pos, [0.307, 0.0, 0.487], atol=2e-3)
    np.testing.assert_allclose(np.abs(s.ee_quat), [1, 0, 0, 0], atol=1e-3)
    assert s.gripper == pytest.approx(1.0)


def test_joint_limits_and_masses_match_panda(arm):
    m = arm.world.model
    assert m.jnt_range[m.joint("joint4").id].tolist() == pytest.approx([-3.0718, -0.0698])
    assert m.jnt_range[m.joint("joint6").id].tolist() == pytest.approx([-0.0175, 3.7525])
    assert 17.0 < m.body_subtreemass[m.body("link0").id] < 19.0  # Panda arm + hand is ~18 kg


@pytest.mark.parametrize("target", [(0.5, 0.1, 0.1), (0.6, -0.2, 0.05), (0.4, 0.0, 0.3)])
def test_impedance_controller_tracks_targets(arm, target):
    arm.command(ArmCommand("ee_target", ee_pos=np.array(target)))
    arm.world.advance(1.0)
    s = arm.state()
    np.testing.assert_allclose(s.ee_pos, target, atol=2e-3)
    assert np.linalg.norm(s.ee_vel) < 0.01


def test_delta_command_moves_relative_to_target(arm):
    start, _ = arm.target_pose()
    arm.command(ArmCommand("ee_delta", ee_pos=np.array([0.05, 0.0, -0.05])))
    arm.world.advance(1.0)
    np.testing.assert_allclose(arm.state().ee_pos, start + [0.05, 0, -0.05], atol=2e-3)


def test_stop_holds_current_pose(arm):
    arm.command(ArmCommand("ee_target", ee_pos=np.array([0.6, 0.2, 0.1])))
    arm.world.advance(0.1)  # moving fast now
    arm.stop()
    held = arm.state().ee_pos
    arm.world.advance(1.0)
    assert np.linalg.norm(arm.state().ee_pos - held) < 0.05
    assert np.linalg.norm(arm.state().ee_vel) < 0.01


def test_joint_mode_reaches_joint_targets(arm):
    q = HOME_Q + np.array([0.3, 0.2, 0.0, 0.3, 0.0, -0.2, 0.0])
    arm.command(ArmCommand("joint", q=q))
    arm.world.advance(2.0)
    np.testing.assert_allclose(arm.state().q, q, atol=0.02)


def test_gripper_closes_and_opens(arm):
    arm.command(ArmCommand("ee_delta", gripper=0.0))
    arm.world.advance(0.5)
    assert arm.state().gripper < 0.05
    arm.command(ArmCommand("ee_delta", gripper=1.0))
    arm.world.advance(0.5)
    assert arm.state().gripper > 0.95


def test_state_stamp_is_sim_time(arm):
    t0 = arm.state().stamp_ns
    arm.world.advance(0.1)
    assert arm.state().stamp_ns - t0 == pytest.approx(100_000_000, abs=2_000_000)
