"""robotrl: a real-robot learning stack. Importing it registers the twin's gymnasium envs (robotrl/<Task>-v0)."""

from robotrl.envs import ENVS, register_envs

register_envs()

__all__ = ["ENVS", "register_envs"]
__version__ = "0.1.0"
