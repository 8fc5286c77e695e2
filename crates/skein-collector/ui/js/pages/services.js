// The services page: per-operation figures with sparklines, and the service map.
// @ts-check
import { currentGeneration, isCurrent } from "../router.js";
import { api, statusKnown, otlpHint } from "../api.js";
import { $, h, s, serviceColor, serviceChip, errorBox } from "../dom.js";
import { fmtDur, fmtTime, plural, fmtPct, fmtRate, timeRange, isoMs, rangeSelect } from "../format.js";
import { navigate, setParams } from "../router.js";

// ---------- services page ----------
export async function servicesPage(view, params) {
  document.title = "Services · Skein";
  const { startMs, endMs, label } = timeRange(params);
  const query = new URLSearchParams({ start: isoMs(startMs), end: isoMs(endMs) });
  const range = rangeSelect(params);
  const rangeQuery = label === "custom" ? `start=${encodeURIComponent(isoMs(startMs))}&end=${encodeURIComponent(isoMs(endMs))}` : label === "1h" ? "" : `range=${label}`;
  range.addEventListener("change", () => {
    if (range.value !== "custom") navigate(`/services${range.value === "1h" ? "" : `?range=${range.value}`}`);
  });
  const mapBox = h("div", { class: "panel-body", id: "dependency-map" });
  const statsBox = h("div", { id: "operation-stats" });
  const chartHead = h("span", { class: "muted", id: "op-chart-title" });
  const chartBox = h("div", { class: "panel-body", id: "op-chart" });
  view.append(h("div", { class: "row" }, h("label", {}, "Time", range)),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Per minute ", chartHead), chartBox),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Service map", h("span", { class: "muted" }, "calls between services; red edges carry errors; click a service for its traces")), mapBox),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Operations", h("span", { class: "muted" }, "rate, errors and latency percentiles; click a row for matching traces")), statsBox));
  const generation = currentGeneration();
  const [deps, stats] = await Promise.allSettled([api("/dependencies", query), api("/stats", query)]);
  if (!isCurrent(generation)) return;
  const withRange = (q) => `/traces?${[q, rangeQuery].filter(Boolean).join("&")}`;
  if (deps.status === "rejected") mapBox.replaceChildren(errorBox("Could not load dependencies", deps.reason));
  if (stats.status === "rejected") statsBox.replaceChildren(errorBox("Could not load operation statistics", stats.reason));
  if (deps.status === "rejected" || stats.status === "rejected") return;
  const ops = stats.value.operations;
  if (!ops.length && !deps.value.dependencies.length) {
    await statusKnown();
    const empty = h("div", { class: "empty", id: "empty-state" }, h("h3", {}, `No calls in the last ${label === "custom" ? "range" : label}`), otlpHint());
    statsBox.replaceChildren(empty);
    mapBox.replaceChildren(h("div", { class: "muted" }, "No services yet."));
    return;
  }
  mapBox.replaceChildren(dependencyMap(deps.value.dependencies, ops, (svc) => navigate(withRange(`service=${encodeURIComponent(svc)}`))));
  // The charts start where the data does (three minutes of data are not sixty empty bars)
  // and end at the range's end; every row shares the axis.
  const lastMinute = Math.floor(Math.min(endMs, Date.now()) / 60e3);
  const dataFrom = Math.min(...ops.flatMap((/** @type {any} */ o) => o.per_minute.map((/** @type {any} */ p) => p.minute)), lastMinute);
  const firstMinute = Math.max(Math.floor(startMs / 60e3), dataFrom);
  // The chart panel: the operation chosen (`chart=service/name`), else the busiest.
  const chosen = params.get("chart");
  const charted = ops.find((/** @type {any} */ o) => `${o.service}/${o.name}` === chosen) || ops.slice().sort((/** @type {any} */ a, /** @type {any} */ b) => b.calls - a.calls)[0];
  const drawChart = (/** @type {any} */ op) => {
    chartHead.textContent = `${op.service}: ${op.name} — calls, errors and p95`;
    chartBox.replaceChildren(minuteChart(op.per_minute, firstMinute, lastMinute, (from, to) =>
      navigate(`/traces?${new URLSearchParams({ service: op.service, operation: op.name, start: isoMs(from), end: isoMs(to), sort: "duration" })}`)));
  };
  if (charted) drawChart(charted);
  const byService = new Map();
  for (const op of ops) {
    if (!byService.has(op.service)) byService.set(op.service, []);
    byService.get(op.service).push(op);
  }
  // Every service's head row, then its operations by calls: thousands of rows, so only those
  // in sight (and a few around) are in the page, between two spacers of the rest's height.
  /** @type {Array<() => HTMLElement>} */
  const rows = [];
  for (const [service, list] of byService) {
    const calls = list.reduce((n, o) => n + o.calls, 0);
    const errs = list.reduce((n, o) => n + o.errors, 0);
    rows.push(() => h("tr", { class: "svc-head", onclick: () => navigate(withRange(`service=${encodeURIComponent(service)}`)) },
      h("td", { colspan: 9 }, serviceChip(service), h("span", { class: "muted" }, ` ${plural(calls, "call")}${errs ? ` · ` : ""}`), errs ? h("span", { class: "err" }, plural(errs, "error")) : "")));
    for (const op of list.sort((a, b) => b.calls - a.calls)) {
      const href = withRange(`service=${encodeURIComponent(service)}&operation=${encodeURIComponent(op.name)}`);
      rows.push(() => h("tr", { dataset: { service, operation: op.name }, onclick: (e) => { if (!e.target.closest("a, button, svg")) navigate(href); } },
        h("td", { title: op.name }, h("button", { type: "button", class: "ghost chart-op", title: "Show its calls, errors and p95 per minute above", onclick: () => {
          drawChart(op);
          setParams({ chart: `${service}/${op.name}` });
        } }, "▤"), " ", h("a", { href }, op.name)),
        h("td", { class: "num" }, op.calls),
        h("td", { class: "num" }, fmtRate(op.rate_per_minute)),
        h("td", { class: `num${op.errors ? " err" : ""}` }, fmtPct(op.error_rate)),
        h("td", { class: "num" }, fmtDur(op.p50_nano)),
        // The p95 cell opens the traces of this operation at least that slow.
        h("td", { class: "num p95" }, h("a", { href: withRange(`service=${encodeURIComponent(service)}&operation=${encodeURIComponent(op.name)}&min_duration=${encodeURIComponent(durationParam(op.p95_nano))}&sort=duration`), title: `Traces of ${op.name} taking ${fmtDur(op.p95_nano)} or more, slowest first` }, fmtDur(op.p95_nano))),
        h("td", { class: "num" }, fmtDur(op.p99_nano)),
        h("td", {}, sparkline(op.per_minute, firstMinute, lastMinute, "calls", (from, to) => navigate(`/traces?${new URLSearchParams({ service, operation: op.name, start: isoMs(from), end: isoMs(to), sort: "duration" })}`))),
        h("td", {}, sparkline(op.per_minute, firstMinute, lastMinute, "latency"))));
    }
  }
  const table = h("table", { class: "list", id: "stats-table" },
    h("thead", {}, h("tr", {}, ["Operation", "Calls", "Rate /min", "Error rate", "p50", "p95", "p99", "Calls & errors per minute", "p95 per minute"].map((c, i) => h("th", { class: i > 0 && i < 7 ? "num" : "" }, c)))));
  const body = h("tbody");
  table.append(body);
  const scroller = h("div", { class: "stats-scroll", id: "stats-scroll" }, table);
  statsBox.replaceChildren(scroller);
  let drawn = "";
  const spacer = (/** @type {number} */ height) => h("tr", { class: "spacer", style: { height: `${height}px` } }, h("td", { colspan: 9 }));
  function draw() {
    const top = scroller.scrollTop;
    // The box grows with its rows up to its maximum: before the first rows it is short.
    const height = Math.max(scroller.clientHeight, window.innerHeight);
    const first = Math.max(0, Math.floor(top / STATS_ROW) - 10);
    const last = Math.min(rows.length, Math.ceil((top + height) / STATS_ROW) + 10);
    if (drawn === `${first}-${last}`) return;
    drawn = `${first}-${last}`;
    body.replaceChildren(spacer(first * STATS_ROW), ...rows.slice(first, last).map((row) => row()), spacer((rows.length - last) * STATS_ROW));
  }
  let pending = false;
  scroller.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      draw();
    });
  }, { passive: true });
  draw();
}

