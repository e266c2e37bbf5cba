"""The operator's page driving the in-process actor on the MuJoCo twin (no ROS): a real-time loop at the task's
control rate that steps the actor (policy, or the human through the console), records every episode, renders the
cameras for the page and keeps the console's status fresh.

While the console holds the robot (E-STOP, a lost page, not yet resumed) or waits for "scene ready", the actor does
not step: the episode in progress is stored as it stands (truncated), the device is stopped (arm: hold where it is;
quadrotor: hover, and land once E-STOP has latched ``land_after_s``) and the world keeps running, as a real one
would. The loop counts its ticks (control periods) whatever it does, so the tests can count in twin steps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from robotrl.data import EpisodeStore
from robotrl.interventions import InterventionWrapper
from robotrl.policies.base import Policy
from robotrl.runtime.actor import Actor, PendingLabels
from robotrl.ui.console import Console
from robotrl.ui.frames import FrameHub
from robotrl.ui.protocol import now_ms

VIEW_SIZE = (320, 240)  # the page's camera views (width, height); the policy's own images are smaller crops


class TwinSession:
    """``make_env()`` and ``make_policy(env)`` run in the loop's thread (a MuJoCo GL context belongs to the thread
    that made it). ``transport``: new weights from a learner process (robotrl.runtime.transport)."""

    def __init__(self, make_env: Callable[[], gym.Env], make_policy: Callable[[gym.Env], Policy], store: Path,
                 task: str, seed: int = 0, wait_ready: bool = False, land_after_s: float = 2.0,
                 transport: Any = None, learning: Callable[[bool], None] | None = None, trace: int = 2000):
        self.make_env, self.make_policy, self.store_path, self.task = make_env, make_policy, Path(store), task
        self.seed, self.wait_ready, self.land_after_s, self.transport = seed, wait_ready, land_after_s, transport
        self.console = Console(on_estop=[self.stop_devices], learning=learning)
        self.frames = FrameHub()
        self.ticks = 0  # control periods since start, stepping or holding
        self.trace: deque[dict[str, Any]] = deque(maxlen=trace)  # per tick: what the devices were told (tests)
        self.labels: list[tuple[int, bool]] = []  # (store index, success) written from the page's clicks
        self.error: BaseException | None = None
        self.ready = threading.Event()  # the env exists and the first frame is published
        self._lock = threading.Lock()  # the world: stepped by the loop, stopped by E-STOP from the server's thread
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="twin-session", daemon=True)
        self._pending = PendingLabels()  # success clicks during an episode, until it is stored
        self._waiting_ready = False
        self._holding_since: float | None = None
        self._state: dict[str, list[float]] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> TwinSession:
        self._thread.start()
        if not self.ready.wait(timeout) or self.error:
            raise RuntimeError(f"the twin session did not start: {self.error!r}")
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            self._setup()
            self.ready.set()
            self._loop()
        except BaseException as exc:  # shown on the page and raised by start(); the loop never dies silently
            self.error = exc
            self.console.robot = {**self.console.robot, "error": f"{type(exc).__name__}: {exc}"}
            self.ready.set()
            raise
        finally:  # in this thread: GL contexts are freed by the thread that made them
            for cam in getattr(self, "views", {}).values():
                cam.close()
            if hasattr(self, "env"):
                self.env.close()
            if hasattr(self, "store"):
                self.store.close()

    def _setup(self) -> None:
        from robotrl.sim.camera import TwinCamera
        from robotrl.tasks.teleop import TeleopMapping

        env = self.make_env()
        self.twin = env.unwrapped
        self.console.mapping = TeleopMapping(self.twin.task)
        self.env = InterventionWrapper(env, self.console)
        self.store = EpisodeStore(self.store_path, mode="a")
        self.actor = Actor(self.env, self.make_policy(env), self.store, self.task, self.transport, seed=self.seed,
                           resume_at=(0, self.store.n_episodes))
        self.control_dt = float(self.twin.control_dt)
        names = list(self.twin.config.observation.cameras) or [self.twin.render_camera]
        self.views = {n: TwinCamera(self.twin.world, n, *VIEW_SIZE) for n in names}
        self.bounds = self._bounds()
        try:  # a ClassifierReward's: the page draws its threshold on the probability meter
            self.threshold: float | None = float(env.get_wrapper_attr("classifier").threshold)
        except AttributeError:
            self.threshold = None
        self._publish_frames()

    # -- the loop ----------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.console.check(factor=4)  # the server checks at 1x; this is for a server that is gone
            self._take_events()
            with self._lock:
                stepped = not (self.console.holding or self._waiting_ready)
                if not stepped:
                    self._hold()
                else:
                    self._holding_since = None
                    if self.actor.step() is not None and self.wait_ready:
                        self._waiting_ready = True
                    self._apply_labels()
                self.ticks += 1
                self.trace.append({**self._commanded(), "stepped": stepped})
            self._publish_frames()
            self._status()
            next_tick += self.control_dt
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # behind (a slow render): start again from now rather than racing to catch up
                next_tick = time.monotonic()

    def _hold(self) -> None:
        """One control period with the robot held: the episode in progress is cut, the devices stopped, the world
        goes on."""
        if self._holding_since is None:
            self._holding_since = now_ms()
            self.actor.cut_episode()
            self._apply_labels()
            self._stop_devices()
        elif self.console.estopped and hasattr(self.twin, "quad") and now_ms() - self._holding_since > self.land_after_s * 1e3:
            self.twin.quad.land()
        self.twin.advance(self.control_dt)

    def stop_devices(self) -> None:
        """E-STOP's path, from the server's thread, straight to the devices (never through the actor)."""
        with self._lock:
            self._stop_devices()

    def _stop_devices(self) -> None:
        device = getattr(self.twin, "arm", None) or getattr(self.twin, "quad")
        device.stop()

    def _commanded(self) -> dict[str, Any]:
        """What the devices are told to do this tick: the arm's impedance target, the quadrotor's position."""
        arm = getattr(self.twin, "arm", None)
        at = arm.target_pose()[0] if arm is not None else self.twin.reading.pos
        return {"tick": self.ticks, "target": np.array(at), "holding": self.console.holding,
                "estopped": self.console.estopped}

    # -- operator events ---------------------------------------------------------------------------------------
    def _take_events(self) -> None:
        events = self.console.take_events()
        if events.ready:
            self._waiting_ready = False
        for success in events.labels:
            # During an episode a label means that episode (written once it is stored); between episodes, the
            # last one stored.
            if self.actor.recording:
                self._pending.add(self.actor.episodes, success)
            elif self.actor.last_stored >= 0:
                self._write_label(self.actor.last_stored, success)

    def _apply_labels(self) -> None:
        for index, success in self._pending.take_stored(self.actor):
            self._write_label(index, success)

    def _write_label(self, index: int, success: bool) -> None:
        self.store.add_label(index, success=success, source="operator")
        self.labels.append((index, success))

    # -- what the page shows -----------------------------------------------------------------------------------
    def _publish_frames(self) -> None:
        for name, cam in self.views.items():
            self.frames.publish(name, cam.read().image)

    def _bounds(self) -> dict[str, list[float]] | None:
        box = getattr(getattr(self.twin, "safety", None), "config", None)
        if box is None or getattr(box, "box_min", None) is None:
            return None
        return {"min": list(box.box_min), "max": list(box.box_max)}

    def _status(self) -> None:
        a, info, c = self.actor, self.actor.last_info, self.console
        if a._obs is not None:  # between episodes (held, waiting) the page keeps the last state it was shown
            self._state = {k.split("/", 1)[1]: np.round(np.asarray(v, float), 4).ravel().tolist()
                           for k, v in a._obs.items() if k.startswith("state/")}
        classifier = None
        if "success_probability" in info:
            classifier = {"probability": float(info["success_probability"]), "threshold": self.threshold}
        c.robot = {
            "tick": self.ticks, "control_hz": 1.0 / self.control_dt, "episode": a.episodes,
            "step": a.episode_step if a.recording else 0, "recording": a.recording, "env_steps": a.env_steps,
            "episode_s": (a.episode_step if a.recording else 0) * self.control_dt,
            "holding": c.holding, "hold_reason": c.hold_reason, "estopped": c.estopped,
            "waiting_ready": self._waiting_ready, "learning_paused": c.learning_paused,
            "intervening": bool(info.get("intervention")) and a.recording, "device": c.device,
            "intervention_rate": float(info.get("intervention_rate", 0.0)),
            "executed_action": np.round(np.asarray(info.get("action", []), float), 3).tolist(),
            "policy_action": None if a.last_policy_action is None else np.round(a.last_policy_action, 3).tolist(),
            "human": c.human(), "classifier": classifier, "state": self._state, "bounds": self.bounds,
            "weights_version": a.weights_version, "labels": self.labels[-5:], "stored": self.store.n_episodes,
        }

