// LeukoLens review workstation: analyse the cells of a sample, review each suggestion by
// keyboard or mouse, keep the session in the browser, export a lab record and a report.
// Plain JavaScript modules with no dependency and no build step, so the page works inside a
// hospital network offline. This module draws the page from the state and wires the rest.
import { wireDetailPane, renderDetail } from "./detail-pane.js";
import { el } from "./dom.js";
import { renderGallery, wireGallery } from "./gallery.js";
import { renderReport, wireReport } from "./report.js";
import { renderTable, wireResultsTable } from "./results-table.js";
import { wireReviewKeys } from "./review-keys.js";
import { renderCounts, renderSampleSelect, renderShare } from "./sample-summary.js";
import { clearSession, openSample, restoreSession, saveSession } from "./session-store.js";
import { renderSignOff, wireSignOff } from "./sign-off.js";
import { state, subscribe } from "./state.js";
import { describeChoice, setRunning, wireUploads } from "./upload-queue.js";

// The fields the whole workstation is drawn from.
const PAGE_FIELDS = ["rows", "currentSample", "selectedKey", "shares", "records"];

function render() {
  el.workstation.hidden = state.rows.length === 0 && !state.currentSample;
  renderSampleSelect();
  if (el.workstation.hidden) {
    el.report.replaceChildren();
    return;
  }
  el.sampleTitle.textContent = state.currentSample;
  renderSignOff();
  renderCounts();
  renderShare();
  // Focus stays in the gallery, on the current cell (never on the one just left).
  const hadFocus = el.gallery.contains(document.activeElement);
  renderGallery();
  if (hadFocus && state.selectedKey) {
    el.gallery.querySelector(`[data-key="${CSS.escape(state.selectedKey)}"]`)?.focus();
  }
  renderDetail();
  renderTable();
  renderReport();
}

subscribe((changed) => {
  if (changed.has("run")) {
    setRunning(state.run !== null); // describes the choice too
    renderSignOff();
  } else if (changed.has("chosen")) {
    describeChoice();
  }
  if (PAGE_FIELDS.some((field) => changed.has(field))) {
    render();
    return;
  }
  if (changed.has("serverSamples")) renderSampleSelect();
  if (changed.has("sort")) renderTable();
});

wireReviewKeys();
wireGallery();
wireUploads();
wireResultsTable();
wireReport();
wireDetailPane();
wireSignOff();
// The chosen model's one sentence of error rates, under the model selector.
el.modelSelect.addEventListener("change", () => {
  el.byId("model-error-rates").textContent = el.modelSelect.selectedOptions[0]?.dataset.errorRates || "";
});
el.byId("clear-button").addEventListener("click", clearSession);
el.sampleSelect.addEventListener("change", () => { if (!state.run) openSample(el.sampleSelect.value); });
el.byId("open-sample-button").addEventListener("click", () => {
  if (el.openSelect.value && !state.run) openSample(el.openSelect.value);
});
el.reviewerInput.addEventListener("change", saveSession);
window.addEventListener("beforeunload", (event) => {
  if (state.run || (state.rows.length && !state.exported)) {
    event.preventDefault();
    event.returnValue = "";
  }
});
render();
restoreSession();
