// The traces page: search form, duration scatter, results (live or paused).
// @ts-check
import { token, api, importTraces, status, statusKnown, otlpHint } from "../api.js";
import { $, h, s, serviceChip, errorBox } from "../dom.js";
import { prefs, pad, fmtTime, fmtDur, timeRange, isoMs, toTimeInput, fromTimeInput, rangeSelect, parseAttrFilters, formatAttrFilters } from "../format.js";
import { onCleanup, navigate } from "../router.js";
import { attributeSuggestions } from "../suggest.js";

// ---------- traces page ----------
export async function tracesPage(view, params) {
  document.title = "Traces · Skein";
  const services = api("/services").catch(() => ({ services: [] }));
  const form = h("form", { class: "search panel", id: "trace-search" });
  const serviceSelect = h("select", { name: "service", "aria-label": "Service" }, h("option", { value: "" }, "All services"));
  // Typed, with suggestions: a service may have thousands of operations (a select of 5,809
  // entries could not be searched); the suggestions are the first matches of what is typed.
  const opSuggestions = h("datalist", { id: "operation-suggestions" });
  const opSelect = /** @type {HTMLInputElement} */ (h("input", { name: "operation", "aria-label": "Operation", list: "operation-suggestions", placeholder: "All operations", autocomplete: "off", value: params.get("operation") || "" }));
  /** @type {string[]} */
  let operationNames = [];
  const SUGGESTIONS = 50;
  function suggest() {
    const typed = opSelect.value.toLowerCase();
    const starts = operationNames.filter((n) => n.toLowerCase().startsWith(typed));
    const contains = typed ? operationNames.filter((n) => !n.toLowerCase().startsWith(typed) && n.toLowerCase().includes(typed)) : [];
    opSuggestions.replaceChildren(...starts.concat(contains).slice(0, SUGGESTIONS).map((n) => h("option", { value: n })));
  }
  opSelect.addEventListener("input", suggest);
  // Attribute filters, with the keys and values seen in the range offered as you type.
  const attrInput = /** @type {HTMLInputElement} */ (h("input", { class: "attrs", name: "attr", autocomplete: "off", placeholder: "customer.tier=gold http.response.status_code>499 error.type", value: [formatAttrFilters(params.getAll("attr")), ...params.getAll("exclude").map((p) => `-${formatAttrFilters([p])}`)].filter(Boolean).join(" ") }));
  const attrSuggest = h("div", { class: "suggest", id: "attr-suggest", role: "listbox", style: { display: "none" } });
  attributeSuggestions(attrInput, attrSuggest, () => {
    const { startMs, endMs } = timeRange(params);
    const query = new URLSearchParams({ start: isoMs(startMs), end: isoMs(endMs) });
    if (serviceSelect.value) query.set("service", serviceSelect.value);
    return query;
  });

  // The custom range is typed in the zone the dashboard shows (UTC or local) and starts as
  // the range on screen.
  const zone = prefs.utc ? "UTC" : "local";
  const custom = h("span", { class: "row", style: { display: "none" } },
    h("label", {}, `From (${zone})`, h("input", { type: "datetime-local", name: "start", step: "1" })),
    h("label", {}, `To (${zone})`, h("input", { type: "datetime-local", name: "end", step: "1" })));
  const range = rangeSelect(params);
  const showCustom = () => (custom.style.display = range.value === "custom" ? "" : "none");
  range.addEventListener("change", showCustom);
  const onScreen = timeRange(params);
  $("input[name=start]", custom).value = toTimeInput(onScreen.startMs);
  $("input[name=end]", custom).value = toTimeInput(onScreen.endMs);
  showCustom();
  form.append(
    h("label", {}, "Time", range), custom,
    h("label", {}, "Service", serviceSelect),
    h("label", {}, "Operation", opSelect, opSuggestions),
    h("label", { class: "attr-label" }, "Attributes", attrInput, attrSuggest),
    h("label", {}, "Min duration", h("input", { class: "dur", name: "min_duration", placeholder: "250ms", value: params.get("min_duration") || "" })),
    h("label", {}, "Max duration", h("input", { class: "dur", name: "max_duration", placeholder: "2s", value: params.get("max_duration") || "" })),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "errors", checked: params.get("errors") === "true" }), "Errors only"),
    h("label", {}, "Limit", h("select", { name: "limit" }, ["20", "50", "100", "500"].map((l) => h("option", { value: l, selected: (params.get("limit") || "50") === l }, l)))),
    h("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const form_ = new FormData(form);
    /** A text field of the form ("" if absent). */
    const data = { get: (/** @type {string} */ k) => String(form_.get(k) ?? "") };
    const next = new URLSearchParams();
    if (data.get("range") === "custom") {
      for (const k of ["start", "end"]) {
        const ms = fromTimeInput(data.get(k));
        if (!Number.isNaN(ms)) next.set(k, isoMs(ms));
      }
    } else if (data.get("range") !== "1h") next.set("range", data.get("range"));
    for (const k of ["service", "operation", "min_duration", "max_duration"]) if (data.get(k)) next.set(k, data.get(k).trim());
    // `-key=value` excludes the traces with it; the other words filter.
    for (const pair of parseAttrFilters(data.get("attr") || "")) {
      if (pair.startsWith("-") && pair.includes("=")) next.append("exclude", pair.slice(1));
      else next.append("attr", pair);
    }
    if (data.get("errors")) next.set("errors", "true");
    if (data.get("limit") !== "50") next.set("limit", data.get("limit"));
    if (params.get("live")) next.set("live", "1");
    if (params.get("sort")) next.set("sort", params.get("sort"));
    navigate(`/traces?${next}`);
  });

  const liveButton = h("button", { type: "button", id: "live-toggle", class: params.get("live") ? "active" : "" }, params.get("live") ? "● Live" : "Live");
  const pauseButton = h("button", { type: "button", id: "live-pause", style: { display: params.get("live") ? "" : "none" } }, "Pause");
  const summary = h("span", { class: "muted", id: "result-count" });
  const scatter = h("div", { class: "panel-body", id: "scatter" });
  const results = h("div", { id: "results" });
  // Import: a trace file someone sent (OTLP JSON, as the trace page downloads it), chosen or
  // dropped anywhere on the page; it is stored like received data, then opened.
  const importInput = /** @type {HTMLInputElement} */ (h("input", { type: "file", id: "import-file", accept: ".json,application/json", style: { display: "none" } }));
  const importButton = h("button", { type: "button", id: "import-open", title: "Load an OTLP JSON file (or drop one on the page)" }, "Import…");
  const importNote = h("span", { class: "muted", id: "import-note" });
  importButton.addEventListener("click", () => importInput.click());
  importInput.addEventListener("change", () => {
    if (importInput.files && importInput.files[0]) importFile(importInput.files[0]);
  });
  view.addEventListener("dragover", (e) => e.preventDefault());
  view.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) importFile(file);
  });
  async function importFile(/** @type {File} */ file) {
    importNote.textContent = `importing ${file.name}…`;
    try {
      const text = await file.text();
      /** @type {any} */
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw new Error(`${file.name} is not JSON (${e.message})`);
      }
      const first = (parsed.resourceSpans || []).flatMap((r) => r.scopeSpans || []).flatMap((s) => s.spans || [])[0];
      if (!first || !/^[0-9a-fA-F]{32}$/.test(first.traceId || "")) throw new Error(`${file.name} holds no OTLP spans (resourceSpans → scopeSpans → spans with hex ids)`);
      const answer = await importTraces(text);
      const cut = answer.partialSuccess && answer.partialSuccess.errorMessage;
      importNote.textContent = cut ? `imported, with: ${cut}` : "";
      navigate(`/traces/${first.traceId.toLowerCase()}`);
    } catch (e) {
      importNote.replaceChildren(errorBox("Import failed", e));
    }
  }
  view.append(form,
    h("div", { class: "row" }, importButton, importInput, importNote),
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Duration over time", h("span", { class: "spacer" }), h("span", { class: "muted" }, "click a point to open its trace")), scatter),
    h("div", { class: "panel" }, h("div", { class: "panel-head results-head" }, "Traces", summary, h("span", { class: "spacer" }), pauseButton, liveButton), results));

  services.then(({ services: names }) => {
    for (const name of names) serviceSelect.append(h("option", { value: name, selected: name === params.get("service") }, name));
    loadOperations();
  });
  async function loadOperations() {
    const service = serviceSelect.value;
    operationNames = [];
    try {
      const { operations } = await api("/operations", service ? new URLSearchParams({ service }) : null);
      operationNames = [...new Set(operations.map((/** @type {{name: string}} */ o) => o.name))].sort();
      opSelect.placeholder = `All ${operationNames.length} operations`;
    } catch (e) {
      opSelect.placeholder = `(${e.message})`;
    }
    suggest();
  }
  serviceSelect.addEventListener("change", () => {
    opSelect.value = "";
    loadOperations();
  });

  let shown = new Set();
  /** The traces the filters find now (throws if the search fails). */
  async function find() {
    const { startMs, endMs } = timeRange(params);
    const query = new URLSearchParams({ start: isoMs(startMs), end: isoMs(endMs), limit: params.get("limit") || "50" });
    // The store sorts every match in the range, not just the newest page.
    for (const k of ["service", "operation", "min_duration", "max_duration", "errors", "sort"]) if (params.get(k)) query.set(k, params.get(k));
    for (const pair of params.getAll("attr")) query.append("attr", pair);
    for (const pair of params.getAll("exclude")) query.append("exclude", pair);
    const { traces } = await api("/traces", query);
    return { traces, startMs, endMs, limit: Number(query.get("limit")) };
  }
  async function search() {
    let found;
    try {
      found = await find();
    } catch (e) {
      results.replaceChildren(errorBox("Search failed", e));
      scatter.replaceChildren();
      summary.textContent = "";
      return;
    }
    const { traces, startMs, endMs, limit } = found;
    summary.textContent = `${traces.length} trace${traces.length === 1 ? "" : "s"}${traces.length >= limit ? " (limit reached)" : ""}`;
    drawScatter(scatter, traces, startMs, endMs);
    const fresh = new Set(traces.map((t) => t.trace_id).filter((id) => shown.size && !shown.has(id)));
    shown = new Set(traces.map((t) => t.trace_id));
    results.replaceChildren(traces.length ? traceTable(traces, fresh, params) : await noTraces(params));
  }
  await search();

  // Live mode: the server pushes a summary whenever a trace grows; the search is re-run (at
  // most once a second) so every filter, attributes included, still applies. Paused, the
  // same search counts the traces it would add (not the updates), without drawing them.
  // An empty page listens too, so that the first trace shows by itself.
  let source = null;
  let paused = false;
  let timer = null;
  const countNew = async () => {
    try {
      const { traces } = await find();
      const added = traces.filter((t) => !shown.has(t.trace_id)).length;
      if (paused) pauseButton.textContent = added ? `Resume (${added} new)` : "Resume";
    } catch (e) {
      // The next update tries again.
    }
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(() => { timer = null; if (paused) countNew(); else search(); }, 1000);
  };
  const empty = () => Boolean($("#empty-state", results));
  if (params.get("live") || empty()) {
    source = new EventSource(`/api/v1/live${token ? `?token=${encodeURIComponent(token)}` : ""}`);
    source.addEventListener("trace", () => { if (params.get("live") || empty()) schedule(); });
    source.onerror = () => { if (params.get("live")) summary.textContent = "live feed interrupted — reconnecting…"; };
    onCleanup(() => { source.close(); clearTimeout(timer); });
  }
  liveButton.addEventListener("click", () => {
    const next = new URLSearchParams(location.search);
    if (next.get("live")) next.delete("live");
    else next.set("live", "1");
    navigate(`/traces?${next}`, true);
  });
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.classList.toggle("active", paused);
    if (!paused) search();
  });
}

