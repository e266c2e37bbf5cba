"""Serial-chain kinematics from a Denavit-Hartenberg table: forward kinematics, the geometric Jacobian and a
damped-least-squares inverse kinematics solver.

A driver that only gets joint positions from the robot (ros2_control, most vendor SDKs) needs its own model to
report the end-effector pose and to turn Cartesian commands into joint targets; this is that model, in numpy,
with no robot description files to ship. Quaternions are (x, y, z, w), as everywhere in robotrl.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from robotrl.geometry import quat_multiply, xyzw_from_wxyz


def rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


def trans(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = x, y, z
    return t


def quat_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(x, y, z, w) quaternion of a 3x3 rotation matrix."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rot, dtype=np.float64).ravel())
    return xyzw_from_wxyz(quat)


def rotvec_from_quat(quat: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of an (x, y, z, w) quaternion: the shortest rotation."""
    q = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    q = q if q[3] >= 0 else -q
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return 2.0 * q[:3]
    return q[:3] / s * (2.0 * np.arctan2(s, q[3]))


def quat_conjugate(quat: np.ndarray) -> np.ndarray:
    return np.array([-quat[0], -quat[1], -quat[2], quat[3]])


class SerialChain:
    """A chain of revolute joints described by one DH row per joint: ``(a, alpha, d, theta_offset)``.

    ``modified=True`` reads the rows in Craig's modified convention (joint i's frame is reached by
    Rx(alpha_{i-1}) Tx(a_{i-1}) Rz(theta_i) Tz(d_i): the Panda/FR3 and xArm datasheets); ``False`` in the
    classic convention (Rz(theta_i) Tz(d_i) Tx(a_i) Rx(alpha_i): UR and Kinova datasheets). ``tool`` is the 4x4
    transform from the last joint frame to the TCP; ``home`` the posture IK pulls the redundant DoF toward.
    """

    def __init__(self, dh: Sequence[Sequence[float]], lower: Sequence[float], upper: Sequence[float],
                 tool: np.ndarray | None = None, home: Sequence[float] | None = None, modified: bool = True):
        self.dh = np.asarray(dh, dtype=np.float64)
        self.lower, self.upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        self.n = len(self.dh)
        if self.dh.shape != (self.n, 4) or self.lower.shape != (self.n,) or self.upper.shape != (self.n,):
            raise ValueError(f"need one (a, alpha, d, theta_offset) row and one lower/upper limit per joint; got "
                             f"dh {self.dh.shape}, lower {self.lower.shape}, upper {self.upper.shape}")
        self.tool = np.eye(4) if tool is None else np.asarray(tool, dtype=np.float64)
        self.home = np.clip(np.zeros(self.n) if home is None else np.asarray(home, dtype=np.float64), self.lower, self.upper)
        # Each link is pre @ Rz(q + offset) @ post; splitting it there puts the joint axis at pre's z-axis,
        # which is all the Jacobian needs, and lets one loop serve both conventions.
        if modified:
            self._pre = [rot_x(alpha) @ trans(x=a) for a, alpha, _, _ in self.dh]
            self._post = [trans(z=d) for _, _, d, _ in self.dh]
        else:
            self._pre = [np.eye(4) for _ in self.dh]
            self._post = [trans(z=d) @ trans(x=a) @ rot_x(alpha) for a, alpha, d, _ in self.dh]

    def _joint_frames(self, q: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """The frame each joint rotates about (its z-axis), and the TCP frame, in the base frame."""
        t, axes = np.eye(4), []
        for pre, post, offset, qi in zip(self._pre, self._post, self.dh[:, 3], q):
            t = t @ pre
            axes.append(t)
            t = t @ rot_z(qi + offset) @ post
        return axes, t @ self.tool

    def fk_matrix(self, q: np.ndarray) -> np.ndarray:
        """4x4 pose of the TCP in the base frame."""
        return self._joint_frames(np.asarray(q, dtype=np.float64))[1]

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and orientation (x, y, z, w) in the base frame."""
        t = self.fk_matrix(q)
        return t[:3, 3].copy(), quat_from_matrix(t[:3, :3])

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x n geometric Jacobian at the TCP in the base frame: rows 0-2 linear, rows 3-5 angular velocity."""
        return self._jacobian(*self._joint_frames(np.asarray(q, dtype=np.float64)))

    def _jacobian(self, axes: list[np.ndarray], tcp: np.ndarray) -> np.ndarray:
        jac = np.empty((6, self.n))
        for i, frame in enumerate(axes):
            z, origin = frame[:3, 2], frame[:3, 3]
            jac[:3, i] = np.cross(z, tcp[:3, 3] - origin)
            jac[3:, i] = z
        return jac

    def ik(self, q0: np.ndarray, pos: np.ndarray, quat: np.ndarray, *, damping: float = 0.05, rot_weight: float = 0.5,
           posture_gain: float = 0.1, iterations: int = 50, tol: float = 1e-5) -> np.ndarray:
        """Joint positions that put the TCP at ``pos`` / ``quat``, iterated from ``q0`` (the measured joints, so the
        solution stays on the arm's current branch).

        Damped least squares keeps steps bounded near singularities; every iterate is clipped to the joint
        limits; the redundant DoF are pulled toward ``home`` in the Jacobian's null space (without that a 7-DoF
        elbow drifts wherever the last iterate left it). ``rot_weight`` (m/rad) trades orientation error against
        position error. Returns the best effort when the pose is out of reach.
        """
        q = np.clip(np.asarray(q0, dtype=np.float64), self.lower, self.upper)
        goal_quat = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
        weights = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        for _ in range(iterations):
            axes, tcp = self._joint_frames(q)
            err = weights * _pose_error(tcp, pos, goal_quat)
            if np.linalg.norm(err) < tol:
                break
            jac = weights[:, None] * self._jacobian(axes, tcp)
            step = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(6), err)
            # The exact projector (not the damped one) so the posture pull never leaks into the task.
            null = np.eye(self.n) - np.linalg.pinv(jac) @ jac
            q = np.clip(q + step + null @ (posture_gain * (self.home - q)), self.lower, self.upper)
        return q


def _pose_error(tcp: np.ndarray, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(position error, rotation-vector error) from the TCP pose ``tcp`` (4x4) to the goal, in the base frame."""
    rot_err = rotvec_from_quat(quat_multiply(quat, quat_conjugate(quat_from_matrix(tcp[:3, :3]))))
    return np.concatenate([np.asarray(pos, dtype=np.float64) - tcp[:3, 3], rot_err])


def panda() -> SerialChain:
    """Franka Emika Panda: the datasheet's modified-DH table and joint limits, and the Franka hand's TCP
    (flange +0.107 m, hand rotated -45 deg about z, fingertip centre +0.1034 m) -- the same numbers as the twin's
    sim/assets/arm_scene.xml, whose ``tcp`` site tests check this model against."""
    half_pi = np.pi / 2
    dh = [  # a_{i-1}, alpha_{i-1}, d_i, theta offset
        (0.0, 0.0, 0.333, 0.0),
        (0.0, -half_pi, 0.0, 0.0),
        (0.0, half_pi, 0.316, 0.0),
        (0.0825, half_pi, 0.0, 0.0),
        (-0.0825, -half_pi, 0.384, 0.0),
        (0.0, half_pi, 0.0, 0.0),
        (0.088, half_pi, 0.0, 0.0),
    ]
    lower = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973]
    upper = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973]
    tool = trans(z=0.107) @ rot_z(-np.pi / 4) @ trans(z=0.1034)
    home = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]  # Franka's "ready" pose
    return SerialChain(dh, lower, upper, tool=tool, home=home)
