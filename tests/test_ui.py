"""The operator's page in a real headless Chromium (Debian's, driven by Playwright) against the twin: take-over by
keyboard and gamepad, E-STOP, a lost page, labels, the token, the Origin check, a quadrotor, malformed messages.
Everything is counted in the session's control ticks, never in wall-clock time."""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import pytest

from robotrl.tasks.teleop import HoldPolicy
from robotrl.ui import CHROMIUM, CHROMIUM_ARGS
from robotrl.ui.protocol import ProtocolError, parse


# -- the protocol alone (fast) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, reason", [
    ("{not json", "not JSON"),
    ('{"type": "fly"}', "unknown"),
    ('{"type": "teleop", "device": "keyboard", "active": true, "linear": [5, 0, 0], "yaw": 0, "t": 1}', "outside"),
    ('{"type": "teleop", "device": "keyboard", "active": true, "linear": [null, 0, 0], "yaw": 0, "t": 1}', "number"),
    ('{"type": "teleop", "device": "keyboard", "active": true, "linear": [0, 0], "yaw": 0, "t": 1}', "3 numbers"),
    ('{"type": "teleop", "device": "joystick", "active": true, "linear": [0, 0, 0], "yaw": 0, "t": 1}', "device"),
    ('{"type": "teleop", "device": "keyboard", "active": 1, "linear": [0, 0, 0], "yaw": 0, "t": 1}', "active"),
    ('{"type": "teleop", "device": "keyboard", "active": true, "linear": [0, 0, 0], "yaw": 1e400, "t": 1}', "finite"),
    ('{"type": "command", "name": "self_destruct"}', "unknown"),
    ('{"type": "command", "name": "estop", "extra": 1}', "unexpected"),
    ('{"type": "heartbeat", "pad": "' + "x" * 5000 + '"}', "bytes"),
])
def test_protocol_rejects_what_it_cannot_forward(text, reason):
    with pytest.raises(ProtocolError, match=reason):
        parse(text)


def test_protocol_parses_a_teleop_message():
    msg = parse(json.dumps({"type": "teleop", "device": "gamepad", "active": True, "linear": [1, -0.5, 0], "yaw": 0.25,
                            "gripper": None, "t": 12.5}))
    assert (msg.device, msg.active, msg.linear, msg.yaw, msg.gripper, msg.t) == ("gamepad", True, (1, -0.5, 0), 0.25, None, 12.5)


def test_a_page_silent_for_half_a_second_loses_control_and_the_robot_holds_until_resumed(monkeypatch):
    import robotrl.ui.console as console_module
    from robotrl.ui.console import Console, NotAllowed
    from robotrl.ui.protocol import Command

    clock = [0.0]
    monkeypatch.setattr(console_module, "now_ms", lambda: clock[0])
    console = Console()
    console.take_control(1)
    console.command(1, Command("resume"))
    clock[0] = 450.0
    console.check()
    assert not console.holding and console.controller == 1
    clock[0] = 520.0
    console.check()
    assert console.holding and console.controller is None and "no heartbeat for 0.5 s" in console.hold_reason
    with pytest.raises(NotAllowed):
        console.command(1, Command("resume"))  # it must take control again first
    console.take_control(2)
    assert console.holding  # a new controller does not release the robot by itself
    console.command(2, Command("resume"))
    assert not console.holding