export async function noTraces(params) {
  await statusKnown();
  const any = await api("/services").then((r) => r.services.length > 0).catch(() => true);
  if (!any) return h("div", { class: "empty", id: "empty-state" }, h("h3", {}, `No traces yet — send OTLP to ${status ? status.otlp_http : "localhost:4318"}`), otlpHint());
  const filtered = [...params.keys()].some((k) => !["live", "sort", "limit", "range"].includes(k));
  return h("div", { class: "empty", id: "empty-state" }, h("h3", {}, "No traces match"),
    h("p", {}, filtered ? "Loosen the filters or widen the time range." : "Nothing arrived in this time range; widen it."));
}

/** A trace without its root whose last span ended less than a minute ago: its root (which
 * ends last) is probably still on its way, not lost. */
export const stillArriving = (t) => !t.root_service && Date.now() * 1e6 - (t.start_unix_nano + t.duration_nano) < 60e9;

export function traceTable(traces, fresh, params) {
  const longest = Math.max(...traces.map((t) => t.duration_nano), 1);
  const sortLink = (label, key) => {
    const next = new URLSearchParams(params);
    if (params.get("sort") === key) next.delete("sort");
    else next.set("sort", key);
    return h("a", { href: `/traces?${next}`, title: "Sort" }, label, params.get("sort") === key ? " ↓" : "");
  };
  return h("table", { class: "list", id: "trace-list" },
    h("thead", {}, h("tr", {}, h("th", {}, "Start"), h("th", {}, "Root"), h("th", { class: "num" }, sortLink("Spans", "spans")), h("th", {}, "Services"), h("th", {}, sortLink("Duration", "duration")), h("th", {}, ""))),
    h("tbody", {}, traces.map((t) => {
      const href = `/traces/${t.trace_id}`;
      return h("tr", { class: fresh.has(t.trace_id) ? "fresh" : "", dataset: { traceId: t.trace_id }, onclick: (e) => { if (!e.target.closest("a,button")) navigate(href); } },
        h("td", { class: "mono" }, fmtTime(t.start_unix_nano)),
        h("td", {}, h("a", { href }, t.root_service ? serviceChip(t.root_service) : stillArriving(t) ? h("span", { class: "chip arriving" }, "arriving…") : h("span", { class: "chip" }, "missing root"), " ", t.root_name || h("em", { class: "muted" }, stillArriving(t) ? "(its root span may still come)" : "(root span not received)")),
          " ", h("span", { class: "muted mono" }, t.trace_id.slice(0, 8))),
        h("td", { class: "num" }, t.span_count),
        h("td", {}, t.services.map(serviceChip)),
        h("td", {}, h("div", { class: "durbar" }, h("span", { style: { width: `${Math.max(0.5, (100 * t.duration_nano) / longest)}%` } }), h("em", {}, fmtDur(t.duration_nano)))),
        h("td", {}, t.error_count ? h("span", { class: "error-mark", title: `${t.error_count} span(s) failed` }, `● ${t.error_count} error${t.error_count > 1 ? "s" : ""}`) : ""));
    })));
}

