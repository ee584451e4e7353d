// The gallery: the sample's cells as thumbnails grouped by suggestion; the current cell is
// the one the review keys act on. A stored decision is ticked; one not yet stored is marked
// pending (or not stored, when refused) and drawn apart.
import { el, setStatus } from "./dom.js";
import { galleryOrder, selectCell, state } from "./state.js";
import {
  DECISION_SHORT, DECISION_WORDS, STATES, STATE_WORDS, cellName, cellNumber, plural, rowState,
} from "./words.js";

let pointerAt = 0; // when the gallery was last touched or clicked (a tap reveals the detail)

export const narrowScreen = () => window.matchMedia("(max-width: 900px)").matches;

// What the cell's decision is, in words: stored, pending, or refused.
export function decisionWords(row) {
  const pending = state.pending[row.key];
  const stored = row.decision ? DECISION_WORDS[row.decision.decision] : "not yet decided";
  if (!pending) return stored;
  const status = pending.status === "refused" ? "not stored" : "pending, not yet stored";
  return `${DECISION_WORDS[pending.decision]} ${status}` + (row.decision ? ` (stored: ${stored})` : "");
}

function thumbLabel(row) {
  return `cell ${cellName(row)}: ${STATE_WORDS[rowState(row)]}${row.status === "ok" ? `, ${decisionWords(row)}` : ""}`;
}

function markOf(row) {
  const pending = state.pending[row.key];
  if (pending) {
    return { text: `${DECISION_SHORT[pending.decision]} ${pending.status === "refused" ? "✗" : "…"}`,
      kind: pending.status === "refused" ? "refused" : "pending" };
  }
  if (row.decision) return { text: `${DECISION_SHORT[row.decision.decision]} ✓`, kind: "stored" };
  return { text: "undecided", kind: "none" };
}

export function renderGallery() {
  const order = galleryOrder();
  el.gallery.replaceChildren();
  for (const [kind, , heading] of STATES) {
    const rows = order.filter((row) => rowState(row) === kind);
    if (!rows.length) continue;
    const group = document.createElement("section");
    group.className = `group group-${kind}`;
    const title = document.createElement("h3");
    title.textContent = `${heading} (${rows.length})`;
    const list = document.createElement("ul");
    list.className = "thumbs";
    for (const row of rows) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = `thumb state-${kind}`;
      button.dataset.key = row.key;
      button.dataset.filename = row.filename;
      if (row.sha256) button.dataset.sha256 = row.sha256;
      if (row.key === state.selectedKey) button.setAttribute("aria-current", "true");
      if (row.thumb) {
        const image = document.createElement("img");
        image.src = row.thumb;
        image.alt = "";
        button.appendChild(image);
      } else {
        const placeholder = document.createElement("span");
        placeholder.className = "thumb-placeholder";
        placeholder.textContent = row.status === "ok" ? "no view" : "error";
        button.appendChild(placeholder);
      }
      // The cell's number stays on its thumbnail whatever its decision: the table, the report
      // and every message name it by this number.
      const number = document.createElement("span");
      number.className = "thumb-number";
      number.textContent = `#${cellNumber(row)}`;
      number.setAttribute("aria-hidden", "true");
      const mark = document.createElement("span");
      const { text, kind: decided } = markOf(row);
      mark.className = `thumb-mark mark-${decided}`;
      mark.textContent = text;
      button.dataset.decision = decided;
      const name = document.createElement("span");
      name.className = "thumb-name";
      name.textContent = row.filename;
      name.setAttribute("aria-hidden", "true");
      const description = document.createElement("span");
      description.className = "visually-hidden";
      description.textContent = ` ${thumbLabel(row)}`;
      button.append(number, mark, name, description);
      button.title = row.filename;
      // The cell the keys act on is the one the reviewer sees as current: focusing a
      // thumbnail (Tab, a click) makes it the selected one.
      button.addEventListener("focus", () => {
        if (row.key !== state.selectedKey) select(row.key, { reveal: Date.now() - pointerAt < 800 });
      });
      button.addEventListener("click", () => select(row.key, { focus: true, reveal: true }));
      item.appendChild(button);
      list.appendChild(item);
    }
    group.append(title, list);
    el.gallery.appendChild(group);
  }
}

// Makes a cell the current one: the state redraws the page, then the detail opens at its top,
// comes into view on a phone, and the cell is announced.
// reveal: on a phone (one column) the detail comes into view, and focusing the thumbnail does
// not scroll the gallery back.
export function select(key, { focus = false, reveal = false } = {}) {
  const changed = key !== state.selectedKey;
  selectCell(key);
  if (changed) {
    el.detail.scrollTop = 0;
    el.detailSection.scrollTop = 0;
  }
  const revealing = reveal && narrowScreen();
  if (revealing) el.detailSection.scrollIntoView({ block: "start" });
  const row = state.rows.find((r) => r.key === key);
  if (!row) return;
  const order = galleryOrder().filter((r) => r.status === "ok");
  if (row.status === "ok") {
    setStatus(`Cell ${cellName(row, `${order.indexOf(row) + 1} of ${order.length} in review order`)}: ` +
      `${STATE_WORDS[rowState(row)]}, ${plural(row.prediction.warnings.length, "quality warning")}; ${decisionWords(row)}.`);
  }
  if (focus) el.gallery.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus({ preventScroll: revealing });
}

export function wireGallery() {
  el.gallery.addEventListener("pointerdown", () => { pointerAt = Date.now(); });
}
