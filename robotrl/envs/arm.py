"""Arm tasks on the twin: the scene (arm, cube, peg and hole) and its resets; the tasks are robotrl.tasks.arm."""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robotrl.envs.base import TwinEnv
from robotrl.interfaces import ArmCommand
from robotrl.safety import SafetyReport
from robotrl.sim.arm import ArmTwin
from robotrl.sim.world import ASSETS, TwinWorld
from robotrl.tasks.arm import ArmTask, PegInsert, PickCube, Reach
from robotrl.tasks.base import Points

DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # (x, y, z, w): TCP z-axis pointing at the table


class ArmEnv(TwinEnv):
    """Shared by every arm task: the arm, its impedance controller and the start pose."""

    task: ArmTask

    def _build_world(self) -> TwinWorld:
        spec = mujoco.MjSpec.from_file(str(ASSETS / "arm_scene.xml"))
        self._add_objects(spec)
        world = TwinWorld(spec.compile())
        self.arm = ArmTwin(world)
        self.arm.set_stiffness(self.config.impedance_time_constant)
        self.safety = self.task.safety_filter()
        self._start_qpos = self._settle_start(world)
        return world

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies to the scene (before compiling)."""

    def _settle_start(self, world: TwinWorld) -> np.ndarray:
        """Joint configuration with the TCP at ``start_pos``, found once by letting the impedance controller get
        there from home; every reset starts from it (a redundant arm's elbow then starts the same way)."""
        self.arm.home()
        self.arm.command(ArmCommand("ee_target", ee_pos=np.array(self.config.start_pos), ee_quat=DOWN, gripper=1.0))
        world.advance(2.0)
        return world.data.qpos.copy()

    def _reset_arm(self, rng: np.random.Generator) -> None:
        w = self.world
        self.arm.home()
        w.data.qpos[:] = self._start_qpos
        start = np.array(self.config.start_pos) + rng.uniform(-1, 1, 3) * self.config.start_noise
        self.arm.command(ArmCommand("ee_target", ee_pos=start, ee_quat=DOWN, gripper=1.0 if self.task.uses_gripper else 0.0))
        w.advance(0.3)

    def _read_devices(self) -> None:
        self.reading = self.arm.state()

    def _apply(self, command: ArmCommand) -> SafetyReport:
        target, _ = self.arm.target_pose()
        safe, report = self.safety.filter(command, self.reading, target, self.control_dt)
        self.arm.command(safe)
        return report


class ArmReach(ArmEnv):
    __doc__ = Reach.__doc__
    task_cls: ClassVar = Reach

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        spec.worldbody.add_site(name="target", size=[0.02, 0, 0], rgba=[0.1, 0.8, 0.1, 0.6], group=2)

    def _reset_scene(self, rng: np.random.Generator) -> Points:
        self._reset_arm(rng)
        goals = self.task.sample_goals(rng)
        self.world.model.site("target").pos = goals["target"]
        self.world.forward()
        return goals


class ArmPickCube(ArmEnv):
    __doc__ = PickCube.__doc__
    task_cls: ClassVar = PickCube
    object_geoms: ClassVar = ("cube",)

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        h = self.config.cube_half_size
        cube = spec.worldbody.add_body(name="cube", pos=[0.5, 0, h])
        cube.add_freejoint(name="cube")
        cube.add_geom(
            name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[h, h, h], mass=self.config.cube_mass,
            rgba=[0.85, 0.15, 0.1, 1], friction=[1.2, 0.01, 0.001], condim=4,
        )

    def _reset_scene(self, rng: np.random.Generator) -> Points:
        self._reset_arm(rng)
        m, d = self.world.model, self.world.data
        adr = m.jnt_qposadr[m.joint("cube").id]
        xy = rng.uniform(self.config.cube_low, self.config.cube_high)
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        d.qpos[adr : adr + 7] = [xy[0], xy[1], self.config.cube_half_size, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        d.qvel[m.jnt_dofadr[m.joint("cube").id] : m.jnt_dofadr[m.joint("cube").id] + 6] = 0
        self.world.forward()
        return {}

    def object_positions(self) -> Points:
        return {"cube": self.world.data.body("cube").xpos.copy()}


class ArmPegInsert(ArmEnv):
    __doc__ = PegInsert.__doc__
    task_cls: ClassVar = PegInsert
    object_geoms: ClassVar = ("peg", "hole_wall0", "hole_wall1", "hole_wall2", "hole_wall3")

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        c = self.config
        hand = spec.body("hand")
        tcp_z = 0.1034
        # The peg hangs from the hand between the closed fingers; its tip is below the TCP.
        tip_offset = c.peg_length - 0.02  # tip distance below the TCP (m)
        hand.add_geom(
            name="peg", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, tcp_z + tip_offset - c.peg_length / 2],
            size=[c.peg_half_width, c.peg_half_width, c.peg_length / 2], mass=0.05, rgba=[0.2, 0.4, 0.9, 1],
            friction=[0.3, 0.005, 0.0001], condim=3,
        )
        hand.add_site(name="peg_tip", pos=[0, 0, tcp_z + tip_offset], size=[0.004, 0, 0], group=3)
        w = c.peg_half_width + c.clearance
        t = 0.02  # wall thickness
        fixture = spec.worldbody.add_body(name="hole", mocap=True, pos=[0.5, 0, 0])
        for i, (x, y, sx, sy) in enumerate([(w + t, 0, t, w + 2 * t), (-(w + t), 0, t, w + 2 * t), (0, w + t, w, t), (0, -(w + t), w, t)]):
            fixture.add_geom(
                name=f"hole_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, c.hole_depth / 2],
                size=[sx, sy, c.hole_depth / 2], rgba=[0.3, 0.3, 0.3, 1], friction=[0.3, 0.005, 0.0001],
            )

    def _reset_scene(self, rng: np.random.Generator) -> Points:
        m, d = self.world.model, self.world.data
        self._reset_arm(rng)
        xy = rng.uniform(self.config.hole_low, self.config.hole_high)
        d.mocap_pos[m.body("hole").mocapid[0]] = [xy[0], xy[1], 0.0]
        d.ctrl[m.actuator("gripper").id] = 2 * self.config.peg_half_width
        self.world.forward()
        return {}

    def object_positions(self) -> Points:
        d = self.world.data
        return {"hole": d.body("hole").xpos + np.array([0, 0, self.config.hole_depth]), "peg_tip": d.site("peg_tip").xpos.copy()}
