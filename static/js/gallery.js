// The gallery: the sample's cells as thumbnails grouped by suggestion; the current cell is
// the one the review keys act on.
import { el, setStatus } from "./dom.js";
import { galleryOrder, selectCell, state } from "./state.js";
import { DECISION_WORDS, STATES, STATE_WORDS, plural, rowState } from "./words.js";

let pointerAt = 0; // when the gallery was last touched or clicked (a tap reveals the detail)

function thumbLabel(row) {
  const decision = row.decision ? `, ${DECISION_WORDS[row.decision.decision]}` : ", not yet decided";
  return `${row.filename}: ${STATE_WORDS[rowState(row)]}${row.status === "ok" ? decision : ""}`;
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
      const mark = document.createElement("span");
      mark.className = "thumb-mark";
      mark.textContent = row.decision
        ? { ALL: "ALL ✓", HEM: "normal ✓", not_assessable: "n/a ✓" }[row.decision.decision]
        : `#${row.index + 1}`;
      if (row.decision && !row.decision.stored) mark.textContent += " …";
      const name = document.createElement("span");
      name.className = "thumb-name";
      name.textContent = row.filename;
      name.setAttribute("aria-hidden", "true");
      const description = document.createElement("span");
      description.className = "visually-hidden";
      description.textContent = ` ${thumbLabel(row)}`;
      button.append(mark, name, description);
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
export function select(key, { focus = false, reveal = false } = {}) {
  const changed = key !== state.selectedKey;
  selectCell(key);
  if (changed) {
    el.detail.scrollTop = 0;
    el.detailSection.scrollTop = 0;
  }
  if (reveal && window.matchMedia("(max-width: 760px)").matches) {
    el.detailSection.scrollIntoView({ block: "start" });
  }
  const row = state.rows.find((r) => r.key === key);
  if (!row) return;
  const order = galleryOrder().filter((r) => r.status === "ok");
  const decision = row.decision ? DECISION_WORDS[row.decision.decision] : "not yet decided";
  if (row.status === "ok") {
    setStatus(`Cell ${order.indexOf(row) + 1} of ${order.length}, ${row.filename}: ` +
      `${STATE_WORDS[rowState(row)]}, ${plural(row.prediction.warnings.length, "quality warning")}; ${decision}.`);
  }
  if (focus) el.gallery.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

export function wireGallery() {
  el.gallery.addEventListener("pointerdown", () => { pointerAt = Date.now(); });
}
