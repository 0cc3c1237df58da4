// qorch dashboard: one page, no dependencies. Live updates come over Server-Sent Events
// (/events); a tree node's children are fetched when it is opened (/api/tree?node=KEY).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const qs = token ? "?token=" + encodeURIComponent(token) : "";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#558b2f",
  "#4e342e", "#283593", "#9e9d24", "#00695c", "#d84315"];
const EVENT_KINDS = ["agent_panic", "subcluster_loss", "node_loss", "restarts", "recluster"];
const EVENT_LABELS = { agent_panic: "panics", subcluster_loss: "sub-cluster lost", node_loss: "node lost",
  restarts: "restarts", recluster: "re-clustering" };
const EVENT_COLORS = { agent_panic: "#c62828", subcluster_loss: "#ef6c00", node_loss: "#6a1b9a",
  restarts: "#b26a00", recluster: "#1565c0" };

const S = {
  info: {}, run: { state: "starting" }, rounds: [], pools: [], events: [],
  tree: null, totals: null, observed: false, finished: 0,
  open: new Map(), // key -> its level ({total, nodes}), or null while loading
  sort: "depth", kind: 0, ended: false,
};

function $(id) { return document.getElementById(id); }
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return "-";
  const a = Math.abs(x);
  if (a >= 1e6) return (x / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (x / 1e3).toFixed(1) + "k";
  return digits === undefined ? String(Math.round(x * 100) / 100) : x.toFixed(digits);
}

// ---- the stream ----
const source = new EventSource("/events" + qs);
source.addEventListener("update", (e) => apply(JSON.parse(e.data)));
source.onopen = () => { $("connection").textContent = "live"; };
source.onerror = () => {
  if (S.ended) {
    source.close();
    $("connection").textContent = "server stopped";
  } else {
    $("connection").textContent = "reconnecting...";
  }
};

function apply(u) {
  S.info = u.info; S.run = u.run; S.observed = u.observed; S.finished = u.rounds_finished;
  for (const r of u.rounds) if (!S.rounds.length || r.round > S.rounds[S.rounds.length - 1].round) S.rounds.push(r);
  for (const p of u.pools) if (!S.pools.length || p.round > S.pools[S.pools.length - 1].round) S.pools.push(p);
  for (const ev of u.events) S.events.push(ev);
  if (S.rounds.length > 10000) S.rounds.splice(0, S.rounds.length - 10000);
  if (S.pools.length > 2000) S.pools.splice(0, S.pools.length - 2000);
  if (S.events.length > 2000) S.events.splice(0, S.events.length - 2000);
  if (u.totals) S.totals = u.totals;
  header(u.uptime);
  if (u.totals) refreshTree();
  efficiencyChart();
  poolsChart();
  energyChart();
  timeline();
}

function header(uptime) {
  const i = S.info;
  $("run-name").textContent = i.name ? i.name + (i.processes > 1 ? " (" + i.processes + " processes)" : "") : "";
  const state = S.run.state;
  const badge = $("run-state");
  badge.textContent = state;
  badge.className = "badge " + state;
  const last = S.rounds.length ? S.rounds[S.rounds.length - 1].round : 0;
  const counter = $("round-counter");
  counter.textContent = String(last);
  counter.dataset.round = String(last);
  $("round-total").textContent = i.rounds ? " / " + i.rounds : "";
  $("agents").textContent = S.totals ? fmt(S.totals.agents) : fmt(i.agents);
  $("rate").textContent = S.totals ? fmt(S.totals.rate, 0) : "-";
  $("uptime").textContent = Math.round(uptime) + " s";
  const ended = $("ended");
  if (state === "finished" || state === "failed") {
    S.ended = true;
    ended.hidden = false;
    ended.className = "banner " + state;
    ended.textContent = state === "finished"
      ? "The run has finished: " + S.run.summary
      : "The run stopped on an error: " + S.run.error;
  }
}

// ---- the tree ----
// Levels come from /api/tree, sorted and cut by the server: the top level, and the children
// of each open node, refreshed with every update. Nothing per agent is ever fetched.
const LEVEL_ROWS = 200;
$("tree-sort").addEventListener("change", (e) => { S.sort = e.target.value; refreshTree(); });

function treeUrl(key) {
  const p = new URLSearchParams();
  if (token) p.set("token", token);
  if (key !== null) p.set("node", key);
  p.set("sort", S.sort);
  p.set("limit", String(LEVEL_ROWS));
  return "/api/tree?" + p.toString();
}

