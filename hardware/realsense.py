"""RealSenseCamera: the Camera interface on an Intel RealSense (D4xx) camera through pyrealsense2.

Needs the ``realsense`` extra: ``pip install "robotrl[realsense]"`` (on Linux also the system libusb-1.0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np

try:  # rclpy's DDS libraries must load before librealsense2's: the other way round, a process that uses both
    import rclpy  # noqa: F401  (a camera node does) segfaults at exit (seen with pyrealsense2 2.59, Fast DDS 3.2)
except ImportError:
    pass
import pyrealsense2 as rs  # noqa: E402

from robotrl.interfaces import CameraIntrinsics, Frame

log = logging.getLogger(__name__)

# Domains whose timestamps are on the host's wall clock (ms since the epoch). ``global_time`` is the camera's
# hardware capture time that librealsense continuously maps onto the host clock (it tracks the drift between the
# two), so it is the true capture instant on a host timescale; ``system_time`` is the host time the frame reached
# the SDK backend. ``hardware_clock`` is the camera's own counter with an arbitrary epoch: it cannot be put on
# the host clock, so those frames are stamped at receipt instead.
_HOST_CLOCK_DOMAINS = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)


class DeviceNotFoundError(LookupError):
    """No connected RealSense matches the request; the message lists what is connected."""


class RealSenseCamera:
    """Color (RGB uint8) and optionally depth aligned to the color image (float32 metres, 0 where the camera
    measured nothing) from one RealSense, selected by serial number.

    ``stamp_ns`` is the monotonic capture time: the frame's global (hardware, host-synchronized) timestamp moved
    from the wall clock onto ``time.monotonic_ns`` (see ``_stamp_ns``). Intrinsics are those of the color
    stream; its lens distortion coefficients are not carried (RealSense color streams are near-rectilinear).

    ``read()`` returns the newest frameset and waits at most one frame period plus ``timeout_margin_s``; only the
    first read after start waits up to ``startup_timeout_s``, since a camera takes about a second to stream.
    ``depth_size`` (width, height) picks the depth resolution; None takes the camera's default for ``fps``.
    ``devices`` defaults to every RealSense on the host; tests pass an ``rs.software_device`` here.
    """

    def __init__(
        self,
        serial: str | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        depth: bool = False,
        depth_size: tuple[int, int] | None = None,
        name: str | None = None,
        devices: Iterable[rs.device] | None = None,
        startup_timeout_s: float = 5.0,
        timeout_margin_s: float = 0.05,
    ):
        self.device = select_device(serial, rs.context().query_devices() if devices is None else devices)
        self.serial: str = self.device.get_info(rs.camera_info.serial_number)
        self.name = name or f"realsense_{self.serial}"
        self.depth = depth
        _enable_global_time(self.device)
        self._pipeline: rs.pipeline | None = rs.pipeline()
        # set_device pins the pipeline to the selected device object, real or software: config.enable_device(serial)
        # would look the serial up again in a context, and software devices do not enumerate there (SDK 2.59).
        self._pipeline.set_device(self.device)
        config = _stream_config(width, height, fps, depth, depth_size)
        try:
            profile = self._pipeline.start(config)
        except RuntimeError as e:
            streams = f"color {width}x{height} rgb8" + (f", depth {depth_size or 'any size'} z16" if depth else "")
            raise RuntimeError(f"RealSense {self.serial}: cannot stream {streams} at {fps} fps: {e}") from e
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        self.intrinsics = _to_intrinsics(color.get_intrinsics())
        self._align = rs.align(rs.stream.color) if depth else None
        self._depth_scale = np.float32(self.device.first_depth_sensor().get_depth_scale()) if depth else None
        self._timeout_s = startup_timeout_s
        self._frame_timeout_s = 1.0 / fps + timeout_margin_s
        self._warned_receipt_stamps = False

    def read(self) -> Frame:
        frames, received_ns = self._wait_for_frames()
        self._timeout_s = self._frame_timeout_s
        color = frames.get_color_frame()
        # Copies: numpy views would pin the SDK's frame pool and starve the camera of buffers.
        image = np.array(color.get_data(), dtype=np.uint8)
        depth = None
        if self._align is not None:
            raw = np.asanyarray(self._align.process(frames).get_depth_frame().get_data())
            depth = raw.astype(np.float32) * self._depth_scale
        return Frame(image=image, depth=depth, stamp_ns=self._stamp_ns(color, received_ns), intrinsics=self.intrinsics)

    def close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None

    def __enter__(self) -> "RealSenseCamera":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_for_frames(self) -> tuple[rs.composite_frame, int]:
        """The newest frameset and the monotonic time it was received. The pipeline only emits framesets holding
        every enabled stream (a stream that dropped a frame is filled in with its previous frame)."""
        if self._pipeline is None:
            raise RuntimeError(f"RealSense {self.serial} is closed")
        ok, frames = self._pipeline.try_wait_for_frames(round(self._timeout_s * 1000))
        if not ok:
            raise TimeoutError(
                f"RealSense {self.serial} ({self.name}): no frame within {self._timeout_s * 1000:.0f} ms "
                "(camera unplugged, USB bandwidth exhausted, or the fps not supported?)"
            )
        return frames, time.monotonic_ns()

    def _stamp_ns(self, frame: rs.frame, received_ns: int) -> int:
        """Monotonic capture time. Host-clock timestamps (ms on the wall clock) are shifted onto the monotonic
        clock by the current offset between the two clocks, so a global-time stamp keeps the hardware capture
        instant (transfer latency excluded); a wall-clock step (NTP) between capture and read shifts that one
        frame by the step. Otherwise the receipt time is used, which includes the capture-to-host latency."""
        if frame.get_frame_timestamp_domain() in _HOST_CLOCK_DOMAINS:
            wall_to_monotonic_ns = time.monotonic_ns() - time.time_ns()
            return round(frame.get_timestamp() * 1e6) + wall_to_monotonic_ns
        if not self._warned_receipt_stamps:
            log.warning(
                "RealSense %s gives %s timestamps (global time off?): stamping frames at receipt",
                self.serial,
                frame.get_frame_timestamp_domain(),
            )
            self._warned_receipt_stamps = True
        return received_ns


def select_device(serial: str | None, devices: Iterable[rs.device]) -> rs.device:
    """The device with ``serial``, or the only device when ``serial`` is None."""
    by_serial = {d.get_info(rs.camera_info.serial_number): d for d in devices}
    if serial in by_serial:
        return by_serial[serial]
    if serial is None and len(by_serial) == 1:
        return next(iter(by_serial.values()))
    if not by_serial:
        raise DeviceNotFoundError(
            f"No RealSense camera connected{f' (wanted serial {serial})' if serial else ''}: check the USB3 "
            "cable and port, that libusb-1.0 is installed and that udev rules give this user access"
        )
    connected = ", ".join(f"{s} ({_device_name(d)})" for s, d in by_serial.items())
    if serial is None:
        raise DeviceNotFoundError(f"{len(by_serial)} RealSense cameras connected, pass serial= one of: {connected}")
    raise DeviceNotFoundError(f"No RealSense camera with serial {serial}; connected: {connected}")


def _device_name(device: rs.device) -> str:
    return device.get_info(rs.camera_info.name) if device.supports(rs.camera_info.name) else "unnamed"


def _enable_global_time(device: rs.device) -> None:
    """Ask every sensor for host-synchronized hardware timestamps (already the default on D4xx firmware)."""
    for sensor in device.query_sensors():
        if sensor.supports(rs.option.global_time_enabled):
            sensor.set_option(rs.option.global_time_enabled, 1.0)


def _stream_config(width: int, height: int, fps: int, depth: bool, depth_size: tuple[int, int] | None) -> rs.config:
    config = rs.config()
    config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
    if depth and depth_size is None:
        config.enable_stream(rs.stream.depth, rs.format.z16, fps)  # the camera's default depth resolution
    elif depth:
        config.enable_stream(rs.stream.depth, *depth_size, rs.format.z16, fps)
    return config


def _to_intrinsics(i: rs.intrinsics) -> CameraIntrinsics:
    return CameraIntrinsics(width=i.width, height=i.height, fx=i.fx, fy=i.fy, cx=i.ppx, cy=i.ppy)
