// One trace: header, critical path, the virtualised waterfall and span details.
// @ts-check
import { currentGeneration, isCurrent } from "../router.js";
import { api, downloadTrace } from "../api.js";
import { $, h, s, serviceColor, FULL_INDENT_DEPTH, indent, serviceChip, copyButton, copyText, flash, errorBox } from "../dom.js";
import { fmtTime, fmtDur, fmtPct, formatAttrFilters } from "../format.js";
import { levelBadge } from "./logs.js";
import { navigate, onCleanup, setParams } from "../router.js";
import { aggregateStacks, buildTrace, spanMatches } from "../trace-model.js";

// ---------- trace page ----------
export const ROW = 24;

export async function tracePage(view, traceId, params) {
  document.title = `Trace ${traceId.slice(0, 8)} · Skein`;
  const generation = currentGeneration();
  let data;
  try {
    data = await api(`/traces/${encodeURIComponent(traceId)}`);
  } catch (e) {
    if (!isCurrent(generation)) return;
    view.append(errorBox("Could not load the trace", e),
      h("p", { class: "muted" }, "A trace that is gone may have been removed by retention. ", h("a", { href: "/traces" }, "Back to search")));
    return;
  }
  // Left while loading: nothing to draw, and no key handlers to add to the next page.
  if (!isCurrent(generation)) return;
  const trace = buildTrace(data);
  const root = trace.mainRoot;
  const total = Math.max(trace.t1 - trace.t0, 1);
  document.title = `${root.service}: ${root.name} · Skein`;
  const collapsed = new Set((params.get("collapsed") || "").split(",").filter(Boolean));
  let selected = params.get("span") || null;
  let needle = params.get("q") || "";
  let zoom = (params.get("zoom") || "0,1").split(",").map(Number);
  if (!(zoom.length === 2 && zoom[0] >= 0 && zoom[1] <= 1 && zoom[1] > zoom[0])) zoom = [0, 1];
  const errors = trace.spans.filter((sp) => sp.status.code === "error").length;
  /** Log records and backlinks per span, for the waterfall's markers. */
  const logCount = new Map();
  for (const l of data.logs) if (l.span_id) logCount.set(l.span_id, (logCount.get(l.span_id) || 0) + 1);
  const linkedCount = new Map(data.linked_from.map((l) => [l.span_id, l.count]));
  const services = [...new Set(trace.spans.map((sp) => sp.service))];

  // Statistics per service and operation, shown on demand (kept in the URL).
  const statsBox = h("div", { class: "panel-body", id: "trace-stats-box", style: { display: params.get("stats") ? "" : "none" } },
    params.get("stats") ? traceStatistics(trace, total) : null);
  const statsButton = h("button", { type: "button", id: "trace-stats-toggle", class: params.get("stats") ? "active" : "" }, "Statistics");
  statsButton.addEventListener("click", () => {
    const show = statsBox.style.display === "none";
    if (show && !statsBox.firstChild) statsBox.append(traceStatistics(trace, total));
    statsBox.style.display = show ? "" : "none";
    statsButton.classList.toggle("active", show);
    setParams({ stats: show ? "1" : null });
  });

  // The flame graph (call paths merged, width = time), on demand and kept in the URL.
  const flameBox = h("div", { class: "panel-body", id: "flame-box", style: { display: params.get("flame") ? "" : "none" } },
    params.get("flame") ? flameGraph(trace) : null);
  const flameButton = h("button", { type: "button", id: "trace-flame-toggle", class: params.get("flame") ? "active" : "" }, "Flame graph");
  flameButton.addEventListener("click", () => {
    const show = flameBox.style.display === "none";
    if (show && !flameBox.firstChild) flameBox.append(flameGraph(trace));
    flameBox.style.display = show ? "" : "none";
    flameButton.classList.toggle("active", show);
    setParams({ flame: show ? "1" : null });
  });
  // Compare with another trace: its id, typed.
  const compareInput = /** @type {HTMLInputElement} */ (h("input", { id: "compare-with", class: "mono", placeholder: "compare with trace id", autocomplete: "off", size: 20 }));
  const compareForm = h("form", { id: "compare-form", class: "inline" }, compareInput);
  compareForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const other = compareInput.value.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(other)) {
      compareInput.setCustomValidity("A trace id is up to 32 hexadecimal digits");
      compareInput.reportValidity();
      return;
    }
    navigate(`/compare?a=${data.trace_id}&b=${other.padStart(32, "0")}`);
  });
  compareInput.addEventListener("input", () => compareInput.setCustomValidity(""));

  // Header: what the trace is and where its time went.
  const head = h("div", { class: "panel" },
    h("div", { class: "trace-head" },
      h("h1", { id: "trace-title" }, serviceChip(root.service), " ", root.name),
      h("span", { class: "mono", id: "trace-id" }, data.trace_id, copyButton(data.trace_id, "trace id")),
      h("span", {}, fmtTime(trace.t0)),
      h("span", {}, h("b", {}, fmtDur(total)), " end to end"),
      h("span", {}, `${trace.spans.length} spans`),
      h("span", {}, services.map(serviceChip)),
      errors ? h("span", { class: "error-mark" }, `● ${errors} error${errors > 1 ? "s" : ""}`) : null,
      trace.roots.length > 1 ? h("span", { class: "muted", title: "Spans whose parent never arrived are shown as extra roots" }, `${trace.roots.length - 1} orphan subtree(s)`) : null,
      h("span", { class: "spacer" }),
      h("a", { href: `/logs?trace_id=${data.trace_id}`, id: "trace-logs-top", title: "This trace's log records on the Logs page" }, `Logs (${data.logs.length})`),
      statsButton,
      flameButton,
      compareForm,
      h("button", { type: "button", id: "trace-download", title: "Save the trace as an OTLP JSON file (the Traces page imports it)", onclick: (e) => {
        const button = e.currentTarget;
        downloadTrace(data.trace_id).catch((err) => flash(button, err.message));
      } }, "Download")),
    whereTheTimeWent(trace, total, (id) => select(id, true)),
    statsBox,
    flameBox,
    // Links to spans this trace does not have (or to no span) have nowhere else to show.
    ...data.linked_from.filter((l) => !trace.byId.has(l.span_id)).map((l) =>
      h("div", { class: "where", id: "linked-from-elsewhere" }, linkedFrom(data.trace_id, l.span_id, l.count, /^0*$/.test(l.span_id) ? "to this trace" : `to span ${l.span_id}, not received`))));

  // Waterfall with its tools.
  const search = h("input", { type: "search", placeholder: "Find in trace  ( / )", value: needle, id: "trace-find", "aria-label": "Find in trace" });
  const matchInfo = h("span", { class: "muted", id: "match-info" });
  const zoomReset = h("button", { type: "button", id: "zoom-reset", title: "Show the whole trace" }, "Reset zoom");
  const zoomSpan = h("button", { type: "button", id: "zoom-span", title: "Zoom to the selected span (z)" }, "Zoom to span");
  const expandAll = h("button", { type: "button", id: "expand-all" }, "Expand all");
  const collapseAll = h("button", { type: "button", id: "collapse-all" }, "Collapse all");
  const ruler = h("div", { class: "wf-ruler", id: "ruler", title: "Drag to zoom the time axis" });
  const scroller = h("div", { class: "wf-scroll", tabindex: "0", id: "waterfall", "aria-label": "Spans; arrow keys move, left and right collapse and expand" });
  const rowsBox = h("div", { class: "wf-rows" });
  scroller.append(rowsBox);
  // The names' column has one width for the axis and every row (so every bar is drawn on the
  // ruler's axis at any depth); drag its edge to resize it (kept for the next visit).
  const nameColHandle = h("div", { class: "name-col-handle", id: "name-col-handle", title: "Drag to resize the names' column" });
  const nameColAxis = h("div", { class: "name-col muted", style: { paddingLeft: "12px" } }, "Service · operation", nameColHandle);
  const waterfall = h("div", { class: "waterfall panel" },
    h("div", { class: "wf-tools" }, search, matchInfo, h("span", { class: "spacer" }), expandAll, collapseAll, zoomSpan, zoomReset,
      h("span", { class: "legend" }, h("span", {}, h("span", { class: "cp-swatch" }), " critical path"), h("span", { class: "err" }, "▮ error"))),
    h("div", { class: "wf-axis" }, nameColAxis, ruler),
    scroller);
  const detail = h("aside", { class: "detail panel", id: "span-detail" });
  view.append(head, h("div", { class: "trace-body" }, waterfall, detail));
  // In pixels, not a share of each row: the rows are narrower than the axis by the
  // scrollbar, and a share would put their bars off the ruler.
  const savedNameCol = Number(localStorage.getItem("skein.nameCol"));
  const nameCol = savedNameCol > 0 ? savedNameCol : Math.round(Math.min(Math.max(0.38 * waterfall.clientWidth, 240), 520));
  waterfall.style.setProperty("--name-col", `${nameCol}px`);
  nameColHandle.addEventListener("mousedown", (e) => {
    e.preventDefault();
    e.stopPropagation();
    const from = e.clientX;
    const width = nameColAxis.getBoundingClientRect().width;
    const most = waterfall.getBoundingClientRect().width * 0.7;
    const move = (m) => {
      const next = Math.round(Math.min(Math.max(width + m.clientX - from, 160), most));
      waterfall.style.setProperty("--name-col", `${next}px`);
      localStorage.setItem("skein.nameCol", String(next));
    };
    const up = () => {
      document.removeEventListener("mousemove", move);
      document.removeEventListener("mouseup", up);
    };
    document.addEventListener("mousemove", move);
    document.addEventListener("mouseup", up);
  });

  let rows = [];
  const matches = new Set();
  function computeRows() {
    rows = [];
    const stack = trace.roots.slice().reverse();
    const seen = new Set();
    while (stack.length) {
      const sp = stack.pop();
      if (seen.has(sp.span_id)) continue;
      seen.add(sp.span_id);
      rows.push(sp);
      if (!collapsed.has(sp.span_id)) {
        const list = trace.kids(sp);
        for (let i = list.length - 1; i >= 0; i--) stack.push(list[i]);
      }
    }
    rowsBox.style.height = `${rows.length * ROW}px`;
  }
  function computeMatches() {
    matches.clear();
    if (needle) for (const sp of trace.spans) if (spanMatches(sp, needle)) matches.add(sp.span_id);
    matchInfo.textContent = needle ? `${matches.size} match${matches.size === 1 ? "" : "es"}` : "";
  }

  const frac = (t) => ((t - trace.t0) / total - zoom[0]) / (zoom[1] - zoom[0]);
  function drawRuler() {
    ruler.replaceChildren();
    for (let i = 0; i < 5; i++) {
      const f = i / 5;
      const at = (zoom[0] + f * (zoom[1] - zoom[0])) * total;
      ruler.append(h("div", { class: "tick", style: { left: `${f * 100}%` } }, fmtDur(at)));
    }
  }

  function drawRows() {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - 10);
    const last = Math.min(rows.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + 10);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) fragment.append(spanRow(rows[i], i));
    rowsBox.replaceChildren(fragment);
  }

  function spanRow(sp, index) {
    const list = trace.kids(sp);
    const isCollapsed = collapsed.has(sp.span_id);
    const isError = sp.status.code === "error";
    const color = serviceColor(sp.service);
    const left = frac(sp.start_unix_nano);
    const right = frac(sp.end_unix_nano);
    const bar = h("div", {
      class: `bar${isError ? " error" : ""}`,
      title: `${sp.name}: ${fmtDur(sp.duration_nano)}, from +${fmtDur(sp.start_unix_nano - trace.t0)}${isError ? " (error)" : ""}`,
      style: { left: `${Math.max(left, -0.01) * 100}%`, width: `${Math.max(0, Math.min(right, 1.01) - Math.max(left, -0.01)) * 100}%`, background: color },
    });
    const width = Math.max(sp.end_unix_nano - sp.start_unix_nano, 1);
    for (const [a, b] of trace.critical.get(sp.span_id) || []) {
      bar.append(h("div", { class: "cp", style: { left: `${((a - sp.start_unix_nano) / width) * 100}%`, width: `${Math.max(((b - a) / width) * 100, 0.3)}%` } }));
    }
    for (const ev of sp.events) {
      const exception = ev.name === "exception";
      bar.append(h("div", { class: `ev${exception ? " exception" : ""}`, title: `${ev.name} at +${fmtDur(ev.time_unix_nano - sp.start_unix_nano)}`, style: { left: `${((ev.time_unix_nano - sp.start_unix_nano) / width) * 100}%` } }));
    }
    // The duration goes after the bar, else before it, else (a bar across the whole track,
    // or zoomed to start before its left edge) inside it: never over the names.
    const room = 0.15;
    const label = right < 1 - room
      ? h("div", { class: "bar-label", style: { left: `calc(${Math.max(right, 0) * 100}% + 4px)` } }, fmtDur(sp.duration_nano))
      : left > room
        ? h("div", { class: "bar-label", style: { right: `calc(${Math.max(1 - left, 0) * 100}% + 4px)` } }, fmtDur(sp.duration_nano))
        : h("div", { class: "bar-label inside", style: { left: `calc(${Math.max(left, 0) * 100}% + 4px)` } }, fmtDur(sp.duration_nano));
    const classes = ["wf-row"];
    if (sp.span_id === selected) classes.push("selected");
    if (isError) classes.push("error");
    if (trace.critical.has(sp.span_id)) classes.push("critical");
    if (matches.has(sp.span_id)) classes.push("match");
    else if (needle && matches.size) classes.push("dim");
    return h("div", {
      class: classes.join(" "), style: { top: `${index * ROW}px` }, role: "treeitem", "aria-selected": sp.span_id === selected ? "true" : "false",
      "aria-expanded": list.length ? String(!isCollapsed) : null,
      dataset: { spanId: sp.span_id, critical: trace.critical.has(sp.span_id) ? "true" : "false" },
      onclick: (e) => {
        if (e.target.closest(".toggle")) toggle(sp.span_id);
        else select(sp.span_id);
      },
    },
    h("div", { class: "name-col", style: { paddingLeft: `${indent(trace.depth.get(sp.span_id))}px` } },
      trace.depth.get(sp.span_id) > FULL_INDENT_DEPTH ? h("span", { class: "depth", title: `depth ${trace.depth.get(sp.span_id)}` }, trace.depth.get(sp.span_id)) : null,
      h("span", { class: "toggle", title: list.length ? `${isCollapsed ? "Expand" : "Collapse"} ${list.length} child span(s)` : "" }, list.length ? (isCollapsed ? "▶" : "▼") : ""),
      h("span", { class: "stripe", style: { background: color } }),
      h("span", { class: "svc" }, sp.service),
      h("span", { class: "op", title: `${sp.service} · ${sp.name} (${fmtDur(sp.duration_nano)})` }, sp.name),
      sp.links.length ? h("span", { class: "marker marker-links", title: `${sp.links.length} link(s) to other spans` }, "⇢") : null,
      linkedCount.get(sp.span_id) ? h("span", { class: "marker marker-linked-from", title: `linked from ${linkedCount.get(sp.span_id)} span(s)` }, "⇠") : null,
      sp.events.length ? h("span", { class: "marker marker-events", title: `${sp.events.length} event(s)` }, "◆") : null,
      logCount.get(sp.span_id) ? h("span", { class: "marker marker-logs", title: `${logCount.get(sp.span_id)} log record(s)` }, "≡") : null,
      sp.kind !== "internal" && sp.kind !== "unspecified" ? h("span", { class: "badge", style: { marginLeft: "6px" } }, sp.kind) : null,
      isCollapsed ? h("span", { class: "muted", style: { marginLeft: "6px" } }, `+${countDescendants(sp)}`) : null),
    h("div", { class: "bar-col" }, bar, label));
  }

  function countDescendants(sp) {
    let n = 0;
    const stack = [...trace.kids(sp)];
    while (stack.length) {
      const c = stack.pop();
      n++;
      stack.push(...trace.kids(c));
    }
    return n;
  }

  function saveState() {
    setParams({
      span: selected, q: needle, collapsed: [...collapsed].join(","),
      zoom: zoom[0] === 0 && zoom[1] === 1 ? null : zoom.map((z) => +z.toFixed(5)).join(","),
    });
  }

  function refresh() {
    computeRows();
    drawRows();
    saveState();
  }

  function toggle(id) {
    if (collapsed.has(id)) collapsed.delete(id);
    else if (trace.kids(trace.byId.get(id)).length) collapsed.add(id);
    refresh();
  }

  function revealSpan(id) {
    for (let p = trace.parentOf.get(id); p; p = trace.parentOf.get(p.span_id)) collapsed.delete(p.span_id);
  }

  /** Selects a span; `scroll` brings it into view (`"center"`: to the middle). */
  function select(/** @type {string} */ id, /** @type {boolean | "center"} */ scroll = false) {
    if (!trace.byId.has(id)) return;
    selected = id;
    revealSpan(id);
    computeRows();
    if (scroll) scrollToRow(rows.findIndex((sp) => sp.span_id === id), scroll === "center");
    drawRows();
    saveState();
    showDetail();
  }

  /** Brings row `index` into view: just enough, or (a find's match) to the middle. */
  function scrollToRow(index, center = false) {
    if (index < 0) return;
    const top = index * ROW;
    if (center) scroller.scrollTop = Math.max(0, top - (scroller.clientHeight - ROW) / 2);
    else if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW - scroller.clientHeight;
  }

  function showDetail() {
    const sp = selected && trace.byId.get(selected);
    detail.replaceChildren(sp ? spanDetail(sp, trace, data, (id) => select(id, true)) : traceOverview(trace, data, (id) => select(id, "center")));
  }

  // Keyboard: arrows move and fold, Enter folds, / finds, z zooms, Escape clears.
  scroller.addEventListener("keydown", (e) => {
    const index = rows.findIndex((sp) => sp.span_id === selected);
    const sp = index >= 0 ? rows[index] : null;
    const go = (i) => { if (rows[i]) select(rows[i].span_id, true); };
    switch (e.key) {
      case "ArrowDown": case "j": go(index < 0 ? 0 : Math.min(index + 1, rows.length - 1)); break;
      case "ArrowUp": case "k": go(Math.max(index - 1, 0)); break;
      case "Home": go(0); break;
      case "End": go(rows.length - 1); break;
      case "ArrowRight": case "l":
        if (!sp) break;
        if (collapsed.has(sp.span_id)) toggle(sp.span_id);
        else if (trace.kids(sp).length) go(index + 1);
        break;
      case "ArrowLeft": case "h":
        if (!sp) break;
        if (trace.kids(sp).length && !collapsed.has(sp.span_id)) toggle(sp.span_id);
        else if (trace.parentOf.get(sp.span_id)) select(trace.parentOf.get(sp.span_id).span_id, true);
        break;
      case "Enter": case " ": if (sp) toggle(sp.span_id); break;
      case "z": zoomToSelected(); break;
      case "Escape": selected = null; drawRows(); saveState(); showDetail(); break;
      default: return;
    }
    e.preventDefault();
  });
  const onSlash = (e) => {
    if (e.key === "/" && !/INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) {
      e.preventDefault();
      search.focus();
    }
  };
  document.addEventListener("keydown", onSlash);
  onCleanup(() => document.removeEventListener("keydown", onSlash));

  let matchCursor = -1;
  // Matching looks at every span (150 ms a pass at 50,000 spans): once typing pauses, not
  // at every keystroke.
  let findTimer = null;
  const runFind = () => {
    findTimer = null;
    needle = search.value.trim();
    computeMatches();
    matchCursor = -1;
    drawRows();
    saveState();
  };
  search.addEventListener("input", () => {
    clearTimeout(findTimer);
    findTimer = setTimeout(runFind, 150);
  });
  onCleanup(() => clearTimeout(findTimer));
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && findTimer) runFind(); // what was typed counts at once
    if (e.key === "Enter" && matches.size) {
      // Next match in tree order, opening collapsed parents on the way.
      const ordered = trace.spans.filter((sp) => matches.has(sp.span_id)).sort((a, b) => a.start_unix_nano - b.start_unix_nano);
      matchCursor = (matchCursor + (e.shiftKey ? -1 : 1) + ordered.length) % ordered.length;
      select(ordered[matchCursor].span_id, "center");
      matchInfo.textContent = `${matchCursor + 1} of ${matches.size}`;
    } else if (e.key === "Escape") {
      scroller.focus();
    }
  });

  function setZoom(a, b) {
    zoom = b - a < 1e-6 ? [0, 1] : [Math.max(0, a), Math.min(1, b)];
    drawRuler();
    drawRows();
    saveState();
  }
  function zoomToSelected() {
    const sp = selected && trace.byId.get(selected);
    if (!sp) return;
    const a = (sp.start_unix_nano - trace.t0) / total;
    const b = (sp.end_unix_nano - trace.t0) / total;
    const margin = (b - a) * 0.05 || 0.001;
    setZoom(a - margin, b + margin);
  }
  zoomReset.addEventListener("click", () => setZoom(0, 1));
  zoomSpan.addEventListener("click", zoomToSelected);
  expandAll.addEventListener("click", () => { collapsed.clear(); refresh(); });
  collapseAll.addEventListener("click", () => {
    for (const sp of trace.spans) if (trace.kids(sp).length && trace.parentOf.get(sp.span_id)) collapsed.add(sp.span_id);
    refresh();
  });

  // Drag on the ruler to zoom into that part of the time axis.
  let dragFrom = null;
  const brush = h("div", { class: "brush" });
  const rulerFrac = (e) => {
    const r = ruler.getBoundingClientRect();
    return Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
  };
  ruler.addEventListener("mousedown", (e) => {
    dragFrom = rulerFrac(e);
    ruler.append(brush);
    Object.assign(brush.style, { left: `${dragFrom * 100}%`, width: "0" });
  });
  const onMove = (e) => {
    if (dragFrom === null) return;
    const f = rulerFrac(e);
    Object.assign(brush.style, { left: `${Math.min(f, dragFrom) * 100}%`, width: `${Math.abs(f - dragFrom) * 100}%` });
  };
  const onUp = (e) => {
    if (dragFrom === null) return;
    const f = rulerFrac(e);
    const [a, b] = [Math.min(f, dragFrom), Math.max(f, dragFrom)];
    dragFrom = null;
    brush.remove();
    if (b - a > 0.005) {
      const span = zoom[1] - zoom[0];
      setZoom(zoom[0] + a * span, zoom[0] + b * span);
    }
  };
  document.addEventListener("mousemove", onMove);
  document.addEventListener("mouseup", onUp);
  onCleanup(() => { document.removeEventListener("mousemove", onMove); document.removeEventListener("mouseup", onUp); });

  let frame = 0;
  scroller.addEventListener("scroll", () => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(drawRows);
  });
  const onResize = () => drawRows();
  window.addEventListener("resize", onResize);
  onCleanup(() => window.removeEventListener("resize", onResize));

  computeMatches();
  computeRows();
  drawRuler();
  // The scroller gets its height from the layout; draw once it has one.
  scroller.style.height = `${Math.max(240, Math.min(rows.length * ROW + 8, window.innerHeight - scroller.getBoundingClientRect().top - 24))}px`;
  if (selected && trace.byId.has(selected)) select(selected, true);
  else {
    selected = null;
    drawRows();
    showDetail();
  }
  scroller.focus({ preventScroll: true });
}

