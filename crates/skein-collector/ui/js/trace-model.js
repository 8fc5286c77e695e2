// A trace's spans as a tree: parents, children, depths, self time and the critical path.
// @ts-check
import { s } from "./dom.js";

// ---------- trace model ----------
/** Parent/child structure, critical path and self times of one trace. */
export function buildTrace(data) {
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

export function spanMatches(sp, needle) {
  if (!needle) return false;
  const n = needle.toLowerCase();
  const has = (v) => String(v).toLowerCase().includes(n);
  if (has(sp.name) || has(sp.service) || sp.span_id === n || has(sp.status.message)) return true;
  for (const [k, v] of Object.entries(sp.attributes)) if (has(k) || has(typeof v === "string" ? v : JSON.stringify(v))) return true;
  return sp.events.some((e) => has(e.name));
}

/**
 * @typedef {object} StackNode
 * @property {string} key      the node's path: `service: operation` of each span from a root, joined by ` › `
 * @property {string} service
 * @property {string} name
 * @property {number} depth
 * @property {number} count    spans on this path
 * @property {number} total    their summed duration (ns)
 * @property {number} self     their summed self time (ns)
 * @property {StackNode[]} children
 */

/**
 * The trace's spans merged by call path (service and operation from a root down), as a
 * profiler's flame graph merges stacks: a hundred `SELECT`s under one request are one node
 * a hundred times as wide. Returns the roots, widest first at every level; iterative, so a
 * deep trace does not overflow the stack.
 * @returns {StackNode[]}
 */
export function aggregateStacks(trace) {
  /** @type {Map<string, StackNode>} */
  const nodes = new Map();
  /** @type {StackNode[]} */
  const roots = [];
  const work = trace.roots.map((/** @type {any} */ sp) => [sp, null]);
  while (work.length) {
    const [sp, parent] = work.pop();
    const key = `${parent ? `${parent.key} › ` : ""}${sp.service}: ${sp.name}`;
    let node = nodes.get(key);
    if (!node) {
      node = { key, service: sp.service, name: sp.name, depth: parent ? parent.depth + 1 : 0, count: 0, total: 0, self: 0, children: [] };
      nodes.set(key, node);
      (parent ? parent.children : roots).push(node);
    }
    node.count += 1;
    node.total += sp.duration_nano;
    node.self += trace.selfTime.get(sp.span_id) || 0;
    for (const child of trace.kids(sp)) work.push([child, node]);
  }
  const widestFirst = (/** @type {StackNode[]} */ list) => list.sort((a, b) => b.total - a.total);
  widestFirst(roots);
  for (const node of nodes.values()) widestFirst(node.children);
  return roots;
}