/** Duration (y) over start time (x); a click opens the trace. */
export function drawScatter(container, traces, startMs, endMs) {
  const width = Math.max(container.clientWidth - 24, 300);
  const height = 170;
  const m = { l: 56, r: 10, t: 8, b: 20 };
  // Fit the x axis to the results (with a margin), within the searched range.
  const starts = traces.map((t) => t.start_unix_nano);
  const lo = traces.length ? Math.max(startMs * 1e6, Math.min(...starts)) : startMs * 1e6;
  const hi = traces.length ? Math.min(endMs * 1e6, Math.max(...starts)) : endMs * 1e6;
  const pad = Math.max((hi - lo) * 0.05, 500e6);
  const x0 = lo - pad;
  const x1 = hi + pad;
  const maxDur = Math.max(...traces.map((t) => t.duration_nano), 1e6);
  const x = (t) => m.l + ((t - x0) / (x1 - x0)) * (width - m.l - m.r);
  const y = (d) => height - m.b - (d / maxDur) * (height - m.t - m.b);
  const svg = s("svg", { width, height, id: "scatter-plot", role: "img", "aria-label": "Trace durations over time" });
  for (let i = 0; i <= 3; i++) {
    const d = (maxDur * i) / 3;
    svg.append(s("line", { class: "axis", x1: m.l, x2: width - m.r, y1: y(d), y2: y(d) }), s("text", { x: m.l - 6, y: y(d) + 4, "text-anchor": "end" }, fmtDur(d)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + ((x1 - x0) * i) / 4;
    svg.append(s("text", { x: x(t), y: height - 4, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, fmtTime(t, false)));
  }
  for (const t of traces) {
    const r = 3 + Math.min(5, Math.log2(Math.max(1, t.span_count)));
    svg.append(s("circle", {
      class: `pt${t.error_count ? " error" : ""}`, cx: x(Math.min(Math.max(t.start_unix_nano, x0), x1)), cy: y(t.duration_nano), r,
      dataset: { traceId: t.trace_id }, onclick: () => navigate(`/traces/${t.trace_id}`),
    }, s("title", {}, `${t.root_service || "?"}: ${t.root_name || "?"}\n${fmtDur(t.duration_nano)} · ${t.span_count} spans${t.error_count ? ` · ${t.error_count} errors` : ""}\n${fmtTime(t.start_unix_nano)}`)));
  }
  container.replaceChildren(traces.length ? svg : h("div", { class: "muted" }, "No points to plot."));
}
