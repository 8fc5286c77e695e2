// Skein dashboard: a single-page app over the collector's /api/v1. No framework, no build
// step: pages are functions that build DOM from API answers; every view's state lives in the
// URL so any view can be bookmarked, shared or reloaded.
"use strict";
(() => {
  // ---------- DOM helpers ----------
  const $ = (selector, root = document) => root.querySelector(selector);

  /** Builds an element: props are attributes (plus class, text, on*, style, dataset). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    applyProps(el, props);
    appendAll(el, children);
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, props, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    applyProps(el, props);
    appendAll(el, children);
    return el;
  }

  function applyProps(el, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.setAttribute("class", value);
      else if (key === "text") el.textContent = value;
      else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "value" || key === "checked") el[key] = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
  }

  function appendAll(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
  }

  // ---------- formatting ----------
  const prefs = {
    get utc() { return localStorage.getItem("skein.tz") === "utc"; },
    set utc(on) { localStorage.setItem("skein.tz", on ? "utc" : "local"); },
  };
  const pad = (n, w = 2) => String(n).padStart(w, "0");

  /** Unix nanoseconds as a date and time with milliseconds, local or UTC. */
  function fmtTime(nanos, withDate = true) {
    const d = new Date(Number(nanos) / 1e6);
    const u = prefs.utc;
    const date = `${d[u ? "getUTCFullYear" : "getFullYear"]()}-${pad(d[u ? "getUTCMonth" : "getMonth"]() + 1)}-${pad(d[u ? "getUTCDate" : "getDate"]())}`;
    const time = `${pad(d[u ? "getUTCHours" : "getHours"]())}:${pad(d[u ? "getUTCMinutes" : "getMinutes"]())}:${pad(d[u ? "getUTCSeconds" : "getSeconds"]())}.${pad(d[u ? "getUTCMilliseconds" : "getMilliseconds"](), 3)}`;
    return (withDate ? `${date} ${time}` : time) + (u ? " UTC" : "");
  }

  /** Nanoseconds as the shortest readable duration. */
  function fmtDur(nanos) {
    const n = Number(nanos);
    if (n < 1e3) return `${Math.round(n)} ns`;
    if (n < 1e6) return `${+(n / 1e3).toFixed(n < 1e4 ? 2 : 1)} µs`;
    if (n < 1e9) return `${+(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} ms`;
    if (n < 60e9) return `${+(n / 1e9).toFixed(2)} s`;
    return `${Math.floor(n / 60e9)} m ${Math.round((n % 60e9) / 1e9)} s`;
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const fmtPct = (x) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
  const fmtRate = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(2));

  /** A stable colour per service name. */
  /** Distinguishable colours, none of them red (red means error here). */
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#7b68ee", "#8a9a2b", "#17a2c8", "#c5b0d5"];
  const serviceColors = new Map();
  /**
   * A service's colour: the palette's, in the order services are first seen this session (the
   * same service keeps its colour on every page, and the first twelve never share one); then
   * hues spread by the golden angle, away from red.
   */
  function serviceColor(name) {
    let colour = serviceColors.get(name);
    if (colour === undefined) {
      const n = serviceColors.size;
      colour = n < PALETTE.length ? PALETTE[n] : `hsl(${30 + ((n - PALETTE.length) * 137.508) % 300}, 45%, 40%)`;
      serviceColors.set(name, colour);
    }
    return colour;
  }

  /** Levels indented in full; deeper ones are compressed and marked with their depth. */
  const FULL_INDENT_DEPTH = 8;
  /** A waterfall row's indentation: 14 px a level, then 2 px a level, at most 160 px, so that
   * the names keep their room at any depth. */
  const indent = (depth) => Math.min(depth <= FULL_INDENT_DEPTH ? depth * 14 : FULL_INDENT_DEPTH * 14 + (depth - FULL_INDENT_DEPTH) * 2, 160);

  const serviceChip = (name) => h("span", { class: "chip" }, h("span", { class: "dot", style: { background: serviceColor(name) } }), name);

  function copyButton(text, what) {
    return h("button", {
      class: "copy", title: `Copy ${what}`, "aria-label": `Copy ${what}`, type: "button",
      onclick: (e) => {
        e.preventDefault();
        e.stopPropagation();
        copyText(text).then(() => flash(e.currentTarget, "copied"));
      },
    }, copyIcon());
  }

  const copyIcon = () => s("svg", { width: 12, height: 12, viewBox: "0 0 16 16", "aria-hidden": "true" },
    s("rect", { x: 5, y: 5, width: 9, height: 9, rx: 1.5, fill: "none", stroke: "currentColor", "stroke-width": 1.6 }),
    s("path", { d: "M3 11V3a1 1 0 0 1 1-1h7", fill: "none", stroke: "currentColor", "stroke-width": 1.6 }));

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Pages over plain HTTP on a non-loopback host have no clipboard API.
      const area = h("textarea", { style: { position: "fixed", opacity: "0" } });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
  }

  function flash(el, text) {
    const old = [...el.childNodes];
    el.replaceChildren(text);
    setTimeout(() => el.replaceChildren(...old), 900);
  }

  // ---------- API ----------
  const token = (() => {
    const params = new URLSearchParams(location.search);
    const fromUrl = params.get("token");
    if (fromUrl) {
      sessionStorage.setItem("skein.token", fromUrl);
      params.delete("token");
      history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
    }
    return fromUrl || sessionStorage.getItem("skein.token");
  })();

  class ApiError extends Error {}

  /** GETs an API path; a failure throws with the API's own message. */
  async function api(path, params) {
    const query = params && String(params) ? `?${params}` : "";
    let response;
    try {
      response = await fetch(`/api/v1${path}${query}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    } catch (e) {
      throw new ApiError(`the collector is not answering (${e.message})`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      if (response.ok) throw new ApiError(`${path}: the answer is not JSON`);
    }
    if (!response.ok) throw new ApiError(body && body.error ? body.error : `${path}: HTTP ${response.status}`);
    return body;
  }

  function errorBox(what, error) {
    return h("div", { class: "error-box", role: "alert" }, h("strong", {}, `${what}: `), error.message || String(error));
  }

  // ---------- status: retention notice and OTLP addresses ----------
  let status = null;
  async function refreshStatus() {
    try {
      status = await api("/status");
    } catch {
      return; // Pages show their own API errors; the banner just stays as it was.
    }
    const notices = $("#notices");
    notices.replaceChildren();
    const evicted = status.evicted || {};
    if (evicted.traces > 0 || evicted.spans > 0) {
      const days = status.retention_seconds / 86400;
      notices.append(h("div", { class: "notice retention", id: "retention-notice" },
        `Retention removed ${plural(evicted.traces, "trace")} (${plural(evicted.spans, "span")}) since the collector started — it keeps `,
        days >= 1 ? `${+days.toFixed(1)} days` : `${Math.round(status.retention_seconds / 60)} minutes`,
        ` and at most ${(status.max_disk_bytes / 2 ** 30).toFixed(1)} GiB.`,
        status.oldest_kept_unix_nano ? ` Oldest data kept: ${fmtTime(status.oldest_kept_unix_nano)}.` : ""));
    }
  }

  /** The status, fetched now if the first poll has not answered yet (empty states need it). */
  const statusKnown = () => (status ? Promise.resolve() : refreshStatus());

  function otlpHint() {
    const http = status ? status.otlp_http : "localhost:4318";
    const grpc = status ? status.otlp_grpc : "localhost:4317";
    return h("p", {}, "Point an OpenTelemetry SDK or exporter at ", h("code", {}, `http://${http}`),
      " (OTLP/HTTP) or ", h("code", {}, `http://${grpc}`), " (OTLP/gRPC), e.g. ",
      h("code", {}, `OTEL_EXPORTER_OTLP_ENDPOINT=http://${http}`), ".");
  }

  // ---------- routing ----------
  let cleanups = [];
  const onCleanup = (f) => cleanups.push(f);

  function navigate(url, replace = false) {
    history[replace ? "replaceState" : "pushState"](null, "", url);
    render();
  }

  /** Changes query parameters of the current view without re-rendering it. */
  function setParams(changes) {
    const params = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "" || v === false) params.delete(k);
      else params.set(k, v);
    }
    const query = String(params);
    history.replaceState(null, "", location.pathname + (query ? `?${query}` : ""));
  }

  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.startsWith("/api/") || a.target) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", render);

  function render() {
    for (const f of cleanups) f();
    cleanups = [];
    const view = $("#view");
    view.replaceChildren();
    const path = location.pathname.replace(/\/+$/, "") || "/traces";
    const params = new URLSearchParams(location.search);
    const section = path.split("/")[1];
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.nav === section);
    let page;
    if (path === "/traces") page = tracesPage(view, params);
    else if (path.startsWith("/traces/")) page = tracePage(view, decodeURIComponent(path.slice(8)), params);
    else if (path === "/services") page = servicesPage(view, params);
    else if (path === "/logs") page = logsPage(view, params);
    else {
      document.title = "Skein";
      view.append(h("div", { class: "empty" }, h("h3", {}, "No such page"), h("a", { href: "/traces" }, "Go to traces")));
    }
    if (page) page.catch((e) => view.append(errorBox("Something went wrong", e)));
  }

  // ---------- time ranges ----------
  const RANGES = [["5m", 5 * 60], ["15m", 15 * 60], ["1h", 3600], ["6h", 6 * 3600], ["24h", 86400], ["7d", 7 * 86400]];

  /** The [start, end] of a view in unix nanoseconds: `range=1h`, or `start`/`end` times. */
  function timeRange(params) {
    const nowMs = Date.now();
    const parse = (v) => (v ? Date.parse(v) : NaN);
    const start = parse(params.get("start"));
    const end = parse(params.get("end"));
    if (!Number.isNaN(start) || !Number.isNaN(end)) {
      const e = Number.isNaN(end) ? nowMs : end;
      const st = Number.isNaN(start) ? e - 3600e3 : start;
      return { startMs: st, endMs: e, label: "custom" };
    }
    const found = RANGES.find(([k]) => k === params.get("range")) || RANGES[2];
    return { startMs: nowMs - found[1] * 1000, endMs: nowMs, label: found[0] };
  }

  const isoMs = (ms) => new Date(ms).toISOString();

  /** A time for a `datetime-local` input, in the zone the dashboard shows. */
  function toTimeInput(ms) {
    const shifted = prefs.utc ? ms : ms - new Date(ms).getTimezoneOffset() * 60e3;
    return new Date(shifted).toISOString().slice(0, 19);
  }

  /** What a `datetime-local` input says, read in the zone the dashboard shows (NaN if empty). */
  const fromTimeInput = (value) => (value ? Date.parse(prefs.utc ? `${value}Z` : value) : NaN);

  function rangeSelect(params) {
    const current = params.get("start") || params.get("end") ? "custom" : params.get("range") || "1h";
    return h("select", { name: "range", "aria-label": "Time range" },
      RANGES.map(([k]) => h("option", { value: k, selected: k === current }, `Last ${k}`)),
      h("option", { value: "custom", selected: current === "custom" }, "Custom…"));
  }

  /** `key=value`, `key="a value"` and bare `key` (has the attribute, any value), by spaces. */
  function parseAttrFilters(text) {
    const filters = [];
    const re = /([^\s=]+)(?:=("([^"]*)"|\S*))?/g;
    let m;
    while ((m = re.exec(text))) filters.push(m[2] === undefined ? m[1] : `${m[1]}=${m[3] !== undefined ? m[3] : m[2]}`);
    return filters;
  }
  const formatAttrFilters = (filters) =>
    filters.map((p) => {
      if (!p.includes("=")) return p;
      const [k, ...rest] = p.split("=");
      const v = rest.join("=");
      return /\s/.test(v) ? `${k}="${v}"` : `${k}=${v}`;
    }).join(" ");

  // ---------- traces page ----------
  async function tracesPage(view, params) {
    document.title = "Traces · Skein";
    const services = api("/services").catch(() => ({ services: [] }));
    const form = h("form", { class: "search panel", id: "trace-search" });
    const serviceSelect = h("select", { name: "service", "aria-label": "Service" }, h("option", { value: "" }, "All services"));
    const opSelect = h("select", { name: "operation", "aria-label": "Operation" }, h("option", { value: "" }, "All operations"));
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
      h("label", {}, "Operation", opSelect),
      h("label", {}, "Attributes", h("input", { class: "attrs", name: "attr", placeholder: "http.response.status_code=503 customer.tier=gold error.type", value: formatAttrFilters(params.getAll("attr")) })),
      h("label", {}, "Min duration", h("input", { class: "dur", name: "min_duration", placeholder: "250ms", value: params.get("min_duration") || "" })),
      h("label", {}, "Max duration", h("input", { class: "dur", name: "max_duration", placeholder: "2s", value: params.get("max_duration") || "" })),
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "errors", checked: params.get("errors") === "true" }), "Errors only"),
      h("label", {}, "Limit", h("select", { name: "limit" }, ["20", "50", "100", "500"].map((l) => h("option", { value: l, selected: (params.get("limit") || "50") === l }, l)))),
      h("button", { class: "primary", type: "submit" }, "Search"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const next = new URLSearchParams();
      if (data.get("range") === "custom") {
        for (const k of ["start", "end"]) {
          const ms = fromTimeInput(data.get(k));
          if (!Number.isNaN(ms)) next.set(k, isoMs(ms));
        }
      } else if (data.get("range") !== "1h") next.set("range", data.get("range"));
      for (const k of ["service", "operation", "min_duration", "max_duration"]) if (data.get(k)) next.set(k, data.get(k).trim());
      for (const pair of parseAttrFilters(data.get("attr") || "")) next.append("attr", pair);
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
    view.append(form,
      h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Duration over time", h("span", { class: "spacer" }), h("span", { class: "muted" }, "click a point to open its trace")), scatter),
      h("div", { class: "panel" }, h("div", { class: "panel-head results-head" }, "Traces", summary, h("span", { class: "spacer" }), pauseButton, liveButton), results));

    services.then(({ services: names }) => {
      for (const name of names) serviceSelect.append(h("option", { value: name, selected: name === params.get("service") }, name));
      loadOperations();
    });
    async function loadOperations() {
      const service = serviceSelect.value;
      opSelect.replaceChildren(h("option", { value: "" }, "All operations"));
      try {
        const { operations } = await api("/operations", service ? new URLSearchParams({ service }) : null);
        const names = [...new Set(operations.map((o) => o.name))].sort();
        for (const name of names) opSelect.append(h("option", { value: name, selected: name === params.get("operation") }, name));
      } catch (e) {
        opSelect.append(h("option", { value: "", disabled: true }, `(${e.message})`));
      }
    }
    serviceSelect.addEventListener("change", loadOperations);

    let shown = new Set();
    /** The traces the filters find now (throws if the search fails). */
    async function find() {
      const { startMs, endMs } = timeRange(params);
      const query = new URLSearchParams({ start: isoMs(startMs), end: isoMs(endMs), limit: params.get("limit") || "50" });
      // The store sorts every match in the range, not just the newest page.
      for (const k of ["service", "operation", "min_duration", "max_duration", "errors", "sort"]) if (params.get(k)) query.set(k, params.get(k));
      for (const pair of params.getAll("attr")) query.append("attr", pair);
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

  async function noTraces(params) {
    await statusKnown();
    const any = await api("/services").then((r) => r.services.length > 0).catch(() => true);
    if (!any) return h("div", { class: "empty", id: "empty-state" }, h("h3", {}, `No traces yet — send OTLP to ${status ? status.otlp_http : "localhost:4318"}`), otlpHint());
    const filtered = [...params.keys()].some((k) => !["live", "sort", "limit", "range"].includes(k));
    return h("div", { class: "empty", id: "empty-state" }, h("h3", {}, "No traces match"),
      h("p", {}, filtered ? "Loosen the filters or widen the time range." : "Nothing arrived in this time range; widen it."));
  }

  /** A trace without its root whose last span ended less than a minute ago: its root (which
   * ends last) is probably still on its way, not lost. */
  const stillArriving = (t) => !t.root_service && Date.now() * 1e6 - (t.start_unix_nano + t.duration_nano) < 60e9;

  function traceTable(traces, fresh, params) {
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
  function drawScatter(container, traces, startMs, endMs) {
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

  // ---------- trace model ----------
  /** Parent/child structure, critical path and self times of one trace. */
  function buildTrace(data) {
    const spans = data.spans;
    const byId = new Map(spans.map((sp) => [sp.span_id, sp]));
    const children = new Map();
    const roots = [];
    for (const sp of spans) {
      const parent = sp.parent_span_id && sp.parent_span_id !== "0000000000000000" ? byId.get(sp.parent_span_id) : null;
      if (parent && parent !== sp) {
        if (!children.has(parent.span_id)) children.set(parent.span_id, []);
        children.get(parent.span_id).push(sp);
      } else roots.push(sp);
    }
    const byStart = (a, b) => a.start_unix_nano - b.start_unix_nano || a.name.localeCompare(b.name);
    roots.sort(byStart);
    for (const list of children.values()) list.sort(byStart);
    const t0 = Math.min(...spans.map((sp) => sp.start_unix_nano));
    const t1 = Math.max(...spans.map((sp) => sp.end_unix_nano));
    const kids = (sp) => children.get(sp.span_id) || [];

    // Depth and the parent of each span, iteratively (deep traces must not overflow the stack).
    const depth = new Map();
    const parentOf = new Map();
    const order = [];
    const stack = roots.slice().reverse().map((sp) => [sp, 0]);
    while (stack.length) {
      const [sp, d] = stack.pop();
      if (depth.has(sp.span_id)) continue; // a cycle in bad data
      depth.set(sp.span_id, d);
      order.push(sp);
      const list = kids(sp);
      for (let i = list.length - 1; i >= 0; i--) {
        parentOf.set(list[i].span_id, sp);
        stack.push([list[i], d + 1]);
      }
    }

    // Self time: the span's duration not covered by any child.
    const selfTime = new Map();
    for (const sp of order) {
      const intervals = kids(sp)
        .map((c) => [Math.max(c.start_unix_nano, sp.start_unix_nano), Math.min(c.end_unix_nano, sp.end_unix_nano)])
        .filter(([a, b]) => b > a)
        .sort((a, b) => a[0] - b[0]);
      let covered = 0;
      let cursor = sp.start_unix_nano;
      for (const [a, b] of intervals) {
        if (b <= cursor) continue;
        covered += b - Math.max(a, cursor);
        cursor = b;
      }
      selfTime.set(sp.span_id, Math.max(0, sp.duration_nano - covered));
    }

    // Critical path: from the end of the root, walk back through the child that finished
    // last before the cursor; the gaps between such children are the parent's own time. Each
    // span gets the segments of the end-to-end latency it is responsible for.
    const critical = new Map();
    const addSegment = (sp, a, b) => {
      if (b <= a) return;
      if (!critical.has(sp.span_id)) critical.set(sp.span_id, []);
      critical.get(sp.span_id).push([a, b]);
    };
    const mainRoot = roots.slice().sort((a, b) => b.duration_nano - a.duration_nano)[0];
    const work = mainRoot ? [[mainRoot, mainRoot.end_unix_nano]] : [];
    const visited = new Set();
    while (work.length) {
      const [sp, until] = work.pop();
      if (visited.has(sp.span_id)) continue;
      visited.add(sp.span_id);
      let cursor = Math.min(sp.end_unix_nano, until);
      const list = kids(sp).slice().sort((a, b) => b.end_unix_nano - a.end_unix_nano);
      for (const c of list) {
        if (cursor <= sp.start_unix_nano) break;
        if (c.start_unix_nano >= cursor || c.end_unix_nano <= sp.start_unix_nano) continue;
        const childEnd = Math.min(c.end_unix_nano, cursor);
        addSegment(sp, childEnd, cursor);
        work.push([c, childEnd]);
        cursor = Math.max(c.start_unix_nano, sp.start_unix_nano);
      }
      if (!critical.has(sp.span_id)) critical.set(sp.span_id, []);
      addSegment(sp, sp.start_unix_nano, cursor);
    }
    const criticalTotal = new Map([...critical].map(([id, segs]) => [id, segs.reduce((n, [a, b]) => n + (b - a), 0)]));
    return { spans, byId, roots, kids, t0, t1, depth, parentOf, selfTime, critical, criticalTotal, mainRoot };
  }

  function spanMatches(sp, needle) {
    if (!needle) return false;
    const n = needle.toLowerCase();
    const has = (v) => String(v).toLowerCase().includes(n);
    if (has(sp.name) || has(sp.service) || sp.span_id === n || has(sp.status.message)) return true;
    for (const [k, v] of Object.entries(sp.attributes)) if (has(k) || has(typeof v === "string" ? v : JSON.stringify(v))) return true;
    return sp.events.some((e) => has(e.name));
  }

  // ---------- trace page ----------
  const ROW = 24;

  async function tracePage(view, traceId, params) {
    document.title = `Trace ${traceId.slice(0, 8)} · Skein`;
    let data;
    try {
      data = await api(`/traces/${encodeURIComponent(traceId)}`);
    } catch (e) {
      view.append(errorBox("Could not load the trace", e),
        h("p", { class: "muted" }, "A trace that is gone may have been removed by retention. ", h("a", { href: "/traces" }, "Back to search")));
      return;
    }
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
    const services = [...new Set(trace.spans.map((sp) => sp.service))];

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
        trace.roots.length > 1 ? h("span", { class: "muted", title: "Spans whose parent never arrived are shown as extra roots" }, `${trace.roots.length - 1} orphan subtree(s)`) : null),
      whereTheTimeWent(trace, total, (id) => select(id, true)),
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
        h("span", { class: "op" }, sp.name),
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

    function select(id, scroll = false) {
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
      detail.replaceChildren(sp ? spanDetail(sp, trace, data, (id) => select(id, true)) : traceOverview(trace, data));
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
  function whereTheTimeWent(trace, total, onPick) {
    const top = [...trace.criticalTotal].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 5);
    if (!top.length) return null;
    return h("div", { class: "where", id: "where-time-went" },
      h("span", { class: "muted", title: "Time on the critical path: the chain of work the end-to-end latency waited on" }, "Critical path:"),
      top.map(([id, n]) => {
        const sp = trace.byId.get(id);
        return h("span", { class: "cp-item", dataset: { spanId: id }, onclick: () => onPick(id), title: "Show this span" },
          h("span", { class: "dot", style: { background: serviceColor(sp.service) } }), ` ${sp.name} `, h("b", {}, fmtDur(n)), h("span", { class: "muted" }, ` (${fmtPct(n / total)})`));
      }));
  }

  function kvTable(map) {
    const entries = Object.entries(map || {});
    if (!entries.length) return h("div", { class: "muted" }, "none");
    return h("table", { class: "kv" }, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v)))));
  }

  function logLines(logs) {
    if (!logs.length) return h("div", { class: "muted" }, "none");
    return logs.slice().sort((a, b) => a.time_unix_nano - b.time_unix_nano).map((l) => h("div", { class: "log-line" },
      h("span", { class: "muted mono" }, fmtTime(l.time_unix_nano, false)), " ", levelBadge(l), " ",
      h("span", { class: "mono" }, typeof l.body === "string" ? l.body : JSON.stringify(l.body))));
  }

  function traceOverview(trace, data) {
    return h("div", {},
      h("section", {}, h("h3", {}, "Trace"), h("p", { class: "muted" }, "Select a span (click, or ↑ ↓ in the waterfall) to see its details.")),
      h("section", {}, h("h4", {}, `Logs of this trace (${data.logs.length})`), logLines(data.logs)),
      h("section", {}, h("h4", {}, "Resource of the root span"), kvTable(trace.mainRoot.resource)));
  }

  /** "Linked from (N)": the spans of other traces linking to one span, newest first, a page
   * at a time (a span may be linked from thousands), each opening the linking span. */
  function linkedFrom(traceId, spanId, count, note) {
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

  function spanDetail(sp, trace, data, onSelect) {
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
          h("tr", {}, h("td", {}, "Span id"), h("td", { class: "mono" }, sp.span_id, copyButton(sp.span_id, "span id"))),
          h("tr", {}, h("td", {}, "Parent"), h("td", { class: "mono" }, parent ? h("a", { href: `?span=${parent.span_id}`, onclick: (e) => { e.preventDefault(); onSelect(parent.span_id); } }, parent.span_id) : sp.parent_span_id || "none (root)")),
          sp.trace_state ? h("tr", {}, h("td", {}, "Trace state"), h("td", { class: "mono" }, sp.trace_state)) : null)),
      exceptions.length ? h("section", { id: "detail-exceptions" }, h("h4", {}, "Exceptions"), exceptions.map((e) => h("div", { class: "event" },
        h("div", { class: "err" }, h("b", {}, e.attributes["exception.type"] || "exception"), ": ", e.attributes["exception.message"] || ""),
        e.attributes["exception.stacktrace"] ? h("pre", {}, e.attributes["exception.stacktrace"]) : null))) : null,
      h("section", { id: "detail-attributes" }, h("h4", {}, `Attributes${sp.dropped_attributes_count ? ` (${sp.dropped_attributes_count} dropped)` : ""}`), kvTable(sp.attributes)),
      h("section", { id: "detail-events" }, h("h4", {}, `Events (${sp.events.length})`),
        sp.events.length ? sp.events.map((e) => h("div", { class: "event" }, h("b", {}, e.name), h("span", { class: "muted" }, ` +${fmtDur(e.time_unix_nano - sp.start_unix_nano)}`),
          Object.keys(e.attributes).length && e.name !== "exception" ? kvTable(e.attributes) : null)) : h("div", { class: "muted" }, "none")),
      h("section", { id: "detail-links" }, h("h4", {}, `Links (${sp.links.length})`),
        sp.links.length ? h("div", { class: "linklist" }, sp.links.map((l) => h("div", { class: "event" },
          h("a", { href: `/traces/${l.trace_id}?span=${l.span_id}`, class: "span-link" }, l.trace_id === data.trace_id ? `this trace · ${l.span_id}` : `${l.trace_id} · ${l.span_id}`),
          Object.keys(l.attributes).length ? kvTable(l.attributes) : null))) : h("div", { class: "muted" }, "none")),
      linkCount ? h("section", { id: "detail-linked-from" }, linkedFrom(data.trace_id, sp.span_id, linkCount, "")) : null,
      h("section", { id: "detail-logs" }, h("h4", {}, `Logs of this span (${spanLogs.length})`), logLines(spanLogs)),
      h("section", {}, h("h4", {}, "Resource"), kvTable(sp.resource)),
      h("section", {}, h("h4", {}, "Instrumentation scope"), h("div", { class: "mono" }, `${sp.scope.name}${sp.scope.version ? ` ${sp.scope.version}` : ""}`), Object.keys(sp.scope.attributes).length ? kvTable(sp.scope.attributes) : null));
  }

  // ---------- services page ----------
  async function servicesPage(view, params) {
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
    view.append(h("div", { class: "row" }, h("label", {}, "Time", range)),
      h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Service map", h("span", { class: "muted" }, "calls between services; red edges carry errors; click a service for its traces")), mapBox),
      h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Operations", h("span", { class: "muted" }, "rate, errors and latency percentiles; click a row for matching traces")), statsBox));
    const [deps, stats] = await Promise.allSettled([api("/dependencies", query), api("/stats", query)]);
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
    const firstMinute = Math.floor(startMs / 60e3);
    const lastMinute = Math.floor(endMs / 60e3);
    const byService = new Map();
    for (const op of ops) {
      if (!byService.has(op.service)) byService.set(op.service, []);
      byService.get(op.service).push(op);
    }
    const table = h("table", { class: "list", id: "stats-table" },
      h("thead", {}, h("tr", {}, ["Operation", "Calls", "Rate /min", "Error rate", "p50", "p95", "p99", "Calls & errors per minute", "p95 per minute"].map((c, i) => h("th", { class: i > 0 && i < 7 ? "num" : "" }, c)))));
    const body = h("tbody");
    for (const [service, list] of byService) {
      const calls = list.reduce((n, o) => n + o.calls, 0);
      const errs = list.reduce((n, o) => n + o.errors, 0);
      body.append(h("tr", { class: "svc-head", onclick: () => navigate(withRange(`service=${encodeURIComponent(service)}`)) },
        h("td", { colspan: 9 }, serviceChip(service), h("span", { class: "muted" }, ` ${plural(calls, "call")}${errs ? ` · ` : ""}`), errs ? h("span", { class: "err" }, plural(errs, "error")) : "")));
      for (const op of list.sort((a, b) => b.calls - a.calls)) {
        const href = withRange(`service=${encodeURIComponent(service)}&operation=${encodeURIComponent(op.name)}`);
        body.append(h("tr", { dataset: { service, operation: op.name }, onclick: (e) => { if (!e.target.closest("a")) navigate(href); } },
          h("td", {}, h("a", { href }, op.name)),
          h("td", { class: "num" }, op.calls),
          h("td", { class: "num" }, fmtRate(op.rate_per_minute)),
          h("td", { class: `num${op.errors ? " err" : ""}` }, fmtPct(op.error_rate)),
          h("td", { class: "num" }, fmtDur(op.p50_nano)),
          h("td", { class: "num" }, fmtDur(op.p95_nano)),
          h("td", { class: "num" }, fmtDur(op.p99_nano)),
          h("td", {}, sparkline(op.per_minute, firstMinute, lastMinute, "calls")),
          h("td", {}, sparkline(op.per_minute, firstMinute, lastMinute, "latency"))));
      }
    }
    table.append(body);
    statsBox.replaceChildren(table);
  }

  /** Calls (with errors in red) or p95 latency per minute across the range. */
  function sparkline(points, firstMinute, lastMinute, what) {
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
        svg.append(s("rect", { class: "calls", x: i * bw, y: hgt - ch, width: Math.max(bw - 0.5, 0.5), height: ch }, s("title", {}, `${c} calls, ${errors[i]} errors`)));
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
  function dependencyMap(edges, ops, onPick) {
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
    const svg = s("svg", { class: "dep-map", viewBox: `0 0 ${width} ${height}`, style: { height: `${Math.min(height, 420)}px` } },
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

  // ---------- logs page ----------
  const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
  function levelName(n) {
    return n <= 0 ? "unset" : LEVELS[Math.min(5, Math.floor((n - 1) / 4))];
  }
  const levelBadge = (l) => {
    const name = l.severity_text || levelName(l.severity_number);
    return h("span", { class: `badge lvl-${levelName(l.severity_number)}` }, name);
  };

  async function logsPage(view, params) {
    document.title = "Logs · Skein";
    const serviceSelect = h("select", { name: "service", "aria-label": "Service" }, h("option", { value: "" }, "All services"));
    const form = h("form", { class: "search panel", id: "log-search" },
      h("label", {}, "Level at least", h("select", { name: "min_severity" }, h("option", { value: "" }, "any"), LEVELS.map((l) => h("option", { value: l, selected: params.get("min_severity") === l }, l)))),
      h("label", {}, "Service", serviceSelect),
      h("label", {}, "Text", h("input", { name: "q", value: params.get("q") || "", placeholder: "words in the message" })),
      h("label", {}, "Trace id", h("input", { name: "trace_id", value: params.get("trace_id") || "", placeholder: "32 hex digits", class: "mono", size: 34 })),
      h("label", {}, "Limit", h("select", { name: "limit" }, ["100", "200", "1000"].map((l) => h("option", { value: l, selected: (params.get("limit") || "200") === l }, l)))),
      h("button", { class: "primary", type: "submit" }, "Search"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const next = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v && !(k === "limit" && v === "200")) next.set(k, String(v).trim());
      navigate(`/logs?${next}`);
    });
    const results = h("div", { id: "log-results" });
    view.append(form, h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Log records", h("span", { class: "muted", id: "log-count" })), results));
    api("/services").then(({ services }) => {
      for (const name of services) serviceSelect.append(h("option", { value: name, selected: name === params.get("service") }, name));
    }).catch(() => {});
    const query = new URLSearchParams();
    for (const k of ["min_severity", "service", "q", "trace_id", "limit"]) if (params.get(k)) query.set(k, params.get(k));
    let logs;
    try {
      ({ logs } = await api("/logs", query));
    } catch (e) {
      results.replaceChildren(errorBox("Could not load logs", e));
      return;
    }
    $("#log-count").textContent = `${logs.length} record${logs.length === 1 ? "" : "s"}, newest first`;
    if (!logs.length) {
      await statusKnown();
      const filtered = [...query.keys()].some((k) => k !== "limit");
      results.replaceChildren(h("div", { class: "empty", id: "empty-state" },
        h("h3", {}, filtered ? "No log records match" : `No logs yet — send OTLP logs to ${status ? status.otlp_http : "localhost:4318"}`),
        filtered ? h("p", {}, "Loosen the filters.") : otlpHint()));
      return;
    }
    results.replaceChildren(h("table", { class: "list", id: "log-table" },
      h("thead", {}, h("tr", {}, ["Time", "Level", "Service", "Message", "Attributes", "Trace"].map((c) => h("th", {}, c)))),
      h("tbody", {}, logs.map((l) => h("tr", { dataset: { traceId: l.trace_id } },
        h("td", { class: "mono", style: { whiteSpace: "nowrap" } }, fmtTime(l.time_unix_nano)),
        h("td", {}, levelBadge(l)),
        h("td", {}, serviceChip(l.service)),
        h("td", { class: "body" }, typeof l.body === "string" ? l.body : JSON.stringify(l.body)),
        h("td", { class: "attrs" }, Object.entries(l.attributes).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  ")),
        h("td", {}, l.trace_id && !/^0*$/.test(l.trace_id)
          ? h("a", { class: "mono trace-link", href: `/traces/${l.trace_id}${l.span_id && !/^0*$/.test(l.span_id) ? `?span=${l.span_id}` : ""}` }, l.trace_id.slice(0, 12) + "…")
          : h("span", { class: "muted" }, "—")))))));
  }

  // ---------- chrome: theme, time zone, start ----------
  function paintToggles() {
    $("#theme-toggle").textContent = document.documentElement.dataset.theme === "dark" ? "☀ Light" : "☾ Dark";
    $("#tz-toggle").textContent = prefs.utc ? "UTC" : "Local time";
  }
  $("#theme-toggle").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("skein.theme", next);
    paintToggles();
  });
  $("#tz-toggle").addEventListener("click", () => {
    prefs.utc = !prefs.utc;
    paintToggles();
    render();
  });
  paintToggles();
  refreshStatus();
  setInterval(refreshStatus, 30000);
  if (location.pathname === "/") history.replaceState(null, "", `/traces${location.search}`);
  render();
})();
