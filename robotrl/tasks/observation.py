"""The observation spec (a task config section) and the one processor that applies it, in the twin and on a robot.

A task produces every state vector it knows and every camera frame at the camera's own size; the spec says what
the policy sees: which ``state/<key>`` vectors, which ``images/<camera>``, each frame cropped and resized to
``image_size`` x ``image_size``, and optionally the last ``frame_stack`` observations stacked (state vectors
concatenated, images along channels, oldest first). The processor's ``space`` is the policy's observation space,
and every observation it returns is in it.

Key order: ``space`` lists its keys sorted (gymnasium's ``Dict`` order, as the twin env always had), and every
observation dict has exactly those keys in that order, so the order of names in the YAML never changes what a
policy sees.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import gymnasium as gym
import numpy as np
from pydantic import Field, field_validator

from robotrl.config import ConfigError, StrictModel

Crop = tuple[float, float, float, float]  # (left, top, right, bottom) as fractions of the frame


class ObservationSpec(StrictModel):
    """What the policy observes (the task config's ``observation`` section)."""

    state: list[str] | None = None  # the task's state keys the policy sees (names without "state/"); None: all
    cameras: list[str] = []  # images/<camera> observations
    image_size: int = Field(96, ge=16, le=1024)  # every camera becomes image_size x image_size x 3
    # per camera: (left, top, right, bottom) as fractions of the frame; a camera without one gets the centred
    # largest square, so a 640x480 frame is never squashed. A configured crop is resized as it is: make it square
    # in pixels to keep the aspect ratio.
    crop: dict[str, Crop] = {}
    frame_stack: int = Field(1, ge=1, le=8)  # the last k observations, oldest first
    # Asymmetric actor-critic, twin only: these state keys (e.g. the cube's true pose) are served as critic/<key>,
    # which the critic reads and no policy does. They need ground truth: on a robot, leave this empty.
    critic_state: list[str] = []

    @field_validator("state", "cameras", "critic_state")
    @classmethod
    def _no_duplicates(cls, names: list[str] | None) -> list[str] | None:
        dup = sorted({n for n in names or () if (names or []).count(n) > 1})
        if dup:
            raise ValueError(f"listed more than once: {', '.join(dup)}")
        return names

    @field_validator("crop")
    @classmethod
    def _crop_in_frame(cls, crop: dict[str, Crop]) -> dict[str, Crop]:
        for cam, (left, top, right, bottom) in crop.items():
            if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
                raise ValueError(
                    f"camera {cam!r}: (left, top, right, bottom) must satisfy 0 <= left < right <= 1 and "
                    f"0 <= top < bottom <= 1, got {(left, top, right, bottom)}"
                )
        return crop


def crop_box(height: int, width: int, crop: Crop | None) -> tuple[int, int, int, int]:
    """The pixel box ``(x0, y0, x1, y1)`` (end exclusive, at least 1 px) of ``crop`` in a ``height`` x ``width``
    frame; ``None`` is the centred largest square."""
    if crop is None:
        side = min(height, width)
        x0, y0 = (width - side) // 2, (height - side) // 2
        return x0, y0, x0 + side, y0 + side
    left, top, right, bottom = crop
    x0, x1 = int(round(left * width)), int(round(right * width))
    y0, y1 = int(round(top * height)), int(round(bottom * height))
    x0, y0 = min(x0, width - 1), min(y0, height - 1)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def crop_resize(image: np.ndarray, crop: Crop | None, size: int) -> np.ndarray:
    """``image`` (HxWxC) cropped to ``crop`` (fractions, or ``None``: the centred largest square) and resized to
    ``size`` x ``size`` with ``cv2.INTER_AREA``. When the crop is already ``size`` x ``size`` this returns a view
    of ``image`` (no copy, no resampling)."""
    x0, y0, x1, y1 = crop_box(image.shape[0], image.shape[1], crop)
    region = image[y0:y1, x0:x1]
    if region.shape[0] == size and region.shape[1] == size:
        return region
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


class ObservationProcessor:
    """Turns a task's full state and raw camera frames into the policy's observation, as ``spec`` says.

    ``state_dims``: every state key of the task and its vector length. ``camera_names``: the cameras the task
    or robot has (checked when given). ``where``: the config key of ``spec``, used in error messages.
    """

    def __init__(
        self,
        spec: ObservationSpec,
        state_dims: Mapping[str, int],
        camera_names: Sequence[str] | None = None,
        where: str = "observation",
    ):
        if spec.state is not None:
            for key in spec.state:
                if key not in state_dims:
                    raise ConfigError(
                        f"key '{where}.state': unknown state key {key!r}; the task has: {', '.join(state_dims)}"
                    )
        if camera_names is not None:
            for cam in spec.cameras:
                if cam not in camera_names:
                    known = ", ".join(camera_names) or "none"
                    raise ConfigError(f"key '{where}.cameras': unknown camera {cam!r}; the task has: {known}")
        for key in spec.critic_state:
            if key not in state_dims:
                raise ConfigError(
                    f"key '{where}.critic_state': unknown state key {key!r}; the task has: {', '.join(state_dims)}"
                )
        for cam in spec.crop:
            if cam not in spec.cameras:
                raise ConfigError(
                    f"key '{where}.crop': camera {cam!r} is not in '{where}.cameras' "
                    f"({', '.join(spec.cameras) or 'none listed'})"
                )
        self.spec = spec
        k, size = spec.frame_stack, spec.image_size
        selected = list(state_dims) if spec.state is None else spec.state
        self.state_dims: dict[str, int] = {key: int(state_dims[key]) for key in selected}
        spaces: dict[str, gym.Space] = {
            f"state/{key}": gym.spaces.Box(-np.inf, np.inf, shape=(dim * k,), dtype=np.float32)
            for key, dim in self.state_dims.items()
        }
        self.critic_dims: dict[str, int] = {key: int(state_dims[key]) for key in spec.critic_state}
        spaces.update({f"critic/{key}": gym.spaces.Box(-np.inf, np.inf, shape=(dim * k,), dtype=np.float32)
                       for key, dim in self.critic_dims.items()})
        for cam in spec.cameras:
            spaces[f"images/{cam}"] = gym.spaces.Box(0, 255, shape=(size, size, 3 * k), dtype=np.uint8)
        self.space = gym.spaces.Dict(spaces)
        self._last: dict[str, np.ndarray] | None = None  # the previous output (frame stacking only)

    @property
    def cameras(self) -> list[str]:
        return list(self.spec.cameras)

    def image_shape(self, camera: str) -> tuple[int, int, int]:
        """The shape of ``images/<camera>`` in :attr:`space`."""
        return self.space[f"images/{camera}"].shape

    def reset(self) -> None:
        """A new episode: the next call fills the frame-stack history with copies of its observation."""
        self._last = None

    def __call__(self, state: Mapping[str, np.ndarray], images: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The policy's observation from ``state`` (the task's state vectors; keys not selected are ignored) and
        ``images`` (camera -> uint8 HxWx3 frame of any size). Without frame stacking, arrays that need no work
        are returned as they are (a float32 state vector, a frame already at ``image_size``; crops are views)."""
        obs: dict[str, np.ndarray] = {}
        for key in self.space:
            kind, name = key.split("/", 1)
            obs[key] = self._image(name, images) if kind == "images" else self._state(name, state, kind)
        k = self.spec.frame_stack
        if k > 1:
            if self._last is None:
                obs = {key: np.concatenate([v] * k, axis=-1) for key, v in obs.items()}
            else:
                obs = {key: np.concatenate([self._last[key][..., v.shape[-1]:], v], axis=-1) for key, v in obs.items()}
            self._last = obs
        return obs

    def _state(self, name: str, state: Mapping[str, np.ndarray], kind: str = "state") -> np.ndarray:
        if name not in state:
            hint = ("; critic_state needs ground truth (the twin's tracked objects): leave it empty on a robot"
                    if kind == "critic" else "")
            raise ValueError(f"observation {kind}/{name}: missing from the task's state (got: {', '.join(state)}){hint}")
        value = np.asarray(state[name], dtype=np.float32)
        dim = (self.state_dims if kind == "state" else self.critic_dims)[name]
        if value.shape != (dim,):
            raise ValueError(f"observation {kind}/{name}: shape {value.shape}, expected ({dim},)")
        return value

    def _image(self, camera: str, images: Mapping[str, np.ndarray]) -> np.ndarray:
        if camera not in images:
            raise ValueError(f"observation images/{camera}: no frame (got cameras: {', '.join(images) or 'none'})")
        image = images[camera]
        ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if not ok or 0 in image.shape:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"observation images/{camera}: expected a uint8 HxWx3 frame, got {got}")
        return crop_resize(image, self.spec.crop.get(camera), self.spec.image_size)
