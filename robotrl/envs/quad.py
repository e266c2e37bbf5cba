"""Quadrotor tasks on the twin: the quadrotor, goal markers and start states; the tasks are robotrl.tasks.quad."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from robotrl.envs.base import TwinEnv
from robotrl.geometry import quat_from_euler
from robotrl.interfaces import QuadCommand
from robotrl.safety import SafetyReport
from robotrl.sim.quad import QuadTwin
from robotrl.sim.world import TwinWorld
from robotrl.tasks.base import Points
from robotrl.tasks.quad import Hover, QuadTask, Waypoints


class QuadEnv(TwinEnv):
    task: QuadTask
    render_camera = "chase"

    def _build_world(self) -> TwinWorld:
        self.quad = QuadTwin(self.task.robot, extra_worldbody=self._markers())
        self.safety = self.task.safety_filter()
        return self.quad.world

    def _markers(self) -> str:
        """MJCF of the goal markers (visual only)."""
        return ""

    def _reset_quad(self, rng: np.random.Generator, around: np.ndarray) -> None:
        c = self.config
        self.quad.reset()
        tilt = rng.uniform(-c.init_tilt_noise, c.init_tilt_noise, 2)
        self.quad.set_state(
            pos=around + rng.uniform(-c.init_pos_noise, c.init_pos_noise, 3),
            quat_xyzw=quat_from_euler(tilt[0], tilt[1], rng.uniform(-np.pi, np.pi)),
            vel=rng.uniform(-c.init_vel_noise, c.init_vel_noise, 3),
            body_rates=rng.uniform(-c.init_rate_noise, c.init_rate_noise, 3),
            motor_thrusts=self.quad.hover_thrust / 4,
        )
        self.quad.arm()
        self.quad.command(QuadCommand("ctbr", thrust=self.quad.hover_thrust))

    def _read_devices(self) -> None:
        self.reading = self.quad.state()

    def _apply(self, command: QuadCommand) -> SafetyReport:
        safe, report = self.safety.filter(command, self.reading)
        self.quad.command(safe)
        return report


class QuadHover(QuadEnv):
    __doc__ = Hover.__doc__
    task_cls: ClassVar = Hover

    def _markers(self) -> str:
        x, y, z = self.config.target
        return f'<site name="target" pos="{x} {y} {z}" size="0.03" rgba="0.1 0.8 0.1 0.5" group="2"/>'

    def _reset_scene(self, rng: np.random.Generator) -> Points:
        goals = self.task.sample_goals(rng)
        self._reset_quad(rng, goals["target"])
        return goals


class QuadWaypoints(QuadEnv):
    __doc__ = Waypoints.__doc__
    task_cls: ClassVar = Waypoints

    def _markers(self) -> str:
        return "".join(f'<site name="{g}" pos="0 0 1" size="0.03" rgba="0.9 0.6 0.1 0.6" group="2"/>' for g in self.task.goals)

    def _reset_scene(self, rng: np.random.Generator) -> Points:
        goals = self.task.sample_goals(rng)
        for name, pos in goals.items():
            self.world.model.site(name).pos = pos
        self._reset_quad(rng, np.array(self.config.start))
        return goals