/** The height of every row of the operations table (the style sheet holds them to it). */
const STATS_ROW = 34;

/**
 * Calls (errors in red) and p95 per time bucket, with axes and each bucket's figures on
 * hover: buckets of a minute, or of as many minutes as keep them at most 60; a click on one
 * opens its traces, `onPick(fromMs, toMs)`.
 */
export function minuteChart(/** @type {any[]} */ points, /** @type {number} */ firstMinute, /** @type {number} */ lastMinute, /** @type {(from: number, to: number) => void} */ onPick) {
  const W = 720, H = 150, L = 44, R = 56, T = 8, B = 22;
  const minutes = Math.max(1, lastMinute - firstMinute + 1);
  const per = Math.max(1, Math.ceil(minutes / 60));
  const buckets = Math.ceil(minutes / per);
  const calls = new Array(buckets).fill(0);
  const errors = new Array(buckets).fill(0);
  const p95 = new Array(buckets).fill(0);
  for (const p of points) {
    const b = Math.floor((p.minute - firstMinute) / per);
    if (b < 0 || b >= buckets) continue;
    calls[b] += p.calls;
    errors[b] += p.errors;
    p95[b] = Math.max(p95[b], p.p95_nano || 0);
  }
  const maxCalls = Math.max(...calls, 1);
  const maxP95 = Math.max(...p95, 1);
  // A few minutes of data are a few bars of a readable width, not one bar across the chart.
  const bw = Math.min((W - L - R) / buckets, 48);
  const y = (/** @type {number} */ v, /** @type {number} */ max) => T + (H - T - B) * (1 - v / max);
  const svg = s("svg", { class: "minute-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "calls, errors and p95 per time bucket" });
  // Axes: calls on the left, p95 on the right, times below.
  const right = L + bw * buckets;
  svg.append(s("line", { class: "axis-line", x1: L, y1: H - B, x2: right, y2: H - B }));
  for (const [v, label] of [[0, "0"], [maxCalls, String(maxCalls)]]) svg.append(s("text", { class: "axis calls-axis", x: L - 4, y: y(Number(v), maxCalls) + 4, "text-anchor": "end" }, label));
  svg.append(s("text", { class: "axis p95-axis", x: right + 4, y: y(maxP95, maxP95) + 4 }, `p95 ${fmtDur(maxP95)}`));
  const ticks = Math.min(buckets, 6);
  for (let i = 0; i < ticks; i++) {
    const b = Math.round((i * (buckets - 1)) / Math.max(ticks - 1, 1));
    svg.append(s("text", { class: "axis time-axis", x: L + b * bw + bw / 2, y: H - 6, "text-anchor": "middle" }, fmtTime((firstMinute + b * per) * 60e9, false).slice(0, 5)));
  }
  for (let b = 0; b < buckets; b++) {
    const from = (firstMinute + b * per) * 60e3;
    const to = from + per * 60e3;
    if (calls[b]) {
      svg.append(s("rect", { class: "calls", x: L + b * bw + 1, y: y(calls[b], maxCalls), width: Math.max(bw - 2, 1), height: H - B - y(calls[b], maxCalls) }));
      if (errors[b]) svg.append(s("rect", { class: "errors", x: L + b * bw + 1, y: y(errors[b], maxCalls), width: Math.max(bw - 2, 1), height: H - B - y(errors[b], maxCalls) }));
    }
    // The whole column answers hover and click.
    svg.append(s("rect", { class: "hover", x: L + b * bw, y: T, width: bw, height: H - T - B, dataset: { from: String(from) }, onclick: () => onPick(from, to) },
      s("title", {}, `${fmtTime(from * 1e6, false).slice(0, 5)}${per > 1 ? `–${fmtTime(to * 1e6, false).slice(0, 5)}` : ""}: ${calls[b]} calls, ${errors[b]} errors, p95 ${calls[b] ? fmtDur(p95[b]) : "—"}`)));
  }
  const line = p95.map((v, b) => (calls[b] ? `${L + b * bw + bw / 2},${y(v, maxP95)}` : null)).filter(Boolean);
  if (line.length) {
    svg.append(s("polyline", { class: "p95-line", points: (line.length === 1 ? [line[0], line[0]] : line).join(" ") }));
    for (const pt of line) {
      const [cx, cy] = String(pt).split(",").map(Number);
      svg.append(s("circle", { class: "p95-dot", cx, cy, r: 2.5 }));
    }
  }
  return svg;
}

/** A duration for `min_duration`, in milliseconds to the microsecond (rounded down, so the
 * traces at exactly the p95 count). */
const durationParam = (/** @type {number} */ nanos) => `${Math.floor(nanos / 1e3) / 1e3}ms`;

/** Calls (with errors in red) or p95 latency per minute across the range; with `onPick`, a
 * bar opens the traces of its minutes, `onPick(fromMs, toMs)`. */
export function sparkline(points, firstMinute, lastMinute, what, onPick = null) {
  const w = 120;
  const hgt = 26;
  // Long ranges are folded into at most 60 buckets.
  const minutes = Math.max(1, lastMinute - firstMinute + 1);
  const buckets = Math.min(60, minutes);
  const per = minutes / buckets;
  const calls = new Array(buckets).fill(0);
  const errors = new Array(buckets).fill(0);
  const lat = new Array(buckets).fill(0);
  for (const p of points) {
    const b = Math.min(buckets - 1, Math.max(0, Math.floor((p.minute - firstMinute) / per)));
    calls[b] += p.calls;
    errors[b] += p.errors;
    lat[b] = Math.max(lat[b], p.p95_nano || 0);
  }
  const svg = s("svg", { class: "spark", viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none" });
  const bw = w / buckets;
  if (what === "calls") {
    const max = Math.max(...calls, 1);
    calls.forEach((c, i) => {
      if (!c) return;
      const ch = (c / max) * (hgt - 2);
      // The whole minutes the bar covers.
      const from = Math.floor(firstMinute + i * per) * 60e3;
      const to = Math.ceil(firstMinute + (i + 1) * per) * 60e3;
      svg.append(s("rect", {
        class: `calls${onPick ? " pick" : ""}`, x: i * bw, y: hgt - ch, width: Math.max(bw - 0.5, 0.5), height: ch,
        dataset: { from: String(from) },
        onclick: onPick ? (/** @type {Event} */ e) => { e.stopPropagation(); onPick(from, to); } : null,
      }, s("title", {}, `${c} calls, ${errors[i]} errors${onPick ? " — click for these traces, slowest first" : ""}`)));
      if (errors[i]) {
        const eh = (errors[i] / max) * (hgt - 2);
        svg.append(s("rect", { class: "errors", x: i * bw, y: hgt - eh, width: Math.max(bw - 0.5, 0.5), height: eh }));
      }
    });
  } else {
    const max = Math.max(...lat, 1);
    const pts = lat.map((v, i) => (v ? `${i * bw + bw / 2},${hgt - 1 - (v / max) * (hgt - 3)}` : null)).filter(Boolean);
    if (pts.length === 1) pts.push(pts[0]);
    svg.append(s("polyline", { class: "lat", points: pts.join(" ") }, s("title", {}, `p95 up to ${fmtDur(max)}`)));
  }
  return svg;
}

/** Services in columns by call depth, edges with their call and error counts. */
export function dependencyMap(edges, ops, onPick) {
  const names = new Set(ops.map((o) => o.service));
  for (const e of edges) { names.add(e.parent); names.add(e.child); }
  // Columns by breadth-first distance from the services nobody calls. Services that only call
  // each other (a cycle with no entry) start a search of their own from the one that calls
  // most and is called least, so back edges never push services right and every column
  // from the first one holds a service.
  const incoming = new Map([...names].map((n) => [n, 0]));
  const outgoing = new Map([...names].map((n) => [n, 0]));
  const callees = new Map([...names].map((n) => [n, []]));
  for (const e of edges) {
    if (e.parent === e.child) continue;
    incoming.set(e.child, incoming.get(e.child) + 1);
    outgoing.set(e.parent, outgoing.get(e.parent) + 1);
    callees.get(e.parent).push(e.child);
  }
  const level = new Map();
  const search = (starts) => {
    const queue = [];
    for (const n of starts) if (!level.has(n)) { level.set(n, 0); queue.push(n); }
    for (let i = 0; i < queue.length; i++) {
      for (const c of callees.get(queue[i]).slice().sort()) {
        if (!level.has(c)) { level.set(c, level.get(queue[i]) + 1); queue.push(c); }
      }
    }
  };
  const byName = [...names].sort();
  search(byName.filter((n) => incoming.get(n) === 0));
  const entryFirst = byName.slice().sort((a, b) => (incoming.get(a) - outgoing.get(a)) - (incoming.get(b) - outgoing.get(b)));
  for (const n of entryFirst) search([n]);
  const columns = [];
  for (const n of byName) {
    const l = level.get(n);
    (columns[l] = columns[l] || []).push(n);
  }
  const boxW = 150;
  const boxH = 34;
  const colGap = 110;
  const rowGap = 26;
  const tallest = Math.max(...columns.map((c) => (c ? c.length : 0)), 1);
  const width = Math.max(columns.length * (boxW + colGap) - colGap + 40, 300);
  const height = Math.max(tallest * (boxH + rowGap) + 30, 120);
  const pos = new Map();
  columns.forEach((col, ci) => {
    if (!col) return;
    const offset = (height - col.length * (boxH + rowGap) + rowGap) / 2;
    col.forEach((n, ri) => pos.set(n, { x: 20 + ci * (boxW + colGap), y: offset + ri * (boxH + rowGap) }));
  });
  // Edges back to a column at or left of their caller curve below the boxes: room for them
  // and their labels under the lowest box.
  const back = edges.some((e) => e.parent !== e.child && pos.get(e.child).x <= pos.get(e.parent).x);
  const drawn = height + (back ? 48 : 0);
  const svg = s("svg", { class: "dep-map", viewBox: `0 0 ${width} ${drawn}`, style: { height: `${Math.min(drawn, 460)}px` } },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "8", markerHeight: "8", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "var(--muted)" }))));
  for (const e of edges) {
    const a = pos.get(e.parent);
    const b = pos.get(e.child);
    const failing = e.errors > 0;
    let d;
    let lx;
    let ly;
    if (e.parent === e.child) {
      d = `M${a.x + boxW - 30},${a.y} C${a.x + boxW - 30},${a.y - 30} ${a.x + boxW + 10},${a.y - 30} ${a.x + boxW},${a.y + 8}`;
      lx = a.x + boxW;
      ly = a.y - 22;
    } else if (b.x > a.x) {
      const x1 = a.x + boxW;
      const y1 = a.y + boxH / 2;
      const x2 = b.x;
      const y2 = b.y + boxH / 2;
      d = `M${x1},${y1} C${x1 + colGap / 2},${y1} ${x2 - colGap / 2},${y2} ${x2},${y2}`;
      lx = (x1 + x2) / 2;
      ly = (y1 + y2) / 2 - 4;
    } else {
      const x1 = a.x + boxW / 2;
      const y1 = a.y + boxH;
      const x2 = b.x + boxW / 2;
      const y2 = b.y + boxH;
      d = `M${x1},${y1} C${x1},${y1 + 40} ${x2},${y2 + 40} ${x2},${y2}`;
      lx = (x1 + x2) / 2;
      ly = Math.max(y1, y2) + 34;
    }
    svg.append(s("path", { class: `edge${failing ? " failing" : ""}`, d, "stroke-width": Math.min(1 + Math.log10(e.calls + 1), 4), "marker-end": "url(#arrow)" }),
      s("text", { class: `edge-label${failing ? " failing" : ""}`, x: lx, y: ly, "text-anchor": "middle", dataset: { edge: `${e.parent}->${e.child}` } },
        `${e.calls} call${e.calls === 1 ? "" : "s"}${failing ? ` · ${e.errors} error${e.errors === 1 ? "" : "s"}` : ""}`));
  }
  for (const [name, p] of pos) {
    const op = ops.filter((o) => o.service === name);
    const calls = op.reduce((n, o) => n + o.calls, 0);
    svg.append(s("g", { class: "node", dataset: { service: name }, onclick: () => onPick(name) },
      s("rect", { x: p.x, y: p.y, width: boxW, height: boxH, rx: 6 }),
      s("rect", { x: p.x, y: p.y, width: 5, height: boxH, fill: serviceColor(name), rx: 2 }),
      s("text", { x: p.x + 12, y: p.y + 15 }, name.length > 20 ? `${name.slice(0, 19)}…` : name),
      s("text", { x: p.x + 12, y: p.y + 28, class: "muted", style: "font-size:10px;fill:var(--muted)" }, plural(calls, "span")),
      s("title", {}, `${name}: open its traces`)));
  }
  return svg;
}
