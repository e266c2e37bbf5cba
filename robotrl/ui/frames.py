"""Live camera frames for the operator's page: the newest JPEG of each camera, numbered, with its capture time.

Only the newest frame is kept: a page that falls behind skips frames (counted by the page from the sequence
numbers) instead of queueing seconds of video. Frames travel to the page as one binary WebSocket message each,
``packet()``: a 4-byte big-endian header length, the JSON header ({camera, seq, stamp_ms, width, height}), the JPEG.
"""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from robotrl.ui.protocol import now_ms

JPEG_QUALITY = 80


@dataclass(frozen=True)
class JpegFrame:
    camera: str
    seq: int
    stamp_ms: float  # capture time, the server's clock (robotrl.ui.protocol.now_ms)
    width: int
    height: int
    jpeg: bytes

    def packet(self) -> bytes:
        header = json.dumps({"camera": self.camera, "seq": self.seq, "stamp_ms": self.stamp_ms, "width": self.width,
                             "height": self.height}).encode()
        return struct.pack(">I", len(header)) + header + self.jpeg


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB uint8 image as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buf.tobytes()


class FrameHub:
    """Cameras publish (any thread); the server reads the newest frame of each (``latest``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: dict[str, JpegFrame] = {}
        self.changed = threading.Event()  # set on every publish; waiters clear it

    def publish(self, camera: str, image: np.ndarray, stamp_ms: float | None = None) -> JpegFrame:
        """``image``: RGB uint8 HxWx3, captured at ``stamp_ms`` (default: now)."""
        stamp = now_ms() if stamp_ms is None else stamp_ms
        jpeg = encode_jpeg(image)
        with self._lock:
            seq = self._frames[camera].seq + 1 if camera in self._frames else 0
            frame = self._frames[camera] = JpegFrame(camera, seq, stamp, image.shape[1], image.shape[0], jpeg)
        self.changed.set()
        return frame

    def latest(self) -> dict[str, JpegFrame]:
        with self._lock:
            return dict(self._frames)

    @property
    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._frames)
