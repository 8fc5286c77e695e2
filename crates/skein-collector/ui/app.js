// Skein dashboard: a single-page app over the collector's /api/v1, as native ES modules (no
// framework, no build step, embedded in the binary). Pages are functions that build DOM from
// API answers; every view's state lives in the URL so any view can be bookmarked, shared or
// reloaded. This entry module maps paths to pages and wires the header's toggles.
// @ts-check
import { refreshStatus } from "./js/api.js";
import { $ } from "./js/dom.js";
import { prefs } from "./js/format.js";
import { comparePage } from "./js/pages/compare.js";
import { logsPage } from "./js/pages/logs.js";
import { servicesPage } from "./js/pages/services.js";
import { tracePage } from "./js/pages/trace.js";
import { tracesPage } from "./js/pages/traces.js";
import { navigate, render, setRoutes } from "./js/router.js";

/** A path segment as typed in the URL; a malformed %-escape is the user's to see. */
function segment(/** @type {string} */ raw) {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new Error(`the address has a malformed %-escape: ${raw}`);
  }
}

setRoutes((path) => {
  if (path === "/traces") return (view, _, params) => tracesPage(view, params);
  if (path.startsWith("/traces/")) return (view, p, params) => tracePage(view, segment(p.slice(8)), params);
  if (path === "/services") return (view, _, params) => servicesPage(view, params);
  if (path === "/logs") return (view, _, params) => logsPage(view, params);
  if (path === "/compare") return (view, _, params) => comparePage(view, params);
  return null;
});

// ---------- chrome: theme, time zone, start ----------
function paintToggles() {
  /** @type {HTMLElement} */ ($("#theme-toggle")).textContent = document.documentElement.dataset.theme === "dark" ? "☀ Light" : "☾ Dark";
  /** @type {HTMLElement} */ ($("#tz-toggle")).textContent = prefs.utc ? "UTC" : "Local time";
}
$("#theme-toggle")?.addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem("skein.theme", next);
  paintToggles();
});
$("#tz-toggle")?.addEventListener("click", () => {
  prefs.utc = !prefs.utc;
  paintToggles();
  render();
});
// The trace-id box: any trace by its id (shorter ids are zero-padded, as Jaeger does).
const traceBox = /** @type {HTMLInputElement} */ ($("#trace-id-box"));
$("#goto-trace")?.addEventListener("submit", (e) => {
  e.preventDefault();
  const typed = traceBox.value.trim().toLowerCase();
  if (!/^[0-9a-f]{1,32}$/.test(typed)) {
    traceBox.setCustomValidity("A trace id is up to 32 hexadecimal digits");
    traceBox.reportValidity();
    return;
  }
  traceBox.setCustomValidity("");
  traceBox.value = "";
  navigate(`/traces/${typed.padStart(32, "0")}`);
});
traceBox.addEventListener("input", () => traceBox.setCustomValidity(""));

// `?` lists the keyboard shortcuts (not while typing).
const shortcuts = /** @type {HTMLDialogElement} */ ($("#shortcuts"));
const toggleShortcuts = () => (shortcuts.open ? shortcuts.close() : shortcuts.showModal());
$("#shortcuts-open")?.addEventListener("click", toggleShortcuts);
document.addEventListener("keydown", (e) => {
  const typing = /** @type {Element} */ (e.target).closest("input, textarea, select, [contenteditable]");
  if (e.key === "?" && !typing && !e.ctrlKey && !e.metaKey && !e.altKey) {
    e.preventDefault();
    toggleShortcuts();
  }
});

paintToggles();
refreshStatus();
setInterval(refreshStatus, 30000);
if (location.pathname === "/") history.replaceState(null, "", `/traces${location.search}`);
render();
