// SPDX-License-Identifier: Apache-2.0
// The vstore page: search with filters, similar articles, and the map of the collection
// (GET /v1/map) drawn on a 2-D canvas. No dependencies; served by `vstore serve` at `/`.
// The state (query, filters, colouring, the open article) lives in the URL's query string, so
// a link reopens the same view.

const $ = (id) => document.getElementById(id);

// ---- the API ----------------------------------------------------------------------------

let token = sessionStorage.getItem("vstore-token") || "";

async function askToken() {
  const dialog = $("token-dialog");
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  token = $("token").value.trim();
  sessionStorage.setItem("vstore-token", token);
}

// POSTs (or GETs, without a body) and returns the JSON answer; throws an Error carrying the
// service's message. A 401 asks for the token once and retries.
async function api(path, body, retried = false) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) });
  if (res.status === 401 && !retried) {
    await askToken();
    return api(path, body, true);
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---- state in the URL -------------------------------------------------------------------

const state = { q: "", topic: "", source: "", from: "", to: "", color: "cluster", uri: "", similar: "" };

function readUrl() {
  const p = new URLSearchParams(location.search);
  for (const k of Object.keys(state)) state[k] = p.get(k) ?? (k === "color" ? "cluster" : "");
}

function writeUrl() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v && !(k === "color" && v === "cluster")) p.set(k, v);
  const url = p.toString() ? `?${p}` : location.pathname;
  history.replaceState(null, "", url);
}

// The filter of the form's fields, in the store's filter grammar, or undefined.
function whereOfState() {
  const all = [];
  if (state.topic) all.push({ topic: state.topic });
  if (state.source) all.push({ news_source: state.source });
  const day = (s, end) => Math.floor(Date.parse(`${s}T00:00:00Z`) / 1000) + (end ? 86399 : 0);
  if (state.from) all.push({ publication_date_ts: { $gte: day(state.from, false) } });
  if (state.to) all.push({ publication_date_ts: { $lte: day(state.to, true) } });
  if (all.length === 0) return undefined;
  return all.length === 1 ? all[0] : { $and: all };
}

// ---- results ----------------------------------------------------------------------------

function text(tag, cls, content) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (content !== undefined && content !== null) el.textContent = String(content);
  return el;
}

function dateOf(meta) {
  const d = meta.publication_date;
  return typeof d === "string" ? d.slice(0, 10) : "";
}

function showResults(title, hits, note) {
  $("results-title").textContent = title;
  $("status").textContent = note;
  const list = $("results");
  list.replaceChildren();
  for (const h of hits) {
    const m = h.metadata || {};
    const li = document.createElement("li");
    li.dataset.id = h.id;
    const t = text("button", "r-title", m.title || h.id);
    t.type = "button";
    t.addEventListener("click", () => openArticle(h.id));
    const meta = text("div", "r-meta");
    meta.append(text("span", "r-source", m.news_source || ""), text("span", "r-date", dateOf(m)),
      text("span", "r-topic", m.topic || ""), text("span", "r-score", `distance ${Number(h.score).toFixed(3)}`));
    const sim = text("button", "r-similar", "similar");
    sim.type = "button";
    sim.addEventListener("click", () => showSimilar(h.id, m.title || h.id));
    li.append(t, meta, text("p", "r-summary", m.summary || ""), sim);
    list.append(li);
  }
  map.setLit(hits.map((h) => h.id));
}

async function runSearch() {
  writeUrl();
  if (!state.q) return;
  $("status").textContent = "Searching…";
  try {
    const body = { query: state.q, top_k: 20 };
    const where = whereOfState();
    if (where) body.where = where;
    const started = performance.now();
    const data = await api("/v1/search", body);
    const ms = Math.round(performance.now() - started);
    showResults(`Results for “${state.q}”`, data.results, `${data.results.length} articles in ${ms} ms`);
  } catch (e) {
    showResults("Results", [], e.message);
  }
}

