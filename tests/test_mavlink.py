"""MavlinkQuadrotor against the twin speaking real MAVLink (pymavlink) over UDP loopback: no mocks.

Every flight checks the twin's own ENU state (``vehicle.truth``), not only what the driver reports, so a frame
error shared by the driver's command and telemetry paths cannot cancel out.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from typing import Iterator

import numpy as np
import pytest
from pymavlink import mavutil

from conftest import free_udp_port

from robotrl.geometry import quat_from_euler, wxyz_from_xyzw, yaw_from_quat
from robotrl.hardware.mavlink_quad import (
    MavlinkCommandError, MavlinkLinkError, MavlinkQuadrotor, mav, odometry_to_enu,
)
from robotrl.interfaces import QuadCommand, Quadrotor
from robotrl.sim import mavlink_endpoint
from robotrl.sim.mavlink_endpoint import TwinMavlinkVehicle
from robotrl.robots import QuadParams
from robotrl.sim.quad import QuadTwin


class Link:
    """A twin vehicle and the driver connected to it, the PX4 SITL way round (vehicle sends, driver listens)."""

    def __init__(self, robot: str = "crazyflie", speed: float = 1.0, **vehicle_kw: object):
        port = free_udp_port()
        self.twin = QuadTwin(robot)
        self.vehicle = TwinMavlinkVehicle(self.twin, f"udpout:127.0.0.1:{port}", speed=speed, **vehicle_kw)
        self.url = f"udpin:127.0.0.1:{port}"
        self.quad = MavlinkQuadrotor(self.url, mass=self.twin.mass, max_thrust_n=self.twin.max_thrust)

    def close(self) -> None:
        self.quad.close()
        self.vehicle.close()


@pytest.fixture
def link() -> Iterator[Link]:
    ln = Link()
    yield ln
    ln.close()


def stream(quad: MavlinkQuadrotor, cmd: QuadCommand, seconds: float) -> None:
    """Send ``cmd`` at 20 Hz for ``seconds``, as a user control loop would."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        quad.command(cmd)
        time.sleep(0.05)


def fly_to(ln: Link, pos: tuple[float, float, float], yaw: float = 0.0, timeout: float = 12.0) -> None:
    """Position setpoints at 20 Hz until the twin is within 5 cm of ``pos`` and nearly still."""
    target = np.array(pos, float)
    cmd = QuadCommand("position", position=target, yaw=yaw)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ln.quad.command(cmd)
        t = ln.vehicle.truth
        if np.linalg.norm(t.pos - target) < 0.05 and np.linalg.norm(t.vel) < 0.1:
            return
        time.sleep(0.05)
    raise AssertionError(f"twin did not reach {pos}: it is at {ln.vehicle.truth.pos}")