/** The spans that made up most of the end-to-end latency, largest first. */
/** Critical-path time by service and operation, largest first: in a fan-out trace a hundred
 * `SELECT`s add up to one entry, and a bare `GET` says whose it is. */
export function criticalByOperation(trace) {
  /** @type {Map<string, {service: string, name: string, time: number, count: number, top: string, topTime: number}>} */
  const groups = new Map();
  for (const [id, n] of trace.criticalTotal) {
    if (n <= 0) continue;
    const sp = trace.byId.get(id);
    const key = `${sp.service}\u0000${sp.name}`;
    const g = groups.get(key) || { service: sp.service, name: sp.name, time: 0, count: 0, top: id, topTime: 0 };
    g.time += n;
    g.count += 1;
    if (n > g.topTime) Object.assign(g, { top: id, topTime: n });
    groups.set(key, g);
  }
  return [...groups.values()].sort((a, b) => b.time - a.time);
}

export function whereTheTimeWent(trace, total, onPick) {
  const top = criticalByOperation(trace).slice(0, 5);
  if (!top.length) return null;
  return h("div", { class: "where", id: "where-time-went" },
    h("span", { class: "muted", title: "Time on the critical path: the chain of work the end-to-end latency waited on" }, "Critical path:"),
    top.map((g) => h("span", { class: "cp-item", dataset: { spanId: g.top }, onclick: () => onPick(g.top), title: g.count > 1 ? `${g.count} spans; shows the longest` : "Show this span" },
      h("span", { class: "dot", style: { background: serviceColor(g.service) } }), ` ${g.name} `, h("b", {}, fmtDur(g.time)),
      h("span", { class: "muted" }, ` (${fmtPct(g.time / total)}) ${g.service}${g.count > 1 ? ` ×${g.count}` : ""}`))));
}