async function showSimilar(uri, title) {
  state.similar = uri;
  writeUrl();
  $("status").textContent = "Finding similar articles…";
  try {
    const data = await api("/v1/similar", { uri, top_k: 20 });
    showResults(`Similar to “${title}”`, data.results, `${data.results.length} articles`);
  } catch (e) {
    showResults("Similar articles", [], e.message);
  }
}

// ---- the side panel ---------------------------------------------------------------------

async function openArticle(uri) {
  state.uri = uri;
  writeUrl();
  const panel = $("panel");
  panel.hidden = false;
  $("panel-title").textContent = map.titleOf(uri) || uri;
  $("panel-meta").textContent = "";
  $("panel-summary").textContent = "";
  $("panel-tags").textContent = "";
  $("panel-neighbours").replaceChildren();
  map.select(uri);
  try {
    const [rec, sim] = await Promise.all([
      api("/v1/vectors", { where: { uri }, limit: 1, include_vectors: false }),
      api("/v1/similar", { uri, top_k: 10 }),
    ]);
    if (state.uri !== uri) return;  // another article was opened meanwhile
    const m = rec.metadatas?.[0] || {};
    $("panel-title").textContent = m.title || uri;
    $("panel-meta").textContent = [m.news_source, dateOf(m), m.topic, uri].filter(Boolean).join(" · ");
    $("panel-summary").textContent = m.summary || "";
    $("panel-tags").textContent = m.tags ? `Tags: ${m.tags}` : "";
    const list = $("panel-neighbours");
    for (const h of sim.results) {
      const li = document.createElement("li");
      const b = text("button", "r-title", h.metadata?.title || h.id);
      b.type = "button";
      b.addEventListener("click", () => openArticle(h.id));
      li.append(b, text("div", "r-meta", `distance ${Number(h.score).toFixed(3)}`));
      list.append(li);
    }
    map.setNeighbours(sim.results.map((h) => h.id));
  } catch (e) {
    $("panel-meta").textContent = e.message;
  }
}

function closePanel() {
  $("panel").hidden = true;
  state.uri = "";
  writeUrl();
  map.select("");
  map.setNeighbours([]);
}

// ---- the map ----------------------------------------------------------------------------

// Twenty colours that stay apart on white, then grey for the rest.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
  "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#fd8d3c"];
const OTHER = "#c7c7c7";

