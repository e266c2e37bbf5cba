"""MavlinkQuadrotor: the Quadrotor interface on a PX4 (OFFBOARD) or ArduPilot (GUIDED) autopilot over MAVLink.

Frames: robotrl is ENU world / FLU body with (x, y, z, w) quaternions; MAVLink is NED / FRD with (w, x, y, z).
This driver is the only place that converts (robotrl.geometry), so code above it sees the twin's frames.

Threads: a reader (telemetry, acks, the vehicle's heartbeat) and a sender (own heartbeat, the setpoint stream and
its watchdog). Every write takes one lock: pymavlink's encoder (sequence numbers) is not thread-safe.

Flavours: "px4" is tested against the twin's PX4-like endpoint (robotrl.sim.mavlink_endpoint). "ardupilot"
follows the ArduCopter GUIDED documentation but has not met a real ArduPilot: ArduCopter reads the
SET_ATTITUDE_TARGET thrust as a climb rate unless GUID_OPTIONS bit 3 is set, and needs MAV_CMD_NAV_TAKEOFF
before GUIDED setpoints lift it off the ground (not sent here).
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pymavlink import mavutil

from robotrl.geometry import (
    enu_to_ned, flu_to_frd, frd_to_flu, ned_to_enu, quat_ned_frd_to_enu_flu, quat_to_matrix, xyzw_from_wxyz,
    yaw_enu_to_ned,
)
from robotrl.interfaces import QuadCommand, QuadState

if mavutil.mavlink.WIRE_PROTOCOL_VERSION != "2.0":
    # PX4 and ArduPilot speak MAVLink 2 (ODOMETRY needs it). pymavlink picks the version process-wide, at import
    # or when a v2 packet first arrives; choosing it here keeps every message class on the wire version in use.
    os.environ["MAVLINK20"] = "1"
    mavutil.set_dialect(mavutil.current_dialect)
mav = mavutil.mavlink
log = logging.getLogger(__name__)

Flavour = Literal["px4", "ardupilot"]
_AUTOPILOT = {"px4": mav.MAV_AUTOPILOT_PX4, "ardupilot": mav.MAV_AUTOPILOT_ARDUPILOTMEGA}
# MAV_CMD_DO_SET_MODE params 2, 3: PX4 main mode 6 = OFFBOARD (sub mode 0); ArduCopter custom mode 4 = GUIDED.
_MODE = {"px4": (6.0, 0.0), "ardupilot": (4.0, 0.0)}

# type_mask bits name the fields the autopilot must ignore.
POS_IGNORE = (mav.POSITION_TARGET_TYPEMASK_X_IGNORE | mav.POSITION_TARGET_TYPEMASK_Y_IGNORE
              | mav.POSITION_TARGET_TYPEMASK_Z_IGNORE)
VEL_IGNORE = (mav.POSITION_TARGET_TYPEMASK_VX_IGNORE | mav.POSITION_TARGET_TYPEMASK_VY_IGNORE
              | mav.POSITION_TARGET_TYPEMASK_VZ_IGNORE)
_ACC_IGNORE = (mav.POSITION_TARGET_TYPEMASK_AX_IGNORE | mav.POSITION_TARGET_TYPEMASK_AY_IGNORE
               | mav.POSITION_TARGET_TYPEMASK_AZ_IGNORE)
VELOCITY_TYPE_MASK = POS_IGNORE | _ACC_IGNORE | mav.POSITION_TARGET_TYPEMASK_YAW_IGNORE
POSITION_TYPE_MASK = VEL_IGNORE | _ACC_IGNORE | mav.POSITION_TARGET_TYPEMASK_YAW_RATE_IGNORE
RATES_TYPE_MASK = mav.ATTITUDE_TARGET_TYPEMASK_ATTITUDE_IGNORE

HOVER = QuadCommand("velocity", velocity=np.zeros(3))  # the driver's safe setpoint: hold still where it is
HEARTBEAT_PERIOD_S = 0.25  # 4 Hz: stays above the 2 Hz a companion must keep, with scheduling jitter to spare
ACK_RETRY_S = 0.5  # COMMAND_LONG is resent (confirmation + 1) when no ack came back in this time
PRE_ARM_SETPOINTS = 5  # PX4 accepts OFFBOARD only once setpoints are arriving: stream this many first


class MavlinkLinkError(ConnectionError):
    """No vehicle heartbeat, or its telemetry stopped: the link (or the vehicle) is down."""


class MavlinkCommandError(RuntimeError):
    """The vehicle refused a command, or never acknowledged it."""


@dataclass(frozen=True)
class _PosVel:
    pos: np.ndarray  # ENU
    vel: np.ndarray  # ENU
    stamp_ns: int  # local monotonic time of receipt


@dataclass(frozen=True)
class _Attitude:
    quat: np.ndarray  # body FLU -> ENU, (x, y, z, w)
    rates: np.ndarray  # FLU
    stamp_ns: int


# -- conversions at the MAVLink boundary (pure functions) ------------------------------------------------------
def local_position_to_enu(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """LOCAL_POSITION_NED -> (position, velocity), ENU."""
    return ned_to_enu([msg.x, msg.y, msg.z]), ned_to_enu([msg.vx, msg.vy, msg.vz])


def attitude_to_flu(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """ATTITUDE_QUATERNION -> (body FLU -> ENU quaternion (x, y, z, w), FLU body rates).
    ``repr_offset_q`` (tailsitter display offset) is not applied: q itself is the body attitude."""
    q_ned = xyzw_from_wxyz(np.array([msg.q1, msg.q2, msg.q3, msg.q4], dtype=np.float64))
    return quat_ned_frd_to_enu_flu(q_ned), frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed])


def odometry_to_enu(msg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """ODOMETRY -> (position, velocity, quaternion, body rates) in ENU / FLU; None for frames it cannot place.
    The velocity is in ``child_frame_id``: PX4 sends it in the body frame (MAV_FRAME_BODY_FRD)."""
    if msg.frame_id != mav.MAV_FRAME_LOCAL_NED:
        return None
    q_ned = xyzw_from_wxyz(np.asarray(msg.q, dtype=np.float64))
    vel = np.array([msg.vx, msg.vy, msg.vz])
    if msg.child_frame_id == mav.MAV_FRAME_BODY_FRD:
        vel = quat_to_matrix(q_ned) @ vel
    elif msg.child_frame_id != mav.MAV_FRAME_LOCAL_NED:
        return None
    return (ned_to_enu([msg.x, msg.y, msg.z]), ned_to_enu(vel), quat_ned_frd_to_enu_flu(q_ned),
            frd_to_flu([msg.rollspeed, msg.pitchspeed, msg.yawspeed]))


def setpoint_message(cmd: QuadCommand, target: tuple[int, int], max_thrust_n: float, time_boot_ms: int) -> Any:
    """The MAVLink setpoint for ``cmd`` (ENU / FLU, newtons) in NED / FRD with thrust normalized to 0..1."""
    if cmd.mode == "ctbr":
        rates = flu_to_frd(np.asarray(cmd.body_rates, float).reshape(3)).tolist()
        thrust = min(max(float(cmd.thrust) / max_thrust_n, 0.0), 1.0)
        return mav.MAVLink_set_attitude_target_message(
            time_boot_ms, *target, RATES_TYPE_MASK, [1.0, 0.0, 0.0, 0.0], *rates, thrust)
    if cmd.mode == "velocity":
        if cmd.velocity is None:
            raise ValueError("QuadCommand(mode='velocity') needs velocity")
        v = enu_to_ned(np.asarray(cmd.velocity, float).reshape(3)).tolist()
        return mav.MAVLink_set_position_target_local_ned_message(  # yaw rate about up -> about down: negate
            time_boot_ms, *target, mav.MAV_FRAME_LOCAL_NED, VELOCITY_TYPE_MASK, 0, 0, 0, *v, 0, 0, 0,
            0, -float(cmd.yaw_rate))
    if cmd.mode == "position":
        if cmd.position is None:
            raise ValueError("QuadCommand(mode='position') needs position")
        p = enu_to_ned(np.asarray(cmd.position, float).reshape(3)).tolist()
        return mav.MAVLink_set_position_target_local_ned_message(
            time_boot_ms, *target, mav.MAV_FRAME_LOCAL_NED, POSITION_TYPE_MASK, *p, 0, 0, 0, 0, 0, 0,
            yaw_enu_to_ned(float(cmd.yaw)), 0)
    raise ValueError(f"unknown QuadCommand mode {cmd.mode!r}; allowed: ctbr, velocity, position")


class MavlinkQuadrotor:
    """A PX4 / ArduPilot quadrotor as a robotrl ``Quadrotor``, commanded as an offboard (companion) computer.

    ``connection`` is a pymavlink connection string: ``udpin:0.0.0.0:14540`` listens where PX4 SITL's offboard
    link sends; ``udpout:HOST:PORT``, ``tcp:HOST:PORT`` or a serial device also work. The constructor returns
    once the vehicle's heartbeat and a first full telemetry sample have arrived. After the first ``command`` or
    ``arm`` the driver streams the latest setpoint at ``setpoint_rate_hz``; if user code stops calling
    ``command`` for ``setpoint_timeout`` s it streams zero-velocity hover instead (``watchdog_active``).
    """

    def __init__(
        self,
        connection: str = "udpin:0.0.0.0:14540",
        *,
        mass: float,
        max_thrust_n: float,
        flavour: Flavour = "px4",
        heartbeat_timeout: float = 5.0,
        telemetry_timeout: float = 0.5,
        setpoint_timeout: float = 0.3,
        ack_timeout: float = 3.0,
        setpoint_rate_hz: float = 20.0,
        telemetry_rate_hz: float = 50.0,
        system_id: int = 1,
        component_id: int = mav.MAV_COMP_ID_ONBOARD_COMPUTER,
    ):
        if flavour not in _AUTOPILOT:
            raise ValueError(f"flavour must be one of {', '.join(_AUTOPILOT)}, got {flavour!r}")
        self.mass, self.max_thrust_n, self.flavour, self.connection = mass, max_thrust_n, flavour, connection
        self.telemetry_timeout, self.setpoint_timeout = telemetry_timeout, setpoint_timeout
        self.ack_timeout = ack_timeout
        self._period = 1.0 / setpoint_rate_hz
        self._t0 = time.monotonic()
        self._system_id = system_id
        self._conn = mavutil.mavlink_connection(connection, source_system=system_id, source_component=component_id)
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()  # guards the fields the reader fills: telemetry, acks, status texts
        self._pos_vel: _PosVel | None = None
        self._att: _Attitude | None = None
        self._armed = False
        self._acks: dict[int, Any] = {}
        self._texts: collections.deque[tuple[int, str]] = collections.deque(maxlen=8)
        self._latest: tuple[QuadCommand, float] = (HOVER, -math.inf)  # user setpoint and when it was given
        self._stream_since: float | None = None  # None: not streaming setpoints
        self._watchdog = False
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        try:
            self._target = self._wait_vehicle(heartbeat_timeout)
            self._threads = [threading.Thread(target=loop, name=f"mavlink-{loop.__name__[1:]}", daemon=True)
                             for loop in (self._read_loop, self._send_loop)]
            for t in self._threads:
                t.start()
            self._request_streams(telemetry_rate_hz)
            self._wait_telemetry(heartbeat_timeout)
        except BaseException:
            self.close()
            raise

    # -- Quadrotor interface -------------------------------------------------------------------------------
    def state(self) -> QuadState:
        """The newest telemetry in ENU / FLU. ``stamp_ns`` is local ``time.monotonic_ns`` at receipt of the older
        of the position and attitude messages: the autopilot's boot clock is not comparable with the local
        clock that stamps every other sample (cameras, the actor), and link latency is small beside the age
        check. Raises MavlinkLinkError when that sample is older than ``telemetry_timeout``."""
        with self._cond:
            pv, att, armed = self._pos_vel, self._att, self._armed
        stamp = min(pv.stamp_ns, att.stamp_ns)  # type: ignore[union-attr]  (set before __init__ returns)
        age = (time.monotonic_ns() - stamp) / 1e9
        if age > self.telemetry_timeout:
            raise MavlinkLinkError(
                f"telemetry from {self.connection!r} is {age:.2f} s old (telemetry_timeout "
                f"{self.telemetry_timeout:g} s): link lost or the vehicle stopped streaming")
        return QuadState(pos=pv.pos, quat=att.quat, vel=pv.vel, body_rates=att.rates,  # type: ignore[union-attr]
                         motor_thrusts=np.full(4, np.nan),  # not reported over MAVLink: unknown, not zero
                         armed=armed, stamp_ns=stamp)

    def command(self, cmd: QuadCommand) -> None:
        """Send ``cmd`` now; the sender thread repeats it until the next one (or the watchdog takes over)."""
        self._check_open()
        msg = self._setpoint(cmd)  # validates before anything changes
        self._latest = (cmd, time.monotonic())
        if self._stream_since is None:
            self._stream_since = time.monotonic()
        self._send(msg)

    def arm(self) -> None:
        """Stream setpoints (hover unless a command was given), switch to OFFBOARD / GUIDED, then arm.
        Raises MavlinkCommandError, with the vehicle's own status text, when either step is refused."""
        self._check_open()
        if self._stream_since is None:
            self._stream_since = time.monotonic()
        time.sleep(max(0.0, self._stream_since + PRE_ARM_SETPOINTS * self._period - time.monotonic()))
        main_mode, sub_mode = _MODE[self.flavour]
        self._command_long(mav.MAV_CMD_DO_SET_MODE, mav.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED, main_mode, sub_mode)
        self._command_long(mav.MAV_CMD_COMPONENT_ARM_DISARM, 1.0)

    def land(self) -> None:
        """Autopilot landing at the current position (it disarms on touchdown). The setpoint stream stops and
        the last setpoint is forgotten, so a later ``arm`` starts from hover."""
        self._check_open()
        nan = math.nan  # yaw, latitude, longitude, altitude: NaN = keep the current ones
        self._command_long(mav.MAV_CMD_NAV_LAND, 0.0, 0.0, 0.0, nan, nan, nan, nan)
        self._stream_since, self._latest = None, (HOVER, -math.inf)

    def stop(self) -> None:
        """Hover in place: a zero-velocity setpoint, held without a watchdog warning (it is the safe state)."""
        self.command(HOVER)

    def close(self) -> None:
        """Stop both threads and the link. The vehicle's own offboard-loss failsafe takes over from here."""
        self._closed.set()
        for t in self._threads:
            t.join()
        self._conn.close()

    def __enter__(self) -> "MavlinkQuadrotor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def watchdog_active(self) -> bool:
        """True while the driver streams hover because ``command`` went quiet for ``setpoint_timeout``."""
        return self._watchdog

    # -- connection set-up ---------------------------------------------------------------------------------
    def _wait_vehicle(self, timeout: float) -> tuple[int, int]:
        """(system, component) of the first autopilot heartbeat; checks it is the autopilot ``flavour`` expects."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self._conn.recv_match(type="HEARTBEAT", blocking=True, timeout=left)
            if msg is not None and self._conn.probably_vehicle_heartbeat(msg):
                break
        else:
            raise MavlinkLinkError(
                f"no vehicle HEARTBEAT on {self.connection!r} within {timeout:g} s: check that the autopilot (or "
                "`python -m robotrl.sim.mavlink_endpoint`) is running and sends to this host and port, that "
                "udpin/udpout match its side of the link, and that no firewall drops the UDP traffic")
        if msg.autopilot != _AUTOPILOT[self.flavour]:
            name = mav.enums["MAV_AUTOPILOT"][msg.autopilot].name
            raise ValueError(f"the vehicle on {self.connection!r} is {name}, but flavour={self.flavour!r}: "
                             "pass the flavour of the autopilot actually flying")
        return msg.get_srcSystem(), msg.get_srcComponent()

    def _request_streams(self, rate_hz: float) -> None:
        """Ask for the telemetry ``state`` needs. PX4 streams it on an onboard link anyway; ArduPilot streams
        nothing unasked. Fire and forget: a vehicle that already streams may answer UNSUPPORTED."""
        for msg_id in (mav.MAVLINK_MSG_ID_LOCAL_POSITION_NED, mav.MAVLINK_MSG_ID_ATTITUDE_QUATERNION):
            self._send(mav.MAVLink_command_long_message(
                *self._target, mav.MAV_CMD_SET_MESSAGE_INTERVAL, 0, msg_id, 1e6 / rate_hz, 0, 0, 0, 0, 0))

    def _wait_telemetry(self, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._pos_vel is not None and self._att is not None, timeout):
                raise MavlinkLinkError(
                    f"the vehicle on {self.connection!r} sends heartbeats but no LOCAL_POSITION_NED + "
                    f"ATTITUDE_QUATERNION (or ODOMETRY) within {timeout:g} s: check its local position "
                    "estimate and the stream rates of this MAVLink instance")

    # -- reader thread -------------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        handlers = {"HEARTBEAT": self._on_heartbeat, "LOCAL_POSITION_NED": self._on_local_position,
                    "ATTITUDE_QUATERNION": self._on_attitude, "ODOMETRY": self._on_odometry,
                    "COMMAND_ACK": self._on_ack, "STATUSTEXT": self._on_text}
        types = list(handlers)
        while not self._closed.is_set():
            msg = self._conn.recv_match(type=types, blocking=True, timeout=0.1)
            if msg is not None and (msg.get_srcSystem(), msg.get_srcComponent()) == self._target:
                stamp = time.monotonic_ns()
                with self._cond:
                    handlers[msg.get_type()](msg, stamp)
                    self._cond.notify_all()

    def _on_heartbeat(self, msg: Any, stamp: int) -> None:
        self._armed = bool(msg.base_mode & mav.MAV_MODE_FLAG_SAFETY_ARMED)

    def _on_local_position(self, msg: Any, stamp: int) -> None:
        self._pos_vel = _PosVel(*local_position_to_enu(msg), stamp)

    def _on_attitude(self, msg: Any, stamp: int) -> None:
        self._att = _Attitude(*attitude_to_flu(msg), stamp)

    def _on_odometry(self, msg: Any, stamp: int) -> None:
        odom = odometry_to_enu(msg)
        if odom is not None:
            self._pos_vel, self._att = _PosVel(odom[0], odom[1], stamp), _Attitude(odom[2], odom[3], stamp)

    def _on_ack(self, msg: Any, stamp: int) -> None:
        if msg.target_system in (0, self._system_id) and msg.result != mav.MAV_RESULT_IN_PROGRESS:
            self._acks[msg.command] = msg

    def _on_text(self, msg: Any, stamp: int) -> None:
        text = msg.text if isinstance(msg.text, str) else msg.text.decode(errors="replace")
        self._texts.append((stamp, text))
        log.log(logging.WARNING if msg.severity <= mav.MAV_SEVERITY_WARNING else logging.INFO, "vehicle: %s", text)

    # -- sender thread -------------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        next_heartbeat = 0.0
        while not self._closed.wait(self._period):
            now = time.monotonic()
            if now >= next_heartbeat:
                self._send(mav.MAVLink_heartbeat_message(
                    mav.MAV_TYPE_ONBOARD_CONTROLLER, mav.MAV_AUTOPILOT_INVALID, 0, 0, mav.MAV_STATE_ACTIVE, 3))
                next_heartbeat = now + HEARTBEAT_PERIOD_S
            if self._stream_since is not None:
                self._send(self._setpoint(self._current_setpoint(now)))

    def _current_setpoint(self, now: float) -> QuadCommand:
        """The user's latest setpoint, or hover once it is older than ``setpoint_timeout`` (the watchdog)."""
        cmd, given = self._latest
        tripped = now - given > self.setpoint_timeout and cmd is not HOVER
        if tripped != self._watchdog:
            self._watchdog = tripped
            if tripped:
                log.warning("no command() for %.2f s (setpoint_timeout %.2f s): the driver now streams "
                            "zero-velocity hover setpoints to %s", now - given, self.setpoint_timeout, self.connection)
            else:
                log.info("command() resumed: watchdog hover ended")
        return HOVER if tripped else cmd

    # -- writing -------------------------------------------------------------------------------------------
    def _setpoint(self, cmd: QuadCommand) -> Any:
        boot_ms = int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF
        return setpoint_message(cmd, self._target, self.max_thrust_n, boot_ms)

    def _send(self, msg: Any) -> None:
        with self._write_lock:
            self._conn.mav.send(msg)

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise MavlinkLinkError(f"the MAVLink link {self.connection!r} is closed")

    def _command_long(self, command: int, *params: float) -> None:
        """Send COMMAND_LONG until acknowledged (at most ``ack_timeout``); raise unless the result is ACCEPTED."""
        name = mav.enums["MAV_CMD"][command].name
        p = (list(params) + [0.0] * 7)[:7]
        sent_ns = time.monotonic_ns()
        deadline = time.monotonic() + self.ack_timeout
        with self._cond:
            self._acks.pop(command, None)
        for confirmation in range(256):
            self._send(mav.MAVLink_command_long_message(*self._target, command, confirmation, *p))
            wait = min(ACK_RETRY_S, deadline - time.monotonic())
            with self._cond:
                self._cond.wait_for(lambda: command in self._acks, wait)
                ack = self._acks.pop(command, None)
                texts = [text for stamp, text in self._texts if stamp >= sent_ns]
            if ack is not None or time.monotonic() >= deadline:
                break
        if ack is None:
            raise MavlinkCommandError(f"{name}: no COMMAND_ACK from the vehicle on {self.connection!r} within "
                                      f"{self.ack_timeout:g} s")
        if ack.result != mav.MAV_RESULT_ACCEPTED:
            result = mav.enums["MAV_RESULT"][ack.result].name
            said = f"; the vehicle said: {' | '.join(texts)}" if texts else ""
            raise MavlinkCommandError(f"{name} refused by the vehicle on {self.connection!r}: {result}{said}")
