"""A 3Dconnexion SpaceMouse on the robot host, read as raw HID reports (hidapi), for the operator's teleop.

Report formats (USB HID, first byte = report id, axes little-endian int16):

    split (older devices, e.g. SpaceNavigator, SpaceMouse Compact):  7 bytes each
        id 1: tx ty tz        id 2: rx ry rz
    combined (newer wireless family, e.g. SpaceMouse Wireless, Pro Wireless, Enterprise):  13 bytes
        id 1: tx ty tz rx ry rz
    id 3 (all): button bitmask, little-endian, bit i = button i (0 = left / menu button)

The format is taken from the model table, not from the report length: some hosts (hidapi on Windows) pad every
report to the longest input report, so a padded split-format report 1 would otherwise read as zero rotation.
Axes span about +-350 counts at full deflection (``DeviceModel.full_scale``).

Axis convention. The device reports in the HID frame: +x right, +y toward the operator, +z down (right-handed),
rotations right-handed about those axes (so +rz = clockwise seen from above). We publish ROS REP-103 (x forward,
y left, z up) in the frame of an operator standing behind the puck and looking where the robot's base +x points:
pushing the puck away moves +x, pushing it left +y, lifting it +z; twisting it counter-clockwise (seen from
above) is +yaw, tilting it right (left side up) is +roll, tilting its front down is +pitch. The map
(x, y, z) = (-hid_y, -hid_x, -hid_z) is a proper rotation (det +1), so the rotation vector maps the same way.
We chose this frame because the policies' end-effector actions are in the robot base frame (REP-103), so an
operator facing along the robot's +x drives it without remapping; a different stance is a fixed rotation
downstream. Note it differs from pyspacemouse's defaults and from robosuite's (operator facing the robot).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Self

import numpy as np

VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D  # 3Dconnexion devices sold before ~2011 enumerate under Logitech's vendor id


@dataclass(frozen=True)
class DeviceModel:
    name: str
    vendor_id: int
    product_id: int
    combined: bool  # report 1 carries translation and rotation (13 bytes) instead of ids 1 + 2 (7 bytes each)
    full_scale: float = 350.0  # counts at full deflection

    @property
    def motion_report_len(self) -> int:
        return 13 if self.combined else 7


# Ids and report formats from pyspacemouse's device table; c628, c62f and c631 (absent there) are given their
# family's format, unverified on hardware.
KNOWN_MODELS: tuple[DeviceModel, ...] = (
    DeviceModel("SpacePilot", VENDOR_LOGITECH, 0xC625, combined=False),
    DeviceModel("SpaceNavigator", VENDOR_LOGITECH, 0xC626, combined=False),
    DeviceModel("SpaceExplorer", VENDOR_LOGITECH, 0xC627, combined=False),
    DeviceModel("SpaceNavigator for Notebooks", VENDOR_LOGITECH, 0xC628, combined=False),
    DeviceModel("SpacePilot Pro", VENDOR_LOGITECH, 0xC629, combined=False),
    DeviceModel("SpaceMouse Pro", VENDOR_LOGITECH, 0xC62B, combined=False),
    DeviceModel("SpaceMouse Wireless (cable)", VENDOR_3DCONNEXION, 0xC62E, combined=True),
    DeviceModel("SpaceMouse Wireless (receiver)", VENDOR_3DCONNEXION, 0xC62F, combined=True),
    DeviceModel("SpaceMouse Pro Wireless (cable)", VENDOR_3DCONNEXION, 0xC631, combined=True),
    DeviceModel("SpaceMouse Pro Wireless (receiver)", VENDOR_3DCONNEXION, 0xC632, combined=True),
    DeviceModel("SpaceMouse Enterprise", VENDOR_3DCONNEXION, 0xC633, combined=True),
    DeviceModel("SpaceMouse Compact", VENDOR_3DCONNEXION, 0xC635, combined=False),
    DeviceModel("SpaceMouse Pro Wireless (Bluetooth)", VENDOR_3DCONNEXION, 0xC638, combined=True),
    DeviceModel("SpaceMouse Wireless (2nd gen)", VENDOR_3DCONNEXION, 0xC63A, combined=True),
    DeviceModel("SpaceMouse", VENDOR_3DCONNEXION, 0xC641, combined=False),
    DeviceModel("3Dconnexion Universal Receiver", VENDOR_3DCONNEXION, 0xC652, combined=True),
)
MODELS_BY_ID: dict[tuple[int, int], DeviceModel] = {(m.vendor_id, m.product_id): m for m in KNOWN_MODELS}

# HID frame (right, toward operator, down) -> REP-103 (forward, left, up); see the module docstring.
_HID_TO_REP103 = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def _frozen(v: Any) -> np.ndarray:
    a = np.array(v, dtype=np.float64)  # a copy: the state owns it and nobody can write through it
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SpaceMouseState:
    """The puck and buttons after the last decoded report (immutable, so the reader thread can hand it over)."""

    linear: np.ndarray = field(default_factory=lambda: np.zeros(3))  # REP-103, [-1, 1]
    angular: np.ndarray = field(default_factory=lambda: np.zeros(3))  # roll, pitch, yaw (REP-103), [-1, 1]
    buttons: int = 0  # bit i = button i held
    stamp_ns: int = 0  # time.monotonic_ns() of the last decoded report (0: none yet); a stale stamp = silent device
    reports: int = 0  # reports decoded
    bad_reports: int = 0  # reports skipped: too short, or a report id this reader does not decode

    def __post_init__(self) -> None:
        object.__setattr__(self, "linear", _frozen(self.linear))
        object.__setattr__(self, "angular", _frozen(self.angular))


def _axes(report: bytes, offset: int, model: DeviceModel) -> np.ndarray:
    raw = np.frombuffer(report, dtype="<i2", count=3, offset=offset).astype(np.float64)
    # Devices overshoot their nominal range when pressed hard; clip so a command never exceeds full scale.
    return np.clip(_HID_TO_REP103 @ raw / model.full_scale, -1.0, 1.0)


def decode(report: bytes, state: SpaceMouseState, model: DeviceModel) -> SpaceMouseState:
    """``state`` updated by one HID report; a short or unknown report only increments ``bad_reports``."""
    report = bytes(report)
    linear, angular, buttons = state.linear, state.angular, state.buttons
    report_id = report[0] if report else None
    if report_id == 1 and len(report) >= model.motion_report_len:
        linear = _axes(report, 1, model)
        if model.combined:
            angular = _axes(report, 7, model)
    elif report_id == 2 and len(report) >= 7:
        angular = _axes(report, 1, model)
    elif report_id == 3 and len(report) >= 2:
        buttons = int.from_bytes(report[1:], "little")
    else:
        return replace(state, bad_reports=state.bad_reports + 1)
    return SpaceMouseState(linear, angular, buttons, time.monotonic_ns(), state.reports + 1, state.bad_reports)


def _deadzone(v: np.ndarray, deadzone: float) -> np.ndarray:
    # Rescaled so the output still rises continuously from 0 at the deadzone edge to 1 at full deflection.
    mag = np.abs(v)
    return np.where(mag > deadzone, np.sign(v) * (mag - deadzone) / (1.0 - deadzone), 0.0)


def hold_to_intervene(state: SpaceMouseState, deadman_button: int | None = 0) -> bool:
    """Whether the operator is in control: while ``deadman_button`` is held, or, with ``deadman_button=None``,
    while the puck is deflected (``SpaceMouse.latest()`` has its deadzone applied, so any nonzero axis)."""
    if deadman_button is None:
        return bool(np.any(state.linear) or np.any(state.angular))
    return bool(state.buttons >> deadman_button & 1)


class HidDevice(Protocol):
    """What the reader needs of a device: hidapi's ``hid.device.read`` (a replay object works too)."""

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int] | bytes: ...


