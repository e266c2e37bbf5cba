"""RealSenseCamera through the real librealsense code path (pipeline, syncer, align) without a camera: an
``rs.software_device`` with a color and a depth sensor stands in for the camera and frames are pushed into it
with known pixels, depth units and timestamps."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("robotrl.hardware.realsense")  # skipped without pyrealsense2; it loads the SDK after rclpy

from robotrl.hardware.realsense import DeviceNotFoundError, RealSenseCamera, rs  # noqa: E402
from robotrl.interfaces import Camera  # noqa: E402

SERIAL = "123456789012"
COLOR_W, COLOR_H, DEPTH_W, DEPTH_H, FPS = 64, 48, 32, 24, 30
DEPTH_UNITS = 1e-4  # not the D4xx default of 1 mm, so a hard-coded scale shows up
# The color camera has twice the depth camera's focal length and image size, on the same optical axis, so
# aligning depth to color is a 2x upsampling with nothing lost at the borders.
COLOR_K = dict(fx=60.0, fy=62.0, ppx=32.0, ppy=24.0)
DEPTH_K = dict(fx=30.0, fy=31.0, ppx=16.0, ppy=12.0)


class SoftwareRealSense:
    """A software device shaped like a D4xx: a depth sensor (z16) and a color sensor (rgb8)."""

    def __init__(self, serial: str = SERIAL, color_size: tuple[int, int] = (COLOR_W, COLOR_H)):
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, serial)
        self.device.register_info(rs.camera_info.name, "Software D4xx")
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        self.depth_profile = self.depth_sensor.add_video_stream(
            _video_stream(rs.stream.depth, 0, DEPTH_W, DEPTH_H, rs.format.z16, 2, DEPTH_K)
        ).as_video_stream_profile()
        self.color_profile = self.color_sensor.add_video_stream(
            _video_stream(rs.stream.color, 1, *color_size, rs.format.rgb8, 3,
                          {k: v * color_size[0] / COLOR_W for k, v in COLOR_K.items()})
        ).as_video_stream_profile()
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS)
        identity = rs.extrinsics()
        identity.rotation, identity.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, identity)
        self.frame_number = 0

    def push(
        self,
        rgb: np.ndarray,
        depth_raw: np.ndarray | None = None,
        timestamp_ms: float | None = None,
        domain: rs.timestamp_domain = rs.timestamp_domain.global_time,
    ) -> float:
        """Push one color frame (and a depth frame with the same timestamp); returns the timestamp in ms."""
        self.frame_number += 1
        timestamp_ms = time.time() * 1000 if timestamp_ms is None else timestamp_ms
        self.color_sensor.on_video_frame(_frame(rgb, 3, self.color_profile, self.frame_number, timestamp_ms, domain))
        if depth_raw is not None:
            depth = _frame(depth_raw, 2, self.depth_profile, self.frame_number, timestamp_ms, domain)
            depth.depth_units = DEPTH_UNITS
            self.depth_sensor.on_video_frame(depth)
        return timestamp_ms


def _video_stream(kind, uid: int, width: int, height: int, fmt, bpp: int, k: dict) -> rs.video_stream:
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid, stream.fmt, stream.bpp = kind, 0, uid, fmt, bpp
    stream.width, stream.height, stream.fps = width, height, FPS
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.fx, intrinsics.fy, intrinsics.ppx, intrinsics.ppy = k["fx"], k["fy"], k["ppx"], k["ppy"]
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5
    stream.intrinsics = intrinsics
    return stream


def _frame(pixels: np.ndarray, bpp: int, profile, number: int, timestamp_ms: float, domain) -> rs.software_video_frame:
    frame = rs.software_video_frame()
    frame.pixels, frame.bpp, frame.stride = np.ascontiguousarray(pixels), bpp, pixels.shape[1] * bpp
    frame.timestamp, frame.domain, frame.frame_number, frame.profile = timestamp_ms, domain, number, profile
    return frame


def _rgb(seed: int) -> np.ndarray:
    """Distinct values in every channel, so a channel swap or a flip changes the image."""
    return np.random.default_rng(seed).integers(0, 256, (COLOR_H, COLOR_W, 3), dtype=np.uint8)


def _two_planes() -> np.ndarray:
    """Raw depth: 1 m on the left half of the depth image, 2 m on the right half."""
    raw = np.full((DEPTH_H, DEPTH_W), round(1.0 / DEPTH_UNITS), np.uint16)
    raw[:, DEPTH_W // 2 :] = round(2.0 / DEPTH_UNITS)
    return raw


@pytest.fixture
def sw() -> SoftwareRealSense:
    return SoftwareRealSense()


def _camera(sw: SoftwareRealSense, **kwargs) -> RealSenseCamera:
    kwargs = {"width": COLOR_W, "height": COLOR_H, "fps": FPS, "devices": [sw.device], **kwargs}
    return RealSenseCamera(SERIAL, **kwargs)


def test_color_frames_come_out_with_the_pushed_rgb_pixels(sw):
    with _camera(sw) as cam:
        assert isinstance(cam, Camera) and cam.name == f"realsense_{SERIAL}"
        for seed in range(3):
            rgb = _rgb(seed)
            sw.push(rgb)
            frame = cam.read()
            assert frame.image.dtype == np.uint8 and frame.image.shape == (COLOR_H, COLOR_W, 3)
            np.testing.assert_array_equal(frame.image, rgb)
            assert frame.depth is None


def test_read_returns_the_newest_frameset(sw):
    with _camera(sw) as cam:
        for seed in range(3):
            sw.push(_rgb(seed))
        time.sleep(0.3)  # let the SDK's threads deliver all three
        np.testing.assert_array_equal(cam.read().image, _rgb(2))


def test_depth_is_aligned_to_color_in_metres_using_the_depth_units(sw):
    with _camera(sw, depth=True) as cam:
        sw.push(_rgb(0), _two_planes())
        frame = cam.read()
    assert frame.depth is not None and frame.depth.dtype == np.float32
    assert frame.depth.shape == (COLOR_H, COLOR_W)  # the color resolution, not the depth sensor's 32x24
    np.testing.assert_allclose(frame.depth[:, : COLOR_W // 2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(frame.depth[:, COLOR_W // 2 :], 2.0, rtol=1e-6)
    np.testing.assert_array_equal(frame.image, _rgb(0))


def test_intrinsics_are_the_color_stream_intrinsics(sw):
    with _camera(sw, depth=True, depth_size=(DEPTH_W, DEPTH_H)) as cam:
        k = cam.intrinsics
        assert (k.width, k.height) == (COLOR_W, COLOR_H)
        assert (k.fx, k.fy, k.cx, k.cy) == (COLOR_K["fx"], COLOR_K["fy"], COLOR_K["ppx"], COLOR_K["ppy"])
        sw.push(_rgb(0), _two_planes())
        assert cam.read().intrinsics == k


@pytest.mark.parametrize("domain", [rs.timestamp_domain.global_time, rs.timestamp_domain.system_time])
def test_host_clock_timestamps_become_monotonic_capture_stamps(sw, domain):
    """A frame captured 300 ms ago (on the host wall clock) is stamped 300 ms before now on the monotonic
    clock, however late it is read; frame-to-frame intervals are the pushed ones."""
    with _camera(sw) as cam:
        captured_ms = time.time() * 1000 - 300.0
        sw.push(_rgb(0), timestamp_ms=captured_ms, domain=domain)
        first = cam.read().stamp_ns
        expected = round(captured_ms * 1e6) + time.monotonic_ns() - time.time_ns()
        assert abs(first - expected) < 2_000_000
        sw.push(_rgb(1), timestamp_ms=captured_ms + 33.25, domain=domain)
        assert cam.read().stamp_ns - first == pytest.approx(33_250_000, abs=50_000)


def test_device_clock_timestamps_fall_back_to_receipt_time(sw, caplog):
    with _camera(sw) as cam:
        sw.push(_rgb(0), timestamp_ms=1234.5, domain=rs.timestamp_domain.hardware_clock)
        before = time.monotonic_ns()
        stamp = cam.read().stamp_ns
        assert before <= stamp <= time.monotonic_ns()
    assert "stamping frames at receipt" in caplog.text


def test_read_times_out_after_about_a_frame_period_naming_the_serial(sw):
    with _camera(sw, startup_timeout_s=0.2) as cam:
        with pytest.raises(TimeoutError, match=SERIAL):  # nothing pushed: the start-up wait runs out
            cam.read()
        sw.push(_rgb(0))
        cam.read()
        start = time.monotonic()
        with pytest.raises(TimeoutError, match=f"{SERIAL}.*no frame within {round(1000 / FPS + 50)} ms"):
            cam.read()
        assert time.monotonic() - start < 1.0


def test_unknown_serial_lists_the_connected_cameras(sw):
    other = SoftwareRealSense("000000000042")
    with pytest.raises(DeviceNotFoundError, match=r"No RealSense camera with serial 999.*123456789012 \(Software"):
        RealSenseCamera("999", devices=[sw.device, other.device])
    with pytest.raises(DeviceNotFoundError, match="No RealSense camera connected"):
        RealSenseCamera("999", devices=[])
    with pytest.raises(DeviceNotFoundError, match="2 RealSense cameras connected.*123456789012.*000000000042"):
        RealSenseCamera(devices=[sw.device, other.device])


def test_serial_can_be_omitted_with_one_camera_and_an_unsupported_mode_is_named(sw):
    with RealSenseCamera(devices=[sw.device], width=COLOR_W, height=COLOR_H, fps=FPS) as cam:
        assert cam.serial == SERIAL
    with pytest.raises(RuntimeError, match=f"RealSense {SERIAL}: cannot stream color 1280x720 rgb8 at 30 fps"):
        _camera(sw, width=1280, height=720)


def test_close_stops_streaming_and_later_reads_say_so(sw):
    cam = _camera(sw)
    cam.close()
    cam.close()  # idempotent
    with pytest.raises(RuntimeError, match=f"RealSense {SERIAL} is closed"):
        cam.read()
    with _camera(sw) as again:  # the device is free again
        sw.push(_rgb(0))
        np.testing.assert_array_equal(again.read().image, _rgb(0))


def test_a_process_with_the_driver_and_rclpy_exits_cleanly():
    """A camera node holds both SDKs: with librealsense2 loaded before rclpy's DDS libraries, such a process
    segfaulted at exit (pyrealsense2 2.59, Fast DDS 3.2); the driver module orders the loading."""
    import subprocess
    import sys

    pytest.importorskip("rclpy")
    code = ("import robotrl.hardware.realsense, rclpy; rclpy.init(); n = rclpy.create_node('probe'); "
            "n.destroy_node(); rclpy.shutdown()")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