/** The flame graph: call paths merged (see `aggregateStacks`), each as wide as its summed
 * time; children that overlap (concurrent calls) are scaled to fit under their parent, the
 * title giving the real figures. */
export function flameGraph(trace) {
  const roots = aggregateStacks(trace);
  const ROW_H = 20;
  const box = h("div", { class: "flame", id: "flame" });
  let deepest = 0;
  /** @type {Array<[any, number, number]>} */
  const work = [];
  const rootsTotal = roots.reduce((n, r) => n + r.total, 0) || 1;
  let x = 0;
  for (const r of roots) {
    work.push([r, x, r.total / rootsTotal]);
    x += r.total / rootsTotal;
  }
  while (work.length) {
    const [node, left, width] = work.pop();
    deepest = Math.max(deepest, node.depth);
    if (width * 1000 < 1) continue; // under a pixel of a thousand
    box.append(h("div", {
      class: "flame-node", dataset: { key: node.key },
      title: `${node.service}: ${node.name} — ${node.count > 1 ? `×${node.count}, ` : ""}${fmtDur(node.total)} in all, ${fmtDur(node.self)} self`,
      style: { left: `${left * 100}%`, width: `${width * 100}%`, top: `${node.depth * ROW_H}px`, background: serviceColor(node.service) },
    }, `${node.name}${node.count > 1 ? ` ×${node.count}` : ""}`));
    const sum = node.children.reduce((n, c) => n + c.total, 0);
    const scale = width / Math.max(node.total, sum, 1);
    let at = left;
    for (const child of node.children) {
      work.push([child, at, child.total * scale]);
      at += child.total * scale;
    }
  }
  box.style.height = `${(deepest + 1) * ROW_H}px`;
  return box;
}

