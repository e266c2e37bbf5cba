"""Arm tasks on the twin: reach, pick a cube, insert a peg. Actions are end-effector position deltas in the
base frame (scaled by ``action_scale`` metres per step) plus, where the task uses it, a gripper opening."""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np
from pydantic import Field

from robotrl.envs.base import EnvConfig, TwinEnv
from robotrl.interfaces import ArmCommand, ArmState
from robotrl.safety import ArmSafetyConfig, ArmSafetyFilter, SafetyReport
from robotrl.sim.arm import ArmTwin
from robotrl.sim.world import ASSETS, TwinWorld

Vec2 = tuple[float, float]
Vec3 = tuple[float, float, float]
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # (x, y, z, w): TCP z-axis pointing at the table


def ee_command(action: np.ndarray, state: ArmState, action_scale: float) -> ArmCommand:
    """A normalized arm action as a command: an end-effector target ``action_scale`` x delta from the *measured*
    TCP (as on HIL-SERL's robots: a blocked arm never winds up its target, so contact forces stay bounded by
    stiffness * action_scale), and the gripper opening from action[3] when there is one."""
    delta = np.asarray(action[:3], float) * action_scale
    gripper = float((action[3] + 1) / 2) if len(action) > 3 else None
    return ArmCommand("ee_target", ee_pos=state.ee_pos + delta, gripper=gripper)


class ArmEnvConfig(EnvConfig):
    action_scale: float = Field(0.04, gt=0, le=0.2)  # m of end-effector motion per step at |action| = 1
    start_pos: Vec3 = (0.45, 0.0, 0.25)  # TCP position at reset (m)
    start_noise: float = Field(0.02, ge=0)  # uniform +- noise on the start position (m)
    impedance_time_constant: float = Field(0.03, gt=0.004)  # s; lower = stiffer end-effector
    safety: ArmSafetyConfig = ArmSafetyConfig()


