"""QuadTwin: the Quadrotor interface on a MuJoCo quadrotor generated from a QuadParams config.

Model (see ``quad_mjcf``): one rigid body on three world-frame slide joints plus a ball joint, so the
linear drag is the slide joints' damping (computed inside mj_step) and does not damp rotation. Each rotor is a
``general`` actuator on a site: thrust along body z plus the reaction yaw torque km/kf * thrust, with a
first-order motor lag on the thrust (MuJoCo ``filter`` dynamics: the actuator activation is the rotor thrust).

Control (``QuadTwin``): a CTBR inner loop (body-rate P(I) + mixer) runs as a TwinWorld controller at
``rate_loop_hz``; velocity / position / land commands are turned into CTBR by a cascaded outer loop in the
same callback (acceleration -> thrust vector -> attitude -> body rates). The callback is plain float math on
cached numpy views: it runs hundreds of times per sim-second and must cost about as much as one mj_step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import mujoco
import numpy as np
from robotrl.geometry import wxyz_from_xyzw, xyzw_from_wxyz
from robotrl.interfaces import QuadCommand, QuadState
from robotrl.robots import GRAVITY, ROTORS, QuadParams
from robotrl.sim.world import TwinWorld

IZ_BAND = 0.3  # m/s: the vertical-velocity integral runs only below this climb rate (near hover)

_IDLE, _CTBR, _VELOCITY, _POSITION, _LAND = range(5)
_MODES = {"ctbr": _CTBR, "velocity": _VELOCITY, "position": _POSITION}


def _fmt(*values: float) -> str:
    return " ".join(f"{v:.9g}" for v in values)


def _look_at(eye: Sequence[float], target: Sequence[float]) -> str:
    """MJCF ``xyaxes`` of a camera at ``eye`` looking at ``target`` with world z up."""
    fwd = np.asarray(target, float) - np.asarray(eye, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return _fmt(*right, *np.cross(right, fwd))


def quad_mjcf(params: QuadParams, extra_worldbody: str = "") -> str:
    """MJCF of a floor, a light, cameras ("world" fixed, "chase" following) and the quadrotor "quad".

    The body moves on slide joints x, y, z (world axes, ``damping`` = linear drag, so drag is computed inside
    mj_step) and a ball joint for orientation: a free joint's damping would also damp the rotation. The z slide
    has ``ref`` = rest height, so qpos x, y, z are the world position and a reset stands the quad on the floor.
    Rotors: ``general`` actuators on sites, gear (0, 0, 1, 0, 0, +-km/kf) = thrust along body z and the
    reaction yaw torque; ``filter`` dynamics = first-order motor lag with the motor time constant, applied to
    the thrust (the activation is the rotor thrust, N); ctrlrange [0, kf wmax^2] is the rotor-speed limit.
    ``extra_worldbody`` (e.g. target markers) is inserted at the end of the worldbody.
    """
    p = params
    L = p.arm_length
    hz = z0 = p.rest_height
    a = L / math.sqrt(2)
    c = p.yaw_moment_ratio
    rotor_r, rotor_z = 0.45 * L, hz + 0.02 * L
    arms, rotors, sites, acts = [], [], [], []
    for i, (sx, sy, spin) in enumerate(ROTORS):
        x, y = sx * a, sy * a
        arms.append(f'<geom name="arm{i}" type="capsule" fromto="0 0 0 {_fmt(x, y)} 0" size="{0.06 * L:.6g}"/>')
        color = "0.85 0.2 0.2 0.6" if sx > 0 else "0.2 0.2 0.2 0.6"  # red props at the front
        rotors.append(
            f'<geom name="rotor{i}" class="visual" type="cylinder" pos="{_fmt(x, y, rotor_z)}" '
            f'size="{_fmt(rotor_r, 0.02 * L)}" rgba="{color}"/>'
        )
        sites.append(f'<site name="rotor{i}" pos="{_fmt(x, y, rotor_z)}" size="{0.05 * L:.6g}"/>')
        acts.append(
            f'<general name="rotor{i}" site="rotor{i}" gear="0 0 1 0 0 {spin * c:.9g}" dyntype="filter" '
            f'dynprm="{p.motor_time_constant:.9g}" gainprm="1" ctrlrange="0 {p.max_rotor_thrust:.9g}"/>'
        )
    chase = (-12 * L, 0.0, 5 * L)
    nl = "\n      "
    return f"""<mujoco model="quad_{p.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{p.physics_dt:.9g}" integrator="implicitfast" gravity="0 0 {-GRAVITY}"/>
  <visual>
    <quality shadowsize="0"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <global offwidth="640" offheight="480"/>
  </visual>
  <default>
    <default class="visual"><geom contype="0" conaffinity="0" group="1" density="0"/></default>
  </default>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.35 0.45 0.35" rgb2="0.3 0.4 0.3" width="256" height="256"/>
    <material name="floor" texture="grid" texrepeat="1 1" texuniform="true" reflectance="0"/>
  </asset>
  <worldbody>
    <light name="sun" pos="0 0 6" dir="0 0 -1" directional="true" castshadow="false"/>
    <geom name="floor" type="plane" size="0 0 0.05" material="floor"/>
    <camera name="world" pos="3 -3 2.5" xyaxes="{_look_at((3, -3, 2.5), (0, 0, 1))}" fovy="50"/>
    <body name="quad" pos="0 0 {z0:.9g}">
      <joint name="x" type="slide" axis="1 0 0" damping="{p.linear_drag:.9g}"/>
      <joint name="y" type="slide" axis="0 1 0" damping="{p.linear_drag:.9g}"/>
      <joint name="z" type="slide" axis="0 0 1" damping="{p.linear_drag:.9g}" ref="{z0:.9g}"/>
      <joint name="rot" type="ball"/>
      <inertial pos="0 0 0" mass="{p.mass:.9g}" diaginertia="{_fmt(*p.inertia)}"/>
      <camera name="chase" mode="trackcom" pos="{_fmt(*chase)}" xyaxes="{_look_at(chase, (0, 0, 0))}" fovy="60"/>
      <geom name="hull" type="box" size="{_fmt(0.35 * L, 0.25 * L, hz)}" rgba="0.15 0.15 0.18 1" density="0"/>
      {nl.join(arms)}
      {nl.join(rotors)}
      {nl.join(sites)}
    </body>
    {extra_worldbody}
  </worldbody>
  <actuator>
    {(nl[:-2]).join(acts)}
  </actuator>
