"""OpenCVCamera on real OpenCV: video files written here with known frames, and a named pipe as a live source."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from robotrl.hardware.opencv_camera import (  # noqa: E402
    CameraOpenError,
    CameraReadError,
    EndOfVideoFile,
    OpenCVCamera,
)
from robotrl.interfaces import Camera, CameraIntrinsics  # noqa: E402

W, H, FPS = 32, 24, 10.0
TOLERANCE = 2  # FFV1 is lossless; allow for a colour-space round trip in other FFmpeg builds


def _frames() -> list[np.ndarray]:
    """RGB frames: solid colours with distinct channels, then a pattern that shows flips and transposes."""
    solid = [np.full((H, W, 3), rgb, np.uint8) for rgb in [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 100, 200)]]
    pattern = np.full((H, W, 3), (0, 0, 255), np.uint8)
    pattern[: H // 2, : W // 4] = (255, 255, 0)
    return [*solid, pattern]


FRAMES = _frames()


def _write_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), FPS, (W, H))
    assert writer.isOpened(), "this OpenCV build cannot write FFV1"
    for rgb in FRAMES:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    return _write_video(tmp_path / "colours.avi")


def _assert_image(image: np.ndarray, expected: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert np.abs(image.astype(int) - expected).max() <= TOLERANCE


def test_file_frames_come_back_in_order_as_rgb(video):
    with OpenCVCamera(video) as cam:
        assert isinstance(cam, Camera) and cam.name == "colours"
        for expected in FRAMES:
            _assert_image(cam.read().image, expected)


def test_guessed_intrinsics_follow_the_horizontal_field_of_view(video):
    with OpenCVCamera(video, hfov_deg=90.0) as cam:
        k = cam.intrinsics
        assert (k.width, k.height, k.cx, k.cy) == (W, H, (W - 1) / 2, (H - 1) / 2)
        assert k.fx == k.fy == pytest.approx(W / 2)  # tan(45 deg) = 1
        assert cam.read().intrinsics == k
    with OpenCVCamera(video) as cam:  # the 60 deg default
        assert cam.intrinsics.fx == pytest.approx(W / 2 / math.tan(math.radians(30)))


def test_given_intrinsics_are_used_and_must_match_the_image_size(video):
    calibrated = CameraIntrinsics(W, H, 40.0, 41.0, 15.0, 12.5)
    with OpenCVCamera(video, intrinsics=calibrated) as cam:
        assert cam.read().intrinsics == calibrated
    with pytest.raises(ValueError, match=f"640x480 images, but video file {video} delivers {W}x{H}"):
        OpenCVCamera(video, intrinsics=CameraIntrinsics(640, 480, 500.0, 500.0, 320.0, 240.0))


def test_file_stamps_are_file_positions_after_the_open_time(video):
    before = time.monotonic_ns()
    cam = OpenCVCamera(video)
    after = time.monotonic_ns()
    stamps = [cam.read().stamp_ns for _ in FRAMES]
    cam.close()
    assert before <= stamps[0] <= after
    np.testing.assert_allclose(np.diff(stamps), 1e9 / FPS, atol=1e6)


def test_end_of_file_is_reported_with_the_path(video):
    with OpenCVCamera(video) as cam:
        for _ in FRAMES:
            cam.read()
        for _ in range(2):  # and stays reported
            with pytest.raises(EndOfVideoFile, match=f"End of video file {video} after {len(FRAMES)} frames"):
                cam.read()
    assert issubclass(EndOfVideoFile, EOFError)


def test_loop_wraps_to_the_first_frame_and_stamps_keep_the_frame_period(video):
    with OpenCVCamera(video, loop=True) as cam:
        frames = [cam.read() for _ in range(2 * len(FRAMES) + 2)]
    for i, frame in enumerate(frames):
        _assert_image(frame.image, FRAMES[i % len(FRAMES)])
    np.testing.assert_allclose(np.diff([f.stamp_ns for f in frames]), 1e9 / FPS, atol=1e6)


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.avi"
    with pytest.raises(FileNotFoundError, match=f"No such video file: {missing}"):
        OpenCVCamera(missing)


def test_sources_that_cannot_be_opened_say_what_to_check(tmp_path):
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video" * 100)
    with pytest.raises(CameraOpenError, match=f"Cannot open video file {garbage}: check .* codec"):
        OpenCVCamera(garbage)
    with pytest.raises(CameraOpenError, match="Cannot open camera index 99: check the camera is plugged in"):
        OpenCVCamera(99)


def test_a_size_the_source_does_not_deliver_is_an_error(video):
    with pytest.raises(CameraOpenError, match=f"delivers {W}x{H}, not the requested 64x{H}"):
        OpenCVCamera(video, width=64)


def test_live_source_is_stamped_at_receipt_and_its_end_is_a_read_error(tmp_path):
    """A named pipe is not a regular file, so it is read as a live source, like a camera device node."""
    recording = _write_video(tmp_path / "live.mkv")  # Matroska streams through a pipe (AVI needs to seek)
    pipe = tmp_path / "camera.pipe"
    os.mkfifo(pipe)
    feeder = threading.Thread(target=lambda: pipe.write_bytes(recording.read_bytes()), daemon=True)
    feeder.start()
    with OpenCVCamera(pipe) as cam:
        assert cam.name == f"opencv_{pipe}"
        for expected in FRAMES:
            before = time.monotonic_ns()
            frame = cam.read()
            assert before <= frame.stamp_ns <= time.monotonic_ns()
            _assert_image(frame.image, expected)
        with pytest.raises(CameraReadError, match=f"device {pipe} delivered no frame"):
            cam.read()
    feeder.join(timeout=10)
