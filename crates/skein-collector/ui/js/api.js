// The collector's API: fetching with the query token, its errors, and the status (retention notice, OTLP addresses).
// @ts-check
import { renderSignal } from "./router.js";
import { $, h, s } from "./dom.js";
import { fmtTime, plural } from "./format.js";

// ---------- API ----------
export const token = (() => {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    sessionStorage.setItem("skein.token", fromUrl);
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
  }
  return fromUrl || sessionStorage.getItem("skein.token");
})();

export class ApiError extends Error {}

/** GETs an API path; a failure throws with the API's own message. The request is aborted
 * when the view that made it is left, unless given another `signal`. */
export async function api(path, params, signal = renderSignal()) {
  const query = params && String(params) ? `?${params}` : "";
  let response;
  try {
    response = await fetch(`/api/v1${path}${query}`, { headers: authorization(), signal });
  } catch (e) {
    throw new ApiError(`the collector is not answering (${e.message})`);
  }
  return answer(response, path);
}

/** An API answer's JSON, or an error with the collector's own reason. */
async function answer(/** @type {Response} */ response, /** @type {string} */ path) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    if (response.ok) throw new ApiError(`${path}: the answer is not JSON`);
  }
  if (!response.ok) throw new ApiError(body && (body.error || body.message) ? body.error || body.message : `${path}: HTTP ${response.status}`);
  return body;
}


/** The query token as a header, when there is one. */
const authorization = () => (token ? { Authorization: `Bearer ${token}` } : {});

/** Stores OTLP traces (a file's JSON) as received data is stored; throws with the
 * collector's reason when refused. Returns its answer (`partialSuccess` when some spans were
 * cut or left out). */
export async function importTraces(/** @type {string} */ text) {
  let response;
  try {
    response = await fetch("/api/v1/import", { method: "POST", headers: { "Content-Type": "application/json", ...authorization() }, body: text });
  } catch (e) {
    throw new ApiError(`the collector is not answering (${e.message})`);
  }
  return (await answer(response, "import")) || {};
}

/** Saves a trace as an OTLP JSON file (`trace-<id>.json`), which the import reads back. */
export async function downloadTrace(/** @type {string} */ traceId) {
  const response = await fetch(`/api/v1/traces/${traceId}/otlp`, { headers: authorization() });
  if (!response.ok) throw new ApiError(`download: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: `trace-${traceId}.json`, style: { display: "none" } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60e3);
}

// ---------- status: retention notice and OTLP addresses ----------
export let status = null;
export async function refreshStatus() {
  try {
    status = await api("/status", null, null); // not the view's: kept across navigation
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
export const statusKnown = () => (status ? Promise.resolve() : refreshStatus());

export function otlpHint() {
  const http = status ? status.otlp_http : "localhost:4318";
  const grpc = status ? status.otlp_grpc : "localhost:4317";
  return h("p", {}, "Point an OpenTelemetry SDK or exporter at ", h("code", {}, `http://${http}`),
    " (OTLP/HTTP) or ", h("code", {}, `http://${grpc}`), " (OTLP/gRPC), e.g. ",
    h("code", {}, `OTEL_EXPORTER_OTLP_ENDPOINT=http://${http}`), ".");
}