/** Jaeger's "trace statistics": per service and operation, how many spans, their total and
 * self time, the shortest, mean and longest, and their share of the critical path. */
export function traceStatistics(trace, total) {
  /** @type {Map<string, {service: string, name: string, count: number, total: number, self: number, min: number, max: number, critical: number}>} */
  const rows = new Map();
  for (const sp of trace.spans) {
    const key = `${sp.service}\u0000${sp.name}`;
    const r = rows.get(key) || { service: sp.service, name: sp.name, count: 0, total: 0, self: 0, min: Infinity, max: 0, critical: 0 };
    r.count += 1;
    r.total += sp.duration_nano;
    r.self += trace.selfTime.get(sp.span_id) || 0;
    r.min = Math.min(r.min, sp.duration_nano);
    r.max = Math.max(r.max, sp.duration_nano);
    r.critical += trace.criticalTotal.get(sp.span_id) || 0;
    rows.set(key, r);
  }
  const sorted = [...rows.values()].sort((a, b) => b.self - a.self);
  return h("table", { class: "list", id: "trace-stats" },
    h("thead", {}, h("tr", {}, ["Service", "Operation", "Count", "Total", "Self time", "Min", "Avg", "Max", "Critical path"].map((c, i) => h("th", { class: i > 1 ? "num" : "" }, c)))),
    h("tbody", {}, sorted.map((r) => h("tr", { dataset: { service: r.service, operation: r.name } },
      h("td", {}, serviceChip(r.service)), h("td", { title: r.name }, r.name),
      h("td", { class: "num" }, r.count), h("td", { class: "num" }, fmtDur(r.total)), h("td", { class: "num" }, fmtDur(r.self)),
      h("td", { class: "num" }, fmtDur(r.min)), h("td", { class: "num" }, fmtDur(r.total / r.count)), h("td", { class: "num" }, fmtDur(r.max)),
      h("td", { class: "num" }, r.critical ? `${fmtDur(r.critical)} (${fmtPct(r.critical / total)})` : "—")))));
}