# -- the page in Chromium ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def twin(tmp_path):
    """Start a session + server on env_id with a still policy; yields a factory (so tests choose the task)."""
    from robotrl.runtime.actor import make_env
    from robotrl.ui.server import UiServer
    from robotrl.ui.session import TwinSession

    started = []

    def start(env_id: str = "robotrl/ArmPickCube-v0", policy: Callable | None = None):
        session = TwinSession(lambda: make_env(env_id, {}),
                              policy or (lambda env: HoldPolicy(env.unwrapped.task)),
                              tmp_path / "episodes.zarr", env_id).start()
        server = UiServer(session.console, session.frames, port=0).start()
        started.append((session, server))
        return session, server

    yield start
    for session, server in started:
        server.stop()
        session.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll until ``check()`` (a safety net for a hung page, not a measure: assertions count ticks)."""
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_ticks(session, n: int) -> None:
    start = session.ticks
    wait_for(lambda: session.ticks >= start + n, f"{n} control ticks")


def open_page(browser, server, token: bool = True, init_script: str | None = None):
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if init_script:
        page.add_init_script(init_script)
    page.goto(server.url if token else server.url.split("#")[0])
    page.errors = errors
    return page


def take_control_and_resume(page, session) -> None:
    wait_for(lambda: session.console.controller is not None, "the page to take control")
    page.click("#resume")
    wait_for(lambda: not session.console.holding, "the robot to resume")
    # The episode's first step moves the target from the reset pose to the measured one (the arm settles): past it.
    wait_for(lambda: session.actor.episode_step >= 2, "the episode's first steps")


def targets(session, since: int) -> np.ndarray:
    return np.array([t["target"] for t in list(session.trace) if t["tick"] > since])


@pytest.mark.slow
def test_a_held_key_moves_the_arm_its_way_and_the_steps_land_flagged_with_their_device(browser, twin):
    session, server = twin()
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    wait_ticks(session, 3)
    before = session.ticks
    page.keyboard.down("KeyW")  # +x
    wait_ticks(session, 12)
    page.keyboard.up("KeyW")
    wait_ticks(session, 3)
    moved = targets(session, before)
    dx, dy, dz = moved[-1] - moved[0]
    assert dx > 0.05 and abs(dy) < 0.2 * dx and abs(dz) < 0.2 * dx, (dx, dy, dz)
    page.click("#estop")  # stores the episode in progress
    wait_for(lambda: session.store.n_episodes == 1, "the episode to be stored")
    rows = session.store.episode(0)
    from robotrl.data.store import source_name

    who = [source_name(c) for c in rows["intervention_source"][:-1]]
    took = rows["intervention"][:-1]
    assert took.sum() >= 8 and {who[i] for i in np.flatnonzero(took)} == {"keyboard"}
    ages = rows["teleop/age_ms"][:-1]
    # The command's age: the page stamps its input in the server's clock, synced by echo to a few ms.
    assert np.isfinite(ages[took]).all() and (ages[took] > -10).all() and np.isnan(ages[~took]).all()
    # Hand-over both ways without a gap: the policy acts before and after, and every control tick while the robot
    # was not held sent one action (the human's or the policy's) -- none was skipped at a hand-over.
    assert not took[0] and not took[-1]
    stepped = sum(t["stepped"] for t in session.trace)
    assert len(took) == stepped, (len(took), stepped)
    assert not page.errors


@pytest.mark.slow
def test_estop_stops_the_commanded_motion_within_two_ticks_and_holds_until_rearmed(browser, twin):
    session, server = twin()
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    page.keyboard.down("KeyW")
    wait_ticks(session, 6)
    page.click("#estop")
    wait_for(lambda: session.console.estopped, "E-STOP")
    wait_ticks(session, 15)  # the key is still held down all along
    trace = list(session.trace)
    first = next(i for i, t in enumerate(trace) if t["estopped"])
    before = trace[first - 1]["target"]
    after = np.array([t["target"] for t in trace[first + 1:]])  # from the second tick after E-STOP on
    assert np.linalg.norm(before - trace[first - 3]["target"]) > 0.005  # it was moving
    assert np.abs(after - after[0]).max() < 1e-9, "the commanded target moved after E-STOP"
    page.click("#resume")  # refused while latched
    wait_for(lambda: "re-arm" in page.inner_text("#rejected"), "the refusal")
    wait_ticks(session, 3)
    assert session.console.holding
    page.click("#rearm")
    page.click("#resume")
    wait_for(lambda: not session.console.holding, "resume after re-arm")
    mark = session.ticks
    wait_ticks(session, 6)
    assert np.ptp(targets(session, mark)[:, 0]) > 0.02  # the held key moves it again
    page.keyboard.up("KeyW")


@pytest.mark.slow
def test_closing_the_page_mid_takeover_holds_the_robot_until_an_explicit_resume(browser, twin):
    session, server = twin()
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    page.keyboard.down("KeyW")
    wait_ticks(session, 5)
    mark = session.ticks
    page.context.close()
    wait_for(lambda: session.console.holding, "the hold")
    wait_ticks(session, 10)
    trace = list(session.trace)
    first = next(i for i, t in enumerate(trace) if t["holding"] and t["tick"] > mark)
    after = np.array([t["target"] for t in trace[first + 1:]])
    assert np.abs(after - after[0]).max() < 1e-9
    assert session.console.controller is None
    page = open_page(browser, server)  # a new page takes control; the robot still holds until told
    wait_for(lambda: session.console.controller is not None, "the new page to take control")
    wait_ticks(session, 5)
    assert session.console.holding and "closed" in session.console.hold_reason
    page.click("#resume")
    wait_for(lambda: not session.console.holding, "resume")


@pytest.mark.slow
def test_a_success_click_lands_as_the_operators_label_beside_the_twins_truth(browser, twin):
    session, server = twin()
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    wait_ticks(session, 4)
    page.click("#success")  # during the episode: it means this one, written once stored
    wait_ticks(session, 2)
    page.click("#estop")
    wait_for(lambda: session.labels, "the label")
    assert session.labels == [(0, True)]
    labels = session.store.labels(0)
    assert [(lab.source, lab.success) for lab in labels] == [("operator", True)]
    truth = session.store.judgements(0)["truth"]
    assert truth.success is False  # the twin's truth (the arm held still: no pick), kept beside the label


@pytest.mark.slow
def test_a_page_without_the_token_cannot_command(browser, twin):
    session, server = twin()
    owner = open_page(browser, server)
    take_control_and_resume(owner, session)
    watcher = open_page(browser, server, token=False)
    wait_for(lambda: "no token" in watcher.inner_text("#role"), "the watcher's role")
    assert watcher.is_disabled("#estop") is False  # visible, but the server refuses it
    for button in ("#take", "#resume", "#success"):
        assert watcher.is_disabled(button)
    mark = session.ticks
    watcher.evaluate("""() => { const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onopen = () => { ws.send(JSON.stringify({type: 'hello'}));
          ws.send(JSON.stringify({type: 'command', name: 'take_control'}));
          ws.send(JSON.stringify({type: 'teleop', device: 'keyboard', active: true, linear: [1, 0, 0], yaw: 0, t: 0}));
          ws.send(JSON.stringify({type: 'command', name: 'estop'})); }; }""")
    wait_for(lambda: len(server.stats.rejected) >= 3, "the refusals")
    wait_ticks(session, 5)
    assert all("watch only" in r for r in server.stats.rejected)
    assert not session.console.estopped and session.console.controller is not None
    assert np.abs(np.diff(targets(session, mark), axis=0)).max() < 1e-3  # the still policy; nothing moved it


@pytest.mark.slow
def test_a_page_from_another_origin_cannot_connect(browser, twin):
    """Another site's page (here: served from another port, a different origin on the same host) opens a WebSocket
    to the operator's server: the server refuses it for its Origin."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class OtherSite(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>another site</body></html>")

        def log_message(self, *args):
            pass

    session, server = twin()
    other = ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        outcome = page.evaluate(f"""() => new Promise((done) => {{
            const ws = new WebSocket('ws://127.0.0.1:{server.port}/ws');
            ws.onopen = () => done('open'); ws.onerror = () => done('refused'); }})""")
    finally:
        context.close()
        other.shutdown()
    assert outcome == "refused" and server.watchers == 0
    assert list(server.stats.refused_origins) == [f"http://127.0.0.1:{other.server_address[1]}"]  # by the server


