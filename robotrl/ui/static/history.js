// The learning view (/history): learning curves and an episode browser, read-only, from /api/history/*.
"use strict";

const REFRESH_MS = 5000;
const COLORS = ["#5fb3f9", "#f2b45a", "#5ccf8b", "#e07be0", "#f07070", "#9fa8ff", "#4fd1c5", "#d9d36a"];
const PANEL_TITLES = {
  success: "Evaluation success rate (95 % interval) and intervention rate",
  return: "Evaluation return",
  critic: "Critic (Q values)",
  learner: "Learner statistics",
  classifier: "Reward classifier",
};

const $ = (id) => document.getElementById(id);

// -- a small line plot ----------------------------------------------------------------------------------------
// series: [{name, x, y, color, lo?, hi?, dash?}] (null y: a gap); opts: xlabel, ylabel, ymin, ymax (fixed ends),
// cursor (an x to mark), shade (xs to highlight, each one unit wide), markers (false: no dots on short series).
function linePlot(canvas, series, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#161a21";
  ctx.fillRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";

  const xs = [], ys = [];
  for (const s of series) {
    s.x.forEach((x, i) => {
      for (const y of [s.y[i], s.lo && s.lo[i], s.hi && s.hi[i]]) {
        if (y !== null && y !== undefined && Number.isFinite(y)) { xs.push(x); ys.push(y); }
      }
    });
  }
  const [x0, x1] = padRange(opts.xmin ?? extreme(xs, Math.min), opts.xmax ?? extreme(xs, Math.max));
  const [y0, y1] = padRange(opts.ymin ?? extreme(ys, Math.min), opts.ymax ?? extreme(ys, Math.max));
  const m = {l: 52, r: 12, t: 24, b: opts.xlabel ? 34 : 20};
  const pw = w - m.l - m.r, ph = h - m.t - m.b;
  const px = (x) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y) => m.t + (1 - (y - y0) / (y1 - y0)) * ph;

  if (opts.shade) {  // e.g. intervention steps: one band per step
    ctx.fillStyle = "rgba(242, 180, 90, 0.22)";
    for (const x of opts.shade) ctx.fillRect(px(x), m.t, Math.max(1, px(x + 1) - px(x)), ph);
  }
  // grid, ticks and their labels
  ctx.strokeStyle = "#2c333f";
  ctx.fillStyle = "#8a94a6";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const y of niceTicks(y0, y1, Math.max(2, Math.floor(ph / 40)))) {
    line(ctx, m.l, py(y), m.l + pw, py(y));
    ctx.fillText(formatNumber(y), m.l - 6, py(y));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const x of niceTicks(x0, x1, Math.max(2, Math.floor(pw / 80)))) {
    line(ctx, px(x), m.t + ph, px(x), m.t + ph + 4);
    ctx.fillText(formatNumber(x), px(x), m.t + ph + 6);
  }
  ctx.strokeStyle = "#56606f";
  ctx.strokeRect(m.l + 0.5, m.t + 0.5, pw, ph);
  if (opts.xlabel) ctx.fillText(opts.xlabel, m.l + pw / 2, h - 14);
  if (opts.ylabel) {
    ctx.save();
    ctx.translate(12, m.t + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(opts.ylabel, 0, 0);
    ctx.restore();
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(m.l, m.t, pw, ph);
  ctx.clip();
  for (const s of series) {
    if (s.lo && s.hi) {  // the interval as a translucent band
      ctx.fillStyle = s.color + "33";
      ctx.beginPath();
      s.x.forEach((x, i) => ctx.lineTo(px(x), py(s.hi[i])));
      for (let i = s.x.length - 1; i >= 0; i--) ctx.lineTo(px(s.x[i]), py(s.lo[i]));
      ctx.fill();
    }
    ctx.strokeStyle = ctx.fillStyle = s.color;
    ctx.lineWidth = 1.8;
    ctx.setLineDash(s.dash ? [5, 4] : []);
    ctx.beginPath();
    let drawing = false;
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (y === null || !Number.isFinite(y)) { drawing = false; return; }
      if (drawing) ctx.lineTo(px(x), py(y)); else ctx.moveTo(px(x), py(y));
      drawing = true;
    });
    ctx.stroke();
    ctx.setLineDash([]);
    if (opts.markers !== false && s.x.length <= 40) {  // few points (evaluations): mark each
      s.x.forEach((x, i) => {
        if (s.y[i] === null || !Number.isFinite(s.y[i])) return;
        ctx.beginPath();
        ctx.arc(px(x), py(s.y[i]), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      });
    }
  }
  if (opts.cursor !== undefined) {
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 1;
    line(ctx, px(opts.cursor), m.t, px(opts.cursor), m.t + ph);
  }
  ctx.restore();

  // legend along the top
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  let lx = m.l;
  for (const s of series) {
    ctx.fillStyle = s.color;
    ctx.fillRect(lx, 8, 14, 3);
    ctx.fillStyle = "#d8dee9";
    ctx.fillText(s.name, lx + 18, 10);
    lx += 28 + ctx.measureText(s.name).width;
  }
}