/** Attributes as a table; with `service`, each row can filter traces by it or copy it. */
export function kvTable(map, service = null) {
  const entries = Object.entries(map || {});
  if (!entries.length) return h("div", { class: "muted" }, "none");
  return h("table", { class: "kv" }, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return h("tr", { dataset: { key: k } }, h("td", {}, k), h("td", { class: "mono" }, text),
      service !== null ? h("td", { class: "kv-actions" }, attributeActions(k, text, service)) : null);
  }));
}

/** "Filter traces by this" (in this service) and "copy" for one attribute. */
function attributeActions(/** @type {string} */ key, /** @type {string} */ value, /** @type {string} */ service) {
  const filter = formatAttrFilters([`${key}=${value}`]);
  const query = new URLSearchParams({ attr: `${key}=${value}` });
  if (service) query.set("service", service);
  const without = new URLSearchParams({ exclude: `${key}=${value}` });
  return [
    h("a", { href: `/traces?${query}`, class: "filter-by", title: `Traces with ${filter}${service ? ` in ${service}` : ""}` }, "filter"),
    " ",
    h("a", { href: `/traces?${without}`, class: "exclude", title: `Traces none of whose spans has ${filter}` }, "exclude"),
    " ",
    h("button", { type: "button", class: "ghost copy-attr", title: `Copy ${filter}`, onclick: (e) => {
      const button = e.currentTarget;
      copyText(filter).then(() => flash(button, "copied"));
    } }, "copy"),
  ];
}

