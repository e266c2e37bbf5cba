"""QuadTwin on real MuJoCo physics, for both shipped quadrotors (no mocks)."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from robotrl.config import ConfigError, configs_dir
from robotrl.geometry import yaw_from_quat
from robotrl.interfaces import QuadCommand, Quadrotor
from robotrl.robots import QuadParams
from robotrl.sim.quad import QuadTwin, quad_mjcf

ROBOTS = ["crazyflie", "quad_1kg"]


@pytest.fixture(params=ROBOTS)
def quad(request: pytest.FixtureRequest) -> QuadTwin:
    return QuadTwin(request.param)


def hover_at(q: QuadTwin, z: float = 1.0) -> None:
    """Teleport to a hover at height z, rotors already at hover thrust, armed."""
    q.set_state([0.0, 0.0, z], motor_thrusts=q.hover_thrust / 4)
    q.arm()


def ctbr(thrust: float, rates: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> QuadCommand:
    return QuadCommand("ctbr", thrust=thrust, body_rates=np.array(rates, float))


# -- config and model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ROBOTS)
def test_params_load_by_name_and_path(name: str) -> None:
    by_name = QuadParams.load(name)
    by_path = QuadParams.load(configs_dir() / "robots" / f"{name}.yaml")
    assert by_name == by_path and by_name.name == name
    assert 2.0 <= by_name.max_thrust / by_name.hover_thrust <= 6.0
    assert by_name.rate_loop_hz >= 250
    np.testing.assert_allclose(by_name.max_thrust, 4 * by_name.thrust_coefficient * by_name.max_rotor_speed**2)


@pytest.mark.parametrize(
    "override, key",
    [({"mass": -1.0}, "mass"), ({"rate_loop_hz": 300.0}, "rate_loop_hz"), ({"max_rotor_speed": 100.0}, "thrust"),
     ({"bogus": 1}, "unknown key")],
)
def test_params_reject_bad_values(override: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        QuadParams.load("crazyflie", override)


def test_mjcf_structure() -> None:
    p = QuadParams.load("crazyflie")
    marker = '<geom name="target" type="sphere" size="0.02" pos="0 0 1" contype="0" conaffinity="0"/>'
    m = mujoco.MjModel.from_xml_string(quad_mjcf(p, marker))
    assert m.opt.timestep == p.physics_dt and m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert m.vis.quality.shadowsize == 0
    assert [m.jnt_type[m.joint(j).id] for j in ("x", "y", "z", "rot")] == [mujoco.mjtJoint.mjJNT_SLIDE] * 3 + [
        mujoco.mjtJoint.mjJNT_BALL
    ]
    assert m.dof_damping[m.jnt_dofadr[m.joint("x").id]] == p.linear_drag
    assert m.dof_damping[m.jnt_dofadr[m.joint("rot").id]] == 0.0  # drag must not damp rotation
    assert m.body("quad").mass[0] == pytest.approx(p.mass)
    np.testing.assert_allclose(m.body("quad").inertia, p.inertia)
    m.camera("chase"), m.camera("world"), m.geom("target")  # exist
    for i in range(4):
        a = m.actuator(f"rotor{i}")
        assert a.dyntype[0] == mujoco.mjtDyn.mjDYN_FILTER and a.dynprm[0] == p.motor_time_constant
        np.testing.assert_allclose(a.ctrlrange, [0.0, p.max_rotor_thrust])
        assert abs(a.gear[5]) == pytest.approx(p.torque_coefficient / p.thrust_coefficient)
    assert sum(np.sign(m.actuator_gear[:4, 5])) == 0  # two rotors spin each way


# -- interface -----------------------------------------------------------------------------------------------
def test_protocol_and_initial_state(quad: QuadTwin) -> None:
    assert isinstance(quad, Quadrotor)
    assert quad.hover_thrust == pytest.approx(quad.mass * 9.81)
    assert quad.max_thrust == pytest.approx(4 * quad.params.max_rotor_thrust)
    quad.world.advance(0.5)
    s = quad.state()
    assert not s.armed and s.stamp_ns == quad.world.stamp_ns > 0
    assert s.pos[2] == pytest.approx(quad.z_rest, abs=2e-3)  # stands on the floor
    np.testing.assert_allclose(s.quat, [0, 0, 0, 1], atol=1e-6)
    assert s.motor_thrusts.shape == (4,) and not s.motor_thrusts.any()


def test_set_state_and_reset(quad: QuadTwin) -> None:
    quat = np.array([0.0, 0.0, math.sin(0.3), math.cos(0.3)])
    quad.set_state([1.0, 2.0, 3.0], quat, [0.1, 0.2, 0.3], [0.4, 0.5, 0.6], motor_thrusts=0.01)
    s = quad.state()
    np.testing.assert_allclose(s.pos, [1, 2, 3])
    np.testing.assert_allclose(s.quat, quat)
    np.testing.assert_allclose(s.vel, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(s.body_rates, [0.4, 0.5, 0.6])
    np.testing.assert_allclose(s.motor_thrusts, 0.01)
    quad.arm()
    quad.reset()
    s = quad.state()
    assert not s.armed and s.stamp_ns == 0 and s.pos[2] == pytest.approx(quad.z_rest)


# -- flight ------------------------------------------------------------------------------------------------
def test_position_takeoff_to_1m_and_hold(quad: QuadTwin) -> None:
    quad.arm()
    target = np.array([0.0, 0.0, 1.0])
    quad.command(QuadCommand("position", position=target))
    quad.world.advance(4.0)
    for _ in range(20):  # stays for 2 s more
        assert np.linalg.norm(quad.state().pos - target) < 0.05
        quad.world.advance(0.1)


def test_position_lateral_with_yaw(quad: QuadTwin) -> None:
    hover_at(quad)
    target = np.array([1.0, -0.5, 1.5])
    quad.command(QuadCommand("position", position=target, yaw=1.0))
    quad.world.advance(5.0)
    s = quad.state()
    assert np.linalg.norm(s.pos - target) < 0.05
    assert yaw_from_quat(s.quat) == pytest.approx(1.0, abs=0.03)


def test_velocity_mode_tracks_with_drag(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(QuadCommand("velocity", velocity=np.array([0.5, 0.0, 0.0])))
    quad.world.advance(3.0)
    np.testing.assert_allclose(quad.state().vel, [0.5, 0.0, 0.0], atol=0.03)


def test_ctbr_hover_thrust_keeps_altitude(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(ctbr(quad.hover_thrust))
    quad.world.advance(2.0)
    s = quad.state()
    assert abs(s.pos[2] - 1.0) < 0.05 and np.linalg.norm(s.body_rates) < 1e-3


def test_roll_rate_step_is_tracked(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(ctbr(quad.hover_thrust, (1.0, 0.0, 0.0)))
    quad.world.advance(0.1)
    rates = quad.state().body_rates
    assert rates[0] == pytest.approx(1.0, rel=0.2)
    assert abs(rates[1]) < 0.1 and abs(rates[2]) < 0.1


@pytest.mark.parametrize("name", ROBOTS)
def test_rate_integrator_removes_a_torque_bias(name: str) -> None:
    """A constant roll torque (e.g. an off-centre payload) leaves a rate error under P only; ki removes it."""
    errors = []
    for ki in (0.0, 100.0):
        q = QuadTwin(QuadParams.load(name, {"rate_ki": [ki, ki, ki]}))
        hover_at(q, 5.0)
        q.command(ctbr(q.hover_thrust))
        p = q.params
        q.world.data.xfrc_applied[q.world.model.body("quad").id, 3] = 0.2 * p.rate_kp[0] * p.inertia[0]  # N m
        q.world.advance(1.5)
        errors.append(abs(q.state().body_rates[0]))
    assert errors[0] == pytest.approx(0.2, rel=0.1) and errors[1] < 0.01


@pytest.mark.parametrize("name", ROBOTS)
def test_vertical_integrator_absorbs_a_mass_mismatch(name: str) -> None:
    """The controller assumes the nominal mass; a 15 % heavier quad still holds altitude thanks to ki_vel_z."""
    errors = []
    for ki in (0.0, 4.0):
        q = QuadTwin(QuadParams.load(name, {"ki_vel_z": ki}))
        q.world.model.body_mass[q.world.model.body("quad").id] *= 1.15
        hover_at(q)
        q.command(QuadCommand("position", position=np.array([0.0, 0.0, 1.0])))
        q.world.advance(8.0)
        errors.append(abs(q.state().pos[2] - 1.0))
    assert errors[0] > 0.2 and errors[1] < 0.02


def test_positive_yaw_rate_command_gives_positive_z_rate(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(ctbr(quad.hover_thrust, (0.0, 0.0, 1.0)))
    quad.world.advance(0.3)
    s = quad.state()
    assert s.body_rates[2] == pytest.approx(1.0, rel=0.2)
    assert yaw_from_quat(s.quat) > 0.1


def test_motor_lag_is_first_order(quad: QuadTwin) -> None:
    quad.set_state([0.0, 0.0, 1.0], motor_thrusts=0.0)
    quad.arm()
    quad.command(ctbr(quad.hover_thrust))
    quad.world.advance(quad.params.motor_time_constant)
    np.testing.assert_allclose(quad.state().motor_thrusts, 0.632 * quad.hover_thrust / 4, rtol=0.05)


def test_rotor_thrust_never_exceeds_limit(quad: QuadTwin) -> None:
    hover_at(quad, 5.0)
    lim = quad.params.max_body_rate
    quad.command(ctbr(10 * quad.max_thrust, (lim, -lim, lim)))
    limit = quad.params.max_rotor_thrust
    peak = 0.0
    for _ in range(100):
        quad.world.advance(n_steps=2)
        thrusts = quad.state().motor_thrusts
        assert thrusts.min() >= 0.0 and thrusts.max() <= limit * (1 + 1e-9)
        assert quad.world.data.ctrl.max() <= limit * (1 + 1e-9)
        peak = max(peak, thrusts.max())
    assert peak > 0.95 * limit  # the limit was actually reached


def test_disarmed_falls_and_needs_arming(quad: QuadTwin) -> None:
    quad.command(QuadCommand("position", position=np.array([0.0, 0.0, 1.0])))
    quad.world.advance(0.5)
    assert quad.state().pos[2] == pytest.approx(quad.z_rest, abs=2e-3)  # not armed: stays on the floor
    quad.set_state([0.0, 0.0, 2.0], motor_thrusts=0.0)
    quad.world.advance(0.4)
    s = quad.state()
    assert s.pos[2] < 2.0 - 0.9 * 0.5 * 9.81 * 0.4**2 and s.vel[2] < -3.0
    assert not s.motor_thrusts.any()


def test_stop_holds_position(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(QuadCommand("velocity", velocity=np.array([0.5, 0.3, 0.0])))
    quad.world.advance(2.0)
    here = quad.state().pos
    quad.stop()
    quad.world.advance(3.0)
    s = quad.state()
    assert s.armed and np.linalg.norm(s.pos - here) < 0.05 and np.linalg.norm(s.vel) < 0.05


def test_land_ends_on_the_ground_disarmed(quad: QuadTwin) -> None:
    hover_at(quad)
    quad.command(QuadCommand("position", position=np.array([0.0, 0.0, 1.0])))
    quad.world.advance(0.5)
    quad.land()
    quad.world.advance(1.0)
    s = quad.state()
    assert s.armed and s.vel[2] == pytest.approx(-0.5, abs=0.1)
    quad.world.advance(2.0)
    s = quad.state()
    assert not s.armed
    assert s.pos[2] == pytest.approx(quad.z_rest, abs=5e-3) and np.linalg.norm(s.pos[:2]) < 0.05
    assert not quad.world.data.ctrl.any()
