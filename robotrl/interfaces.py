"""Device interfaces shared by the MuJoCo twin (robotrl.sim) and hardware drivers (robotrl.hardware).

Conventions (one place, see README "Conventions"):
- SI units, ROS REP-103 frames: world x forward, y left, z up; body frames FLU.
- Quaternions in every public array are (x, y, z, w) — the ROS / scipy order.
  Conversion to MuJoCo's (w, x, y, z) happens only at the MuJoCo boundary (robotrl.geometry).
- Every sample carries ``stamp_ns``: the monotonic capture time in nanoseconds
  (sim time for the twin, the device clock for hardware).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fovy(cls, width: int, height: int, fovy_deg: float) -> "CameraIntrinsics":
        """Pinhole intrinsics of a camera with square pixels and vertical field of view ``fovy_deg``."""
        f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
        return cls(width, height, f, f, (width - 1) / 2, (height - 1) / 2)


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # uint8 HxWx3, RGB
    stamp_ns: int
    intrinsics: CameraIntrinsics
    depth: np.ndarray | None = None  # float32 HxW, metres


@dataclass(frozen=True)
class ArmState:
    q: np.ndarray  # joint positions (rad), shape (n_joints,)
    dq: np.ndarray  # joint velocities (rad/s)
    ee_pos: np.ndarray  # end-effector (TCP) position in the base frame (m), shape (3,)
    ee_quat: np.ndarray  # end-effector orientation, (x, y, z, w)
    ee_vel: np.ndarray  # end-effector linear velocity (m/s), shape (3,)
    gripper: float  # opening in [0, 1]: 0 closed, 1 fully open
    stamp_ns: int


@dataclass(frozen=True)
class ArmCommand:
    """One command to an arm. ``mode`` selects which fields are read.

    - ``ee_target``: absolute end-effector pose target (``ee_pos``, ``ee_quat``) tracked by the
      Cartesian impedance controller with ``stiffness`` (N/m) when given.
    - ``ee_delta``: ``ee_pos`` / ``ee_rotvec`` are offsets from the *current target*, in the base frame.
    - ``joint``: joint position targets ``q``.
    ``gripper`` in [0, 1] (0 closed, 1 open) is applied in every mode; None keeps the last value.
    """

    mode: Literal["ee_target", "ee_delta", "joint"]
    ee_pos: np.ndarray | None = None
    ee_quat: np.ndarray | None = None
    ee_rotvec: np.ndarray | None = None
    q: np.ndarray | None = None
    gripper: float | None = None
    stiffness: float | None = None


@dataclass(frozen=True)
class QuadState:
    pos: np.ndarray  # world position (m), ENU/FLU world frame (z up)
    quat: np.ndarray  # body-to-world rotation, (x, y, z, w)
    vel: np.ndarray  # world-frame linear velocity (m/s)
    body_rates: np.ndarray  # body-frame (FLU) angular velocity (rad/s)
    motor_thrusts: np.ndarray  # current thrust of each rotor (N), after motor lag
    armed: bool
    stamp_ns: int


@dataclass(frozen=True)
class QuadCommand:
    """One command to a quadrotor.

    - ``ctbr``: collective ``thrust`` (N, total of all rotors) and FLU ``body_rates`` (rad/s).
    - ``velocity``: world-frame ``velocity`` (m/s) and ``yaw_rate`` (rad/s).
    - ``position``: world-frame ``position`` (m) and ``yaw`` (rad).
    """

    mode: Literal["ctbr", "velocity", "position"]
    thrust: float = 0.0
    body_rates: np.ndarray = field(default_factory=lambda: np.zeros(3))
    velocity: np.ndarray | None = None
    position: np.ndarray | None = None
    yaw: float = 0.0
    yaw_rate: float = 0.0


@runtime_checkable
class Camera(Protocol):
    name: str

    def read(self) -> Frame:
        """The newest frame; blocks at most one frame period on hardware."""
        ...


@runtime_checkable
class Arm(Protocol):
    n_joints: int

    def state(self) -> ArmState: ...

    def command(self, cmd: ArmCommand) -> None:
        """Set the controller's target; returns at once (the controller runs at its own rate)."""
        ...

    def home(self) -> None: ...

    def stop(self) -> None:
        """Hold the current pose (the safe state for an arm)."""
        ...


@runtime_checkable
class Quadrotor(Protocol):
    mass: float

    def state(self) -> QuadState: ...

    def command(self, cmd: QuadCommand) -> None: ...

    def arm(self) -> None: ...

    def land(self) -> None: ...

    def stop(self) -> None:
        """Hover in place (the safe state for a flying quadrotor); ``land`` brings it down."""
        ...
