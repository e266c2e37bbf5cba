"""Scripted experts: one per task, Policies acting from the state observations only and configured from the task
and robot config (never the twin's internals), so they run on the twin, through ROS and on a robot alike, and
serve as scripted "humans" for interventions and as demonstration sources."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robotrl.policies import Obs, Policy, Stateless
from robotrl.robots import GRAVITY
from robotrl.tasks.arm import ArmTask, PickCube
from robotrl.tasks.base import Task
from robotrl.tasks.quad import QuadTask


# Arm experts: the fraction of the remaining distance commanded per step. Actions move the end effector from where
# it is measured when they execute; one step of latency makes the loop x' = x + k (goal - x one step ago), whose
# poles z^2 - z + k = 0 sit at |z| = sqrt(k): at k = 1.5 (the old pick gain) it circled the cube forever, at 0.5
# it settles (|z| 0.71, and 0.94 with two steps late); without latency it halves the distance per step. A
# Smith predictor (subtract the actions still in flight) would need the latency known: assumed one step on an
# arm without it, at k = 1, it is unstable.
ARM_GAIN = 0.5


class ArmExpert(Stateless):
    """Shared by the arm experts: ``move`` turns a wanted displacement into the motion part of an action, ``gain`` x
    it per step, and keeps the commanded target inside the task's safety box whether or not the previous action has
    executed yet: a step late, that action still moves the arm first, so a descent near the table would otherwise
    aim below the box (the safety filter clips it and counts a workspace violation). Near a wall it only holds
    back, never reverses, so without latency it costs at most a step there."""

    gain = ARM_GAIN
    margin = 0.001  # m inside the box

    def __init__(self, task: ArmTask):
        self.scale = task.config.action_scale
        self.lo = np.asarray(task.safety.box_min, float) + self.margin
        self.hi = np.asarray(task.safety.box_max, float) - self.margin
        self.reset()

    def reset(self) -> None:
        self.last_step = np.zeros(3)  # the motion the previous action asked for (m), maybe still in flight

    def move(self, ee: np.ndarray, delta: np.ndarray) -> np.ndarray:
        step = np.clip(self.gain * np.asarray(delta, float), -self.scale, self.scale)
        ahead = ee + self.last_step  # where the arm is once a pending previous action has executed
        low = np.minimum(self.lo - np.minimum(ee, ahead), 0.0)  # never push back: only hold a motion toward a wall
        high = np.maximum(self.hi - np.maximum(ee, ahead), 0.0)
        step = np.clip(step, low, high)
        self.last_step = step
        return step / self.scale


class ReachExpert(ArmExpert):
    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        ee = obs["state/ee_pos"]
        return self.move(ee, obs["state/target_pos"] - ee).astype(np.float32)


class PickCubeExpert(ArmExpert):
    """Above the cube -> down -> close -> lift. The phase advances on what the observations show, never on a count
    of steps alone, so a step of latency only delays it: lift once the fingers hold the cube -- as wide as its faces,
    or stopped wider on a yawed cube."""

    def __init__(self, task: PickCube):
        self.half, self.lift_to = task.config.cube_half_size, task.config.lift_height + 0.06
        super().__init__(task)

    def reset(self) -> None:
        super().reset()
        self.phase, self.closing_steps, self.last_grip = "approach", 0, 1.0

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        ee, cube, grip = obs["state/ee_pos"], obs["state/cube_pos"], float(obs["state/gripper"][0])
        stalled, self.last_grip = abs(grip - self.last_grip) < 0.005 and grip < 0.9, grip
        xy_err = np.linalg.norm(cube[:2] - ee[:2])
        if self.phase == "approach":
            goal, g = np.array([cube[0], cube[1], cube[2] + 0.08]), 1.0
            if xy_err < 0.01 and abs(ee[2] - goal[2]) < 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            goal, g = np.array([cube[0], cube[1], cube[2] - 0.005]), 1.0
            if abs(ee[2] - goal[2]) < 0.008:
                self.phase = "close"
        if self.phase == "close":
            goal, g = np.array([cube[0], cube[1], cube[2] - 0.005]), -1.0
            self.closing_steps += 1
            # Closed on the cube: as wide as its faces, or wider (a yawed cube across its edges) once the fingers stop.
            if self.closing_steps >= 3 and (grip < 2 * self.half / 0.08 + 0.05 or stalled):
                self.phase = "lift"
        if self.phase == "lift":
            goal, g = np.array([ee[0], ee[1], self.lift_to]), -1.0
            if grip < 0.1:  # closed on nothing: the cube slipped, start over
                self.phase, self.closing_steps = "approach", 0
        return np.append(self.move(ee, goal - ee), g).astype(np.float32)


class PegInsertExpert(ArmExpert):
    """Align the peg tip over the hole, then descend; the impedance controller's compliance absorbs contact."""

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        off = obs["state/tip_to_hole"]  # peg tip minus hole rim centre
        lateral = np.linalg.norm(off[:2])
        dz = 0.015 - off[2] if lateral > 0.003 else -0.02  # hover 1.5 cm above the rim until aligned
        return self.move(obs["state/ee_pos"], np.array([-off[0], -off[1], dz])).astype(np.float32)


