"""The operator's console: the state the page commands and the robot's loop reads, shared between threads.

One page holds the control lease (it showed the start token); others watch. The controlling page's teleop input
is a ``TeleopSource`` (robotrl.interventions) the actor merges step by step: hold-to-intervene, released the moment
the page says so or its input goes stale, with the device and the command's age recorded on every intervened step.

Holding the robot: E-STOP latches (``estopped``) until re-armed and calls the device stop at once, from the thread
that received it, never through the actor. Losing the controlling page (closed, or no heartbeat for
``heartbeat_s``) holds the robot too. Either way the policy resumes only on an explicit ``resume``.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from robotrl.ui.protocol import Command, Teleop, now_ms

HEARTBEAT_S = 0.5  # the bar: a page silent this long no longer holds the robot


class NotAllowed(Exception):
    """A command this page may not give; the text says why."""


@dataclass
class Events:
    """What the page asked of the robot's loop, taken there (``Console.take_events``)."""

    labels: list[bool] = field(default_factory=list)  # success / failure clicks, oldest first
    ready: bool = False


class Console:
    """``mapping(obs, linear, yaw, gripper) -> action`` turns the human's input into the task's action
    (robotrl.tasks.teleop.TeleopMapping; None until the task is known, or where the input is only forwarded, as by a
    graph's ui node: then the console is no TeleopSource); ``stale_ms``: input older than this is no input (a page
    that stopped sending while a key was down); ``on_estop``: the device stops, called at once on E-STOP;
    ``on_rearm``: the devices' re-arm."""

    source = "teleop"

    def __init__(self, mapping: Callable[..., np.ndarray] | None = None, stale_ms: float = 250.0, heartbeat_s: float = HEARTBEAT_S,
                 on_estop: list[Callable[[], None]] | None = None, on_rearm: list[Callable[[], None]] | None = None,
                 learning: Callable[[bool], None] | None = None):
        self.mapping, self.stale_ms, self.heartbeat_s = mapping, stale_ms, heartbeat_s
        self.on_estop, self.on_rearm = list(on_estop or []), list(on_rearm or [])
        self.learning = learning  # pause (False) / resume (True) learning, where a learner runs
        self._lock = threading.Lock()
        self._controller: int | None = None
        self._heartbeat = 0.0
        self._input: Teleop | None = None
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.estopped = False
        self.held = True  # nothing moves until the operator says so (resume)
        self.hold_reason = "waiting for the operator to resume"
        self.learning_paused = False
        self.device: str | None = None  # who acted at the last poll that returned an action, and how old it was
        self.age_ms: float | None = None
        self.robot: dict[str, Any] = {}  # the loop's latest status (episode, step, actions, probabilities ...)

    # -- the control lease ---------------------------------------------------------------------------------------
    @property
    def controller(self) -> int | None:
        return self._controller

    def take_control(self, client: int) -> None:
        with self._lock:
            if self._controller not in (None, client):
                raise NotAllowed("another page holds control; it must release it (or close) first")
            self._controller, self._heartbeat = client, now_ms()

    def release(self, client: int, reason: str = "the controlling page released control") -> None:
        """The page gives up control (or is gone): its input ends and the robot holds until someone resumes."""
        with self._lock:
            if self._controller != client:
                return
            self._controller, self._input = None, None
            self._hold(reason)

    def heartbeat(self, client: int) -> None:
        if client == self._controller:
            self._heartbeat = now_ms()

    def check(self, factor: float = 1.0) -> None:
        """Holds the robot when the controlling page has sent no heartbeat for ``factor`` x ``heartbeat_s``. The
        server checks at 1 (when its own loop ran on time); the robot's loop at a few times that, in case the server
        itself is gone."""
        client = self._controller
        silent = now_ms() - self._heartbeat
        if client is not None and silent > factor * self.heartbeat_s * 1e3:
            self.release(client, f"the controlling page sent no heartbeat for {silent / 1e3:.1f} s")

    # -- commands ---------------------------------------------------------------------------------------------
    def command(self, client: int, msg: Command | Teleop) -> None:
        """One validated message of a page; raises NotAllowed for a page without control."""
        if isinstance(msg, Command) and msg.name == "take_control":
            return self.take_control(client)
        if client != self._controller:
            raise NotAllowed("read-only: this page does not hold control")
        if isinstance(msg, Teleop):
            with self._lock:
                self._input = msg
            return
        name = msg.name
        if name == "estop":
            self.estop()
        elif name == "rearm":
            with self._lock:
                self.estopped = False  # still held: the policy resumes on "resume" only
                self.hold_reason = "re-armed; waiting for the operator to resume"
            for rearm in self.on_rearm:
                rearm()
        elif name == "resume":
            with self._lock:
                if self.estopped:
                    raise NotAllowed("E-STOP is latched: re-arm first")
                self.held, self.hold_reason = False, ""
        elif name in ("pause_learning", "resume_learning"):
            if self.learning is None:
                raise NotAllowed("no learner runs in this session")
            self.learning_paused = name == "pause_learning"
            self.learning(not self.learning_paused)
        elif name == "ready":
            self._events.put(("ready", True))
        elif name in ("success", "failure"):
            self._events.put(("label", name == "success"))
        elif name == "release_control":
            self.release(client)

    def device_input(self, msg: Teleop) -> None:
        """Input from a device on the robot host (a SpaceMouse): whoever holds it stands at the robot, so it needs
        no page's lease; the robot's holds still apply (poll returns nothing while held)."""
        with self._lock:
            self._input = msg

    def estop(self) -> None:
        """Latch, hold, and stop the devices now (in this thread)."""
        with self._lock:
            self.estopped, self._input = True, None
            self._hold("E-STOP")
        for stop in self.on_estop:
            stop()

    def hold(self, reason: str) -> None:
        """Hold the robot (e.g. a take-over device was lost); the policy resumes on an explicit resume."""
        with self._lock:
            self._input = None
            self._hold(reason)

    def _hold(self, reason: str) -> None:
        self.held, self.hold_reason = True, reason

    @property
    def holding(self) -> bool:
        return self.held or self.estopped

    def take_events(self) -> Events:
        events = Events()
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                return events
            if kind == "label":
                events.labels.append(value)
            else:
                events.ready = True

    # -- TeleopSource (robotrl.interventions) -------------------------------------------------------------------
    def reset(self) -> None:
        """Episodes do not change who is in control."""
        reset = getattr(self.mapping, "reset", None)
        if reset is not None:
            reset()

    def current_input(self) -> tuple[Teleop, float] | None:
        """The human's input in force now, with its age (ms): None while hands off, stale or held."""
        with self._lock:
            msg = self._input
        age = now_ms() - msg.t if msg is not None else np.inf
        if msg is None or not msg.active or age > self.stale_ms or self.holding:
            return None
        return msg, age

    def poll(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        current = self.current_input()
        if current is None:
            self.device = self.age_ms = None
            return None
        msg, self.age_ms = current
        self.device = msg.device
        if self.mapping is None:
            raise RuntimeError("Console.poll: no mapping from the human's input to the task's action (set .mapping)")
        return self.mapping(obs, np.asarray(msg.linear), msg.yaw, msg.gripper)

    def human(self) -> dict[str, Any] | None:
        """The human's current input, for the page (None: hands off)."""
        msg = self._input
        if msg is None or not msg.active:
            return None
        return {"device": msg.device, "linear": list(msg.linear), "yaw": msg.yaw, "gripper": msg.gripper}
