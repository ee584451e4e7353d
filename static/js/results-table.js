// The results table: one row per file of the sample, sortable by any column.
import { el } from "./dom.js";
import { decisionWords, select } from "./gallery.js";
import { sampleRows, sortBy, state } from "./state.js";
import { STATES, STATE_WORDS, cellNumber, percent, rowState } from "./words.js";

function sortValue(row, key) {
  if (key === "probability") return row.status === "ok" ? row.prediction.probability_all : -1;
  if (key === "state") return STATES.findIndex(([kind]) => kind === rowState(row));
  if (key === "warnings") return row.status === "ok" ? row.prediction.warnings.length : -1;
  if (key === "decision") return row.decision ? row.decision.decision : "~";
  if (key === "filename") return row.filename.toLowerCase();
  return row.index;
}

export function renderTable() {
  const rows = sampleRows().sort((a, b) => {
    const left = sortValue(a, state.sort.key);
    const right = sortValue(b, state.sort.key);
    const order = left < right ? -1 : left > right ? 1 : 0;
    return state.sort.ascending ? order : -order;
  });
  el.tableBody.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.key = row.key;
    if (row.status !== "ok") tr.classList.add("is-error");
    if (row.key === state.selectedKey) tr.classList.add("is-selected");
    const p = row.prediction;
    const cells = [
      String(cellNumber(row)),
      null,
      STATE_WORDS[rowState(row)],
      p ? (p.assessable ? percent(p.probability_all) : "hidden") : row.error.detail,
      p ? String(p.warnings.length) : "",
      row.decision || state.pending[row.key] ? decisionWords(row) : "",
    ];
    for (const text of cells) {
      const td = document.createElement("td");
      if (text === null) {
        const show = document.createElement("button");
        show.type = "button";
        show.className = "link-button";
        show.textContent = row.filename;
        show.addEventListener("click", () => {
          select(row.key);
          el.detailSection.scrollIntoView({ block: "nearest" });
        });
        td.appendChild(show);
      } else {
        td.textContent = text;
      }
      tr.appendChild(td);
    }
    return tr;
  }));
  for (const th of document.querySelectorAll("#results-table th[aria-sort]")) {
    const key = th.querySelector("button").dataset.sort;
    th.setAttribute("aria-sort", key === state.sort.key ? (state.sort.ascending ? "ascending" : "descending") : "none");
  }
}

export function wireResultsTable() {
  for (const header of document.querySelectorAll("#results-table th button")) {
    header.addEventListener("click", () => sortBy(header.dataset.sort));
  }
}