</mujoco>
"""


class QuadTwin:
    """Quadrotor on a TwinWorld: CTBR rate loop + cascaded velocity/position control as a world controller.

    ``command`` only stores setpoints; the physics (and the controllers) advance when the owner calls
    ``world.advance``. Disarmed, every rotor command is 0 (the rotors spin down through the motor lag).
    Gains and limits are read from ``params`` once, here. Pass ``world`` to use a TwinWorld built from
    ``quad_mjcf(params, ...)`` elsewhere; by default one is built with ``extra_worldbody``.
    """

    def __init__(self, params: QuadParams | str | Path, extra_worldbody: str = "", world: TwinWorld | None = None):
        self.params = p = params if isinstance(params, QuadParams) else QuadParams.load(params)
        if world is None:
            world = TwinWorld(mujoco.MjModel.from_xml_string(quad_mjcf(p, extra_worldbody)))
        self.world = world
        self.mass = p.mass
        m, d = world.model, world.data
        qadr = m.jnt_qposadr[m.joint("x").id]
        dadr = m.jnt_dofadr[m.joint("x").id]
        acts = [m.actuator(f"rotor{i}").id for i in range(4)]
        if acts != list(range(acts[0], acts[0] + 4)) or m.actuator_actadr[acts[0]] < 0:
            raise ValueError("the four rotor actuators must be consecutive and have filter dynamics")
        # Cached views into MjData: mj_resetData does not reallocate, so they stay valid across resets.
        self._qpos = d.qpos[qadr : qadr + 7]  # x, y, z, quat (w, x, y, z)
        self._qvel = d.qvel[dadr : dadr + 6]  # world linear velocity, body angular velocity
        self._ctrl = d.ctrl[acts[0] : acts[0] + 4]
        act0 = m.actuator_actadr[acts[0]]
        self._act = d.act[act0 : act0 + 4]  # lagged thrust command (N); force = gain * act
        self._gain = m.actuator_gainprm[acts[0] : acts[0] + 4, 0]  # 1 nominal; domain randomization scales it
        self.z_rest = p.rest_height
        self.control_dt = p.control_every_n_steps * p.physics_dt

        self._armed = False
        self._mode = _IDLE
        # Setpoint: ctbr (T, wx, wy, wz); velocity (vx, vy, vz, yaw rate); position / land (x, y, z, yaw)
        self._sp = (0.0, 0.0, 0.0, 0.0)
        self._integral = [0.0, 0.0, 0.0, 0.0]  # rate-loop x, y, z; vertical velocity
        world.add_controller(self._make_controller(), every_n_steps=p.control_every_n_steps)

    # -- Quadrotor interface -------------------------------------------------------------------------------
    def state(self) -> QuadState:
        qp, qv = self._qpos, self._qvel
        return QuadState(
            pos=qp[:3].copy(),
            quat=xyzw_from_wxyz(qp[3:7]),
            vel=qv[:3].copy(),
            body_rates=qv[3:6].copy(),
            motor_thrusts=self._act * self._gain,
            armed=self._armed,
            stamp_ns=self.world.stamp_ns,
        )

    def command(self, cmd: QuadCommand) -> None:
        """Store a setpoint; the rate-loop callback tracks it while armed."""
        mode = _MODES.get(cmd.mode)
        if mode is None:
            raise ValueError(f"unknown QuadCommand mode {cmd.mode!r}; allowed: {', '.join(_MODES)}")
        p = self.params
        if mode == _CTBR:
            rates = np.clip(np.asarray(cmd.body_rates, float).reshape(3), -p.max_body_rate, p.max_body_rate)
            self._set(mode, min(max(float(cmd.thrust), 0.0), p.max_thrust), *rates.tolist())
        elif mode == _VELOCITY:
            if cmd.velocity is None:
                raise ValueError("QuadCommand(mode='velocity') needs velocity")
            v = np.asarray(cmd.velocity, float).reshape(3)
            speed = float(np.linalg.norm(v))
            if speed > p.max_speed:
                v = v * (p.max_speed / speed)
            yaw_rate = min(max(float(cmd.yaw_rate), -p.max_body_rate), p.max_body_rate)
            self._set(mode, *v.tolist(), yaw_rate)
        else:
            if cmd.position is None:
                raise ValueError("QuadCommand(mode='position') needs position")
            self._set(mode, *np.asarray(cmd.position, float).reshape(3).tolist(), float(cmd.yaw))

    def arm(self) -> None:
        """Enable the rotors. The last command (ctbr thrust 0 if none) is tracked from now on."""
        if not self._armed:
            self._integral[:] = (0.0, 0.0, 0.0, 0.0)
            if self._mode == _IDLE:
                self._set(_CTBR, 0.0, 0.0, 0.0, 0.0)
            self._armed = True

    def disarm(self) -> None:
        """Rotors off at once (kill switch); the quad falls if airborne."""
        self._armed = False
        self._ctrl[:] = 0.0

    def land(self) -> None:
        """Descend at ``land_speed`` holding x, y and yaw; disarm on touchdown (height above the floor < 1 cm)."""
        if not self._armed:
            return
        s = self._qpos
        self._set(_LAND, float(s[0]), float(s[1]), 0.0, self._yaw())

    def stop(self) -> None:
        """Hover in place: position hold at the current position and yaw."""
        s = self._qpos
        self._set(_POSITION, float(s[0]), float(s[1]), float(s[2]), self._yaw())

    # -- twin helpers --------------------------------------------------------------------------------------
    @property
    def hover_thrust(self) -> float:
        """Collective thrust (N) that balances gravity."""
        return self.params.hover_thrust

    @property
    def max_thrust(self) -> float:
        """Collective thrust (N) with every rotor at max speed: 4 kf wmax^2."""
        return self.params.max_thrust

    @property
    def armed(self) -> bool:
        return self._armed

    def reset(self) -> None:
        """World reset (the quad stands on the floor, motors off), disarmed, no command."""
        self.world.reset()
        self._armed = False
        self._mode = _IDLE
        self._integral[:] = (0.0, 0.0, 0.0, 0.0)

    def set_state(
        self,
        pos: Sequence[float],
        quat_xyzw: Sequence[float] = (0.0, 0.0, 0.0, 1.0),
        vel: Sequence[float] = (0.0, 0.0, 0.0),
        body_rates: Sequence[float] = (0.0, 0.0, 0.0),
        motor_thrusts: float | Sequence[float] | None = None,
    ) -> None:
        """Teleport (task resets). ``motor_thrusts`` (N per rotor) sets the motor-lag state; None keeps it."""
        q = np.asarray(quat_xyzw, float)
        self._qpos[:3] = pos
        self._qpos[3:7] = wxyz_from_xyzw(q / np.linalg.norm(q))
        self._qvel[:3] = vel
        self._qvel[3:6] = body_rates
        if motor_thrusts is not None:
            self._act[:] = np.clip(motor_thrusts, 0.0, self.params.max_rotor_thrust) / self._gain
        self._integral[:] = (0.0, 0.0, 0.0, 0.0)
        self.world.forward()

    def _set(self, mode: int, a: float, b: float, c: float, d: float) -> None:
        self._sp = (a, b, c, d)
        self._mode = mode

    def _yaw(self) -> float:
        w, x, y, z = self._qpos[3:7].tolist()
        return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))

    # -- the control callback (rate-loop period) -----------------------------------------------------------
    def _make_controller(self) -> Callable[[], None]:
        """The world controller: outer loop (velocity / position / land) -> CTBR -> rate P(I) -> mixer.

        A closure over Python-float constants and cached numpy views: it runs at ``rate_loop_hz`` per
        sim-second, and at ~3 us it costs about one mj_step of this model, so attribute lookups, numpy
        temporaries and function calls are avoided on purpose.
        """
        p = self.params
        qpos, qvel, ctrl = self._qpos, self._qvel, self._ctrl
        integral = self._integral
        (m00, m01, m02, m03), (m10, m11, m12, m13), (m20, m21, m22, m23), (m30, m31, m32, m33) = p.mixer().tolist()
        jx, jy, jz = (float(v) for v in p.inertia)
        kx, ky, kz = (float(v) for v in p.rate_kp)
        ix, iy, iz = (float(v) * self.control_dt for v in p.rate_ki)
        use_ki = any(p.rate_ki)
        # Integral clamp: at most the P term of a 1 rad/s error; integrate only when airborne-ish.
        ilx, ily, ilz, i_min_thrust = kx, ky, kz, 0.3 * p.hover_thrust
        tmax = p.max_rotor_thrust
        mass, g, z_land = p.mass, GRAVITY, self.z_rest + 0.01
        kp_pos, kp_vel, kp_att, kp_yaw = p.kp_pos, p.kp_vel, p.kp_att, p.kp_yaw
        # Vertical-velocity integral: clamped to 0.5 g, integrated while |vz| < iz_band (m/s) and 5 cm up.
        kiz, iz_lim, iz_band, z_air = p.ki_vel_z * self.control_dt, 0.5 * GRAVITY, IZ_BAND, self.z_rest + 0.05
        vmax, vmax2, land_speed = p.max_speed, p.max_speed**2, p.land_speed
        thrust_min = 0.2 * p.hover_thrust
        tan_tilt, drag, az_min, lim = math.tan(p.max_tilt), p.linear_drag / p.mass, 0.2 * GRAVITY, p.max_body_rate
        sqrt, atan2, pi, two_pi = math.sqrt, math.atan2, math.pi, 2 * math.pi

        def control() -> None:
            if not self._armed:
                return
            mode = self._mode
            s0, s1, s2, s3 = self._sp
            vx, vy, vz, wx, wy, wz = qvel.tolist()
            if mode == _CTBR:
                thrust, rx, ry, rz = s0, s1, s2, s3
            else:
                px, py, pz, qw, qx, qy, qz = qpos.tolist()
                if mode == _VELOCITY:
                    vdx, vdy, vdz = s0, s1, s2
                else:
                    vdx, vdy = kp_pos * (s0 - px), kp_pos * (s1 - py)
                    if mode == _LAND:
                        if pz < z_land:
                            self.disarm()
                            return
                        vdz = -land_speed
                    else:
                        vdz = kp_pos * (s2 - pz)
                    v2 = vdx * vdx + vdy * vdy + vdz * vdz
                    if v2 > vmax2:
                        k = vmax / sqrt(v2)
                        vdx, vdy, vdz = vdx * k, vdy * k, vdz * k
                # Desired acceleration (+ gravity and drag feed-forward); tilt-limited thrust direction.
                ax = kp_vel * (vdx - vx) + drag * vx
                ay = kp_vel * (vdy - vy) + drag * vy
                az = kp_vel * (vdz - vz) + drag * vz + g
                if kiz:
                    if -iz_band < vz < iz_band and pz > z_air:  # airborne and near hover: no wind-up on steps
                        e = integral[3] + kiz * (vdz - vz)
                        integral[3] = iz_lim if e > iz_lim else (-iz_lim if e < -iz_lim else e)
                    az += integral[3]
                if az < az_min:
                    az = az_min
                h2 = ax * ax + ay * ay
                hmax = az * tan_tilt
                if h2 > hmax * hmax:
                    k = hmax / sqrt(h2)
                    ax, ay = ax * k, ay * k
                # Body -> world rotation matrix R from the (w, x, y, z) quaternion.
                xx, yy, zz, xy, xz, yz = qx * qx, qy * qy, qz * qz, qx * qy, qx * qz, qy * qz
                wx_, wy_, wz_ = qw * qx, qw * qy, qw * qz
                r11, r12, r13 = 1 - 2 * (yy + zz), 2 * (xy - wz_), 2 * (xz + wy_)
                r21, r22, r23 = 2 * (xy + wz_), 1 - 2 * (xx + zz), 2 * (yz - wx_)
                r31, r32, r33 = 2 * (xz - wy_), 2 * (yz + wx_), 1 - 2 * (xx + yy)
                # Desired acceleration in the body frame, R^T a. Thrust: its component along body z (times mass).
                # Roll/pitch rates: kp_att * tilt angle about the axis e_z x R^T a (proportional to the angle, not
                # its sine, so a quad upside down still flips at full rate).
                bx = r11 * ax + r21 * ay + r31 * az
                by = r12 * ax + r22 * ay + r32 * az
                bz = r13 * ax + r23 * ay + r33 * az
                thrust = mass * bz
                if thrust < thrust_min:  # tilted > 90 deg: keep some thrust so the mixer has torque authority
                    thrust = thrust_min
                s = sqrt(bx * bx + by * by)
                if s > 1e-9:
                    k = kp_att * atan2(s, bz) / s
                else:  # thrust direction along +-body z: aligned, or exactly inverted (flip about body x)
                    k, by = (0.0, 0.0) if bz > 0 else (kp_att * pi, -1.0)
                # Yaw: a rate about world z (yaw-rate command, or P on the yaw error), in the body frame.
                if mode == _VELOCITY:
                    oz = s3
                else:
                    e = (s3 - atan2(r21, r11) + pi) % two_pi - pi
                    oz = kp_yaw * e
                rx, ry, rz = r31 * oz - k * by, r32 * oz + k * bx, r33 * oz
                rx = lim if rx > lim else (-lim if rx < -lim else rx)
                ry = lim if ry > lim else (-lim if ry < -lim else ry)
                rz = lim if rz > lim else (-lim if rz < -lim else rz)

            # Rate loop: torque = J (kp e + ki int e) + w x J w (gyroscopic feed-forward).
            ex, ey, ez = rx - wx, ry - wy, rz - wz
            ux, uy, uz = kx * ex, ky * ey, kz * ez
            if use_ki:
                if thrust > i_min_thrust:
                    integral[0] = min(max(integral[0] + ix * ex, -ilx), ilx)
                    integral[1] = min(max(integral[1] + iy * ey, -ily), ily)
                    integral[2] = min(max(integral[2] + iz * ez, -ilz), ilz)
                ux, uy, uz = ux + integral[0], uy + integral[1], uz + integral[2]
            tx = jx * ux + (jz - jy) * wy * wz
            ty = jy * uy + (jx - jz) * wz * wx
            tz = jz * uz + (jy - jx) * wx * wy
            # Mixer -> rotor thrusts. At the top, saturation keeps the torques and gives up collective thrust.
            f0 = m00 * thrust + m01 * tx + m02 * ty + m03 * tz
            f1 = m10 * thrust + m11 * tx + m12 * ty + m13 * tz
            f2 = m20 * thrust + m21 * tx + m22 * ty + m23 * tz
            f3 = m30 * thrust + m31 * tx + m32 * ty + m33 * tz
            hi = f0 if f0 > f1 else f1
            hi = hi if hi > f2 else f2
            hi = hi if hi > f3 else f3
            if hi > tmax:
                hi -= tmax
                f0, f1, f2, f3 = f0 - hi, f1 - hi, f2 - hi, f3 - hi
            elif mode != _CTBR:  # "air mode" in the outer-loop modes: add collective rather than lose torque
                lo = f0 if f0 < f1 else f1
                lo = lo if lo < f2 else f2
                lo = lo if lo < f3 else f3
                if lo < 0.0:
                    lo = lo if lo > hi - tmax else hi - tmax
                    f0, f1, f2, f3 = f0 - lo, f1 - lo, f2 - lo, f3 - lo
            ctrl[0] = f0 if f0 > 0.0 else 0.0
            ctrl[1] = f1 if f1 > 0.0 else 0.0
            ctrl[2] = f2 if f2 > 0.0 else 0.0
            ctrl[3] = f3 if f3 > 0.0 else 0.0

        return control
