// Attribute filters offered as they are typed: the keys seen in the range, then a key's
// values with how many spans (or log records) carry each.
// @ts-check
import { api } from "./api.js";
import { h } from "./dom.js";

/** A count, short: 950, 1.2k, 34k, 1.5M. */
const fmtCount = (/** @type {number} */ n) => (n < 1e3 ? String(n) : n < 1e4 ? `${(n / 1e3).toFixed(1)}k` : n < 1e6 ? `${Math.round(n / 1e3)}k` : `${(n / 1e6).toFixed(1)}M`);

/**
 * Offers, under an attribute filter input, the keys seen in the range (for the word being
 * typed) and then, after `key=` or `key!=`, that key's values, each with how many spans carry
 * it. Choosing one completes the word; the filters before it are kept.
 */
export function attributeSuggestions(/** @type {HTMLInputElement} */ input, /** @type {HTMLElement} */ box, /** @type {() => URLSearchParams} */ scope) {
  /** @type {Promise<any> | null} */
  let keys = null;
  let keysScope = "";
  let asked = 0;
  const lastWord = () => {
    const m = /(^|\s)([^\s]*)$/.exec(input.value.slice(0, input.selectionStart ?? input.value.length));
    return m ? m[2] : "";
  };
  const replaceLastWord = (/** @type {string} */ word) => {
    const before = input.value.slice(0, input.selectionStart ?? input.value.length);
    const start = before.length - lastWord().length;
    input.value = input.value.slice(0, start) + word + input.value.slice(before.length);
    input.focus();
    const at = start + word.length;
    input.setSelectionRange(at, at);
  };
  const show = (/** @type {Array<[string, string, string]>} */ entries) => {
    box.replaceChildren(...entries.map(([label, count, word]) => h("button", {
      type: "button", class: "suggestion", role: "option", dataset: { word },
      // mousedown, not click: the input keeps its focus.
      onmousedown: (/** @type {Event} */ e) => {
        e.preventDefault();
        replaceLastWord(word);
        update();
      },
    }, h("span", { class: "mono" }, label), h("span", { class: "muted" }, ` ${count}`))));
    box.style.display = entries.length ? "" : "none";
  };
  async function update() {
    const word = lastWord();
    const mine = ++asked;
    const op = /^([^=!<>]+)(!=|=)(.*)$/.exec(word);
    try {
      if (op) {
        const [, key, sign, typed] = op;
        const query = scope();
        query.set("key", key);
        query.set("q", typed.replace(/^"/, ""));
        const { values, unlisted_spans: unlisted } = await api("/attributes/values", query);
        if (mine !== asked) return;
        const entries = values.map((/** @type {{value: string, count: number}} */ v) => [v.value, `(${fmtCount(v.count)})`, `${key}${sign}${/\s/.test(v.value) ? `"${v.value}"` : v.value} `]);
        if (!entries.length && unlisted) entries.push([`${key} has too many values to list`, "", word]);
        show(entries);
      } else if (word && !/[<>]/.test(word)) {
        const where = String(scope());
        if (!keys || keysScope !== where) {
          keys = api("/attributes", scope());
          keysScope = where;
        }
        const { keys: all } = await keys;
        if (mine !== asked) return;
        const typed = word.toLowerCase();
        show(all
          .filter((/** @type {{key: string}} */ k) => k.key.toLowerCase().includes(typed))
          .slice(0, 12)
          .map((/** @type {{key: string, count: number, values: number, many: boolean}} */ k) => [k.key, `(${fmtCount(k.count)}${k.many ? ", many values" : ""})`, `${k.key}=`]));
      } else {
        show([]);
      }
    } catch {
      show([]); // suggestions are a help; the search itself reports errors
    }
  }
  input.addEventListener("input", update);
  input.addEventListener("focus", update);
  input.addEventListener("blur", () => setTimeout(() => (box.style.display = "none"), 150));
}