/** Log lines, oldest first; with `onSpan`, a line of a span in this trace opens that span. */
export function logLines(logs, onSpan = null) {
  if (!logs.length) return h("div", { class: "muted" }, "none");
  return logs.slice().sort((a, b) => a.time_unix_nano - b.time_unix_nano).map((l) => {
    const opens = onSpan && l.span_id && !/^0*$/.test(l.span_id);
    return h("div", { class: `log-line${opens ? " opens-span" : ""}`, dataset: { spanId: l.span_id || "" }, title: opens ? "Show the span that logged this" : null, onclick: opens ? () => onSpan(l.span_id) : null },
      h("span", { class: "muted mono" }, fmtTime(l.time_unix_nano, false)), " ", levelBadge(l), " ",
      h("span", { class: "mono" }, typeof l.body === "string" ? l.body : JSON.stringify(l.body)));
  });
}

export function traceOverview(trace, data, onSelect) {
  return h("div", {},
    h("section", {}, h("h3", {}, "Trace"), h("p", { class: "muted" }, "Select a span (click, or ↑ ↓ in the waterfall) to see its details.")),
    h("section", { id: "trace-logs" }, h("h4", {}, `Logs of this trace (${data.logs.length})`),
      h("a", { href: `/logs?trace_id=${data.trace_id}`, id: "trace-logs-link" }, "Open in Logs"), logLines(data.logs, onSelect)),
    h("section", {}, h("h4", {}, "Resource of the root span"), kvTable(trace.mainRoot.resource)));
}

