// Building DOM and SVG, and the small widgets every page uses (service colours and chips, copy buttons, error boxes).
// @ts-check

// ---------- DOM helpers ----------
export const $ = (selector, root = document) => root.querySelector(selector);

/** Builds an element: props are attributes (plus class, text, on*, style, dataset). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  appendAll(el, children);
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyProps(el, props);
  appendAll(el, children);
  return el;
}

export function applyProps(el, props) {
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

export function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** A stable colour per service name. */
/** Distinguishable colours, none of them red (red means error here). */
export const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#7b68ee", "#8a9a2b", "#17a2c8", "#c5b0d5"];
export const serviceColors = new Map();
/**
 * A service's colour: the palette's, in the order services are first seen this session (the
 * same service keeps its colour on every page, and the first twelve never share one); then
 * hues spread by the golden angle, away from red.
 */
export function serviceColor(name) {
  let colour = serviceColors.get(name);
  if (colour === undefined) {
    const n = serviceColors.size;
    colour = n < PALETTE.length ? PALETTE[n] : `hsl(${30 + ((n - PALETTE.length) * 137.508) % 300}, 45%, 40%)`;
    serviceColors.set(name, colour);
  }
  return colour;
}

/** Levels indented in full; deeper ones are compressed and marked with their depth. */
export const FULL_INDENT_DEPTH = 8;
/** A waterfall row's indentation: 14 px a level, then 2 px a level, at most 160 px, so that
 * the names keep their room at any depth. */
export const indent = (depth) => Math.min(depth <= FULL_INDENT_DEPTH ? depth * 14 : FULL_INDENT_DEPTH * 14 + (depth - FULL_INDENT_DEPTH) * 2, 160);

export const serviceChip = (name) => h("span", { class: "chip" }, h("span", { class: "dot", style: { background: serviceColor(name) } }), name);

export function copyButton(text, what) {
  return h("button", {
    class: "copy", title: `Copy ${what}`, "aria-label": `Copy ${what}`, type: "button",
    onclick: (e) => {
      e.preventDefault();
      e.stopPropagation();
      copyText(text).then(() => flash(e.currentTarget, "copied"));
    },
  }, copyIcon());
}

export const copyIcon = () => s("svg", { width: 12, height: 12, viewBox: "0 0 16 16", "aria-hidden": "true" },
  s("rect", { x: 5, y: 5, width: 9, height: 9, rx: 1.5, fill: "none", stroke: "currentColor", "stroke-width": 1.6 }),
  s("path", { d: "M3 11V3a1 1 0 0 1 1-1h7", fill: "none", stroke: "currentColor", "stroke-width": 1.6 }));

export async function copyText(text) {
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

export function flash(el, text) {
  const old = [...el.childNodes];
  el.replaceChildren(text);
  setTimeout(() => el.replaceChildren(...old), 900);
}


export function errorBox(what, error) {
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, `${what}: `), error.message || String(error));
}
