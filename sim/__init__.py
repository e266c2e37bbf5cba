"""The MuJoCo twin: devices that implement robotrl.interfaces on simulated physics.

Rendering is headless by default (EGL). MUJOCO_GL must be set before mujoco is imported, so it is set here;
export MUJOCO_GL=osmesa (software) or glfw (a window) to override.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from robotrl.sim.world import TwinWorld  # noqa: E402

__all__ = ["TwinWorld"]
