// The logs page — time range, level, service, text (in the message or an attribute), attribute
// filters, trace id (whole, or the first digits shown), a detail drawer, live tail with
// pause — and how log levels look everywhere.
// @ts-check
import { currentGeneration, isCurrent, navigate, onCleanup } from "../router.js";
import { api, status, statusKnown, otlpHint } from "../api.js";
import { $, h, serviceChip, errorBox, copyButton, copyText, flash } from "../dom.js";
import { fmtTime, timeRange, isoMs, rangeSelect, parseAttrFilters, formatAttrFilters } from "../format.js";
import { attributeSuggestions } from "../suggest.js";

// ---------- logs page ----------
export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
export function levelName(/** @type {number} */ n) {
  return n <= 0 ? "unset" : LEVELS[Math.min(5, Math.floor((n - 1) / 4))];
}
export const levelBadge = (/** @type {any} */ l) => {
  const name = l.severity_text || levelName(l.severity_number);
  return h("span", { class: `badge lvl-${levelName(l.severity_number)}` }, name);
};

/** How often the live tail asks for newer records. */
const TAIL_EVERY_MS = 2000;

const text = (/** @type {unknown} */ v) => (typeof v === "string" ? v : JSON.stringify(v));

export async function logsPage(/** @type {HTMLElement} */ view, /** @type {URLSearchParams} */ params) {
  document.title = "Logs · Skein";
  const generation = currentGeneration();
  const serviceSelect = h("select", { name: "service", "aria-label": "Service" }, h("option", { value: "" }, "All services"));
  const range = rangeSelect(params);
  // Attribute filters, with the keys and values of the records in the range offered.
  const attrInput = /** @type {HTMLInputElement} */ (h("input", { name: "attr", class: "attrs", autocomplete: "off", value: formatAttrFilters(params.getAll("attr")), placeholder: "order.id=o-17 http.status_code>499" }));
  const attrSuggest = h("div", { class: "suggest", id: "log-attr-suggest", role: "listbox", style: { display: "none" } });
  attributeSuggestions(attrInput, attrSuggest, () => {
    const { startMs, endMs } = timeRange(params);
    const scope = new URLSearchParams({ signal: "logs", start: isoMs(startMs), end: isoMs(endMs) });
    if (serviceSelect.value) scope.set("service", serviceSelect.value);
    return scope;
  });
  const form = h("form", { class: "search panel", id: "log-search" },
    h("label", {}, "Time", range),
    h("label", {}, "Level at least", h("select", { name: "min_severity" }, h("option", { value: "" }, "any"), LEVELS.map((l) => h("option", { value: l, selected: params.get("min_severity") === l }, l)))),
    h("label", {}, "Service", serviceSelect),
    h("label", {}, "Text", h("input", { name: "q", value: params.get("q") || "", placeholder: "in the message or an attribute" })),
    h("label", { class: "attr-label" }, "Attributes", attrInput, attrSuggest),
    h("label", {}, "Trace id", h("input", { name: "trace_id", value: params.get("trace_id") || "", placeholder: "32 hex digits, or the first 8+", class: "mono", size: 34 })),
    h("label", {}, "Limit", h("select", { name: "limit" }, ["100", "200", "1000"].map((l) => h("option", { value: l, selected: (params.get("limit") || "200") === l }, l)))),
    h("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      const value = String(v).trim();
      if (!value || (k === "limit" && value === "200") || (k === "range" && value === "1h")) continue;
      if (k === "attr") for (const pair of parseAttrFilters(value)) next.append("attr", pair);
      else next.set(k, value);
    }
    if (params.get("live")) next.set("live", "1");
    navigate(`/logs?${next}`);
  });
  const liveButton = h("button", { type: "button", id: "logs-live", class: params.get("live") ? "active" : "" }, params.get("live") ? "● Live" : "Live");
  const pauseButton = h("button", { type: "button", id: "logs-pause", style: { display: params.get("live") ? "" : "none" } }, "Pause");
  liveButton.addEventListener("click", () => {
    const next = new URLSearchParams(location.search);
    if (params.get("live")) next.delete("live");
    else next.set("live", "1");
    navigate(`/logs?${next}`);
  });
  const results = h("div", { id: "log-results" });
  const drawer = h("aside", { class: "panel drawer", id: "log-drawer", style: { display: "none" } });
  view.append(form,
    h("div", { class: "panel" }, h("div", { class: "panel-head" }, "Log records", h("span", { class: "muted", id: "log-count" }), h("span", { class: "spacer" }), pauseButton, liveButton), results),
    drawer);
  api("/services").then(({ services }) => {
    for (const name of services) serviceSelect.append(h("option", { value: name, selected: name === params.get("service") }, name));
  }).catch(() => {});
  const query = new URLSearchParams();
  for (const k of ["min_severity", "service", "q", "trace_id", "limit"]) if (params.get(k)) query.set(k, String(params.get(k)));
  for (const pair of params.getAll("attr")) query.append("attr", pair);
  const { startMs, endMs } = timeRange(params);
  query.set("start", isoMs(startMs));
  if (params.get("end")) query.set("end", isoMs(endMs));
  /** @type {any[]} */
  let logs;
  try {
    ({ logs } = await api("/logs", query));
    if (!isCurrent(generation)) return;
  } catch (e) {
    results.replaceChildren(errorBox("Could not load logs", e));
    return;
  }
  const count = () => {
    /** @type {HTMLElement} */ ($("#log-count")).textContent = ` ${logs.length} record${logs.length === 1 ? "" : "s"}, newest first`;
  };
  count();
  if (!logs.length && !params.get("live")) {
    await statusKnown();
    const filtered = [...params.keys()].some((k) => !["limit", "range"].includes(k));
    results.replaceChildren(h("div", { class: "empty", id: "empty-state" },
      h("h3", {}, filtered ? "No log records match" : `No logs yet — send OTLP logs to ${status ? status.otlp_http : "localhost:4318"}`),
      filtered ? h("p", {}, "Loosen the filters or widen the time range.") : otlpHint()));
    return;
  }

  /** The drawer: everything about one record. */
  function open(/** @type {any} */ l, /** @type {HTMLElement} */ row) {
    for (const r of results.querySelectorAll("tr.selected")) r.classList.remove("selected");
    row.classList.add("selected");
    // Each attribute filters the records by itself, or copies.
    const kv = (/** @type {Record<string, unknown>} */ map) => {
      const entries = Object.entries(map || {});
      return entries.length
        ? h("table", { class: "kv" }, entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
          const pair = formatAttrFilters([`${k}=${text(v)}`]);
          return h("tr", { dataset: { key: k } }, h("td", {}, k), h("td", { class: "mono" }, text(v)),
            h("td", { class: "kv-actions" },
              h("a", { class: "filter-by", href: `/logs?${new URLSearchParams({ attr: `${k}=${text(v)}` })}`, title: `Log records with ${pair}` }, "filter"), " ",
              h("button", { type: "button", class: "ghost copy-attr", title: `Copy ${pair}`, onclick: (/** @type {Event} */ e) => {
                const button = /** @type {HTMLElement} */ (e.currentTarget);
                copyText(pair).then(() => flash(button, "copied"));
              } }, "copy")));
        }))
        : h("div", { class: "muted" }, "none");
    };
    const traced = l.trace_id && !/^0*$/.test(l.trace_id);
    drawer.replaceChildren(
      h("div", { class: "panel-head" }, "Log record", h("span", { class: "spacer" }), h("button", { type: "button", id: "log-drawer-close", onclick: () => (drawer.style.display = "none") }, "Close")),
      h("div", { class: "panel-body" },
        h("div", {}, levelBadge(l), " ", serviceChip(l.service), " ", h("span", { class: "mono muted" }, fmtTime(l.time_unix_nano))),
        h("pre", { id: "log-drawer-body" }, text(l.body)),
        traced ? h("p", {}, "Trace ", h("a", { class: "mono", href: `/traces/${l.trace_id}${l.span_id && !/^0*$/.test(l.span_id) ? `?span=${l.span_id}` : ""}` }, l.trace_id), copyButton(l.trace_id, "trace id")) : null,
        h("section", { id: "log-drawer-attributes" }, h("h4", {}, "Attributes"), kv(l.attributes)),
        h("section", { id: "log-drawer-resource" }, h("h4", {}, "Resource"), kv(l.resource)),
        h("section", { id: "log-drawer-scope" }, h("h4", {}, "Scope"), h("div", { class: "mono" }, `${l.scope.name || "—"}${l.scope.version ? ` ${l.scope.version}` : ""}`), kv(l.scope.attributes))));
    drawer.style.display = "";
  }

  const row = (/** @type {any} */ l) => {
    const traced = l.trace_id && !/^0*$/.test(l.trace_id);
    const tr = h("tr", { dataset: { traceId: l.trace_id } },
      h("td", { class: "mono", style: { whiteSpace: "nowrap" } }, fmtTime(l.time_unix_nano)),
      h("td", {}, levelBadge(l)),
      h("td", {}, serviceChip(l.service)),
      h("td", { class: "body" }, text(l.body)),
      h("td", { class: "attrs" }, Object.entries(l.attributes).map(([k, v]) => `${k}=${text(v)}`).join("  ")),
      // The id shown short; its title and copy button hold it whole.
      h("td", { style: { whiteSpace: "nowrap" } }, traced
        ? [h("a", { class: "mono trace-link", title: l.trace_id, href: `/traces/${l.trace_id}${l.span_id && !/^0*$/.test(l.span_id) ? `?span=${l.span_id}` : ""}` }, l.trace_id.slice(0, 12) + "…"), copyButton(l.trace_id, "trace id")]
        : h("span", { class: "muted" }, "—")));
    tr.addEventListener("click", (e) => {
      if (!/** @type {Element} */ (e.target).closest("a, button")) open(l, tr);
    });
    return tr;
  };
  const body = h("tbody", {}, logs.map(row));
  results.replaceChildren(h("table", { class: "list", id: "log-table" },
    h("thead", {}, h("tr", {}, ["Time", "Level", "Service", "Message", "Attributes", "Trace"].map((c) => h("th", {}, c)))),
    body));

  // Live tail: newer records come in at the top; paused, they wait and are counted.
  if (!params.get("live")) return;
  let paused = false;
  /** @type {any[]} */
  let waiting = [];
  const newest = () => (logs.length ? logs[0].time_unix_nano : Date.now() * 1e6 - 60e9);
  const show = (/** @type {any[]} */ records) => {
    logs = records.concat(logs);
    body.prepend(...records.map(row));
    count();
  };
  pauseButton.addEventListener("click", () => {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.classList.toggle("active", paused);
    if (!paused && waiting.length) {
      show(waiting);
      waiting = [];
    }
  });
  const timer = setInterval(async () => {
    const since = new URLSearchParams(query);
    since.set("start", String(newest() + 1));
    since.delete("end");
    try {
      const { logs: fresh } = await api("/logs", since);
      if (!isCurrent(generation) || !fresh.length) return;
      // Records already shown (the same time) are not shown twice.
      const seen = new Set(logs.concat(waiting).map((l) => `${l.time_unix_nano} ${l.span_id} ${text(l.body)}`));
      const unseen = fresh.filter((/** @type {any} */ l) => !seen.has(`${l.time_unix_nano} ${l.span_id} ${text(l.body)}`));
      if (paused) {
        waiting = unseen.concat(waiting);
        pauseButton.textContent = `Resume (${waiting.length} new)`;
      } else if (unseen.length) show(unseen);
    } catch {
      // The next poll tries again.
    }
  }, TAIL_EVERY_MS);
  onCleanup(() => clearInterval(timer));
}
