// The logs page, and how log levels look everywhere.
// @ts-check
import { currentGeneration, isCurrent } from "../router.js";
import { api, status, statusKnown, otlpHint } from "../api.js";
import { $, h, s, serviceChip, errorBox } from "../dom.js";
import { fmtTime } from "../format.js";
import { navigate } from "../router.js";

// ---------- logs page ----------
export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
export function levelName(n) {
  return n <= 0 ? "unset" : LEVELS[Math.min(5, Math.floor((n - 1) / 4))];
}
export const levelBadge = (l) => {
  const name = l.severity_text || levelName(l.severity_number);
  return h("span", { class: `badge lvl-${levelName(l.severity_number)}` }, name);
};

export async function logsPage(view, params) {
  document.title = "Logs · Skein";
  const generation = currentGeneration();
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
    if (!isCurrent(generation)) return;
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