class SpaceMouseNotFound(RuntimeError):
    pass


def _udev_rule(vendor_id: int, product_id: int | None = None) -> str:
    product = f', ATTRS{{idProduct}}=="{product_id:04x}"' if product_id is not None else ""
    return f'SUBSYSTEM=="hidraw", ATTRS{{idVendor}}=="{vendor_id:04x}"{product}, MODE="0660", TAG+="uaccess"'


def open_first_device() -> tuple[Any, DeviceModel]:
    """Open the first known SpaceMouse through hidapi; raises SpaceMouseNotFound naming what it looked for."""
    try:
        import hid  # lazily: the module (and replay) works on hosts without hidapi
    except ImportError as e:
        raise SpaceMouseNotFound("reading a SpaceMouse needs hidapi: pip install 'robotrl[spacemouse]'") from e
    found = [i for i in hid.enumerate() if (i["vendor_id"], i["product_id"]) in MODELS_BY_ID]
    if not found:
        raise SpaceMouseNotFound(
            f"no SpaceMouse found (searched vendor ids 0x{VENDOR_3DCONNEXION:04x} 3Dconnexion and "
            f"0x{VENDOR_LOGITECH:04x} Logitech for {len(KNOWN_MODELS)} known models). Check the USB connection "
            f"(lsusb) and that this user may open /dev/hidraw*: add the udev rule\n  "
            f"{_udev_rule(VENDOR_3DCONNEXION)}\nto /etc/udev/rules.d/99-spacemouse.rules (for a Logitech-id "
            f"model add ATTRS{{idProduct}} too), then: sudo udevadm control --reload && sudo udevadm trigger"
        )
    # A receiver can expose several HID interfaces; the 6-DoF one is Generic Desktop / Multi-axis Controller.
    info = min(found, key=lambda i: (i.get("usage_page"), i.get("usage")) != (0x01, 0x08))
    model = MODELS_BY_ID[(info["vendor_id"], info["product_id"])]
    device = hid.device()
    try:
        device.open_path(info["path"])
    except OSError as e:
        raise SpaceMouseNotFound(
            f"found {model.name} at {info['path']!r} but could not open it (permissions?). Add the udev rule\n  "
            f"{_udev_rule(model.vendor_id, model.product_id)}\nto /etc/udev/rules.d/99-spacemouse.rules, then: "
            f"sudo udevadm control --reload && sudo udevadm trigger, and replug the device"
        ) from e
    return device, model