class MapView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.n = 0;
    this.index = new Map();  // id -> point number
    this.lit = new Set();
    this.neighbours = new Set();
    this.selected = -1;
    this.view = { scale: 1, tx: 0, ty: 0 };
    this.pending = false;
    this.listen();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  load(data) {
    this.data = data;
    const p = data.points;
    this.n = p.id.length;
    this.x = Float32Array.from(p.x);
    this.y = Float32Array.from(p.y);
    this.index.clear();
    p.id.forEach((id, i) => this.index.set(id, i));
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < this.n; i++) {
      x0 = Math.min(x0, this.x[i]); x1 = Math.max(x1, this.x[i]);
      y0 = Math.min(y0, this.y[i]); y1 = Math.max(y1, this.y[i]);
    }
    this.bounds = { x0, x1, y0, y1 };
    this.buildGrid();
    this.fit();
  }

  titleOf(id) {
    const i = this.index.get(id);
    return i === undefined ? "" : this.data.points.title[i];
  }

  // Colours by `field`: "cluster", or a metadata field of data.fields; the most frequent
  // values get the palette, the rest grey. Returns the legend as [label, colour, count].
  colorBy(field) {
    const values = field === "cluster" ? this.data.points.cluster : this.data.fields?.[field];
    const counts = new Map();
    for (const v of values || []) counts.set(v, (counts.get(v) || 0) + 1);
    const ranked = [...counts.entries()].filter(([v]) => v !== null && v !== undefined).sort((a, b) => b[1] - a[1]);
    const colour = new Map(ranked.slice(0, PALETTE.length).map(([v], i) => [v, PALETTE[i]]));
    this.colors = new Array(this.n);
    for (let i = 0; i < this.n; i++) this.colors[i] = colour.get(values?.[i]) || OTHER;
    // The points of each colour, grouped once here rather than at every repaint.
    this.byColour = new Map();
    for (let i = 0; i < this.n; i++) {
      if (!this.byColour.has(this.colors[i])) this.byColour.set(this.colors[i], []);
      this.byColour.get(this.colors[i]).push(i);
    }
    this.showLabels = field === "cluster";
    const labelOf = (v) => (field === "cluster" ? this.data.clusters.find((c) => c.cluster === v)?.label ?? `cluster ${v}` : String(v));
    const legend = ranked.slice(0, PALETTE.length).map(([v, c]) => [labelOf(v), colour.get(v), c]);
    const rest = this.n - legend.reduce((s, l) => s + l[2], 0);
    if (rest > 0) legend.push(["other or none", OTHER, rest]);
    this.draw();
    return legend;
  }

  setLit(ids) { this.lit = new Set(ids.map((id) => this.index.get(id)).filter((i) => i !== undefined)); this.draw(); }
  setNeighbours(ids) { this.neighbours = new Set(ids.map((id) => this.index.get(id)).filter((i) => i !== undefined)); this.draw(); }
  select(id) { this.selected = this.index.get(id) ?? -1; this.draw(); }

  // ---- coordinates: data (x, y) to CSS pixels of the canvas ----
  sx(x) { return x * this.view.scale + this.view.tx; }
  sy(y) { return -y * this.view.scale + this.view.ty; }

  fit() {
    if (!this.n) return;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight, pad = 24;
    const b = this.bounds;
    const scale = Math.min((w - 2 * pad) / Math.max(b.x1 - b.x0, 1e-9), (h - 2 * pad) / Math.max(b.y1 - b.y0, 1e-9));
    this.view = { scale, tx: w / 2 - scale * (b.x0 + b.x1) / 2, ty: h / 2 + scale * (b.y0 + b.y1) / 2 };
    this.draw();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    if (!w || !h) return;
    const first = !this.sized;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.sized = true;
    if (first) this.fit(); else this.draw();
  }

  // A grid over the data's bounds, for finding the point under the pointer quickly.
  buildGrid() {
    const g = 128;
    const b = this.bounds;
    this.grid = { g, cw: Math.max(b.x1 - b.x0, 1e-9) / g, ch: Math.max(b.y1 - b.y0, 1e-9) / g, cells: new Map() };
    for (let i = 0; i < this.n; i++) {
      const key = this.cellKey(this.x[i], this.y[i]);
      if (!this.grid.cells.has(key)) this.grid.cells.set(key, []);
      this.grid.cells.get(key).push(i);
    }
  }
  cellKey(x, y) {
    const { g, cw, ch } = this.grid;
    const cx = Math.min(g - 1, Math.max(0, Math.floor((x - this.bounds.x0) / cw)));
    const cy = Math.min(g - 1, Math.max(0, Math.floor((y - this.bounds.y0) / ch)));
    return cy * g + cx;
  }
  // The point nearest to CSS pixel (px, py) within `radius` pixels, or -1.
  pick(px, py, radius = 7) {
    if (!this.n) return -1;
    const x = (px - this.view.tx) / this.view.scale, y = -(py - this.view.ty) / this.view.scale;
    const r = radius / this.view.scale;
    const { g, cw, ch } = this.grid;
    const cx0 = Math.max(0, Math.floor((x - r - this.bounds.x0) / cw)), cx1 = Math.min(g - 1, Math.floor((x + r - this.bounds.x0) / cw));
    const cy0 = Math.max(0, Math.floor((y - r - this.bounds.y0) / ch)), cy1 = Math.min(g - 1, Math.floor((y + r - this.bounds.y0) / ch));
    let best = -1, bestD = r * r;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        for (const i of this.grid.cells.get(cy * g + cx) || []) {
          const d = (this.x[i] - x) ** 2 + (this.y[i] - y) ** 2;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }

  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.paint(); });
  }

  paint() {
    const ctx = this.ctx, dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.canvas.clientWidth, this.canvas.clientHeight);
    if (!this.n || !this.colors) return;
    const focus = this.lit.size > 0 || this.neighbours.size > 0;
    const size = Math.max(1.5, Math.min(5, 1.2 + this.view.scale * 0.02 * Math.sqrt(20000 / this.n)));
    ctx.globalAlpha = focus ? 0.22 : 0.8;
    // Points by colour, so that the fill style changes once per colour.
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    for (const [c, list] of this.byColour) {
      ctx.fillStyle = c;
      for (const i of list) {
        const px = this.sx(this.x[i]), py = this.sy(this.y[i]);
        if (px < -5 || py < -5 || px > w + 5 || py > h + 5) continue;
        ctx.fillRect(px - size / 2, py - size / 2, size, size);
      }
    }
    ctx.globalAlpha = 1;
    const ring = (i, r, stroke, fill) => {
      ctx.beginPath();
      ctx.arc(this.sx(this.x[i]), this.sy(this.y[i]), r, 0, 2 * Math.PI);
      if (fill) { ctx.fillStyle = fill; ctx.fill(); }
      ctx.lineWidth = 2;
      ctx.strokeStyle = stroke;
      ctx.stroke();
    };
    for (const i of this.neighbours) ring(i, 5, "#111", "#ffd400");
    for (const i of this.lit) ring(i, 5, "#111", "#b3261e");
    if (this.selected >= 0) ring(this.selected, 8, "#111", "#ffffff");
    const labels = this.showLabels ? this.paintLabels(ctx) : 0;
    // What was drawn, for tests and for anyone inspecting the page.
    Object.assign(this.canvas.dataset, { points: this.n, labels, lit: this.lit.size, neighbours: this.neighbours.size });
  }

  // Where point `id` is drawn, in CSS pixels of the page, or null.
  screenOf(id) {
    const i = this.index.get(id);
    if (i === undefined) return null;
    const r = this.canvas.getBoundingClientRect();
    return { x: r.left + this.sx(this.x[i]), y: r.top + this.sy(this.y[i]) };
  }

  paintLabels(ctx) {
    ctx.font = "600 12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    const placed = [];
    const clusters = [...this.data.clusters].sort((a, b) => b.size - a.size);
    for (const c of clusters) {
      const px = this.sx(c.x), py = this.sy(c.y);
      const tw = ctx.measureText(c.label).width + 8;
      const box = { x0: px - tw / 2, x1: px + tw / 2, y0: py - 9, y1: py + 9 };
      if (placed.some((b) => b.x0 < box.x1 && box.x0 < b.x1 && b.y0 < box.y1 && box.y0 < b.y1)) continue;  // no overlaps
      placed.push(box);
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(box.x0, box.y0, tw, 18);
      ctx.fillStyle = "#1d1d1f";
      ctx.fillText(c.label, px, py);
    }
    return placed.length;
  }

  listen() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, tx: this.view.tx, ty: this.view.ty, moved: false };
      c.setPointerCapture(e.pointerId);
    });
    c.addEventListener("pointermove", (e) => {
      const r = c.getBoundingClientRect();
      if (drag) {
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; c.classList.add("dragging"); }
        this.view.tx = drag.tx + dx;
        this.view.ty = drag.ty + dy;
        this.draw();
        return;
      }
      this.hover(this.pick(e.clientX - r.left, e.clientY - r.top), e.clientX - r.left, e.clientY - r.top);
    });
    c.addEventListener("pointerup", (e) => {
      const r = c.getBoundingClientRect();
      const wasClick = drag && !drag.moved;
      drag = null;
      c.classList.remove("dragging");
      if (!wasClick) return;
      const i = this.pick(e.clientX - r.left, e.clientY - r.top);
      if (i >= 0) openArticle(this.data.points.id[i]);
    });
    c.addEventListener("pointerleave", () => this.hover(-1));
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = c.getBoundingClientRect();
      const px = e.clientX - r.left, py = e.clientY - r.top;
      const k = Math.exp(-e.deltaY * 0.0015);
      this.view.tx = px - (px - this.view.tx) * k;
      this.view.ty = py - (py - this.view.ty) * k;
      this.view.scale *= k;
      this.draw();
    }, { passive: false });
  }

  hover(i, px, py) {
    const tip = $("tooltip");
    if (i < 0) { tip.hidden = true; return; }
    const p = this.data.points;
    tip.replaceChildren(text("span", "", p.title[i] || p.id[i]));
    const f = this.data.fields || {};
    const extra = [f.topic?.[i], f.publication_date?.[i]?.slice(0, 10)].filter(Boolean).join(" · ");
    if (extra) tip.append(text("small", "", extra));
    tip.hidden = false;
    const wrap = this.canvas.clientWidth;
    tip.style.left = `${Math.min(px + 12, wrap - 260)}px`;
    tip.style.top = `${py + 12}px`;
  }
}

