"""Domain randomization of a twin: physical and visual parameters resampled at every reset."""

from __future__ import annotations

import numpy as np

from robotrl.geometry import quat_from_rotvec, quat_multiply, wxyz_from_xyzw, xyzw_from_wxyz
from robotrl.sim.world import TwinWorld
from robotrl.tasks.base import Range, RandomizationConfig


class Randomizer:
    """Keeps the nominal model values and writes a fresh random draw into the model on ``apply``."""

    def __init__(self, world: TwinWorld, config: RandomizationConfig):
        self.world, self.config = world, config
        m = world.model
        self._nominal = {
            name: getattr(m, name).copy()
            for name in (
                "body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gainprm",
                "actuator_biasprm", "cam_pos", "cam_quat", "light_diffuse", "light_pos",
            )
        }

    def apply(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Resample every knob; returns the scales drawn (for logging). With ``enabled: false`` restores nominal."""
        m, c, nom = self.world.model, self.config, self._nominal
        for name, value in nom.items():
            getattr(m, name)[:] = value
        if not c.enabled:
            return {}

        def scale(shape: tuple[int, ...], rng_range: Range) -> np.ndarray:
            return rng.uniform(rng_range[0], rng_range[1], size=shape)

        draws = {
            "mass": scale((m.nbody,), c.mass_scale),
            "friction": scale((m.ngeom,), c.friction_scale),
            "damping": scale((m.nv,), c.damping_scale),
            "actuator_gain": scale((m.nu,), c.actuator_gain_scale),
            "light": scale((m.nlight,), c.light_scale),
        }
        m.body_mass[:] = nom["body_mass"] * draws["mass"]
        m.body_inertia[:] = nom["body_inertia"] * draws["mass"][:, None]
        m.geom_friction[:, 0] = nom["geom_friction"][:, 0] * draws["friction"]
        m.dof_damping[:] = nom["dof_damping"] * draws["damping"]
        # Scale gain and position/velocity bias together so servos keep their setpoint, only their strength changes.
        m.actuator_gainprm[:, 0] = nom["actuator_gainprm"][:, 0] * draws["actuator_gain"]
        m.actuator_biasprm[:, 1:3] = nom["actuator_biasprm"][:, 1:3] * draws["actuator_gain"][:, None]
        m.cam_pos[:] = nom["cam_pos"] + rng.uniform(-c.camera_pos_noise, c.camera_pos_noise, size=(m.ncam, 3))
        for i in range(m.ncam):
            m.cam_quat[i] = _perturb_quat_wxyz(nom["cam_quat"][i], rng.normal(0, c.camera_angle_noise, 3))
        m.light_diffuse[:] = np.clip(nom["light_diffuse"] * draws["light"][:, None], 0, 1)
        m.light_pos[:] = nom["light_pos"] + rng.uniform(-c.light_pos_noise, c.light_pos_noise, size=(m.nlight, 3))
        return draws


def _perturb_quat_wxyz(q: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion ``q`` rotated by the small world-frame rotation ``rotvec``."""
    return wxyz_from_xyzw(quat_multiply(quat_from_rotvec(rotvec), xyzw_from_wxyz(q)))