class SpaceMouse:
    """Reads a SpaceMouse on a daemon thread; ``latest()`` is the newest state with the deadzone applied.

    ``SpaceMouse()`` opens the first known device; ``SpaceMouse(device, model)`` reads any object with hidapi's
    ``read`` (a replay of recorded reports), which stays the caller's to close.
    """

    MAX_REPORT_BYTES = 64  # a full-speed USB HID report is at most 64 bytes
    # Short enough that the loop notices close() quickly and cycles >= 100 Hz when the device is silent; a queued
    # report returns at once, so the thread keeps up with the device's 125-1000 Hz.
    READ_TIMEOUT_MS = 10

    def __init__(self, device: HidDevice | None = None, model: DeviceModel | None = None, deadzone: float = 0.05):
        if not 0.0 <= deadzone < 1.0:
            raise ValueError(f"deadzone must be in [0, 1), got {deadzone}")
        if device is None:
            device, model = open_first_device()
            self._owned = True
        elif model is None:
            raise ValueError("a given device needs its DeviceModel (see KNOWN_MODELS)")
        else:
            self._owned = False
        self.device, self.model, self.deadzone = device, model, deadzone
        self._raw = SpaceMouseState()  # decode merges split reports into the un-deadzoned values
        self._state = SpaceMouseState()
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"spacemouse-{model.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.device.read(self.MAX_REPORT_BYTES, self.READ_TIMEOUT_MS)
            except (OSError, ValueError) as e:  # hidapi: OSError when unplugged, ValueError once closed
                self._error = e
                return
            if data:  # empty: the read timed out (a SpaceMouse at rest sends nothing)
                self._raw = decode(bytes(data), self._raw, self.model)
                # One reference assignment of an immutable state: readers never see a half-updated one.
                self._state = replace(
                    self._raw,
                    linear=_deadzone(self._raw.linear, self.deadzone),
                    angular=_deadzone(self._raw.angular, self.deadzone),
                )

    def latest(self) -> SpaceMouseState:
        """The newest state; raises ConnectionError once the device has failed (e.g. unplugged), so a lost
        device never keeps steering with its last deflection or deadman."""
        if self._error is not None:
            raise ConnectionError(f"SpaceMouse {self.model.name} stopped: {self._error}") from self._error
        return self._state

    def close(self) -> None:
        self._stop.set()
        self._thread.join()  # before closing the device: hidapi must not be closed under a running read
        if self._owned:
            self.device.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SpaceMouseFeed:
    """A SpaceMouse as the operator's take-over device: ``latest()`` read at ``rate_hz`` into ``console``
    (robotrl.ui.console.Console.device_input) while the deadman is held, with one release message when it lets go;
    a device that fails holds the robot.
    The puck's x, y, z are the motion, its twist about z the yaw; buttons other than the deadman do nothing."""

    def __init__(self, reader: SpaceMouse, console: Any, deadman_button: int | None = 0, rate_hz: float = 200.0):
        self.reader, self.console, self.deadman_button, self.period = reader, console, deadman_button, 1.0 / rate_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spacemouse-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from robotrl.ui.protocol import Teleop, now_ms

        was_active = False
        while not self._stop.wait(self.period):
            try:
                state = self.reader.latest()
            except ConnectionError as exc:  # unplugged, perhaps mid-takeover: hold the robot, as for a lost page
                self.console.hold(str(exc))
                return
            active = hold_to_intervene(state, self.deadman_button)
            if active or was_active:
                self.console.device_input(Teleop("spacemouse", active, tuple(map(float, state.linear)),
                                                 float(state.angular[2]), None, now_ms()))
            was_active = active

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
