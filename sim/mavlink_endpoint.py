"""TwinMavlinkVehicle: a QuadTwin served as a PX4-like vehicle over MAVLink (UDP), to test MAVLink code on a twin.

What an offboard companion sees of PX4, and no more: HEARTBEAT (MAV_AUTOPILOT_PX4, armed flag, PX4 custom mode),
LOCAL_POSITION_NED and ATTITUDE_QUATERNION at ``telemetry_hz``; COMMAND_LONG arm / disarm, DO_SET_MODE
(OFFBOARD, HOLD, LAND) and NAV_LAND answered with COMMAND_ACK (anything else: UNSUPPORTED); SET_ATTITUDE_TARGET
(body rates + normalized thrust) and SET_POSITION_TARGET_LOCAL_NED (velocity or position) tracked in OFFBOARD.
PX4 rules it keeps: OFFBOARD and arming need a live setpoint stream; no setpoint for ``offboard_loss_timeout``
in OFFBOARD -> hold position (mode HOLD). Not modelled: estimator, parameters, missions, geofence, battery;
one settable preflight failure (``preflight_fail``) stands in for PX4's arming checks.

Frames: the twin is ENU / FLU; everything on the wire is NED / FRD (robotrl.geometry), as on a real PX4.
One thread owns the twin: it steps physics in real time (times ``speed``), reads the link and writes telemetry.

    python -m robotrl.sim.mavlink_endpoint --robot crazyflie --port 14540
sends to UDP 127.0.0.1:14540, where PX4 SITL's offboard link sends: connect with
``MavlinkQuadrotor("udpin:127.0.0.1:14540", ...)``.
"""

from __future__ import annotations

import argparse
import logging
import math
import threading
import time
from typing import Any, Sequence

from robotrl.geometry import (
    enu_to_ned, flu_to_frd, frd_to_flu, ned_to_enu, quat_enu_flu_to_ned_frd, wxyz_from_xyzw, yaw_from_quat,
    yaw_ned_to_enu,
)
from robotrl.hardware.mavlink_quad import POS_IGNORE, VEL_IGNORE, mav, mavutil  # MAVLink 2, as the driver
from robotrl.interfaces import QuadCommand, QuadState
from robotrl.sim.quad import QuadTwin

log = logging.getLogger(__name__)


def px4_custom_mode(main_mode: int, sub_mode: int = 0) -> int:
    """PX4's HEARTBEAT custom_mode: main mode in byte 2, sub mode in byte 3."""
    return (main_mode << 16) | (sub_mode << 24)


# PX4 main modes: 4 AUTO (sub 3 LOITER = "Hold", sub 6 LAND), 6 OFFBOARD.
MODES = {"OFFBOARD": px4_custom_mode(6), "HOLD": px4_custom_mode(4, 3), "LAND": px4_custom_mode(4, 6)}
_MODE_BY_PARAMS = {(6, 0): "OFFBOARD", (4, 3): "HOLD", (4, 6): "LAND"}  # DO_SET_MODE (param2, param3)

MAX_CATCH_UP_S = 0.1  # sim time stepped at most per loop: after a stall the twin slips rather than races


def attitude_target_command(msg: Any, max_thrust: float) -> QuadCommand | None:
    """SET_ATTITUDE_TARGET with the attitude ignored -> CTBR (FRD rates -> FLU, 0..1 thrust -> N); None for
    attitude targets, which the twin has no controller for."""
    if not msg.type_mask & mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE:
        return None
    rates = frd_to_flu([msg.body_roll_rate, msg.body_pitch_rate, msg.body_yaw_rate])
    return QuadCommand("ctbr", thrust=float(msg.thrust) * max_thrust, body_rates=rates)


def position_target_command(msg: Any, yaw_enu: float) -> QuadCommand | None:
    """SET_POSITION_TARGET_LOCAL_NED -> position (if x, y, z are set) or velocity command, in ENU; None for
    other frames or acceleration-only targets. ``yaw_enu`` (current yaw) fills an ignored yaw."""
    m = msg.type_mask
    if msg.coordinate_frame != mav.MAV_FRAME_LOCAL_NED:
        return None
    if not m & POS_IGNORE:
        yaw = yaw_enu if m & mav.POSITION_TARGET_TYPEMASK_YAW_IGNORE else yaw_ned_to_enu(msg.yaw)
        return QuadCommand("position", position=ned_to_enu([msg.x, msg.y, msg.z]), yaw=yaw)
    if not m & VEL_IGNORE:
        yaw_rate = 0.0 if m & mav.POSITION_TARGET_TYPEMASK_YAW_RATE_IGNORE else -float(msg.yaw_rate)  # down -> up
        return QuadCommand("velocity", velocity=ned_to_enu([msg.vx, msg.vy, msg.vz]), yaw_rate=yaw_rate)
    return None


