"""The SpaceMouse reader on replayed HID reports.

The boundary we cannot reach here is the USB device, so ``ReplayDevice`` stands in for hidapi's ``hid.device``:
same ``read(max_length, timeout_ms)``, fed report by report from tests/data/spacemouse/. Most fixtures are written
by hand in the devices' documented report format; one holds reports a real SpaceMouse Compact sent (see their README).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from robotrl.ui.spacemouse import (
    MODELS_BY_ID,
    DeviceModel,
    SpaceMouse,
    SpaceMouseNotFound,
    SpaceMouseState,
    decode,
    hold_to_intervene,
)

DATA = Path(__file__).parent / "data" / "spacemouse"
SPACENAVIGATOR = MODELS_BY_ID[(0x046D, 0xC626)]  # split format
WIRELESS = MODELS_BY_ID[(0x256F, 0xC62E)]  # combined format
COMPACT = MODELS_BY_ID[(0x256F, 0xC635)]  # split format; recorded_compact.txt is its own bytes
FIXTURES = [("split_spacenavigator.txt", SPACENAVIGATOR), ("combined_wireless.txt", WIRELESS)]


def load(name: str) -> list[tuple[str, bytes]]:
    """The fixture's (label, report) lines, in order."""
    reports = []
    for line in (DATA / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            label, hex_bytes = line.split(":")
            reports.append((label, bytes.fromhex(hex_bytes)))
    return reports


def trace(name: str, model: DeviceModel) -> dict[str, SpaceMouseState]:
    """The state after each labelled report, decoding the fixture in order."""
    state, states = SpaceMouseState(), {}
    for label, report in load(name):
        state = states[label] = decode(report, state, model)
    return states


class ReplayDevice:
    """hidapi's read(): the next recorded report as a list of ints, or, once the recording is played, [] after
    ``timeout_ms`` (what a SpaceMouse at rest does: it sends nothing)."""

    def __init__(self, reports: list[bytes]):
        self._reports = deque(reports)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        if self._reports:
            return list(self._reports.popleft()[:max_length])
        time.sleep(timeout_ms / 1000)
        return []


def replay(name: str, model: DeviceModel, deadzone: float) -> SpaceMouseState:
    """Run the fixture through the reader thread; the state once it has taken every report."""
    reports = [r for _, r in load(name)]
    with SpaceMouse(ReplayDevice(reports), model, deadzone=deadzone) as mouse:
        hang_guard = time.monotonic() + 30  # only so a broken reader fails instead of hanging the suite
        while (s := mouse.latest()).reports + s.bad_reports < len(reports):
            assert time.monotonic() < hang_guard, "the reader stopped taking reports"
            time.sleep(0.001)
        return s


def test_split_format_forward_is_plus_x_and_ccw_twist_is_plus_yaw():
    states = trace("split_spacenavigator.txt", SPACENAVIGATOR)
    np.testing.assert_allclose(states["push_forward"].linear, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(states["twist_ccw"].angular, [0.0, 0.0, 200 / 350])
    np.testing.assert_allclose(states["twist_ccw"].linear, [1.0, 0.0, 0.0])  # report 2 keeps report 1's axes
    np.testing.assert_allclose(states["lift"].linear, [0.0, 0.0, 0.5])


def test_combined_format_carries_translation_and_rotation_in_report_1():
    states = trace("combined_wireless.txt", WIRELESS)
    np.testing.assert_allclose(states["push_forward_twist_ccw"].linear, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(states["push_forward_twist_ccw"].angular, [0.0, 0.0, 200 / 350])
    np.testing.assert_allclose(states["tilt_right"].angular, [0.5, 0.0, 0.0])  # right side down: +roll
    np.testing.assert_allclose(states["pull_back_tilt_back"].linear, [-0.5, 0.0, 0.0])
    np.testing.assert_allclose(states["pull_back_tilt_back"].angular, [0.0, -0.5, 0.0])  # front up: -pitch


@pytest.mark.parametrize("name, model", FIXTURES)
def test_button_press_and_release_drive_the_deadman(name, model):
    states = trace(name, model)
    assert states["deadman_press"].buttons == 0b1
    assert hold_to_intervene(states["deadman_press"], deadman_button=0)
    assert not hold_to_intervene(states["deadman_press"], deadman_button=1)
    assert states["deadman_release"].buttons == 0
    assert not hold_to_intervene(states["deadman_release"], deadman_button=0)


def test_deflection_beyond_full_scale_is_clipped():
    split = trace("split_spacenavigator.txt", SPACENAVIGATOR)
    np.testing.assert_allclose(split["push_right_hard"].linear, [0.0, -1.0, 0.0])  # right is -y
    combined = trace("combined_wireless.txt", WIRELESS)
    np.testing.assert_allclose(combined["saturated"].linear, [1.0, -1.0, -1.0])
    np.testing.assert_allclose(combined["saturated"].angular, [0.0, 0.0, -1.0])


@pytest.mark.parametrize("name, model, bad_labels", [
    ("split_spacenavigator.txt", SPACENAVIGATOR, ["short", "battery"]),
    ("combined_wireless.txt", WIRELESS, ["split_style_report", "battery"]),
])
def test_short_and_unknown_reports_are_counted_and_skipped(name, model, bad_labels):
    labels = [label for label, _ in load(name)]
    states = trace(name, model)
    for label in bad_labels:
        before, after = states[labels[labels.index(label) - 1]], states[label]
        assert after.bad_reports == before.bad_reports + 1
        assert (after.reports, after.buttons, after.stamp_ns) == (before.reports, before.buttons, before.stamp_ns)
        np.testing.assert_array_equal(after.linear, before.linear)
        np.testing.assert_array_equal(after.angular, before.angular)
    assert decode(b"", SpaceMouseState(), model).bad_reports == 1


@pytest.mark.parametrize("name, model", FIXTURES)
def test_reader_thread_reaches_the_last_state_of_the_replay(name, model):
    expected = list(trace(name, model).values())[-1]
    got = replay(name, model, deadzone=0.0)
    np.testing.assert_allclose(got.linear, expected.linear)
    np.testing.assert_allclose(got.angular, expected.angular)
    assert (got.buttons, got.reports, got.bad_reports) == (expected.buttons, expected.reports, expected.bad_reports)
    assert got.stamp_ns > 0


def test_a_real_devices_reports_decode_through_the_reader():
    """A SpaceMouse Compact pressed down and tilted: its six reports, through the reader thread, leave the last
    translation and rotation it sent (HID +z down = REP-103 -z), none skipped."""
    got = replay("recorded_compact.txt", COMPACT, deadzone=0.0)
    assert (got.reports, got.bad_reports, got.buttons) == (6, 0, 0)
    np.testing.assert_allclose(got.linear, np.array([0, -13, -293]) / 350)  # tx 13, ty 0, tz 293 (0x125)
    np.testing.assert_allclose(got.angular, np.array([0, -29, -27]) / 350)  # rx 29 (0x1d), ry 0, rz 27 (0x1b)
    pressing = [s.linear[2] for label, s in trace("recorded_compact.txt", COMPACT).items() if label.startswith("trans")]
    assert pressing == sorted(pressing, reverse=True)  # pressed harder report by report: ever further down


def test_deadzone_hides_drift_and_rescales_real_deflection():
    drift = replay("drift_spacenavigator.txt", SPACENAVIGATOR, deadzone=0.05)
    assert not np.any(drift.linear) and not np.any(drift.angular)
    assert not hold_to_intervene(drift, deadman_button=None)
    assert hold_to_intervene(replay("drift_spacenavigator.txt", SPACENAVIGATOR, deadzone=0.0), deadman_button=None)

    moved = replay("split_spacenavigator.txt", SPACENAVIGATOR, deadzone=0.05)
    np.testing.assert_allclose(moved.linear, [0.0, 0.0, (0.5 - 0.05) / 0.95])
    assert hold_to_intervene(moved, deadman_button=None)


def test_state_is_immutable():
    state = decode(load("split_spacenavigator.txt")[2][1], SpaceMouseState(), SPACENAVIGATOR)
    with pytest.raises(ValueError):
        state.linear[0] = 0.0


def test_no_device_names_the_vendor_ids_and_the_udev_rule(monkeypatch):
    hid = pytest.importorskip("hid")
    keyboard = {"vendor_id": 0x046D, "product_id": 0xC31C, "path": b"/dev/hidraw0", "usage_page": 1, "usage": 6}
    monkeypatch.setattr(hid, "enumerate", lambda *a: [keyboard])  # a Logitech device that is no SpaceMouse
    with pytest.raises(SpaceMouseNotFound) as err:
        SpaceMouse()
    msg = str(err.value)
    for needle in ("0x256f", "0x046d", "USB", 'SUBSYSTEM=="hidraw", ATTRS{idVendor}=="256f"', "udevadm"):
        assert needle in msg


def test_a_device_without_permission_gets_its_own_udev_rule(monkeypatch):
    hid = pytest.importorskip("hid")
    navigator = {"vendor_id": 0x046D, "product_id": 0xC626, "path": b"/dev/hidraw3", "usage_page": 1, "usage": 8}

    class Denied:
        def open_path(self, path: bytes) -> None:
            raise OSError("open failed")

    monkeypatch.setattr(hid, "enumerate", lambda *a: [navigator])
    monkeypatch.setattr(hid, "device", Denied)
    with pytest.raises(SpaceMouseNotFound, match='ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c626"'):
        SpaceMouse()


def test_the_feed_drives_the_console_while_the_deadman_is_held_and_a_lost_device_holds_the_robot():
    """SpaceMouseFeed on the real reader: deadman + push forward is a take-over of the operator's console (device
    "spacemouse", +x); letting go hands back; a device that fails holds the robot."""
    from robotrl.ui.console import Console
    from robotrl.ui.spacemouse import SpaceMouseFeed

    reports = dict(load("combined_wireless.txt"))
    console = Console(mapping=lambda obs, linear, yaw, gripper: np.array([*linear, yaw]))
    console.held = False  # the operator resumed the policy

    class Failing(ReplayDevice):
        def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
            if not self._reports:
                raise OSError("read error (device unplugged)")
            return super().read(max_length, timeout_ms)

    def until(check, what: str) -> None:
        hang_guard = time.monotonic() + 30
        while not check():
            assert time.monotonic() < hang_guard, f"timed out waiting for {what}"
            time.sleep(0.002)

    device = ReplayDevice([reports["deadman_press"], reports["push_forward_twist_ccw"]])
    with SpaceMouse(device, WIRELESS, deadzone=0.05) as mouse:
        feed = SpaceMouseFeed(mouse, console)
        until(lambda: console.poll({}) is not None, "the take-over")
        action = console.poll({})
        assert console.device == "spacemouse" and action[0] > 0.9 and action[3] > 0  # forward, yaw ccw
        device._reports.append(reports["deadman_release"])
        until(lambda: console.poll({}) is None, "the hand-back")
        feed.close()
    with SpaceMouse(Failing([reports["deadman_press"]]), WIRELESS) as mouse:
        feed = SpaceMouseFeed(mouse, console)
        until(lambda: console.holding, "the hold")
        assert "stopped" in console.hold_reason
        feed.close()
