// The operator's page: live cameras, robot status, take-over by keyboard or gamepad, labels, reset, E-STOP.
// Protocol: robotrl/ui/protocol.py. Every time sent to the server is in the server's clock (offset by echo).
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname);  // the token leaves the address bar (and is never a cookie)

const $ = (id) => document.getElementById(id);
const TELEOP_PERIOD_MS = 20;  // input is sent at 50 Hz while held: faster than any control period it feeds
const KEYS = { KeyW: [0, 1], KeyS: [0, -1], KeyA: [1, 1], KeyD: [1, -1], KeyR: [2, 1], KeyF: [2, -1] };
const YAW_KEYS = { KeyQ: 1, KeyE: -1 };
const DEADZONE = 0.1;

let ws = null, offset = 0, inControl = false, mayControl = false, status = {};
const syncs = [];  // the last clock-sync samples {rtt, offset}: the one with the shortest round trip is trusted
let gripper = null, wasActive = false;
const held = new Set();
const cams = {};  // name -> {canvas, ctx, meta, pending, lastSeq, drops, drawn, stamp}

// -- connection --------------------------------------------------------------------------------------------
function now() { return performance.now() + offset; }  // server clock, ms
function send(msg) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg)); }
function command(name) { send({ type: "command", name }); }

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    send({ type: "hello", token });
    for (let i = 0; i < 8; i++) setTimeout(syncClock, 25 * i);  // a burst: one of them meets a quiet moment
  };
  ws.onclose = () => { setPill("link", "disconnected", "bad"); inControl = false; setTimeout(connect, 1000); };
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onText(JSON.parse(ev.data)) : onFrame(ev.data));
}

function syncClock() {
  const t = performance.now();
  send({ type: "echo", t });
}

function onText(msg) {
  if (msg.type === "welcome") {
    mayControl = msg.may_control;
    setPill("link", "connected", "good");
    if (mayControl) command("take_control");
  } else if (msg.type === "echo") {
    const t1 = performance.now();
    syncs.push({ rtt: t1 - msg.t, offset: msg.server_ms - (msg.t + t1) / 2 });
    if (syncs.length > 16) syncs.shift();
    offset = syncs.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset;
  } else if (msg.type === "status") {
    status = msg; render(msg);
  } else if (msg.type === "rejected") {
    $("rejected").textContent = "rejected: " + msg.reason;
  }
}

// -- cameras -----------------------------------------------------------------------------------------------
function camera(name) {
  if (cams[name]) return cams[name];
  const box = document.createElement("div");
  box.className = "cam";
  box.innerHTML = `<canvas width="320" height="240"></canvas><div class="meta"><b>${name}</b><span></span></div>`;
  $("cameras").appendChild(box);
  const canvas = box.querySelector("canvas");
  return (cams[name] = { canvas, ctx: canvas.getContext("2d"), meta: box.querySelector("span"), pending: null,
                         lastSeq: -1, drops: 0, drawn: 0, stamp: null, frameMs: [] });
}

async function onFrame(buf) {
  const n = new DataView(buf).getUint32(0);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const cam = camera(head.camera);
  if (cam.lastSeq >= 0 && head.seq > cam.lastSeq + 1) cam.drops += head.seq - cam.lastSeq - 1;  // never received
  cam.lastSeq = Math.max(cam.lastSeq, head.seq);
  const bitmap = await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: "image/jpeg" }));
  if (cam.pending) { cam.drops += 1; cam.pending.bitmap.close(); }  // received but replaced before it was drawn
  cam.pending = { head, bitmap };
}

function draw() {
  for (const [name, cam] of Object.entries(cams)) {
    if (cam.pending) {
      const { head, bitmap } = cam.pending;
      cam.pending = null;
      if (cam.canvas.width !== head.width) { cam.canvas.width = head.width; cam.canvas.height = head.height; }
      cam.ctx.drawImage(bitmap, 0, 0);
      bitmap.close();
      cam.stamp = head.stamp_ms; cam.drawn += 1;
      cam.frameMs.push(performance.now()); if (cam.frameMs.length > 30) cam.frameMs.shift();
      send({ type: "drawn", camera: name, seq: head.seq, t: now() });
    }
    if (cam.stamp !== null) {
      const fps = cam.frameMs.length > 1 ? (1000 * (cam.frameMs.length - 1)) / (cam.frameMs.at(-1) - cam.frameMs[0]) : 0;
      cam.meta.textContent = `${fps.toFixed(0)} fps · age ${(now() - cam.stamp).toFixed(0)} ms · dropped ${cam.drops}`;
    }
  }
  requestAnimationFrame(draw);
}

