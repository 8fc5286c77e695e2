// Times, durations and numbers as the dashboard shows them (local time or UTC), time ranges, and attribute filters as typed.
// @ts-check
import { $, h, s } from "./dom.js";

// ---------- formatting ----------
export const prefs = {
  get utc() { return localStorage.getItem("skein.tz") === "utc"; },
  set utc(on) { localStorage.setItem("skein.tz", on ? "utc" : "local"); },
};
export const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Unix nanoseconds as a date and time with milliseconds, local or UTC. */
export function fmtTime(nanos, withDate = true) {
  const d = new Date(Number(nanos) / 1e6);
  const u = prefs.utc;
  const date = `${d[u ? "getUTCFullYear" : "getFullYear"]()}-${pad(d[u ? "getUTCMonth" : "getMonth"]() + 1)}-${pad(d[u ? "getUTCDate" : "getDate"]())}`;
  const time = `${pad(d[u ? "getUTCHours" : "getHours"]())}:${pad(d[u ? "getUTCMinutes" : "getMinutes"]())}:${pad(d[u ? "getUTCSeconds" : "getSeconds"]())}.${pad(d[u ? "getUTCMilliseconds" : "getMilliseconds"](), 3)}`;
  return (withDate ? `${date} ${time}` : time) + (u ? " UTC" : "");
}

/** Nanoseconds as the shortest readable duration. */
export function fmtDur(nanos) {
  const n = Number(nanos);
  if (n < 1e3) return `${Math.round(n)} ns`;
  if (n < 1e6) return `${+(n / 1e3).toFixed(n < 1e4 ? 2 : 1)} µs`;
  if (n < 1e9) return `${+(n / 1e6).toFixed(n < 1e7 ? 2 : 1)} ms`;
  if (n < 60e9) return `${+(n / 1e9).toFixed(2)} s`;
  return `${Math.floor(n / 60e9)} m ${Math.round((n % 60e9) / 1e9)} s`;
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const fmtPct = (x) => `${(x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1)}%`;
export const fmtRate = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(2));

// ---------- time ranges ----------
/** @type {Array<[string, number]>} */
export const RANGES = [["5m", 5 * 60], ["15m", 15 * 60], ["1h", 3600], ["6h", 6 * 3600], ["24h", 86400], ["7d", 7 * 86400]];

/** The [start, end] of a view in unix nanoseconds: `range=1h`, or `start`/`end` times. */
export function timeRange(params) {
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
  return { startMs: nowMs - Number(found[1]) * 1000, endMs: nowMs, label: String(found[0]) };
}

export const isoMs = (ms) => new Date(ms).toISOString();

/** A time for a `datetime-local` input, in the zone the dashboard shows. */
export function toTimeInput(ms) {
  const shifted = prefs.utc ? ms : ms - new Date(ms).getTimezoneOffset() * 60e3;
  return new Date(shifted).toISOString().slice(0, 19);
}

/** What a `datetime-local` input says, read in the zone the dashboard shows (NaN if empty). */
export const fromTimeInput = (value) => (value ? Date.parse(prefs.utc ? `${value}Z` : value) : NaN);

export function rangeSelect(params) {
  const current = params.get("start") || params.get("end") ? "custom" : params.get("range") || "1h";
  return h("select", { name: "range", "aria-label": "Time range" },
    RANGES.map(([k]) => h("option", { value: k, selected: k === current }, `Last ${k}`)),
    h("option", { value: "custom", selected: current === "custom" }, "Custom…"));
}

/** `key=value`, `key="a value"` and bare `key` (has the attribute, any value), by spaces. */
export function parseAttrFilters(text) {
  const filters = [];
  const re = /([^\s=]+)(?:=("([^"]*)"|\S*))?/g;
  let m;
  while ((m = re.exec(text))) filters.push(m[2] === undefined ? m[1] : `${m[1]}=${m[3] !== undefined ? m[3] : m[2]}`);
  return filters;
}
export const formatAttrFilters = (filters) =>
  filters.map((p) => {
    if (!p.includes("=")) return p;
    const [k, ...rest] = p.split("=");
    const v = rest.join("=");
    return /\s/.test(v) ? `${k}="${v}"` : `${k}=${v}`;
  }).join(" ");