const map = new MapView($("map"));
window.vstoreMap = map;  // for the browser test and the console

function showLegend(legend) {
  const ul = $("legend");
  ul.replaceChildren();
  for (const [label, colour, count] of legend) {
    const li = document.createElement("li");
    const dot = document.createElement("i");
    dot.style.background = colour;
    li.append(dot, document.createTextNode(`${label} (${count})`));
    ul.append(li);
  }
}

// Distinct values of a map field, most frequent first, for the filter suggestions.
function fillOptions(listId, values) {
  const counts = new Map();
  for (const v of values || []) if (v !== null && v !== undefined && v !== "") counts.set(v, (counts.get(v) || 0) + 1);
  const list = $(listId);
  list.replaceChildren();
  for (const [v] of [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 300)) {
    const o = document.createElement("option");
    o.value = v;
    list.append(o);
  }
}

async function loadMap() {
  $("map-status").textContent = "Loading the map…";
  let data;
  try {
    data = await api("/v1/map");
  } catch (e) {
    if (e.status === 503) {
      $("map-status").textContent = `${e.message} (retrying)`;
      setTimeout(loadMap, 3000);
    } else {
      $("map-status").textContent = `No map: ${e.message}`;
    }
    return;
  }
  map.load(data);
  const select = $("color");
  for (const f of Object.keys(data.fields || {}).sort()) {
    if (![...select.options].some((o) => o.value === f)) select.append(new Option(f, f));
  }
  select.value = [...select.options].some((o) => o.value === state.color) ? state.color : "cluster";
  showLegend(map.colorBy(select.value));
  fillOptions("topics", data.fields?.topic);
  fillOptions("sources", data.fields?.news_source);
  const placed = data.placed ? `, ${data.placed} placed since` : "";
  $("map-status").textContent = `${data.count.toLocaleString("en")} articles, ${data.clusters.length} clusters (${data.method}, built ${data.built_at}${placed})`;
  document.body.dataset.map = "ready";
  if (state.uri) openArticle(state.uri);
}

// ---- wiring -----------------------------------------------------------------------------

function formToState() {
  for (const k of ["q", "topic", "source", "from", "to"]) state[k] = $(k).value.trim();
}

function stateToForm() {
  for (const k of ["q", "topic", "source", "from", "to"]) $(k).value = state[k];
}

$("search").addEventListener("submit", (e) => {
  e.preventDefault();
  formToState();
  state.similar = "";
  runSearch();
});
$("color").addEventListener("change", () => {
  state.color = $("color").value;
  writeUrl();
  showLegend(map.colorBy(state.color));
});
$("reset-view").addEventListener("click", () => map.fit());
$("panel-close").addEventListener("click", closePanel);

readUrl();
stateToForm();
if (state.similar) showSimilar(state.similar, state.similar);
else if (state.q) runSearch();
loadMap();