function line(ctx, xa, ya, xb, yb) {
  ctx.beginPath();
  ctx.moveTo(Math.round(xa) + 0.5, Math.round(ya) + 0.5);
  ctx.lineTo(Math.round(xb) + 0.5, Math.round(yb) + 0.5);
  ctx.stroke();
}

// Math.min(...values) overflows the stack on long series; reduce does not.
function extreme(values, pick) {
  return values.reduce((a, b) => pick(a, b), values.length ? values[0] : NaN);
}

function padRange(lo, hi) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) { const d = Math.abs(lo) * 0.1 || 1; return [lo - d, hi + d]; }
  return [lo, hi];
}

// Round tick values (1, 2 or 5 times a power of ten) inside [lo, hi].
function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

function formatNumber(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e3) return +(v / 1e3).toPrecision(3) + "k";
  if (a === 0 || a >= 0.01) return String(+v.toPrecision(3));
  return v.toExponential(1);
}

// -- fetching ------------------------------------------------------------------------------------------------
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
}

function setStatus(text) { $("status").textContent = text; }

// -- learning curves -----------------------------------------------------------------------------------------
let curvesData = null, curvesText = "";

async function refreshCurves() {
  try {
    const data = await getJSON("/api/history/curves");
    const text = JSON.stringify(data);
    if (text !== curvesText) { curvesText = text; curvesData = data; drawCurves(); }
    $("curves-note").textContent = data.panels.length ? "" : `no evaluations yet in ${data.run}/metrics.jsonl`;
  } catch (e) {
    $("curves-note").textContent = e.message;
  }
}

function drawCurves() {
  const box = $("curves");
  if (!curvesData) return;
  for (const card of [...box.children]) {
    if (!curvesData.panels.includes(card.dataset.panel)) card.remove();
  }
  for (const panel of curvesData.panels) {
    let card = box.querySelector(`[data-panel="${panel}"]`);
    if (!card) {
      card = document.createElement("div");
      card.className = "card";
      card.dataset.panel = panel;
      card.innerHTML = `<h3></h3><canvas class="plot"></canvas>`;
      card.querySelector("h3").textContent = PANEL_TITLES[panel] || panel;
      box.appendChild(card);
    }
    const names = Object.keys(curvesData.series).filter((n) => curvesData.series[n].panel === panel);
    const series = names.map((name, i) => ({name, ...curvesData.series[name], color: COLORS[i % COLORS.length]}));
    const fixed = panel === "success" ? {ymin: 0, ymax: 1} : {};
    linePlot(card.querySelector("canvas"), series, {xlabel: "env steps", ...fixed});
  }
}