class ArmEnv(TwinEnv):
    """Shared by every arm task: the arm, its safety filter and the end-effector state observations."""

    config: ArmEnvConfig
    config_cls: ClassVar = ArmEnvConfig
    uses_gripper: ClassVar[bool] = False

    def _build_world(self) -> TwinWorld:
        spec = mujoco.MjSpec.from_file(str(ASSETS / "arm_scene.xml"))
        self._add_objects(spec)
        world = TwinWorld(spec.compile())
        self.arm = ArmTwin(world)
        self.arm.set_stiffness(self.config.impedance_time_constant)
        self.safety = ArmSafetyFilter(self.config.safety)
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

    def _action_dim(self) -> int:
        return 4 if self.uses_gripper else 3

    def neutral_action(self) -> np.ndarray:
        a = np.zeros(self._action_dim(), np.float32)
        if self.uses_gripper:
            a[3] = 1.0  # open
        return a

    def _reset_arm(self, rng: np.random.Generator) -> None:
        w = self.world
        self.arm.home()
        w.data.qpos[:] = self._start_qpos
        start = np.array(self.config.start_pos) + rng.uniform(-1, 1, 3) * self.config.start_noise
        self.arm.command(ArmCommand("ee_target", ee_pos=start, ee_quat=DOWN, gripper=1.0 if self.uses_gripper else 0.0))
        w.advance(0.3)

    def _read_devices(self) -> None:
        self.state = self.arm.state()

    def _apply_action(self, action: np.ndarray) -> SafetyReport:
        cmd = ee_command(action, self.state, self.config.action_scale)
        target, _ = self.arm.target_pose()
        safe, report = self.safety.filter(cmd, self.state, target, self.control_dt)
        self.arm.command(safe)
        return report

    def _state_dims(self) -> dict[str, int]:
        dims = {"ee_pos": 3, "ee_vel": 3}
        if self.uses_gripper:
            dims["gripper"] = 1
        return dims

    def observe(self, s: ArmState, objects: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state observation from an arm reading and :meth:`object_positions`: the one definition the twin
        env and RosEnv (over the twin or the robot) both use."""
        obs = {"ee_pos": s.ee_pos, "ee_vel": s.ee_vel}
        if self.uses_gripper:
            obs["gripper"] = np.array([s.gripper])
        return obs

    def _state_obs(self) -> dict[str, np.ndarray]:
        return self.observe(self.state, self.object_positions())


class ReachConfig(ArmEnvConfig):
    target_low: Vec3 = (0.35, -0.2, 0.05)
    target_high: Vec3 = (0.65, 0.2, 0.35)
    success_radius: float = Field(0.03, gt=0)


class ArmReach(ArmEnv):
    """Bring the TCP within ``success_radius`` of a random target."""

    config_cls: ClassVar = ReachConfig
    config_file = "arm_reach.yaml"
    objects = ("target",)

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        spec.worldbody.add_site(name="target", size=[0.02, 0, 0], rgba=[0.1, 0.8, 0.1, 0.6], group=2)

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._reset_arm(rng)
        self.target = rng.uniform(self.config.target_low, self.config.target_high)
        self.world.model.site("target").pos = self.target
        self.world.forward()

    def _state_dims(self) -> dict[str, int]:
        return {**super()._state_dims(), "target_pos": 3, "to_target": 3}

    def object_positions(self) -> dict[str, np.ndarray]:
        return {"target": self.target}

    def observe(self, s: ArmState, objects: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The goal relative to the TCP, as the other tasks give it (cube_to_ee): from absolute positions alone an
        # MLP must first learn to subtract, which costs SAC thousands of steps.
        target = objects["target"]
        return {**super().observe(s, objects), "target_pos": target, "to_target": target - s.ee_pos}

    def _evaluate(self) -> tuple[float, bool, bool, dict]:
        dist = float(np.linalg.norm(self.state.ee_pos - self.target))
        return -dist, dist < self.config.success_radius, False, {"distance": dist}


class PickCubeConfig(ArmEnvConfig):
    cube_half_size: float = Field(0.02, gt=0.005, lt=0.038)  # must fit the 8 cm gripper
    cube_mass: float = Field(0.05, gt=0)
    cube_low: Vec2 = (0.45, -0.08)  # xy range of the cube at reset
    cube_high: Vec2 = (0.6, 0.08)
    lift_height: float = Field(0.06, gt=0)  # success: cube bottom this high above the table


class ArmPickCube(ArmEnv):
    """Grasp the cube and lift it ``lift_height`` above the table."""

    config_cls: ClassVar = PickCubeConfig
    config_file = "arm_pick_cube.yaml"
    uses_gripper = True
    objects = ("cube",)

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        h = self.config.cube_half_size
        cube = spec.worldbody.add_body(name="cube", pos=[0.5, 0, h])
        cube.add_freejoint(name="cube")
        cube.add_geom(
            name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[h, h, h], mass=self.config.cube_mass,
            rgba=[0.85, 0.15, 0.1, 1], friction=[1.2, 0.01, 0.001], condim=4,
        )

    def _reset_task(self, rng: np.random.Generator) -> None:
        self._reset_arm(rng)
        m, d = self.world.model, self.world.data
        adr = m.jnt_qposadr[m.joint("cube").id]
        xy = rng.uniform(self.config.cube_low, self.config.cube_high)
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        d.qpos[adr : adr + 7] = [xy[0], xy[1], self.config.cube_half_size, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        d.qvel[m.jnt_dofadr[m.joint("cube").id] : m.jnt_dofadr[m.joint("cube").id] + 6] = 0
        self.world.forward()

    def cube_pos(self) -> np.ndarray:
        return self.world.data.body("cube").xpos.copy()

    def _state_dims(self) -> dict[str, int]:
        return {**super()._state_dims(), "cube_pos": 3, "cube_to_ee": 3}

    def object_positions(self) -> dict[str, np.ndarray]:
        return {"cube": self.cube_pos()}

    def observe(self, s: ArmState, objects: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cube = objects["cube"]
        return {**super().observe(s, objects), "cube_pos": cube, "cube_to_ee": s.ee_pos - cube}

    def _evaluate(self) -> tuple[float, bool, bool, dict]:
        cube, ee = self.cube_pos(), self.state.ee_pos
        height = cube[2] - self.config.cube_half_size
        reach = float(np.linalg.norm(ee - cube))
        success = height > self.config.lift_height and reach < 0.05
        lost = not (0.1 < cube[0] < 0.9 and abs(cube[1]) < 0.5)
        dense = -reach + 5.0 * min(height, self.config.lift_height) + 2.0 * success
        return dense, bool(success), lost, {"cube_height": height}


class PegInsertConfig(ArmEnvConfig):
    start_pos: Vec3 = (0.5, 0.0, 0.2)
    peg_half_width: float = Field(0.012, gt=0.005, lt=0.03)
    peg_length: float = Field(0.08, gt=0.02)
    clearance: float = Field(0.002, gt=0)  # hole half-width minus peg half-width (m)
    hole_depth: float = Field(0.04, gt=0.005)
    hole_low: Vec2 = (0.45, -0.08)  # xy range of the hole at reset
    hole_high: Vec2 = (0.6, 0.08)
    insert_depth: float = Field(0.03, gt=0)  # success: peg tip this far below the hole's rim


class ArmPegInsert(ArmEnv):
    """Insert a peg, held rigidly in the gripper, into a hole fixture with a few mm of clearance."""

    config_cls: ClassVar = PegInsertConfig
    config_file = "arm_peg_insert.yaml"
    objects = ("hole", "peg_tip")

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        c = self.config
        hand = spec.body("hand")
        tcp_z = 0.1034
        # The peg hangs from the hand between the closed fingers; its tip is below the TCP.
        self._tip_offset = c.peg_length - 0.02  # tip distance below the TCP (m)
        hand.add_geom(
            name="peg", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, tcp_z + self._tip_offset - c.peg_length / 2],
            size=[c.peg_half_width, c.peg_half_width, c.peg_length / 2], mass=0.05, rgba=[0.2, 0.4, 0.9, 1],
            friction=[0.3, 0.005, 0.0001], condim=3,
        )
        hand.add_site(name="peg_tip", pos=[0, 0, tcp_z + self._tip_offset], size=[0.004, 0, 0], group=3)
        w = c.peg_half_width + c.clearance
        t = 0.02  # wall thickness
        fixture = spec.worldbody.add_body(name="hole", mocap=True, pos=[0.5, 0, 0])
        for i, (x, y, sx, sy) in enumerate([(w + t, 0, t, w + 2 * t), (-(w + t), 0, t, w + 2 * t), (0, w + t, w, t), (0, -(w + t), w, t)]):
            fixture.add_geom(
                name=f"hole_wall{i}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, c.hole_depth / 2],
                size=[sx, sy, c.hole_depth / 2], rgba=[0.3, 0.3, 0.3, 1], friction=[0.3, 0.005, 0.0001],
            )

    def _reset_task(self, rng: np.random.Generator) -> None:
        m, d = self.world.model, self.world.data
        self._reset_arm(rng)
        xy = rng.uniform(self.config.hole_low, self.config.hole_high)
        d.mocap_pos[m.body("hole").mocapid[0]] = [xy[0], xy[1], 0.0]
        d.ctrl[m.actuator("gripper").id] = 2 * self.config.peg_half_width
        self.world.forward()

    def hole_top(self) -> np.ndarray:
        return self.world.data.body("hole").xpos + np.array([0, 0, self.config.hole_depth])

    def peg_tip(self) -> np.ndarray:
        return self.world.data.site("peg_tip").xpos.copy()

    def _state_dims(self) -> dict[str, int]:
        return {**super()._state_dims(), "hole_pos": 3, "tip_to_hole": 3}

    def object_positions(self) -> dict[str, np.ndarray]:
        return {"hole": self.hole_top(), "peg_tip": self.peg_tip()}

    def observe(self, s: ArmState, objects: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hole = objects["hole"]
        return {**super().observe(s, objects), "hole_pos": hole, "tip_to_hole": objects["peg_tip"] - hole}

    def _evaluate(self) -> tuple[float, bool, bool, dict]:
        offset = self.peg_tip() - self.hole_top()
        lateral = float(np.linalg.norm(offset[:2]))
        depth = float(-offset[2])
        success = depth > self.config.insert_depth and lateral < self.config.clearance + 0.003
        dense = -lateral - 0.5 * max(0.0, -depth) + depth * (lateral < 0.01) + 2.0 * success
        return dense, bool(success), False, {"insert_depth": depth, "lateral_error": lateral}