class QuadGoalExpert(Stateless):
    """Cascaded PD pilot from the observations: goal offset -> desired velocity -> desired acceleration -> thrust
    direction -> CTBR action. ``to_goal`` is the position error; speed toward it is capped at ``max_speed``.

    It knows the airframe only nominally (mass, max thrust: the robot config); a real one -- or a randomized twin --
    is heavier or lighter and its motors stronger or weaker, and it never reads the true values. Two integrals learn
    the difference online, per episode (``reset`` clears them):
    - thrust: the vertical velocity error integrates into the acceleration the nominal hover thrust misses (10 %
      more mass otherwise sags the hover by 20 cm);
    - rates: the body-rate error (rates wanted last step minus rates measured) integrates into a rate offset. The
      airframe's rate loop is proportional only, so unequal motors leave it a steady rate error that tilts the
      quad and, about z, spins it: a drift in the world frame no position integral can follow.
    Horizontal integral action made hovers orbit the set point (it winds up while the quad accelerates), so the
    horizontal loop stays PD. One step of action latency costs the loops little phase at 50 Hz."""

    kp, kd, kp_att, max_speed, max_tilt = 2.0, 2.5, 6.0, 1.0, 0.6
    ki_thrust = 3.0  # 1/s^2: vertical acceleration learned per (m/s * s) of vertical velocity error
    thrust_err_band = 0.3  # m/s: vertical velocity errors clipped to this before integrating (less wind-up on climbs)
    max_thrust_bias = 0.4 * GRAVITY  # m/s^2: at most 40 % of the nominal hover thrust either way
    ki_rate = 5.0  # 1/s: rate offset learned per second per rad/s of rate error
    max_rate_bias = 2.0  # rad/s

    def __init__(self, task: QuadTask):
        self.mass, self.max_thrust, self.max_rate = task.robot.mass, task.robot.max_thrust, task.config.max_body_rate
        self.dt = task.control_dt
        self.reset()

    def reset(self) -> None:
        self.thrust_bias, self.rate_bias = 0.0, np.zeros(3)
        self.last_rates: np.ndarray | None = None  # the rates asked for last step, before the learned offset

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        v_des = self.kp * obs["state/to_goal"].astype(float)
        speed = np.linalg.norm(v_des)
        if speed > self.max_speed:
            v_des *= self.max_speed / speed
        return self.velocity_action(obs, v_des)

    def velocity_action(self, obs: Obs, v_des: np.ndarray, yaw_rate: float = 0.0) -> np.ndarray:
        """The CTBR action that flies at ``v_des`` (m/s, world frame, z up) while yawing at ``yaw_rate`` (rad/s,
        body z): the inner loops of ``act``, shared with a human's velocity setpoints (robotrl.tasks.teleop)."""
        v_err = np.asarray(v_des, float) - obs["state/vel"]
        self.thrust_bias = float(np.clip(self.thrust_bias + self.ki_thrust * self.dt * np.clip(v_err[2], -self.thrust_err_band,
                                         self.thrust_err_band), -self.max_thrust_bias, self.max_thrust_bias))
        acc = self.kd * v_err + np.array([0.0, 0.0, GRAVITY + self.thrust_bias])
        horizontal = np.linalg.norm(acc[:2])
        max_horizontal = acc[2] * np.tan(self.max_tilt)
        if horizontal > max_horizontal > 0:
            acc[:2] *= max_horizontal / horizontal
        body = obs["state/rotation"].reshape(3, 3).T @ acc  # desired acceleration in the body frame
        thrust = self.mass * max(body[2], 0.2 * GRAVITY)
        direction = body / np.linalg.norm(body)
        tilt_axis = np.cross([0.0, 0.0, 1.0], direction)  # rotate body z onto the desired thrust direction
        angle = np.arctan2(np.linalg.norm(tilt_axis), direction[2])
        rates = self.kp_att * angle * tilt_axis / max(np.linalg.norm(tilt_axis), 1e-9)
        rates[2] += yaw_rate  # the tilt correction has no z part: yaw is the setpoint's alone
        if self.last_rates is not None and "state/body_rates" in obs:
            missed = self.last_rates - obs["state/body_rates"]  # wanted minus got: zero once the offset is learned
            self.rate_bias = np.clip(self.rate_bias + self.ki_rate * self.dt * missed, -self.max_rate_bias, self.max_rate_bias)
        self.last_rates = rates
        action = np.concatenate([[2 * thrust / self.max_thrust - 1], (rates + self.rate_bias) / self.max_rate])
        return np.clip(action, -1, 1).astype(np.float32)


