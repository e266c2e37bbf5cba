"""Domain randomization of a twin: physical and visual parameters resampled at every reset."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from robotrl.geometry import quat_from_rotvec, quat_multiply, wxyz_from_xyzw, xyzw_from_wxyz
from robotrl.sim.world import TwinWorld
from robotrl.tasks.base import Range, RandomizationConfig


class Randomizer:
    """Keeps the nominal model values and writes a fresh random draw into the model on ``apply``. ``objects``: the
    names of the task's object geoms (cube, peg, hole), whose colours it varies."""

    def __init__(self, world: TwinWorld, config: RandomizationConfig, objects: Sequence[str] = ()):
        self.world, self.config = world, config
        m = world.model
        self._nominal = {
            name: getattr(m, name).copy()
            for name in (
                "body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gainprm",
                "actuator_biasprm", "cam_pos", "cam_quat", "light_diffuse", "light_pos", "geom_rgba", "mat_rgba",
            )
        }
        unknown = sorted(set(config.object_rgb) - set(objects))
        if unknown:
            raise ValueError(f"randomization.object_rgb: {', '.join(unknown)} is not an object of this twin; its objects: "
                             f"{', '.join(objects) or 'none'}")
        self._objects = {name: m.geom(name).id for name in objects}

    def apply(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Resample every knob; returns the scales drawn (for logging). With ``enabled: false`` restores nominal."""
        m, c, nom = self.world.model, self.config, self._nominal
        for name, value in nom.items():
            getattr(m, name)[:] = value
        if not c.enabled:
            return {}

        def scale(shape: tuple[int, ...], knob: str) -> np.ndarray:
            return _draw_scale(rng, shape, getattr(c, knob), c.outside.get(knob))

        def noise(shape: tuple[int, ...], knob: str) -> np.ndarray:
            return _draw_noise(rng, shape, getattr(c, knob), c.outside.get(knob))

        draws = {
            "mass": scale((m.nbody,), "mass_scale"),
            "friction": scale((m.ngeom,), "friction_scale"),
            "damping": scale((m.nv,), "damping_scale"),
            "actuator_gain": scale((m.nu,), "actuator_gain_scale"),
            "light": scale((m.nlight,), "light_scale"),
        }
        m.body_mass[:] = nom["body_mass"] * draws["mass"]
        m.body_inertia[:] = nom["body_inertia"] * draws["mass"][:, None]
        m.geom_friction[:, 0] = nom["geom_friction"][:, 0] * draws["friction"]
        m.dof_damping[:] = nom["dof_damping"] * draws["damping"]
        # Scale gain and position/velocity bias together so servos keep their setpoint, only their strength changes.
        m.actuator_gainprm[:, 0] = nom["actuator_gainprm"][:, 0] * draws["actuator_gain"]
        m.actuator_biasprm[:, 1:3] = nom["actuator_biasprm"][:, 1:3] * draws["actuator_gain"][:, None]
        m.cam_pos[:] = nom["cam_pos"] + noise((m.ncam, 3), "camera_pos_noise")
        for i, rotvec in enumerate(noise((m.ncam, 3), "camera_angle_noise")):
            m.cam_quat[i] = _perturb_quat_wxyz(nom["cam_quat"][i], rotvec)
        m.light_diffuse[:] = np.clip(nom["light_diffuse"] * draws["light"][:, None], 0, 1)
        m.light_pos[:] = nom["light_pos"] + noise((m.nlight, 3), "light_pos_noise")
        draws["surface_tint"] = scale((m.nmat, 3), "surface_tint")
        m.mat_rgba[:, :3] = np.clip(nom["mat_rgba"][:, :3] * draws["surface_tint"], 0, 1)
        for name, geom in self._objects.items():
            base = np.asarray(c.object_rgb.get(name, nom["geom_rgba"][geom, :3]))
            m.geom_rgba[geom, :3] = np.clip(base + noise((3,), "object_rgb_noise"), 0, 1)
        return draws


def _draw_scale(rng: np.random.Generator, shape: tuple[int, ...], span: Range, avoid: Range | float | None) -> np.ndarray:
    """Uniform on ``span``, or on ``span`` minus the interval ``avoid`` (a held-out draw never in training's range)."""
    lo, hi = span
    if avoid is None:
        return rng.uniform(lo, hi, size=shape)
    a, b = avoid if isinstance(avoid, tuple) else (avoid, avoid)
    below, above = max(0.0, min(a, hi) - lo), max(0.0, hi - max(b, lo))
    u = rng.uniform(0.0, below + above, size=shape)
    return np.where(u < below, lo + u, max(b, lo) + (u - below))


def _draw_noise(rng: np.random.Generator, shape: tuple[int, ...], bound: float, avoid: float | None) -> np.ndarray:
    """Uniform offsets in [-bound, bound], or with every component's magnitude beyond ``avoid``."""
    if avoid is None:
        return rng.uniform(-bound, bound, size=shape)
    return rng.choice([-1.0, 1.0], size=shape) * (avoid + rng.uniform(0.0, bound - avoid, size=shape))


def _perturb_quat_wxyz(q: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion ``q`` rotated by the small world-frame rotation ``rotvec``."""
    return wxyz_from_xyzw(quat_multiply(quat_from_rotvec(rotvec), xyzw_from_wxyz(q)))