/** "Linked from (N)": the spans of other traces linking to one span, newest first, a page
 * at a time (a span may be linked from thousands), each opening the linking span. */
export function linkedFrom(traceId, spanId, count, note) {
  const list = h("div", { class: "linklist linked-from-list" });
  const more = h("button", { type: "button", class: "linked-from-more", style: { display: "none" } }, "Show more");
  let before = null;
  async function page() {
    more.disabled = true;
    try {
      const query = new URLSearchParams({ span: spanId, limit: "20" });
      if (before) query.set("before", before);
      const { links, next } = await api(`/traces/${traceId}/linked_from`, query);
      for (const l of links) {
        list.append(h("div", { class: "event linked-from-entry" },
          h("a", { href: `/traces/${l.trace_id}?span=${l.span_id}`, class: "span-link" }, serviceChip(l.service), " ", l.name),
          h("span", { class: "muted" }, ` · ${fmtTime(l.start_unix_nano)} · `), h("span", { class: "mono muted" }, l.trace_id.slice(0, 12) + "…")));
      }
      before = next;
      more.style.display = next ? "" : "none";
    } catch (e) {
      list.append(errorBox("Could not load the linking spans", e));
    }
    more.disabled = false;
  }
  more.addEventListener("click", page);
  page();
  return h("div", {}, h("h4", {}, `Linked from (${count})`, note ? h("span", { class: "muted" }, ` ${note}`) : null), list, more);
}