GAMEPAD = """
window.__pad = {id: 'injected pad', index: 0, connected: true, mapping: 'standard', timestamp: 0,
                axes: [0, 0, 0, 0], buttons: Array.from({length: 17}, () => ({pressed: false, value: 0}))};
navigator.getGamepads = () => [window.__pad];
"""


@pytest.mark.slow
def test_a_gamepad_drives_the_robot_like_the_keyboard(browser, twin):
    session, server = twin()
    page = open_page(browser, server, init_script=GAMEPAD)
    take_control_and_resume(page, session)
    before = session.ticks
    page.evaluate("() => { window.__pad.buttons[4] = {pressed: true, value: 1}; window.__pad.axes[0] = -1; }")  # left
    wait_ticks(session, 12)
    page.evaluate("() => { window.__pad.buttons[4] = {pressed: false, value: 0}; window.__pad.axes[0] = 0; }")
    wait_ticks(session, 3)
    moved = targets(session, before)
    dx, dy, dz = moved[-1] - moved[0]
    assert dy > 0.05 and abs(dx) < 0.2 * dy and abs(dz) < 0.2 * dy, (dx, dy, dz)  # stick left = +y (REP-103)
    page.click("#estop")
    wait_for(lambda: session.store.n_episodes == 1, "the episode to be stored")
    rows = session.store.episode(0)
    from robotrl.data.store import source_name

    assert {source_name(c) for c, took in zip(rows["intervention_source"], rows["intervention"]) if took} == {"gamepad"}


