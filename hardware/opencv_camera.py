"""OpenCVCamera: the Camera interface on anything cv2.VideoCapture opens: a camera index, a video file, a stream URL.

Needs the ``opencv`` extra: ``pip install "robotrl[opencv]"``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np

from robotrl.interfaces import CameraIntrinsics, Frame


class CameraOpenError(RuntimeError):
    """The source could not be opened, or does not deliver the requested image size."""


class CameraReadError(RuntimeError):
    """A live source (or an undecodable file) failed to deliver a frame."""


class EndOfVideoFile(EOFError):
    """A video file has no more frames (and ``loop`` is off)."""


class OpenCVCamera:
    """RGB frames from ``source``: an int is a camera index, a string containing ``://`` a stream URL (RTSP,
    HTTP, ...), an existing path that is not a regular file (``/dev/video0``, a named pipe) a live device, and
    any other path must be a video file.

    ``width``/``height``/``fps`` are requested from live sources; the delivered size is checked against the
    requested one for every source (files cannot be resized, so a mismatch is an error, not a silent resize).

    Intrinsics are ``intrinsics`` when given; otherwise a pinhole *guess* with square pixels, the principal point
    at the image centre and a horizontal field of view of ``hfov_deg`` (60 deg, a typical webcam): calibrate the
    camera before trusting anything metric.

    ``stamp_ns`` is the monotonic receipt time for live sources (it includes the capture latency, which OpenCV
    does not report). Files are read as fast as asked, and a frame's stamp is its position in the file
    (``CAP_PROP_POS_MSEC``) after the monotonic time the file was opened, so stamps keep the file's timing;
    with ``loop=True`` each pass continues one frame period after the previous pass ended.
    """

    def __init__(
        self,
        source: int | str | Path,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        intrinsics: CameraIntrinsics | None = None,
        hfov_deg: float = 60.0,
        loop: bool = False,
        name: str | None = None,
    ):
        self.source = source
        path = None if isinstance(source, int) else Path(source)
        self.is_file = path is not None and path.is_file()
        if path is not None and not path.exists() and not self._is_url():
            raise FileNotFoundError(f"No such video file: {source}")
        self.name = name or (path.stem if self.is_file else f"opencv_{source}")
        self.loop = loop
        self._cap = self._open(width, height, fps)
        self._start_ns = time.monotonic_ns()
        self._pass_offset_ns = 0  # added to file positions: the durations of the passes already played
        self._last_pos_ns = 0
        self._frames_read = 0
        size = self._frame_size()
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != size:
            self._cap.release()
            raise ValueError(
                f"The intrinsics are for {intrinsics.width}x{intrinsics.height} images, "
                f"but {self._describe()} delivers {size[0]}x{size[1]}"
            )
        self.intrinsics = intrinsics or _guess_intrinsics(size, hfov_deg)

    def read(self) -> Frame:
        ok, bgr = self._cap.read()
        received_ns = time.monotonic_ns()
        if not ok:
            bgr = self._after_failed_read()
        self._frames_read += 1
        stamp_ns = self._file_stamp_ns() if self.is_file else received_ns
        return Frame(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stamp_ns=stamp_ns, intrinsics=self.intrinsics)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "OpenCVCamera":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, width: int | None, height: int | None, fps: float | None) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.source if isinstance(self.source, int) else str(self.source))
        if not cap.isOpened():
            raise CameraOpenError(f"Cannot open {self._describe()}: {self._what_to_check()}")
        if not self.is_file:
            # Only the newest frame matters; where the backend supports it (V4L2) don't queue stale ones.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            requests = {cv2.CAP_PROP_FRAME_WIDTH: width, cv2.CAP_PROP_FRAME_HEIGHT: height, cv2.CAP_PROP_FPS: fps}
            for prop, value in requests.items():
                if value is not None:
                    cap.set(prop, value)
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        wanted = (width or got[0], height or got[1])
        if got != wanted:
            cap.release()
            raise CameraOpenError(
                f"{self._describe()} delivers {got[0]}x{got[1]}, not the requested {wanted[0]}x{wanted[1]}"
            )
        return cap

    def _after_failed_read(self) -> np.ndarray:
        """The frame to return after ``read`` failed: the first frame again when looping at the end of a file;
        otherwise raises the error that says what happened."""
        if not self.is_file:
            raise CameraReadError(f"{self._describe()} delivered no frame (disconnected, or the stream ended?)")
        if self._frames_read == 0:
            raise CameraReadError(
                f"Cannot decode a frame of {self._describe()}: codec not supported by this OpenCV build, "
                "or the file is damaged"
            )
        if not self.loop:
            raise EndOfVideoFile(f"End of video file {self.source} after {self._frames_read} frames")
        self._pass_offset_ns += self._last_pos_ns + self._frame_period_ns()
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, bgr = self._cap.read()
        if not ok:
            raise CameraReadError(f"Cannot rewind {self._describe()} to loop it")
        return bgr

    def _file_stamp_ns(self) -> int:
        # After read(), POS_MSEC is the presentation time of the frame just decoded.
        self._last_pos_ns = round(self._cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
        return self._start_ns + self._pass_offset_ns + self._last_pos_ns

    def _frame_period_ns(self) -> int:
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        return round(1e9 / fps) if fps > 0 else 0

    def _frame_size(self) -> tuple[int, int]:
        return int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def _describe(self) -> str:
        if isinstance(self.source, int):
            return f"camera index {self.source}"
        if self.is_file:
            return f"video file {self.source}"
        return f"stream {self.source}" if self._is_url() else f"device {self.source}"

    def _what_to_check(self) -> str:
        if self.is_file:
            return "check it is a video container and codec this OpenCV build (FFmpeg) can decode"
        if self._is_url():
            return "check the URL, that the stream is up and reachable from here, and any credentials in the URL"
        return (
            "check the camera is plugged in, not in use by another process, and readable by this user "
            "(/dev/video* permissions, the 'video' group)"
        )

    def _is_url(self) -> bool:
        return "://" in str(self.source)


def _guess_intrinsics(size: tuple[int, int], hfov_deg: float) -> CameraIntrinsics:
    """Pinhole intrinsics of an ideal camera with square pixels and horizontal field of view ``hfov_deg``."""
    width, height = size
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return CameraIntrinsics(width, height, f, f, (width - 1) / 2, (height - 1) / 2)  # as CameraIntrinsics.from_fovy
