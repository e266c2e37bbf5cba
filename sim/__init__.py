"""The MuJoCo twin: devices that implement robotrl.interfaces on simulated physics (imported as robotrl.sim)."""

from robotrl.sim.world import TwinWorld

__all__ = ["TwinWorld"]
