"""Quaternion order and frame conventions round-trip, and the MuJoCo boundary converts exactly once."""

import mujoco
import numpy as np
import pytest

from robotrl.geometry import (
    enu_to_ned, flu_to_frd, frd_to_flu, ned_to_enu, quat_from_euler, quat_from_rotvec, quat_multiply,
    quat_to_matrix, wxyz_from_xyzw, xyzw_from_wxyz, yaw_from_quat,
)
from robotrl.sim.arm import ArmTwin
from robotrl.sim.world import ASSETS, TwinWorld

rng = np.random.default_rng(0)
QUATS = [q / np.linalg.norm(q) for q in rng.normal(size=(20, 4))]


@pytest.mark.parametrize("q", QUATS)
def test_xyzw_wxyz_round_trip_and_matrix_agrees_with_mujoco(q):
    np.testing.assert_allclose(xyzw_from_wxyz(wxyz_from_xyzw(q)), q)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, wxyz_from_xyzw(q))
    np.testing.assert_allclose(quat_to_matrix(q), mat.reshape(3, 3), atol=1e-12)


def test_quaternion_helpers_compose():
    yaw = quat_from_euler(0, 0, 0.7)
    np.testing.assert_allclose(yaw, quat_from_rotvec([0, 0, 0.7]), atol=1e-12)
    assert yaw_from_quat(quat_multiply(yaw, yaw)) == pytest.approx(1.4)
    res = np.zeros(4)
    a, b = QUATS[0], QUATS[1]
    mujoco.mju_mulQuat(res, wxyz_from_xyzw(a), wxyz_from_xyzw(b))
    np.testing.assert_allclose(quat_multiply(a, b), xyzw_from_wxyz(res), atol=1e-12)


def test_enu_ned_and_flu_frd():
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(enu_to_ned(v), [2.0, 1.0, -3.0])  # east->y_ned, north->x_ned, up->-down
    np.testing.assert_allclose(ned_to_enu(enu_to_ned(v)), v)
    np.testing.assert_allclose(flu_to_frd(v), [1.0, -2.0, -3.0])
    np.testing.assert_allclose(frd_to_flu(flu_to_frd(v)), v)


def test_arm_state_quaternion_is_xyzw_of_the_mujoco_pose():
    world = TwinWorld.from_xml(ASSETS / "arm_scene.xml")
    arm = ArmTwin(world)
    arm.home()
    world.data.qpos[:7] += 0.3
    world.forward()
    wxyz = np.zeros(4)
    mujoco.mju_mat2Quat(wxyz, world.data.site("tcp").xmat)
    q = arm.state().ee_quat
    np.testing.assert_allclose(q, xyzw_from_wxyz(wxyz))
    np.testing.assert_allclose(quat_to_matrix(q), world.data.site("tcp").xmat.reshape(3, 3), atol=1e-9)
