"""The operator page's messages, page -> server, and their validation. Everything a page sends is parsed here
before it can reach a robot: an unknown type, a missing or extra field, a wrong type, a non-finite number or a
value out of range is rejected with a reason (``ProtocolError``) and never forwarded.

Times are the server's clock (``now_ms``: monotonic, ms): the page learns its offset by echo (``echo`` ->
``{"type": "echo", "t": ..., "server_ms": ...}``) and stamps its messages in server time, so the server can tell a
command's age and a frame's age on screen without trusting the page's clock.

    hello      {token?}                   first message; a valid token may take control (else: watch only)
    heartbeat  {}                         the controlling page is alive (every 100 ms; 0.5 s without -> hold)
    teleop     {device, active, linear: [x, y, z], yaw, gripper?, t}   a human's input, axes in [-1, 1]
    command    {name}                     estop | rearm | resume | pause_learning | resume_learning | ready |
                                          success | failure | take_control | release_control
    echo       {t}                        clock sync: the server answers with its own time
    drawn      {camera, seq, t}           a frame was drawn (requestAnimationFrame), for the frame-age meter
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any, Union

from robotrl.data.store import TELEOP_DEVICES as DEVICES

COMMANDS = ("estop", "rearm", "resume", "pause_learning", "resume_learning", "ready", "success", "failure",
            "take_control", "release_control")
MAX_MESSAGE_BYTES = 4096


def now_ms() -> float:
    """The server's clock for every protocol time."""
    return time.monotonic() * 1e3


class ProtocolError(ValueError):
    """A message that is not forwarded; the text says why."""


@dataclass(frozen=True)
class Hello:
    token: str


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Teleop:
    device: str
    active: bool
    linear: tuple[float, float, float]
    yaw: float
    gripper: float | None
    t: float  # when the input was read, server clock (ms)


@dataclass(frozen=True)
class Command:
    name: str


@dataclass(frozen=True)
class Echo:
    t: float


@dataclass(frozen=True)
class Drawn:
    camera: str
    seq: int
    t: float


Message = Union[Hello, Heartbeat, Teleop, Command, Echo, Drawn]
_FIELDS: dict[str, set[str]] = {"hello": {"token"}, "heartbeat": set(), "command": {"name"}, "echo": {"t"},
                                "teleop": {"device", "active", "linear", "yaw", "gripper", "t"},
                                "drawn": {"camera", "seq", "t"}}
_OPTIONAL = {"hello": {"token"}, "teleop": {"gripper"}}


def _number(d: dict, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(f"{key}: a number expected, got {type(v).__name__}")
    if not math.isfinite(v):
        raise ProtocolError(f"{key}: not finite ({v})")
    if not lo <= v <= hi:
        raise ProtocolError(f"{key}: {v} outside [{lo}, {hi}]")
    return float(v)


def _string(d: dict, key: str, allowed: tuple[str, ...] | None = None, max_len: int = 64) -> str:
    v = d[key]
    if not isinstance(v, str) or len(v) > max_len:
        raise ProtocolError(f"{key}: a string of at most {max_len} characters expected")
    if allowed is not None and v not in allowed:
        raise ProtocolError(f"{key}: {v!r} unknown; allowed: {', '.join(allowed)}")
    return v


def parse(text: str | bytes) -> Message:
    """One page message, validated; raises ProtocolError naming what is wrong."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(text)} bytes; at most {MAX_MESSAGE_BYTES}")
    try:
        d: Any = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(d, dict) or not isinstance(d.get("type"), str):
        raise ProtocolError('a JSON object with a string "type" expected')
    kind = d.pop("type")
    if kind not in _FIELDS:
        raise ProtocolError(f"type {kind!r} unknown; allowed: {', '.join(_FIELDS)}")
    missing = _FIELDS[kind] - _OPTIONAL.get(kind, set()) - d.keys()
    extra = d.keys() - _FIELDS[kind]
    if missing or extra:
        raise ProtocolError(f"{kind}: " + "; ".join([*(f"missing {k!r}" for k in sorted(missing)),
                                                     *(f"unexpected {k!r}" for k in sorted(extra))]))
    if kind == "hello":
        return Hello(_string(d, "token", max_len=128) if "token" in d else "")
    if kind == "heartbeat":
        return Heartbeat()
    if kind == "command":
        return Command(_string(d, "name", COMMANDS))
    if kind == "echo":
        return Echo(_number(d, "t"))
    if kind == "drawn":
        return Drawn(_string(d, "camera"), int(_number(d, "seq", 0, 2**53)), _number(d, "t"))
    linear = d["linear"]
    if not isinstance(linear, list) or len(linear) != 3:
        raise ProtocolError("linear: a list of 3 numbers expected")
    axes = {f"linear[{i}]": v for i, v in enumerate(linear)}
    if not isinstance(d["active"], bool):
        raise ProtocolError("active: true or false expected")
    return Teleop(device=_string(d, "device", DEVICES), active=d["active"],
                  linear=tuple(_number(axes, k, -1, 1) for k in axes),  # type: ignore[arg-type]
                  yaw=_number(d, "yaw", -1, 1),
                  gripper=None if d.get("gripper") is None else _number(d, "gripper", -1, 1), t=_number(d, "t"))
