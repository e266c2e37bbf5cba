"""robotrl: a real-robot learning stack. Importing it registers the twin's gymnasium envs (robotrl/<Task>-v0).

Rendering is headless by default (EGL). MUJOCO_GL must be set before mujoco is first imported, and every
robotrl module imports this package first, so it is set here; export MUJOCO_GL=osmesa (software) or glfw
(a window) to override.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from robotrl.envs import ENVS, register_envs  # noqa: E402

register_envs()

__all__ = ["ENVS", "register_envs"]
__version__ = "0.1.0"
