"""The operator page's server (aiohttp): the static page, one WebSocket per page, an MJPEG stream per camera.

Security, in the order a request meets it:
- it binds to 127.0.0.1 unless told otherwise (remote operators use an SSH tunnel: README);
- a WebSocket whose ``Origin`` is not this server's own is refused (a page from another site cannot connect);
- control needs the token printed at start, sent in the page's first message (never a cookie); without it a page
  watches only. One page holds the control lease (robotrl.ui.console);
- every message is validated (robotrl.ui.protocol) and a bad one is answered ``{"type": "rejected", "reason"}``.

Per page, the server pushes ``status`` (the console's robot status, ~20 Hz) and each camera's newest frame as a
binary message (robotrl.ui.frames) as soon as it exists and the page has drawn all but one of those sent before
(flow control by the page's ``drawn`` acks); a page that is slow to draw skips frames rather than queueing them.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import secrets
import threading
from collections import deque
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from robotrl.ui.console import Console, NotAllowed
from robotrl.ui.frames import FrameHub
from robotrl.ui.protocol import Command, Drawn, Echo, Heartbeat, Hello, ProtocolError, Teleop, now_ms, parse

STATIC = Path(__file__).parent / "static"
STATUS_PERIOD_S = 0.05
FRAME_POLL_S = 0.004  # how often a page's sender looks for new frames (a few ms of the frame-age budget)
# Frames of one camera sent to a page and not yet drawn there: with more, a slow page queues seconds of video in the
# socket (measured: p99 age 538 ms, 15 % drops at 2 x 640x480 x 30 fps); the newest frame waits instead.
MAX_IN_FLIGHT = 2
IN_FLIGHT_TIMEOUT_MS = 1000.0  # a frame whose "drawn" never came (a hidden tab draws nothing) stops counting
HELLO_TIMEOUT_S = 5.0


class Stats:
    """What the server measured, for the page and bench/ui_latency.py."""

    def __init__(self, keep: int = 20000):
        self.teleop: deque[tuple[float, float]] = deque(maxlen=keep)  # (received, input read), server ms
        self.frame_age_ms: dict[str, deque[float]] = {}  # per camera: drawn - captured
        self.rejected: deque[str] = deque(maxlen=100)
        self.refused_origins: deque[str] = deque(maxlen=100)
        self._stamps: dict[tuple[str, int], float] = {}  # (camera, seq) -> capture time, for recent frames

    def sent(self, camera: str, seq: int, stamp_ms: float) -> None:
        self._stamps[(camera, seq)] = stamp_ms
        if len(self._stamps) > 1000:
            for key in list(self._stamps)[:500]:
                del self._stamps[key]

    def drawn(self, msg: Drawn) -> float | None:
        stamp = self._stamps.get((msg.camera, msg.seq))
        if stamp is None:
            return None
        age = msg.t - stamp
        self.frame_age_ms.setdefault(msg.camera, deque(maxlen=self.teleop.maxlen)).append(age)
        return age


class UiServer:
    """The app around a ``console`` and its ``frames``; ``start()`` serves it from a background thread."""

    def __init__(self, console: Console, frames: FrameHub, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None, run_dir: Path | None = None, store: Path | None = None):
        self.console, self.frames, self.host, self.port = console, frames, host, port
        self.token = token or secrets.token_urlsafe(18)
        self.stats = Stats()
        self.watchers = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._in_flight: dict[int, dict[str, list[tuple[int, float]]]] = {}  # page -> camera -> [(seq, sent at)]
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.add_routes([web.get("/", self._index), web.get("/ws", self._ws), web.get("/mjpeg/{camera}", self._mjpeg),
                             web.static("/static", STATIC)])
        from robotrl.ui.history import add_history_routes

        add_history_routes(self.app, run_dir, store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    @property
    def url(self) -> str:
        """The page with the control token (in the fragment: never sent to a server, never in a cookie)."""
        return f"http://{self.host}:{self.port}/#token={self.token}"

    # -- running --------------------------------------------------------------------------------------------
    def start(self) -> UiServer:
        self._thread = threading.Thread(target=self._serve, name="ui-server", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError(f"the operator page's server did not start on {self.host}:{self.port}")
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._run())

    async def _run(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stopping = asyncio.Event()
        self._started.set()
        checker = asyncio.create_task(self._check_heartbeats())
        await self._stopping.wait()
        checker.cancel()
        for ws in list(self._sockets):  # else cleanup waits for every page to go
            await ws.close(code=1001, message=b"the server is stopping")
        await runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _check_heartbeats(self) -> None:
        """A silent page holds the robot -- unless this server was the one stalled (a loaded CPU, the GIL): after a
        late wake-up the heartbeats that waited in its socket are read before the next check."""
        last = now_ms()
        while True:
            await asyncio.sleep(0.05)
            woke = now_ms()
            if woke - last < 150:
                self.console.check()
            last = woke

    # -- handlers -------------------------------------------------------------------------------------------
    async def _index(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or origin == f"{request.scheme}://{request.host}"  # no Origin: not a browser

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            self.stats.refused_origins.append(request.headers["Origin"])
            raise web.HTTPForbidden(text=f"origin {request.headers.get('Origin')} may not connect to this server")
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 16)
        await ws.prepare(request)
        client = next(self._ids)
        try:
            first = await ws.receive(timeout=HELLO_TIMEOUT_S)
            hello = parse(first.data) if first.type == WSMsgType.TEXT else None
        except (asyncio.TimeoutError, ProtocolError):
            hello = None
        if not isinstance(hello, Hello):
            await ws.close(message=b"the first message must be a hello")
            return ws
        authorized = bool(hello.token) and hmac.compare_digest(hello.token, self.token)
        await ws.send_json({"type": "welcome", "client": client, "may_control": authorized, "server_ms": now_ms(),
                            "cameras": self.frames.cameras})
        self.watchers += 1
        self._sockets.add(ws)
        sender = asyncio.create_task(self._send(ws, client))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    await self._reject(ws, "binary messages are not accepted")
                    continue
                await self._handle(ws, client, authorized, msg.data)
        finally:
            sender.cancel()
            self._in_flight.pop(client, None)
            self.watchers -= 1
            self._sockets.discard(ws)
            self.console.release(client, "the controlling page closed")
        return ws

    async def _reject(self, ws: web.WebSocketResponse, reason: str) -> None:
        self.stats.rejected.append(reason)
        await ws.send_json({"type": "rejected", "reason": reason})

    async def _handle(self, ws: web.WebSocketResponse, client: int, authorized: bool, text: str) -> None:
        try:
            msg = parse(text)
        except ProtocolError as exc:
            return await self._reject(ws, str(exc))
        self.console.heartbeat(client)  # any valid message shows the page alive (frames drawn come ~10-30 a second)
        if isinstance(msg, Echo):
            return await ws.send_json({"type": "echo", "t": msg.t, "server_ms": now_ms()})
        if isinstance(msg, Drawn):
            self.stats.drawn(msg)
            flight = self._in_flight.get(client, {})
            flight[msg.camera] = [(q, t) for q, t in flight.get(msg.camera, []) if q > msg.seq]  # drawn or skipped
            return None
        if isinstance(msg, Heartbeat):
            return None
        if isinstance(msg, Hello):
            return await self._reject(ws, "hello twice")
        if not authorized:
            return await self._reject(ws, "watch only: this page did not show the control token")
        if isinstance(msg, Teleop):
            self.stats.teleop.append((now_ms(), msg.t))
        try:
            self.console.command(client, msg)
        except NotAllowed as exc:
            return await self._reject(ws, str(exc))
        if isinstance(msg, Command):
            await ws.send_json({"type": "ack", "name": msg.name})

    async def _send(self, ws: web.WebSocketResponse, client: int) -> None:
        sent: dict[str, int] = {}
        flight = self._in_flight[client] = {}
        next_status = 0.0
        while not ws.closed:
            for name, frame in self.frames.latest().items():
                pending = flight[name] = [(q, t) for q, t in flight.get(name, []) if now_ms() - t < IN_FLIGHT_TIMEOUT_MS]
                if sent.get(name) != frame.seq and len(pending) < MAX_IN_FLIGHT:
                    sent[name] = frame.seq
                    pending.append((frame.seq, now_ms()))
                    self.stats.sent(name, frame.seq, frame.stamp_ms)
                    await ws.send_bytes(frame.packet())
            if now_ms() >= next_status:
                next_status = now_ms() + STATUS_PERIOD_S * 1e3
                await ws.send_str(json.dumps(self._status(client), default=_jsonable))
            await asyncio.sleep(FRAME_POLL_S)

    def _status(self, client: int) -> dict[str, Any]:
        c = self.console
        return {"type": "status", "server_ms": now_ms(), "robot": c.robot, "in_control": c.controller == client,
                "controller": c.controller, "pages": self.watchers, "rejected": len(self.stats.rejected)}

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        """The second streaming prototype (bench/ui_latency.py compares it with the WebSocket): multipart JPEG."""
        camera = request.match_info["camera"]
        if camera not in self.frames.cameras:
            raise web.HTTPNotFound(text=f"camera {camera!r} unknown; cameras: {', '.join(self.frames.cameras)}")
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        last = -1
        while True:
            frame = self.frames.latest()[camera]
            if frame.seq != last:
                last = frame.seq
                self.stats.sent(camera, frame.seq, frame.stamp_ms)
                await response.write(b"--frame\r\nContent-Type: image/jpeg\r\nX-Seq: %d\r\nContent-Length: %d\r\n\r\n"
                                     % (frame.seq, len(frame.jpeg)) + frame.jpeg + b"\r\n")
            await asyncio.sleep(FRAME_POLL_S)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays in a status."""
    return value.tolist() if hasattr(value, "tolist") else str(value)