// -- episode browser -----------------------------------------------------------------------------------------
let episodes = [], episodesText = "", selected = null, detail = null, playTimer = null;

async function refreshEpisodes() {
  try {
    const data = await getJSON("/api/history/episodes");
    $("episodes-note").textContent = "";
    const text = JSON.stringify(data.episodes);
    if (text === episodesText) return;
    episodesText = text;
    episodes = data.episodes;
    updateSourceFilter();
    renderTable();
    setStatus(`${episodes.length} episodes · ${data.store}`);
  } catch (e) {
    $("episodes-note").textContent = e.message;
  }
}

function updateSourceFilter() {
  const select = $("source-filter");
  const have = new Set([...select.options].map((o) => o.value));
  for (const source of new Set(episodes.map((e) => e.source))) {
    if (!have.has(source)) select.add(new Option(source, source));
  }
}

function mark(value) {
  if (value === null || value === undefined) return `<span title="not judged">–</span>`;
  return value ? `<span class="yes">✓</span>` : `<span class="no">✗</span>`;
}

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function renderTable() {
  const filter = $("source-filter").value;
  const shown = episodes.filter((e) => !filter || e.source === filter).reverse();  // newest first
  $("episode-count").textContent = `${shown.length} of ${episodes.length}`;
  const body = $("episodes").querySelector("tbody");
  body.innerHTML = shown.map((e) => {
    const labels = e.labels.map((l) => `${escapeHTML(l.source)} ${mark(l.success)}${l.per_step ? " (steps)" : ""}`).join(", ");
    const acted = Object.entries(e.acted_by).map(([k, n]) => `${k}: ${n}`).join(", ");
    const truth = e.twin ? "the twin's ground truth" : "the env's own verdict";
    const clf = e.classifier_success === null ? "" : `; classifier: ${e.classifier_success ? "success" : "failure"}`;
    return `<tr data-index="${e.index}" tabindex="0"${e.index === selected ? ' class="selected"' : ""}>
      <td class="num">${e.index}</td><td>${escapeHTML(e.source)}</td><td class="num">${e.length}</td>
      <td class="num">${e.return === null ? "–" : formatNumber(e.return)}</td>
      <td title="${truth}${clf}">${mark(e.success)}</td><td>${labels || "–"}</td>
      <td class="num${e.interventions ? " acted" : ""}" title="${escapeHTML(acted)}">${e.interventions}</td></tr>`;
  }).join("");
}

async function selectEpisode(index) {
  stopPlaying();
  selected = index;
  for (const tr of $("episodes").querySelectorAll("tbody tr")) tr.classList.toggle("selected", +tr.dataset.index === index);
  try {
    detail = await getJSON(`/api/history/episodes/${index}`);
  } catch (e) {
    $("episodes-note").textContent = e.message;
    return;
  }
  const d = detail;
  $("detail").hidden = false;
  $("detail-title").textContent = `Episode ${d.index} · ${d.source} · ${d.task} · ${d.steps} steps · return ${formatNumber(d.return ?? 0)}`
    + (d.twin ? "" : " · real robot");
  $("frames").innerHTML = d.cameras.map((c) =>
    `<figure><img alt="${escapeHTML(c)}" data-camera="${escapeHTML(c)}"><figcaption>${escapeHTML(c)}</figcaption></figure>`).join("")
    || `<p class="note">no camera frames in this store</p>`;
  const scrub = $("scrubber");
  scrub.max = d.rows - 1;
  scrub.value = 0;
  showRow(0);
}

