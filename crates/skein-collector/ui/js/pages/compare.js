// Two traces side by side: their call paths matched by service and operation, with the
// differences in count and time marked.
// @ts-check
import { api } from "../api.js";
import { h, errorBox, serviceColor } from "../dom.js";
import { fmtDur } from "../format.js";
import { currentGeneration, isCurrent } from "../router.js";
import { aggregateStacks, buildTrace } from "../trace-model.js";

/** Time differences below this share are not marked (noise between two runs). */
const NOTABLE = 0.2;

/** Every node of a merged-path tree, depth first, by path. */
function flatten(/** @type {any[]} */ roots) {
  /** @type {Map<string, any>} */
  const out = new Map();
  const work = roots.slice().reverse();
  while (work.length) {
    const node = work.pop();
    out.set(node.key, node);
    for (let i = node.children.length - 1; i >= 0; i--) work.push(node.children[i]);
  }
  return out;
}

export async function comparePage(/** @type {HTMLElement} */ view, /** @type {URLSearchParams} */ params) {
  document.title = "Compare traces · Skein";
  const [a, b] = [params.get("a") || "", params.get("b") || ""];
  const generation = currentGeneration();
  const loaded = await Promise.allSettled([api(`/traces/${encodeURIComponent(a)}`), api(`/traces/${encodeURIComponent(b)}`)]);
  if (!isCurrent(generation)) return;
  const failed = loaded.find((r) => r.status === "rejected");
  if (failed && failed.status === "rejected") {
    view.append(errorBox("Could not load both traces", failed.reason));
    return;
  }
  const [dataA, dataB] = loaded.map((r) => (r.status === "fulfilled" ? r.value : null));
  const [left, right] = [flatten(aggregateStacks(buildTrace(dataA))), flatten(aggregateStacks(buildTrace(dataB)))];
  const keys = [...left.keys(), ...[...right.keys()].filter((k) => !left.has(k))];
  const rows = keys.map((key) => {
    const [x, y] = [left.get(key), right.get(key)];
    const node = x || y;
    const ta = x ? x.total : 0;
    const tb = y ? y.total : 0;
    const counts = (x ? x.count : 0) !== (y ? y.count : 0);
    const time = Math.abs(tb - ta) > NOTABLE * Math.max(ta, tb);
    const cls = !x ? "only-b" : !y ? "only-a" : counts || time ? "differs" : "";
    return h("tr", { class: cls, dataset: { key } },
      h("td", { style: { paddingLeft: `${8 + node.depth * 14}px` } }, h("span", { class: "dot", style: { background: serviceColor(node.service) } }), ` ${node.service}: ${node.name}`),
      h("td", { class: `num${counts ? " changed" : ""}` }, x ? x.count : "—"),
      h("td", { class: `num${counts ? " changed" : ""}` }, y ? y.count : "—"),
      h("td", { class: "num" }, x ? fmtDur(ta) : "—"),
      h("td", { class: "num" }, y ? fmtDur(tb) : "—"),
      h("td", { class: `num${time ? " changed" : ""}` }, x && y ? `${tb >= ta ? "+" : "−"}${fmtDur(Math.abs(tb - ta))}` : x ? "only in A" : "only in B"));
  });
  const title = (/** @type {any} */ d, /** @type {string} */ id) => {
    const t = buildTrace(d).mainRoot;
    return h("a", { href: `/traces/${id}`, class: "mono" }, `${t.service}: ${t.name} · ${id.slice(0, 12)}…`);
  };
  view.append(h("div", { class: "panel" },
    h("div", { class: "panel-head" }, "Compare ", h("b", {}, "A "), title(dataA, a), h("b", {}, " with B "), title(dataB, b)),
    h("div", { class: "panel-body" }, h("table", { class: "list", id: "compare-table" },
      h("thead", {}, h("tr", {}, ["Call path", "Count A", "Count B", "Time A", "Time B", "B − A"].map((c, i) => h("th", { class: i ? "num" : "" }, c)))),
      h("tbody", {}, rows)))));
}
