// Client-side routing: every view's state lives in the URL. Each render gets a fresh
// container and a generation number, so a page whose `await` returns after the user moved on
// draws into a container no longer shown, never into the next page; its requests are aborted.
// @ts-check
import { $, h, errorBox } from "./dom.js";

/** @typedef {(view: HTMLElement, path: string, params: URLSearchParams) => Promise<void> | void} Page */

/** @type {Array<() => void>} */
let cleanups = [];
/** Runs `f` when the current view is left (timers, listeners, event sources). */
export const onCleanup = (/** @type {() => void} */ f) => cleanups.push(f);

let generation = 0;
let controller = new AbortController();

/** The current render's generation: compare with {@link isCurrent} after an `await`. */
export const currentGeneration = () => generation;
/** True while the render of generation `g` is the one shown. */
export const isCurrent = (/** @type {number} */ g) => g === generation;
/** Aborted when the current view is left (pass to `fetch`). */
export const renderSignal = () => controller.signal;

/** @type {(path: string) => Page | null} */
let pageFor = () => null;

/** Sets how a path finds its page (the entry module's route table). */
export function setRoutes(/** @type {(path: string) => Page | null} */ routes) {
  pageFor = routes;
}

export function navigate(/** @type {string} */ url, replace = false) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  render();
}

/** Changes query parameters of the current view without re-rendering it. */
export function setParams(/** @type {Record<string, any>} */ changes) {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "" || v === false) params.delete(k);
    else params.set(k, v);
  }
  const query = String(params);
  history.replaceState(null, "", location.pathname + (query ? `?${query}` : ""));
}

document.addEventListener("click", (e) => {
  const a = /** @type {HTMLAnchorElement | null} */ (/** @type {Element} */ (e.target).closest("a[href]"));
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || a.target) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

/** Shows the page of the current URL in a fresh container. */
export function render() {
  for (const f of cleanups) f();
  cleanups = [];
  controller.abort();
  controller = new AbortController();
  generation += 1;
  const mine = generation;
  const view = h("div", { class: "page" });
  /** @type {HTMLElement} */ ($("#view")).replaceChildren(view);
  const path = location.pathname.replace(/\/+$/, "") || "/traces";
  const params = new URLSearchParams(location.search);
  const section = path.split("/")[1];
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", /** @type {HTMLElement} */ (a).dataset.nav === section);
  const shown = (/** @type {unknown} */ e) => {
    // An aborted request of a page left behind is not an error to show.
    if (isCurrent(mine)) view.append(errorBox("Something went wrong", e));
  };
  try {
    const page = pageFor(path);
    if (!page) {
      document.title = "Skein";
      view.append(h("div", { class: "empty" }, h("h3", {}, "No such page"), h("a", { href: "/traces" }, "Go to traces")));
      return;
    }
    Promise.resolve(page(view, path, params)).catch(shown);
  } catch (e) {
    shown(e);
  }
}