// -- take-over ---------------------------------------------------------------------------------------------
function keyboardInput() {
  const linear = [0, 0, 0];
  let yaw = 0, active = held.has("Space");
  for (const code of held) {
    if (KEYS[code]) { linear[KEYS[code][0]] += KEYS[code][1]; active = true; }
    if (YAW_KEYS[code]) { yaw += YAW_KEYS[code]; active = true; }
  }
  return { device: "keyboard", active, linear, yaw };
}

function gamepadInput() {
  const pads = navigator.getGamepads ? Array.from(navigator.getGamepads()).filter(Boolean) : [];
  const pad = pads[0];
  if (!pad || !pad.buttons[4] || !pad.buttons[4].pressed) return null;  // LB is the deadman
  const axis = (i) => { const v = pad.axes[i] || 0; return Math.abs(v) < DEADZONE ? 0 : Math.max(-1, Math.min(1, v)); };
  if (pad.buttons[0] && pad.buttons[0].pressed) gripper = -1;
  if (pad.buttons[1] && pad.buttons[1].pressed) gripper = 1;
  // Stick up is negative in the Gamepad API; robot x is forward, y left, z up (REP-103).
  return { device: "gamepad", active: true, linear: [-axis(1), -axis(0), -axis(3)], yaw: -axis(2) };
}

function teleopTick() {
  if (!inControl) { wasActive = false; return; }
  const input = gamepadInput() || keyboardInput();
  if (input.active || wasActive) send({ type: "teleop", ...input, gripper, t: now() });
  wasActive = input.active;
}

function onKey(ev, down) {
  if (ev.code === "Escape" && down) { command("estop"); ev.preventDefault(); return; }
  if (ev.code === "KeyC" && down) gripper = -1;
  if (ev.code === "KeyV" && down) gripper = 1;
  if (KEYS[ev.code] || YAW_KEYS[ev.code] || ev.code === "Space") {
    ev.preventDefault();
    if (down) held.add(ev.code); else held.delete(ev.code);
    teleopTick();  // a press or release goes out now, not at the next tick
  }
}
addEventListener("keydown", (ev) => onKey(ev, true));
addEventListener("keyup", (ev) => onKey(ev, false));
addEventListener("blur", () => { held.clear(); teleopTick(); });  // a key released while away never sticks

// -- status ------------------------------------------------------------------------------------------------
function setPill(id, text, kind) { const el = $(id); el.textContent = text; el.className = "pill " + (kind || ""); }

function render(msg) {
  const r = msg.robot || {};
  inControl = msg.in_control;
  // Control lapsed (a stalled page missed its heartbeats) and nobody holds it: take it back. The robot stays held
  // until the operator resumes, so this never restarts the policy.
  if (mayControl && !inControl && msg.controller === null) command("take_control");
  setPill("role", inControl ? "in control" : mayControl ? "watching (control held elsewhere)" : "watching (no token)",
          inControl ? "good" : "warn");
  setPill("episode", `episode ${r.episode ?? "–"} · step ${r.step ?? 0}`);
  $("timer").textContent = `${(r.episode_s || 0).toFixed(1)} s`;
  for (const b of document.querySelectorAll("button[data-cmd]")) b.disabled = !mayControl || (!inControl && b.id !== "take");
  $("take").disabled = !mayControl || inControl || msg.controller !== null;
  $("estop").classList.toggle("latched", !!r.estopped);
  const banner = $("banner");
  const text = r.error ? "error: " + r.error : r.estopped ? "E-STOP latched: re-arm, then resume" : r.holding
    ? "holding: " + r.hold_reason : r.waiting_ready ? "waiting for the scene: reset it, then press Scene ready" : "";
  banner.textContent = text; banner.classList.toggle("hidden", !text); banner.classList.toggle("stop", !!(r.estopped || r.error));
  $("learning").textContent = r.learning_paused ? "Resume learning" : "Pause learning";
  $("learning").dataset.cmd = r.learning_paused ? "resume_learning" : "pause_learning";
  setPill("who", r.intervening ? `human · ${r.device}` : r.holding ? "held" : "policy", r.intervening ? "warn" : "");
  $("irate").textContent = `${Math.round(100 * (r.intervention_rate || 0))} %`;
  renderActions(r.policy_action || [], r.executed_action || []);
  renderClassifier(r.classifier);
  renderState(r.state || {}, r.bounds);
}

