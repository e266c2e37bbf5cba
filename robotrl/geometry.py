"""Quaternion and frame helpers. Public quaternions are (x, y, z, w); MuJoCo's are (w, x, y, z)."""

from __future__ import annotations

import numpy as np


def xyzw_from_wxyz(q: np.ndarray) -> np.ndarray:
    """MuJoCo (w, x, y, z) -> public (x, y, z, w)."""
    q = np.asarray(q)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def wxyz_from_xyzw(q: np.ndarray) -> np.ndarray:
    """Public (x, y, z, w) -> MuJoCo (w, x, y, z)."""
    q = np.asarray(q)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of an (x, y, z, w) quaternion (normalized first). Plain numpy: the policy's path on a robot
    imports no MuJoCo."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of (x, y, z, w) quaternions (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """(x, y, z, w) quaternion of the rotation vector ``v`` (axis * angle, rad)."""
    v = np.asarray(v, dtype=np.float64)
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    s = np.sin(angle / 2) / angle
    return np.array([v[0] * s, v[1] * s, v[2] * s, np.cos(angle / 2)])


def quat_from_euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """(x, y, z, w) quaternion of intrinsic Z-Y-X (yaw, pitch, roll) Euler angles."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.array(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )


def yaw_from_quat(q: np.ndarray) -> float:
    x, y, z, w = q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


# ENU world / FLU body (REP-103) <-> NED world / FRD body (PX4, MAVLink). Used only by the MAVLink driver.
_ENU_TO_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_FLU_TO_FRD = np.diag([1.0, -1.0, -1.0])


def enu_to_ned(v: np.ndarray) -> np.ndarray:
    return _ENU_TO_NED @ np.asarray(v)


def ned_to_enu(v: np.ndarray) -> np.ndarray:
    return _ENU_TO_NED @ np.asarray(v)  # the map is its own inverse


def flu_to_frd(v: np.ndarray) -> np.ndarray:
    return _FLU_TO_FRD @ np.asarray(v)


def frd_to_flu(v: np.ndarray) -> np.ndarray:
    return _FLU_TO_FRD @ np.asarray(v)


# Quaternion form of the same maps: ENU->NED is a half-turn about (x + y) / sqrt(2), FLU->FRD a half-turn about x.
_Q_ENU_TO_NED = np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0])
_Q_FLU_TO_FRD = np.array([1.0, 0.0, 0.0, 0.0])


def quat_enu_flu_to_ned_frd(q: np.ndarray) -> np.ndarray:
    """FLU-body-to-ENU-world (x, y, z, w) -> FRD-body-to-NED-world (x, y, z, w): R_ned = M R_enu F."""
    return quat_multiply(quat_multiply(_Q_ENU_TO_NED, np.asarray(q, dtype=np.float64)), _Q_FLU_TO_FRD)


def quat_ned_frd_to_enu_flu(q: np.ndarray) -> np.ndarray:
    return quat_enu_flu_to_ned_frd(q)  # both half-turns square to -1, and the two signs cancel


def yaw_enu_to_ned(yaw: float) -> float:
    """ENU yaw (from east, counter-clockwise) <-> NED yaw (from north, clockwise), wrapped to [-pi, pi)."""
    return float((np.pi / 2 - yaw + np.pi) % (2 * np.pi) - np.pi)


def yaw_ned_to_enu(yaw: float) -> float:
    return yaw_enu_to_ned(yaw)  # the map is its own inverse