QuadHoverExpert = QuadWaypointsExpert = QuadGoalExpert


class TwinTeleoperator(Stateless):
    """A task's scripted expert as the teleoperator of a twin whose observations are deployable (cameras and
    proprioception, no object pose): like a person at the robot it sees the scene -- the twin's tracked objects and
    goals -- and acts on it. Only its actions are recorded, with the env's own observations; twin only, for demos and
    scripted takeovers, as the scripted operator is for labels (robotrl.labels)."""

    def __init__(self, env: gym.Env, expert: Policy):
        self.twin, self.expert = env.unwrapped, expert

    def reset(self) -> None:
        self.expert.reset()

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        twin = self.twin
        seen = twin.task.observe(twin.reading, twin.object_positions(), twin.goals)
        return self.expert.act({**obs, **{f"state/{k}": np.asarray(v, np.float32) for k, v in seen.items()}}, deterministic)


def make_expert(task: Task | gym.Env) -> Policy:
    """The scripted expert of a task (or of the task a twin env or RosEnv plays). Given a twin env whose
    observations are deployable (no object pose), the expert sees the scene as a teleoperator would
    (:class:`TwinTeleoperator`)."""
    env = task if isinstance(task, gym.Env) else None
    task = getattr(getattr(task, "unwrapped", task), "task", task)
    env_id = getattr(task, "env_id", "")
    if env_id not in EXPERTS:
        raise ValueError(f"no scripted expert for {env_id or type(task).__name__!r}; experts exist for: {', '.join(EXPERTS)}")
    expert = EXPERTS[env_id](task)
    if env is not None and hasattr(env.unwrapped, "object_positions") and task.privileged and task.deployable:
        return TwinTeleoperator(env, expert)
    return expert


EXPERTS: dict[str, type] = {
    "robotrl/ArmReach-v0": ReachExpert,
    "robotrl/ArmPickCube-v0": PickCubeExpert,
    "robotrl/ArmPegInsert-v0": PegInsertExpert,
    "robotrl/QuadHover-v0": QuadHoverExpert,
    "robotrl/QuadWaypoints-v0": QuadWaypointsExpert,
}