export function spanDetail(sp, trace, data, onSelect) {
  const statusBadge = h("span", { class: `badge ${sp.status.code === "error" ? "error" : sp.status.code === "ok" ? "ok" : ""}` }, sp.status.code);
  const exceptions = sp.events.filter((e) => e.name === "exception");
  const spanLogs = data.logs.filter((l) => l.span_id === sp.span_id);
  const parent = trace.parentOf.get(sp.span_id);
  const cp = trace.criticalTotal.get(sp.span_id);
  const linkCount = (data.linked_from.find((l) => l.span_id === sp.span_id) || {}).count || 0;
  return h("div", { dataset: { spanId: sp.span_id } },
    h("section", {},
      h("h3", { id: "detail-name" }, sp.name),
      h("div", {}, serviceChip(sp.service), " ", h("span", { class: "badge" }, sp.kind), " ", statusBadge, sp.status.message ? h("span", { class: "err" }, ` ${sp.status.message}`) : ""),
      h("table", { class: "kv", style: { marginTop: "6px" } },
        h("tr", {}, h("td", {}, "Duration"), h("td", { id: "detail-duration" }, fmtDur(sp.duration_nano))),
        h("tr", {}, h("td", {}, "Self time"), h("td", { id: "detail-self" }, fmtDur(trace.selfTime.get(sp.span_id)))),
        cp ? h("tr", {}, h("td", {}, "On the critical path"), h("td", {}, fmtDur(cp))) : null,
        h("tr", {}, h("td", {}, "Starts at"), h("td", {}, `+${fmtDur(sp.start_unix_nano - trace.t0)} · ${fmtTime(sp.start_unix_nano)}`)),
        h("tr", {}, h("td", {}, "Span id"), h("td", { class: "mono" }, sp.span_id, copyButton(sp.span_id, "span id"), " ",
          h("button", { type: "button", id: "copy-span-json", class: "ghost", title: "Copy the whole span as JSON", onclick: (e) => {
            const button = e.currentTarget;
            copyText(JSON.stringify(sp, null, 2)).then(() => flash(button, "copied"));
          } }, "Copy as JSON"))),
        h("tr", {}, h("td", {}, "Parent"), h("td", { class: "mono" }, parent ? h("a", { href: `?span=${parent.span_id}`, onclick: (e) => { e.preventDefault(); onSelect(parent.span_id); } }, parent.span_id) : sp.parent_span_id || "none (root)")),
        sp.trace_state ? h("tr", {}, h("td", {}, "Trace state"), h("td", { class: "mono" }, sp.trace_state)) : null)),
    exceptions.length ? h("section", { id: "detail-exceptions" }, h("h4", {}, "Exceptions"), exceptions.map((e) => h("div", { class: "event" },
      h("div", { class: "err" }, h("b", {}, e.attributes["exception.type"] || "exception"), ": ", e.attributes["exception.message"] || ""),
      e.attributes["exception.stacktrace"] ? h("pre", {}, e.attributes["exception.stacktrace"]) : null))) : null,
    h("section", { id: "detail-attributes" }, h("h4", {}, `Attributes${sp.dropped_attributes_count ? ` (${sp.dropped_attributes_count} dropped)` : ""}`), kvTable(sp.attributes, sp.service)),
    h("section", { id: "detail-events" }, h("h4", {}, `Events (${sp.events.length})`),
      sp.events.length ? sp.events.map((e) => h("div", { class: "event" }, h("b", {}, e.name), h("span", { class: "muted" }, ` +${fmtDur(e.time_unix_nano - sp.start_unix_nano)}`),
        Object.keys(e.attributes).length && e.name !== "exception" ? kvTable(e.attributes, sp.service) : null)) : h("div", { class: "muted" }, "none")),
    h("section", { id: "detail-links" }, h("h4", {}, `Links (${sp.links.length})`),
      sp.links.length ? h("div", { class: "linklist" }, sp.links.map((l) => h("div", { class: "event" },
        h("a", { href: `/traces/${l.trace_id}?span=${l.span_id}`, class: "span-link" }, l.trace_id === data.trace_id ? `this trace · ${l.span_id}` : `${l.trace_id} · ${l.span_id}`),
        Object.keys(l.attributes).length ? kvTable(l.attributes) : null))) : h("div", { class: "muted" }, "none")),
    linkCount ? h("section", { id: "detail-linked-from" }, linkedFrom(data.trace_id, sp.span_id, linkCount, "")) : null,
    h("section", { id: "detail-logs" }, h("h4", {}, `Logs of this span (${spanLogs.length})`), logLines(spanLogs)),
    h("section", { id: "detail-resource" }, h("h4", {}, "Resource"), kvTable(sp.resource, "")),
    h("section", {}, h("h4", {}, "Instrumentation scope"), h("div", { class: "mono" }, `${sp.scope.name}${sp.scope.version ? ` ${sp.scope.version}` : ""}`), Object.keys(sp.scope.attributes).length ? kvTable(sp.scope.attributes) : null));
}