function renderActions(policy, executed) {
  const box = $("actions"), n = Math.max(policy.length, executed.length);
  while (box.children.length < n) box.insertAdjacentHTML("beforeend", '<div class="bar"><div class="zero"></div><i class="policy"></i><i class="human"></i></div>');
  for (let i = 0; i < box.children.length; i++) {
    const [p, h] = box.children[i].querySelectorAll("i");
    place(p, policy[i]); place(h, executed[i]);
  }
}
function place(el, v) {  // a bar from the centre (0) to v in [-1, 1]
  if (v === undefined) { el.style.width = "0"; return; }
  v = Math.max(-1, Math.min(1, v));
  el.style.left = `${50 + Math.min(0, v) * 50}%`; el.style.width = `${Math.abs(v) * 50}%`;
}

function renderClassifier(c) {
  if (!c) return;
  $("prob").style.width = `${100 * c.probability}%`;
  $("prob").classList.toggle("over", c.probability >= c.threshold);
  $("thresh").style.display = "block"; $("thresh").style.left = `${100 * c.threshold}%`;
  $("probtext").textContent = `P(success) ${c.probability.toFixed(3)} · threshold ${c.threshold.toFixed(3)}`;
}

function renderState(state, bounds) {
  $("state").innerHTML = Object.entries(state)
    .map(([k, v]) => `<tr><td>${k}</td><td>${v.map((x) => x.toFixed(3)).join(" ")}</td></tr>`).join("");
  const ctx = $("workspace").getContext("2d"), W = ctx.canvas.width, H = ctx.canvas.height;
  ctx.clearRect(0, 0, W, H);
  const p = state.ee_pos || state.pos;
  if (!bounds || !p) return;
  // Top-down view (x forward = up, y left = left) of the safety box, and a z gauge on the right.
  const [x0, y0, z0] = bounds.min, [x1, y1, z1] = bounds.max, pad = 10, gw = W - 40;
  const s = Math.min((gw - 2 * pad) / (y1 - y0), (H - 2 * pad) / (x1 - x0));
  const u = (y) => pad + (y1 - y) * s, v = (x) => pad + (x1 - x) * s;
  ctx.strokeStyle = "#7d8896"; ctx.strokeRect(u(y1), v(x1), (y1 - y0) * s, (x1 - x0) * s);
  ctx.fillStyle = "#e2a04b"; ctx.beginPath(); ctx.arc(u(p[1]), v(p[0]), 5, 0, 2 * Math.PI); ctx.fill();
  const zh = (H - 2 * pad) * Math.max(0, Math.min(1, (p[2] - z0) / (z1 - z0)));
  ctx.strokeRect(W - 24, pad, 12, H - 2 * pad); ctx.fillRect(W - 24, H - pad - zh, 12, zh);
  ctx.fillStyle = "#7d8896"; ctx.font = "10px sans-serif"; ctx.fillText("z", W - 21, H - 1);
}

// -- buttons and timers ------------------------------------------------------------------------------------
for (const b of document.querySelectorAll("button[data-cmd]")) b.addEventListener("click", () => command(b.dataset.cmd));
$("estop").addEventListener("click", () => command("estop"));
setInterval(teleopTick, TELEOP_PERIOD_MS);
setInterval(() => { if (inControl) send({ type: "heartbeat" }); }, 100);
setInterval(syncClock, 1000);
connect();
requestAnimationFrame(draw);
