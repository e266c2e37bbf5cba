"""TwinCamera: the Camera interface on a MuJoCo camera, rendered headless."""

from __future__ import annotations

import mujoco
import numpy as np

from robotrl.interfaces import CameraIntrinsics, Frame
from robotrl.sim.world import TwinWorld


class TwinCamera:
    """Renders ``camera`` of the world at ``width`` x ``height``. Shadows and reflections are off in the scenes
    (software GL renders ~40x faster without them). The GL context is created on the first read."""

    def __init__(self, world: TwinWorld, camera: str, width: int = 96, height: int = 96, depth: bool = False):
        self.world = world
        self.name = camera
        self.depth = depth
        self._cam_id = world.model.camera(camera).id
        self._size = (height, width)
        self.intrinsics = CameraIntrinsics.from_fovy(width, height, float(world.model.cam_fovy[self._cam_id]))
        self._renderer: mujoco.Renderer | None = None
        self._depth_renderer: mujoco.Renderer | None = None

    def read(self) -> Frame:
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.world.model, *self._size)
        self._renderer.update_scene(self.world.data, self._cam_id)
        image = self._renderer.render()
        depth = None
        if self.depth:
            if self._depth_renderer is None:
                self._depth_renderer = mujoco.Renderer(self.world.model, *self._size)
                self._depth_renderer.enable_depth_rendering()
            self._depth_renderer.update_scene(self.world.data, self._cam_id)
            depth = self._depth_renderer.render().astype(np.float32)
        return Frame(image=image, depth=depth, stamp_ns=self.world.stamp_ns, intrinsics=self.intrinsics)

    def close(self) -> None:
        for r in (self._renderer, self._depth_renderer):
            if r is not None:
                r.close()
        self._renderer = self._depth_renderer = None