let treeFetching = false;
function refreshTree() {
  if (!S.observed || treeFetching) return;
  treeFetching = true;
  const keys = [null, ...S.open.keys()];
  // A level that is gone (404) closes; one that could not be fetched keeps what it had.
  const get = (k) => fetch(treeUrl(k))
    .then((r) => (r.ok ? r.json() : r.status === 404 ? null : undefined))
    .catch(() => undefined);
  Promise.all(keys.map(get)).then((levels) => {
    treeFetching = false;
    keys.forEach((k, i) => {
      const level = levels[i];
      if (level === undefined) return;
      if (k === null) { if (level) S.tree = level; }
      else if (level === null) { S.open.delete(k); }
      else if (S.open.has(k)) { S.open.set(k, level); }
    });
    renderTree();
  });
}

function renderTree() {
  const body = document.querySelector("#tree tbody");
  const note = $("tree-note");
  body.textContent = "";
  if (!S.tree || !S.tree.nodes.length) {
    note.textContent = S.observed ? "sampling..." : "no runtime to show in this process";
    return;
  }
  const processes = S.tree.nodes[0].key.startsWith("process:");
  note.textContent = processes
    ? S.tree.total + " node processes (depth: messages in flight); click \u25b8 for their clusters"
    : S.tree.total + " clusters; click \u25b8 to open one level";
  const rows = [];
  const walk = (level, depth) => {
    for (const n of level.nodes) {
      rows.push(n);
      const kids = S.open.get(n.key);
      if (kids) walk(kids, depth + 1);
    }
    if (level.total > level.nodes.length) {
      rows.push({ more: level.total - level.nodes.length, level: depth });
    }
  };
  walk(S.tree, 0);
  for (const n of rows) {
    const tr = document.createElement("tr");
    if (n.more) {
      const td = document.createElement("td");
      td.colSpan = 6;
      td.className = "muted";
      td.style.paddingLeft = (26 + 18 * n.level) + "px";
      td.textContent = "... and " + n.more + " more (the first " + LEVEL_ROWS + " by the order chosen)";
      tr.appendChild(td);
      body.appendChild(tr);
      continue;
    }
    tr.className = "node";
    tr.dataset.key = n.key;
    tr.dataset.level = String(n.level);
    const name = document.createElement("td");
    name.style.paddingLeft = (8 + 18 * n.level) + "px";
    const b = document.createElement("button");
    b.className = "toggle";
    if (n.children > 0) {
      b.textContent = S.open.has(n.key) ? "\u25be" : "\u25b8";
      b.title = S.open.has(n.key) ? "close" : "open its " + n.children + " children";
      b.onclick = () => toggle(n.key);
    }
    name.appendChild(b);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = n.name;
    name.appendChild(label);
    tr.appendChild(name);
    const st = document.createElement("td");
    const span = document.createElement("span");
    span.className = "status " + n.status;
    span.textContent = n.status + (n.failed_agents ? " (" + n.failed_agents + " failed)" : "");
    st.appendChild(span);
    tr.appendChild(st);
    for (const v of [fmt(n.agents), fmt(n.mailbox_depth), fmt(n.max_depth), fmt(n.rate, 0)]) {
      const td = document.createElement("td");
      td.className = "num";
      td.textContent = v;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function toggle(key) {
  if (S.open.has(key)) {
    // Closing a node closes what is open below it.
    const close = (k) => {
      const level = S.open.get(k);
      S.open.delete(k);
      if (level) level.nodes.forEach((c) => { if (S.open.has(c.key)) close(c.key); });
    };
    close(key);
    renderTree();
  } else {
    S.open.set(key, null);
    refreshTree();
  }
}

// ---- charts ----
function frame(svg, xs, ys, opts) {
  svg.textContent = "";
  const W = 600, H = opts.height || 240, L = opts.left || 56, R = 12, T = 12, B = 26;
  const [x0, x1] = xs, [y0, y1] = ys;
  const sx = (x) => L + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (y1 === y0 ? 0.5 : 1 - (y - y0) / (y1 - y0)) * (H - T - B);
  svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4;
    svg.appendChild(el("line", { x1: L, y1: sy(y), x2: W - R, y2: sy(y), class: "grid" }));
    svg.appendChild(el("text", { x: L - 4, y: sy(y) + 4, "text-anchor": "end" }, opts.yfmt ? opts.yfmt(y) : fmt(y)));
  }
  const ticks = Math.min(8, Math.max(1, x1 - x0));
  for (let i = 0; i <= ticks; i++) {
    const x = Math.round(x0 + (x1 - x0) * i / ticks);
    svg.appendChild(el("text", { x: sx(x), y: H - 8, "text-anchor": "middle" }, String(x)));
  }
  if (opts.xlabel) svg.appendChild(el("text", { x: W - R, y: H - B - 4, "text-anchor": "end" }, opts.xlabel));
  return { sx, sy, W, H, L, R, T, B };
}

function path(points, f) {
  return points.map((p, i) => (i ? "L" : "M") + f.sx(p[0]).toFixed(1) + " " + f.sy(p[1]).toFixed(1)).join(" ");
}

function legend(svg, items, f) {
  let x = f.L + 8;
  for (const [name, color, dashed] of items) {
    svg.appendChild(el("line", { x1: x, y1: f.T + 6, x2: x + 16, y2: f.T + 6, stroke: color, "stroke-width": 2, "stroke-dasharray": dashed ? "4 3" : "" }));
    svg.appendChild(el("text", { x: x + 20, y: f.T + 10, class: "legend" }, name));
    x += 34 + 7 * name.length;
  }
}

function roundRange() {
  const first = S.rounds.length ? S.rounds[0].round : 1;
  const last = Math.max(first + 1, S.rounds.length ? S.rounds[S.rounds.length - 1].round : 1, S.info.rounds || 0);
  return [first, last];
}

function efficiencyChart() {
  const svg = $("chart-efficiency");
  const rs = S.rounds;
  const lo = Math.min(0.9, ...rs.map((r) => r.efficiency));
  const f = frame(svg, roundRange(), [Math.max(0, Math.floor(lo * 20) / 20), 1.02], { xlabel: "round", yfmt: (y) => y.toFixed(2) });
  svg.appendChild(el("line", { x1: f.L, y1: f.sy(1), x2: f.W - f.R, y2: f.sy(1), stroke: "#2e7d32", "stroke-dasharray": "5 4" }));
  const pts = rs.map((r) => [r.round, r.efficiency]);
  if (pts.length) svg.appendChild(el("path", { d: path(pts, f), fill: "none", stroke: "#1565c0", "stroke-width": 2 }));
  for (const r of rs) {
    const c = el("circle", { cx: f.sx(r.round), cy: f.sy(r.efficiency), r: 3.5, fill: "#1565c0", class: "pt", "data-round": r.round });
    c.appendChild(el("title", {}, "round " + r.round + ": efficiency " + r.efficiency.toFixed(4) + " (objective " + fmt(r.objective) + " / bound " + fmt(r.bound) + ")"));
    svg.appendChild(c);
  }
  legend(svg, [["objective / bound", "#1565c0"], ["the bound (1.0)", "#2e7d32", true]], f);
  const last = rs[rs.length - 1];
  $("efficiency-note").textContent = last
    ? "round " + last.round + ": objective " + fmt(last.objective) + " against a " + last.bound_kind.split(":")[0] + " bound of " + fmt(last.bound) +
      " (" + (100 * last.efficiency).toFixed(2) + "%), " + last.served + " of " + last.agents + " agents served, churn " + (100 * last.churn).toFixed(1) + "%"
    : "no round finished yet";
}

const kindSelect = $("pool-kind");
kindSelect.addEventListener("change", (e) => { S.kind = Number(e.target.value); poolsChart(); });

function poolsChart() {
  const svg = $("chart-pools");
  const ps = S.pools;
  if (ps.length && kindSelect.options.length !== ps[0].kinds.length) {
    kindSelect.textContent = "";
    ps[0].kinds.forEach((k, i) => { const o = document.createElement("option"); o.value = String(i); o.textContent = k; kindSelect.appendChild(o); });
    kindSelect.value = String(S.kind);
  }
  const k = S.kind;
  let ymax = 1;
  for (const p of ps) {
    const granted = p.pools.reduce((a, q) => a + (q.granted[k] || 0), 0);
    ymax = Math.max(ymax, granted, p.demanded[k] || 0, p.pools.reduce((a, q) => a + (q.capacity[k] || 0), 0));
  }
  const f = frame(svg, roundRange(), [0, ymax * 1.05], { xlabel: "round" });
  if (!ps.length) { $("pool-note").textContent = "no round finished yet"; return; }
  const npools = ps[ps.length - 1].pools.length;
  // Stacked areas, pool by pool.
  let below = ps.map((p) => [p.round, 0]);
  for (let j = 0; j < npools; j++) {
    const above = ps.map((p, i) => [p.round, below[i][1] + ((p.pools[j] && p.pools[j].granted[k]) || 0)]);
    const d = path(above, f) + " " + path(below.slice().reverse(), f).replace(/^M/, "L") + " Z";
    const a = el("path", { d, fill: COLORS[j % COLORS.length], "fill-opacity": 0.55, stroke: "none", class: "pool-area" });
    a.appendChild(el("title", {}, ps[ps.length - 1].pools[j].name));
    svg.appendChild(a);
    below = above;
  }
  const demanded = ps.map((p) => [p.round, p.demanded[k] || 0]);
  const capacity = ps.map((p) => [p.round, p.pools.reduce((a, q) => a + (q.capacity[k] || 0), 0)]);
  // Unmet: between what was granted and what was asked, where more was asked.
  const unmet = ps.map((p, i) => [p.round, Math.max(below[i][1], demanded[i][1])]);
  svg.appendChild(el("path", { d: path(unmet, f) + " " + path(below.slice().reverse(), f).replace(/^M/, "L") + " Z", fill: "#c62828", "fill-opacity": 0.25, stroke: "none" }));
  if (ps.length === 1) {
    for (const [pts, color] of [[demanded, "#c62828"], [capacity, "#555"]]) {
      svg.appendChild(el("circle", { cx: f.sx(pts[0][0]), cy: f.sy(pts[0][1]), r: 3, fill: color }));
    }
  }
  svg.appendChild(el("path", { d: path(demanded, f), fill: "none", stroke: "#c62828", "stroke-width": 2, "stroke-dasharray": "5 3" }));
  svg.appendChild(el("path", { d: path(capacity, f), fill: "none", stroke: "#555", "stroke-width": 1, "stroke-dasharray": "2 3" }));
  legend(svg, [["granted, per pool", COLORS[0]], ["demanded", "#c62828", true], ["capacity", "#555", true]], f);
  const p = ps[ps.length - 1];
  const granted = below[below.length - 1][1];
  const asked = p.demanded[k] || 0;
  $("pool-note").textContent = "round " + p.round + ": " + npools + " pools, granted " + fmt(granted) + " of " + fmt(asked) +
    " demanded (unmet " + fmt(Math.max(0, asked - granted)) + ")";
}

function energyChart() {
  const svg = $("chart-energy");
  const rs = S.rounds.filter((r) => r.energies.length).slice(-8);
  let lo = Infinity, hi = -Infinity, n = 1;
  for (const r of rs) for (const e of r.energies) { lo = Math.min(lo, e); hi = Math.max(hi, e); }
  for (const r of rs) n = Math.max(n, r.energies.length);
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const f = frame(svg, [1, Math.max(2, n)], [lo, hi], { xlabel: "sub-solve" });
  rs.forEach((r, i) => {
    const last = i === rs.length - 1;
    const pts = r.energies.map((e, j) => [j + 1, e]);
    const p = el("path", { d: path(pts, f), fill: "none", stroke: last ? "#1565c0" : "#90a4ae", "stroke-width": last ? 2 : 1, "stroke-opacity": last ? 1 : 0.3 + 0.6 * i / rs.length, class: "energy-trace", "data-round": r.round });
    p.appendChild(el("title", {}, "round " + r.round));
    svg.appendChild(p);
  });
  if (rs.length) legend(svg, [["round " + rs[rs.length - 1].round, "#1565c0"], ["earlier rounds", "#90a4ae"]], f);
}

function timeline() {
  const svg = $("chart-timeline");
  const evs = S.events;
  const f = frame(svg, roundRange(), [0, EVENT_KINDS.length], { height: 150, left: 96, xlabel: "round", yfmt: () => "" });
  EVENT_KINDS.forEach((k, i) => {
    svg.appendChild(el("text", { x: f.L - 4, y: f.sy(i + 0.5) + 4, "text-anchor": "end" }, EVENT_LABELS[k]));
  });
  for (const e of evs) {
    const lane = Math.max(0, EVENT_KINDS.indexOf(e.kind));
    const c = el("circle", { cx: f.sx(e.round), cy: f.sy(lane + 0.5), r: 5, fill: EVENT_COLORS[e.kind] || "#555", class: "event-mark", "data-kind": e.kind });
    c.appendChild(el("title", {}, "round " + e.round + ": " + e.detail));
    svg.appendChild(c);
  }
  const list = $("timeline");
  list.textContent = "";
  for (const e of evs.slice().reverse().slice(0, 200)) {
    const li = document.createElement("li");
    li.className = "event";
    li.dataset.kind = e.kind;
    li.dataset.round = String(e.round);
    const k = document.createElement("span");
    k.className = "kind";
    k.style.color = EVENT_COLORS[e.kind] || "#555";
    k.textContent = "round " + e.round + " \u00b7 " + (EVENT_LABELS[e.kind] || e.kind);
    li.appendChild(k);
    li.appendChild(document.createTextNode(e.detail));
    list.appendChild(li);
  }
  if (!evs.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "nothing yet";
    list.appendChild(li);
  }
}