class TwinMavlinkVehicle:
    """Serves ``twin`` on ``connection`` (pymavlink string; default sends to PX4 SITL's offboard port) from a
    background thread started here; ``close`` (or leaving a ``with`` block) stops it."""

    def __init__(
        self,
        twin: QuadTwin,
        connection: str = "udpout:127.0.0.1:14540",
        *,
        speed: float = 1.0,
        telemetry_hz: float = 50.0,
        offboard_loss_timeout: float = 0.5,
        preflight_fail: str | None = None,
        system_id: int = 1,
    ):
        self.twin, self.connection, self.speed = twin, connection, speed
        self.offboard_loss_timeout = offboard_loss_timeout
        self.preflight_fail = preflight_fail  # a failing arming check to simulate, e.g. "ekf2 not aligned"
        self.mode = "HOLD"
        self.heartbeats_received = 0  # from the companion (onboard controller): the driver's liveness
        self._system_id = system_id
        self._telemetry_period = 1.0 / telemetry_hz
        self._conn = mavutil.mavlink_connection(
            connection, source_system=system_id, source_component=mav.MAV_COMP_ID_AUTOPILOT1)
        self._setpoint: QuadCommand | None = None
        self._setpoint_time = -math.inf
        self._ignored: set[tuple[str, int]] = set()
        self._heartbeat_due = True  # PX4 beats at 1 Hz; an extra beat right after a status change is harmless
        self.truth: QuadState = twin.state()  # twin state at the last telemetry sent (ground truth, ENU / FLU)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="twin-mavlink", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._conn.close()

    def __enter__(self) -> "TwinMavlinkVehicle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        handlers = {"COMMAND_LONG": self._on_command, "SET_ATTITUDE_TARGET": self._on_attitude_target,
                    "SET_POSITION_TARGET_LOCAL_NED": self._on_position_target, "HEARTBEAT": self._on_heartbeat}
        tick = self.twin.control_dt  # physics advances at least once per rate-loop period; messages wake it sooner
        wall0, sim0 = time.monotonic(), self.twin.world.data.time
        next_telemetry = next_heartbeat = wall0
        while not self._closed.is_set():
            while (msg := self._conn.recv_msg()) is not None:
                handler = handlers.get(msg.get_type())
                if handler and getattr(msg, "target_system", 0) in (0, self._system_id):
                    handler(msg)
            now = time.monotonic()
            wall0 = self._step_physics(now, wall0, sim0)
            self._check_offboard_loss(now)
            if now >= next_telemetry:
                self._send_telemetry()
                next_telemetry = max(next_telemetry + self._telemetry_period, now)
            if now >= next_heartbeat or self._heartbeat_due:
                self._send_heartbeat()
                next_heartbeat = now + 1.0
            self._conn.select(tick)  # wakes early when a message arrives

    def _step_physics(self, now: float, wall0: float, sim0: float) -> float:
        """Advance the twin to ``(now - wall0) * speed`` of sim time; returns wall0, moved on after a stall."""
        d, dt = self.twin.world.data, self.twin.world.dt
        behind = sim0 + (now - wall0) * self.speed - d.time
        if behind > MAX_CATCH_UP_S:
            wall0 += (behind - MAX_CATCH_UP_S) / self.speed
            behind = MAX_CATCH_UP_S
        n = int(behind / dt)
        if n > 0:
            self.twin.world.advance(n_steps=n)
        return wall0

    def _check_offboard_loss(self, now: float) -> None:
        if self.mode == "OFFBOARD" and now - self._setpoint_time > self.offboard_loss_timeout:
            self.twin.stop()
            self._set_mode("HOLD")
            self._text(mav.MAV_SEVERITY_WARNING, "Failsafe: offboard lost, holding position")

    # -- incoming ------------------------------------------------------------------------------------------
    def _on_heartbeat(self, msg: Any) -> None:
        if msg.type == mav.MAV_TYPE_ONBOARD_CONTROLLER:
            self.heartbeats_received += 1

    def _on_attitude_target(self, msg: Any) -> None:
        self._accept_setpoint(attitude_target_command(msg, self.twin.max_thrust), msg)

    def _on_position_target(self, msg: Any) -> None:
        self._accept_setpoint(position_target_command(msg, yaw_from_quat(self.twin.state().quat)), msg)

    def _accept_setpoint(self, cmd: QuadCommand | None, msg: Any) -> None:
        if cmd is None:
            if (msg.get_type(), msg.type_mask) not in self._ignored:  # once per kind: they arrive at 20+ Hz
                self._ignored.add((msg.get_type(), msg.type_mask))
                log.warning("ignoring %s with type_mask %d: the twin cannot track it", msg.get_type(), msg.type_mask)
            return
        self._setpoint, self._setpoint_time = cmd, time.monotonic()
        if self.mode == "OFFBOARD":
            self.twin.command(cmd)

    def _on_command(self, msg: Any) -> None:
        if msg.command == mav.MAV_CMD_COMPONENT_ARM_DISARM:
            result = self._arm_disarm(msg.param1 > 0.5)
        elif msg.command == mav.MAV_CMD_DO_SET_MODE:
            result = self._request_mode(_MODE_BY_PARAMS.get((int(msg.param2), int(msg.param3))))
        elif msg.command == mav.MAV_CMD_NAV_LAND:
            result = self._request_mode("LAND")
        else:
            result = mav.MAV_RESULT_UNSUPPORTED
        self._conn.mav.command_ack_send(msg.command, result, target_system=msg.get_srcSystem(),
                                        target_component=msg.get_srcComponent())

    def _arm_disarm(self, arm: bool) -> int:
        if not arm:
            self.twin.disarm()
        elif self.preflight_fail:
            self._text(mav.MAV_SEVERITY_CRITICAL, f"Preflight Fail: {self.preflight_fail}")
            return mav.MAV_RESULT_DENIED
        elif self.mode != "OFFBOARD" or not self._streaming():
            self._text(mav.MAV_SEVERITY_CRITICAL, "Arming denied: no offboard setpoint stream")
            return mav.MAV_RESULT_DENIED
        else:
            self.twin.arm()
        self._heartbeat_due = True
        return mav.MAV_RESULT_ACCEPTED

    def _request_mode(self, mode: str | None) -> int:
        if mode is None:
            return mav.MAV_RESULT_UNSUPPORTED
        if mode == "OFFBOARD":
            if not self._streaming():
                self._text(mav.MAV_SEVERITY_WARNING, "Offboard rejected: no setpoints")
                return mav.MAV_RESULT_TEMPORARILY_REJECTED
            self.twin.command(self._setpoint)  # type: ignore[arg-type]  (streaming implies one arrived)
        elif mode == "HOLD":
            self.twin.stop()
        else:
            self.twin.land()
        self._set_mode(mode)
        return mav.MAV_RESULT_ACCEPTED

    def _streaming(self) -> bool:
        return time.monotonic() - self._setpoint_time <= self.offboard_loss_timeout

    # -- outgoing ------------------------------------------------------------------------------------------
    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            log.info("mode %s -> %s", self.mode, mode)
            self.mode, self._heartbeat_due = mode, True

    def _text(self, severity: int, text: str) -> None:
        log.log(logging.WARNING if severity <= mav.MAV_SEVERITY_WARNING else logging.INFO, "%s", text)
        self._conn.mav.statustext_send(severity, text[:50].encode())

    def _send_heartbeat(self) -> None:
        armed = self.twin.armed
        base_mode = mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (mav.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0)
        self._conn.mav.heartbeat_send(mav.MAV_TYPE_QUADROTOR, mav.MAV_AUTOPILOT_PX4, base_mode, MODES[self.mode],
                                      mav.MAV_STATE_ACTIVE if armed else mav.MAV_STATE_STANDBY)
        self._heartbeat_due = False

    def _send_telemetry(self) -> None:
        s = self.truth = self.twin.state()
        boot_ms = s.stamp_ns // 1_000_000  # the vehicle's clock is sim time, as PX4's is its boot time
        self._conn.mav.local_position_ned_send(boot_ms, *enu_to_ned(s.pos).tolist(), *enu_to_ned(s.vel).tolist())
        q = wxyz_from_xyzw(quat_enu_flu_to_ned_frd(s.quat)).tolist()
        self._conn.mav.attitude_quaternion_send(boot_ms, *q, *flu_to_frd(s.body_rates).tolist())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m robotrl.sim.mavlink_endpoint",
        description="Serve the MuJoCo quadrotor twin as a PX4-like vehicle over MAVLink (UDP). It sends to "
                    "HOST:PORT; connect MavlinkQuadrotor('udpin:HOST:PORT') or a ground station there.",
    )
    parser.add_argument("--robot", default="crazyflie", help="configs/robots/<name>.yaml or a YAML path")
    parser.add_argument("--host", default="127.0.0.1", help="address of the offboard side")
    parser.add_argument("--port", type=int, default=14540, help="UDP port of the offboard side (PX4 SITL: 14540)")
    parser.add_argument("--speed", type=float, default=1.0, help="sim seconds per wall second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    vehicle = TwinMavlinkVehicle(QuadTwin(args.robot), f"udpout:{args.host}:{args.port}", speed=args.speed)
    print(f"twin {args.robot!r} serving MAVLink to udp {args.host}:{args.port} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        vehicle.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