// Row t: observation t (the frames), and the action taken from it (step t; the last row has none).
function showRow(t) {
  const d = detail;
  for (const img of $("frames").querySelectorAll("img")) {
    img.src = `/api/history/episodes/${d.index}/frames/${encodeURIComponent(img.dataset.camera)}/${t}.jpg`;
  }
  $("row-label").textContent = `row ${t} / ${d.rows - 1}`;
  const step = t < d.steps;
  const info = [
    ["action", step ? `[${d.action[t].map((a) => (a === null ? "NaN" : a.toFixed(3))).join(", ")}]` : "– (final observation)"],
    ["reward", step && d.reward[t] !== null ? d.reward[t].toFixed(3) : "–"],
    ["acted", step ? `<span class="${d.intervention[t] ? "acted" : ""}">${escapeHTML(d.acted_by[t])}${d.intervention[t] ? " (intervention)" : ""}</span>` : "–"],
  ];
  if (d.classifier_probability) {
    const p = d.classifier_probability[t];
    info.push(["classifier P(success)", p === null ? "– (not judged)" : p.toFixed(3)]);
  }
  if (d.truth_success) info.push([d.twin ? "success (truth)" : "success (env)", mark(d.truth_success[t])]);
  for (const l of d.labels) if (l.steps) info.push([`success (${escapeHTML(l.source)})`, mark(l.steps[t])]);
  info.push(["outcome", Object.entries(d.judgements).map(([k, v]) => `${escapeHTML(k)} ${mark(v)}`).join(", ")]);
  $("step-info").innerHTML = info.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  drawEpisodePlot(t);
}

function drawEpisodePlot(cursor) {
  const d = detail;
  const steps = [...Array(d.steps).keys()], rows = [...Array(d.rows).keys()];
  const series = [{name: "reward", x: steps, y: d.reward, color: COLORS[0]}];
  if (d.classifier_probability) series.push({name: "classifier P(success)", x: rows, y: d.classifier_probability, color: COLORS[1]});
  if (d.truth_success) series.push({name: d.twin ? "success (truth)" : "success (env)", x: rows, y: d.truth_success.map(Number), color: COLORS[2], dash: true});
  d.labels.filter((l) => l.steps).forEach((l, i) =>
    series.push({name: `success (${l.source})`, x: rows, y: l.steps.map(Number), color: COLORS[3 + i % 5], dash: true}));
  const shade = steps.filter((t) => d.intervention[t]);
  // probabilities and flags live in [0, 1]: keep that range visible whatever the rewards span
  const rewards = d.reward.filter((r) => r !== null);
  const ymin = Math.min(0, extreme(rewards, Math.min) || 0), ymax = Math.max(1, extreme(rewards, Math.max) || 1);
  linePlot($("episode-plot"), series, {xlabel: "step (shaded: intervention)", xmin: 0, xmax: Math.max(1, d.rows - 1),
                                       ymin, ymax, shade, cursor, markers: false});
}

function stopPlaying() {
  clearInterval(playTimer);
  playTimer = null;
  $("play").textContent = "▶";
}

function togglePlay() {
  if (playTimer) return stopPlaying();
  const scrub = $("scrubber");
  if (+scrub.value >= +scrub.max) scrub.value = 0;
  $("play").textContent = "❚❚";
  playTimer = setInterval(() => {
    if (+scrub.value >= +scrub.max) return stopPlaying();
    scrub.value = +scrub.value + 1;
    showRow(+scrub.value);
  }, 100);
}

// -- wiring --------------------------------------------------------------------------------------------------
$("episodes").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tbody tr");
  if (tr) selectEpisode(+tr.dataset.index);
});
$("episodes").addEventListener("keydown", (ev) => {
  const tr = ev.target.closest("tbody tr");
  if (tr && ev.key === "Enter") selectEpisode(+tr.dataset.index);
});
$("source-filter").addEventListener("change", renderTable);
$("scrubber").addEventListener("input", (ev) => showRow(+ev.target.value));
$("play").addEventListener("click", togglePlay);
window.addEventListener("resize", () => {
  drawCurves();
  if (detail) drawEpisodePlot(+$("scrubber").value);
});

refreshCurves();
refreshEpisodes();
setInterval(refreshCurves, REFRESH_MS);
setInterval(refreshEpisodes, REFRESH_MS);