def wait_until(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# -- flights -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_takeoff_hover_and_land_with_velocity_setpoints(link: Link) -> None:
    quad, vehicle = link.quad, link.vehicle
    assert isinstance(quad, Quadrotor)
    s0 = quad.state()
    assert not s0.armed and s0.pos[2] == pytest.approx(link.twin.params.rest_height, abs=0.003)
    quad.arm()
    assert vehicle.mode == "OFFBOARD" and link.twin.armed
    # The user's outer loop: climb by velocity setpoints computed from the driver's own ENU state.
    end = time.monotonic() + 12.0
    while time.monotonic() < end:
        s = quad.state()
        if abs(s.pos[2] - 1.0) < 0.03 and abs(s.vel[2]) < 0.05:
            break
        quad.command(QuadCommand("velocity", velocity=np.array([0.0, 0.0, np.clip(1.5 * (1.0 - s.pos[2]), -1, 1)])))
        time.sleep(0.05)
    heights, yaw0 = [], yaw_from_quat(vehicle.truth.quat)
    for _ in range(20):  # one second of hover, turning left at 0.5 rad/s (ENU yaw rate, about up)
        quad.command(QuadCommand("velocity", velocity=np.zeros(3), yaw_rate=0.5))
        heights.append((vehicle.truth.pos[2], quad.state().pos[2]))
        time.sleep(0.05)
    np.testing.assert_allclose(heights, 1.0, atol=0.1)
    assert 0.2 < yaw_from_quat(vehicle.truth.quat) - yaw0 < 0.7
    assert quad.state().armed
    quad.land()
    assert vehicle.mode == "LAND"
    assert wait_until(lambda: not quad.state().armed, 8.0), "the vehicle never reported disarmed after landing"
    assert vehicle.truth.pos[2] < 0.05


def test_ctbr_positive_yaw_rate_turns_left(link: Link) -> None:
    """FLU yaw rate +1.5 rad/s sent as FRD must spin the twin counter-clockwise seen from above, at hover
    thrust (normalized by max thrust on the wire) that keeps the altitude."""
    link.quad.arm()
    fly_to(link, (0.0, 0.0, 1.0), yaw=-0.5)
    start = link.vehicle.truth
    yaw, turned, rates = yaw_from_quat(start.quat), 0.0, []
    cmd = QuadCommand("ctbr", thrust=link.twin.hover_thrust, body_rates=np.array([0.0, 0.0, 1.5]))
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        link.quad.command(cmd)
        time.sleep(0.05)
        new = yaw_from_quat(link.vehicle.truth.quat)
        turned += (new - yaw + math.pi) % (2 * math.pi) - math.pi
        yaw = new
        rates.append(link.quad.state().body_rates[2])
    assert turned > 0.4, f"twin turned {turned:.2f} rad; a positive FLU yaw rate must turn it left"
    assert max(rates) > 1.0, "driver state must report the left turn as a positive FLU yaw rate"
    assert abs(link.vehicle.truth.pos[2] - start.pos[2]) < 0.2, "hover thrust did not hold the altitude"
    assert abs(np.dot(link.quad.state().quat, link.vehicle.truth.quat)) > 0.99, "driver attitude != the twin's"


def test_position_setpoint_reaches_the_enu_place() -> None:
    """An ENU position + yaw target lands the twin there (at twice real time: ``speed``)."""
    ln = Link(speed=2.0)
    try:
        target, yaw = np.array([0.6, -0.4, 1.2]), -1.0
        ln.quad.arm()
        wall0, sim0 = time.monotonic(), ln.vehicle.truth.stamp_ns
        stream(ln.quad, QuadCommand("position", position=target, yaw=yaw), 3.5)
        truth, seen = ln.vehicle.truth, ln.quad.state()
        np.testing.assert_allclose(truth.pos, target, atol=0.1)
        assert yaw_from_quat(truth.quat) == pytest.approx(yaw, abs=0.1)
        np.testing.assert_allclose(seen.pos, truth.pos, atol=0.05)
        assert abs(np.dot(seen.quat, truth.quat)) > 0.999, "driver attitude != the twin's"
        sim_rate = (truth.stamp_ns - sim0) / 1e9 / (time.monotonic() - wall0)
        assert sim_rate > 1.5, f"speed=2 ran {sim_rate:.2f} sim seconds per wall second"
    finally:
        ln.close()


def test_setpoint_loss_trips_driver_watchdog_then_twin_failsafe(link: Link, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    quad, vehicle = link.quad, link.vehicle
    quad.arm()
    fly_to(link, (0.0, 0.0, 1.0))
    stream(quad, QuadCommand("velocity", velocity=np.array([0.0, 0.0, 0.4])), 0.3)
    assert not quad.watchdog_active, "watchdog tripped while commands were flowing"
    beats = vehicle.heartbeats_received
    time.sleep(1.5)  # user code goes quiet: the driver must stop the climb, not repeat it
    assert quad.watchdog_active and "zero-velocity hover" in caplog.text, "driver watchdog did not trip"
    assert vehicle.mode == "OFFBOARD", f"{vehicle.mode}: the driver's hover stream must keep the vehicle in offboard"
    assert abs(vehicle.truth.vel[2]) < 0.1, f"still climbing at {vehicle.truth.vel[2]:.2f} m/s"
    assert vehicle.heartbeats_received - beats >= 3, "driver heartbeat below 2 Hz"
    # Now the whole driver goes away: the twin's offboard-loss failsafe holds position.
    z = vehicle.truth.pos[2]
    quad.close()
    assert wait_until(lambda: vehicle.mode == "HOLD", 1.5), f"no failsafe: mode {vehicle.mode}"
    time.sleep(0.5)
    assert link.twin.armed and "offboard lost" in caplog.text
    assert abs(vehicle.truth.pos[2] - z) < 0.1 and np.linalg.norm(vehicle.truth.vel) < 0.1, vehicle.truth


# -- failures the driver must report clearly -----------------------------------------------------------------
def test_no_heartbeat_names_the_connection() -> None:
    url = f"udpin:127.0.0.1:{free_udp_port()}"
    with pytest.raises(MavlinkLinkError, match=f"no vehicle HEARTBEAT on '{url}'.*udpin/udpout"):
        MavlinkQuadrotor(url, mass=1.0, max_thrust_n=40.0, heartbeat_timeout=0.5)


def test_telemetry_loss_makes_state_raise(link: Link) -> None:
    assert link.quad.state().pos.shape == (3,)
    link.vehicle.close()
    time.sleep(0.7)
    with pytest.raises(MavlinkLinkError, match=f"telemetry from '{link.url}'.*link lost"):
        link.quad.state()


def test_arming_denial_is_reported() -> None:
    ln = Link(preflight_fail="ekf2 not aligned")
    try:
        with pytest.raises(MavlinkCommandError, match="COMPONENT_ARM_DISARM.*MAV_RESULT_DENIED.*ekf2 not aligned"):
            ln.quad.arm()
        assert not ln.twin.armed
    finally:
        ln.close()


def test_flavour_must_match_the_autopilot() -> None:
    port = free_udp_port()
    with TwinMavlinkVehicle(QuadTwin("crazyflie"), f"udpout:127.0.0.1:{port}"):
        with pytest.raises(ValueError, match="MAV_AUTOPILOT_PX4.*flavour='ardupilot'"):
            MavlinkQuadrotor(f"udpin:127.0.0.1:{port}", mass=0.027, max_thrust_n=0.6, flavour="ardupilot")


# -- the twin as a PX4, seen by plain pymavlink ---------------------------------------------------------------
def test_twin_enforces_px4_offboard_rules_for_any_client() -> None:
    port = free_udp_port()
    twin = QuadTwin("crazyflie")
    with TwinMavlinkVehicle(twin, f"udpout:127.0.0.1:{port}"):
        gcs = mavutil.mavlink_connection(f"udpin:127.0.0.1:{port}", source_system=255, source_component=190)
        try:
            hb = gcs.recv_match(type="HEARTBEAT", blocking=True, timeout=3)
            assert hb is not None and hb.autopilot == mav.MAV_AUTOPILOT_PX4

            def command(cmd: int, *params: float) -> int:
                gcs.mav.command_long_send(1, 1, cmd, 0, *(list(params) + [0.0] * 7)[:7])
                ack = gcs.recv_match(type="COMMAND_ACK", blocking=True, timeout=3)
                assert ack is not None and ack.command == cmd
                return ack.result

            offboard = (mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, 6)
            assert command(*offboard) == mav.MAV_RESULT_TEMPORARILY_REJECTED
            assert command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_DENIED
            assert command(mav.MAV_CMD_SET_MESSAGE_INTERVAL, 32, 1e5) == mav.MAV_RESULT_UNSUPPORTED
            for _ in range(3):
                gcs.mav.set_position_target_local_ned_send(0, 1, 1, mav.MAV_FRAME_LOCAL_NED, 0b110111000111,  # vel
                                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            assert command(*offboard) == mav.MAV_RESULT_ACCEPTED
            assert command(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1) == mav.MAV_RESULT_ACCEPTED and twin.armed
            modes = set()
            end = time.monotonic() + 1.5  # no more setpoints: OFFBOARD, then the failsafe's hold
            while time.monotonic() < end and "LOITER" not in modes:
                hb = gcs.recv_match(type="HEARTBEAT", blocking=True, timeout=0.5)
                if hb is not None:
                    assert hb.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED
                    modes.add(mavutil.mode_string_v10(hb))  # pymavlink's own decoding of PX4 custom modes
            assert {"OFFBOARD", "LOITER"} <= modes
        finally:
            gcs.close()


def test_odometry_body_velocity_is_rotated_into_enu() -> None:
    """PX4-style ODOMETRY: nose east (NED yaw +90 deg), velocity in body FRD: 1 m/s forward, 0.5 m/s right."""
    q_ned = wxyz_from_xyzw(quat_from_euler(0.0, 0.0, math.pi / 2)).tolist()
    msg = mav.MAVLink_odometry_message(0, mav.MAV_FRAME_LOCAL_NED, mav.MAV_FRAME_BODY_FRD, 1.0, 2.0, -3.0, q_ned,
                                       1.0, 0.5, 0.0, 0.0, 0.0, 0.5, [math.nan] * 21, [math.nan] * 21)
    pos, vel, quat, rates = odometry_to_enu(msg)
    np.testing.assert_allclose(pos, [2.0, 1.0, 3.0])
    np.testing.assert_allclose(vel, [1.0, -0.5, 0.0], atol=1e-9)  # east, and south is -y
    assert yaw_from_quat(quat) == pytest.approx(0.0, abs=1e-9)  # nose east is ENU yaw 0
    np.testing.assert_allclose(rates, [0.0, 0.0, -0.5])  # yaw right (FRD +z) is FLU -z
    msg.frame_id = mav.MAV_FRAME_BODY_FRD
    assert odometry_to_enu(msg) is None


# -- the command line ----------------------------------------------------------------------------------------
def test_endpoint_cli_serves_the_chosen_robot(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        mavlink_endpoint.main(["--help"])
    assert exc.value.code == 0 and "--robot" in capsys.readouterr().out
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "robotrl.sim.mavlink_endpoint", "--robot", "quad_1kg",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "MUJOCO_GL": "disabled"})
    try:
        with MavlinkQuadrotor(f"udpin:127.0.0.1:{port}", mass=1.0, max_thrust_n=49.0, heartbeat_timeout=30) as quad:
            s = quad.state()
            assert s.pos[2] == pytest.approx(QuadParams.load("quad_1kg").rest_height, abs=0.002) and not s.armed
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert f"serving MAVLink to udp 127.0.0.1:{port}" in out
