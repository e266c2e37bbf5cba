"""ArmTwin: the Arm interface on the MuJoCo arm (sim/assets/arm_scene.xml)."""

from __future__ import annotations

import mujoco
import numpy as np

from robotrl.geometry import quat_from_rotvec, quat_multiply, wxyz_from_xyzw, xyzw_from_wxyz
from robotrl.interfaces import ArmCommand, ArmState
from robotrl.sim.world import TwinWorld

JOINTS = [f"joint{i}" for i in range(1, 8)]
HOME_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
GRIPPER_MAX_WIDTH = 0.08  # m, total opening of the two fingers
JOINT_MODE_GAINS = (400.0, 40.0)  # kp (Nm/rad), kv (Nms/rad) of the joint servos in joint mode
POSTURE_GAINS = (2.0, 0.0)  # weak pull toward HOME_Q in impedance mode: keeps the redundant elbow put


class ArmTwin:
    """7-DoF arm with an end-effector impedance controller running inside every physics step.

    ``command`` moves the controller's target (mocap body ``ee_target``) or switches to joint servoing;
    the physics advances when the owner calls ``world.advance``.
    """

    n_joints = 7

    def __init__(self, world: TwinWorld):
        self.world = world
        m = world.model
        self._qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in JOINTS])
        self._dadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in JOINTS])
        self._finger_adr = m.jnt_qposadr[m.joint("finger_left").id]
        self._tcp = m.site("tcp").id
        self._mocap = m.body_mocapid[m.body("ee_target").id]
        self._weld = m.equality("ee_impedance").id
        self._joint_act = np.array([m.actuator(j).id for j in JOINTS])
        self._gripper_act = m.actuator("gripper").id
        self._nominal_solref = m.eq_solref[self._weld].copy()
        self._jacp = np.zeros((3, m.nv))
        self.mode = "ee"

    # -- Arm interface -------------------------------------------------------------------------------------
    def state(self) -> ArmState:
        m, d = self.world.model, self.world.data
        mujoco.mj_jacSite(m, d, self._jacp, None, self._tcp)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self._tcp])
        return ArmState(
            q=d.qpos[self._qadr].copy(),
            dq=d.qvel[self._dadr].copy(),
            ee_pos=d.site_xpos[self._tcp].copy(),
            ee_quat=xyzw_from_wxyz(quat),
            ee_vel=self._jacp @ d.qvel,
            gripper=float(2 * d.qpos[self._finger_adr] / GRIPPER_MAX_WIDTH),
            stamp_ns=self.world.stamp_ns,
        )

    def command(self, cmd: ArmCommand) -> None:
        d = self.world.data
        if cmd.mode == "joint":
            if cmd.q is None:
                raise ValueError("ArmCommand(mode='joint') needs q")
            self._set_mode("joint")
            d.ctrl[self._joint_act] = cmd.q
        else:
            self._set_mode("ee")
            pos, quat = self.target_pose()
            if cmd.mode == "ee_target":
                pos = pos if cmd.ee_pos is None else np.asarray(cmd.ee_pos, float)
                quat = quat if cmd.ee_quat is None else np.asarray(cmd.ee_quat, float)
            elif cmd.mode == "ee_delta":
                if cmd.ee_pos is not None:
                    pos = pos + cmd.ee_pos
                if cmd.ee_rotvec is not None:
                    quat = quat_multiply(quat_from_rotvec(cmd.ee_rotvec), quat)
            else:
                raise ValueError(f"unknown ArmCommand mode {cmd.mode!r}; allowed: ee_target, ee_delta, joint")
            self._set_target(pos, quat)
            if cmd.stiffness is not None:
                self.set_stiffness(cmd.stiffness)
        if cmd.gripper is not None:
            d.ctrl[self._gripper_act] = float(np.clip(cmd.gripper, 0.0, 1.0)) * GRIPPER_MAX_WIDTH

    def home(self) -> None:
        """Reset to the home posture (the twin teleports; hardware drivers move there)."""
        self.world.reset("home")
        self.mode = "ee"
        self._set_mode("ee", force=True)

    def stop(self) -> None:
        """Hold: the impedance target snaps to the current TCP pose, so the arm stops where it is."""
        s = self.state()
        self._set_mode("ee")
        self._set_target(s.ee_pos, s.ee_quat)

    # -- twin helpers --------------------------------------------------------------------------------------
    def target_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self.world.data
        return d.mocap_pos[self._mocap].copy(), xyzw_from_wxyz(d.mocap_quat[self._mocap])

    def set_stiffness(self, time_constant: float) -> None:
        """Impedance as the time constant (s) of the task-space spring-damper (critically damped)."""
        self.world.model.eq_solref[self._weld] = [time_constant, 1.0]

    def _set_target(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> None:
        d = self.world.data
        d.mocap_pos[self._mocap] = pos
        d.mocap_quat[self._mocap] = wxyz_from_xyzw(np.asarray(quat_xyzw) / np.linalg.norm(quat_xyzw))

    def _set_mode(self, mode: str, force: bool = False) -> None:
        if mode == self.mode and not force:
            return
        m, d = self.world.model, self.world.data
        kp, kv = JOINT_MODE_GAINS if mode == "joint" else POSTURE_GAINS
        for a in self._joint_act:
            m.actuator_gainprm[a, 0] = kp
            m.actuator_biasprm[a, 1:3] = (-kp, -kv)
        if mode == "ee":
            d.ctrl[self._joint_act] = HOME_Q
        else:
            d.ctrl[self._joint_act] = d.qpos[self._qadr]
        d.eq_active[self._weld] = mode == "ee"
        self.mode = mode