@pytest.mark.slow
def test_a_quadrotor_takeover_commands_velocity(browser, twin):
    from robotrl.tasks.experts import make_expert

    session, server = twin("robotrl/QuadHover-v0", policy=make_expert)  # the policy hovers at the goal
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    wait_ticks(session, 50)  # 1 s at 50 Hz
    page.keyboard.down("KeyW")  # +x at the robot's max speed: a velocity setpoint, flown by the pilot
    wait_for(lambda: session.actor.last_info.get("intervention"), "the takeover")
    start = session.ticks
    wait_ticks(session, 75)
    velocity = session.twin.reading.vel.copy()
    page.keyboard.up("KeyW")

    path = targets(session, start)  # the quadrotor's position, per tick
    assert path[-1, 0] - path[0, 0] > 0.5, path[[0, -1]]
    assert np.abs(path[:, 2] - path[0, 2]).max() < 0.15  # no climb or fall: not raw thrust from a key
    max_speed = session.twin.task.robot.max_speed
    assert 0.6 * max_speed < velocity[0] < 1.1 * max_speed and np.abs(velocity[1:]).max() < 0.3, velocity


@pytest.mark.slow
def test_a_malformed_message_is_rejected_with_its_reason_and_never_forwarded(browser, twin):
    session, server = twin()
    page = open_page(browser, server)
    take_control_and_resume(page, session)
    mark = session.ticks
    page.evaluate("""() => { const ws = new WebSocket(`ws://${location.host}/ws`);
        ws.onopen = () => { ws.send(JSON.stringify({type: 'hello', token: 'wrong'}));
          ws.send('{not json'); }; }""")  # a watcher's garbage
    wait_for(lambda: any("not JSON" in r for r in server.stats.rejected), "the JSON refusal")
    # From the controlling page itself: out of range, not a number, unknown command.
    for bad in ("{type: 'teleop', device: 'keyboard', active: true, linear: [40, 0, 0], yaw: 0, t: 0}",
                "{type: 'teleop', device: 'keyboard', active: true, linear: [NaN, 0, 0], yaw: 0, t: 0}",
                "{type: 'command', name: 'reboot'}"):
        page.evaluate(f"() => send({bad})")
    wait_for(lambda: len(server.stats.rejected) >= 4, "the refusals")
    reasons = list(server.stats.rejected)
    assert any("40 outside [-1, 1]" in r for r in reasons) and any("number expected" in r for r in reasons)
    assert any("reboot" in r for r in reasons)
    wait_for(lambda: "rejected" in page.inner_text("#rejected"), "the page showing the refusal")
    wait_ticks(session, 5)
    assert np.abs(np.diff(targets(session, mark), axis=0)).max() < 1e-3  # nothing moved the arm


@pytest.mark.slow
def test_robotrl_ui_serves_the_page_and_stops_on_ctrl_c(tmp_path):
    """Ctrl-C stops it with exit code 0, even started with SIGINT ignored (as a script's background job is)."""
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "robotrl.cli", "ui", "--env", "robotrl/ArmReach-v0", "--port", "0",
                             "--store", str(tmp_path / "ui.zarr")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `cmd &` starts it
    try:
        lines = []
        while not (lines and lines[-1].startswith("open http")):
            line = proc.stdout.readline()
            assert line, "".join(lines)  # exited before serving
            lines.append(line)
        url = re.search(r"(http://127\.0\.0\.1:\d+)/#token=(\S+)", lines[-1])
        assert url and len(url.group(2)) >= 20
        page = urllib.request.urlopen(url.group(1) + "/").read().decode()
        assert "E-STOP" in page and url.group(2) not in page  # the token is not in what the server sends
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # fail with every thread's stack: what the process waits on
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
            pytest.fail("robotrl ui did not stop within 60 s of SIGINT:\n" + proc.communicate()[0])
    assert proc.returncode == 0, out
    bad = subprocess.run([sys.executable, "-m", "robotrl.cli", "ui", "--env", "robotrl/ArmReach-v0", "--learn"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--learn needs --policy RUN" in bad.stderr
