"""TwinWorld: one MuJoCo model + data, the sim clock, and the per-physics-step controllers of the devices."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import mujoco

ASSETS = Path(__file__).parent / "assets"

SubstepController = Callable[[], None]


class TwinWorld:
    """Owns the physics. Devices (arm, quadrotor, cameras) share one world and act on it.

    ``advance(seconds)`` runs physics for that long. Controllers registered with ``add_controller`` run
    before every physics step at their own rate (e.g. the quadrotor's body-rate loop); with none registered
    the whole interval is one ``mj_step(nstep=...)`` call in C.
    """

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        self._controllers: list[tuple[int, SubstepController]] = []
        self._step_count = 0

    @classmethod
    def from_xml(cls, path: str | Path) -> "TwinWorld":
        return cls(mujoco.MjModel.from_xml_path(str(path)))

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def stamp_ns(self) -> int:
        """Sim time in ns: the twin's monotonic capture clock."""
        return int(round(self.data.time * 1e9))

    def add_controller(self, fn: SubstepController, every_n_steps: int = 1) -> None:
        self._controllers.append((max(1, int(every_n_steps)), fn))

    def reset(self, keyframe: str | None = None) -> None:
        if keyframe is None:
            mujoco.mj_resetData(self.model, self.data)
        else:
            mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key(keyframe).id)
        self._step_count = 0
        mujoco.mj_forward(self.model, self.data)

    def steps_for(self, seconds: float) -> int:
        return max(1, int(round(seconds / self.dt)))

    def advance(self, seconds: float | None = None, n_steps: int | None = None) -> None:
        n = n_steps if n_steps is not None else self.steps_for(seconds or 0.0)
        m, d = self.model, self.data
        if not self._controllers:
            mujoco.mj_step(m, d, nstep=n)
            self._step_count += n
            return
        # Run physics in chunks between controller ticks, so controllers at a lower rate than physics cost
        # nothing in between (a C loop of mj_step).
        periods = [p for p, _ in self._controllers]
        done = 0
        while done < n:
            k = self._step_count
            for period, fn in self._controllers:
                if k % period == 0:
                    fn()
            chunk = min(n - done, min(p - k % p for p in periods))
            mujoco.mj_step(m, d, nstep=chunk)
            self._step_count += chunk
            done += chunk

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)
