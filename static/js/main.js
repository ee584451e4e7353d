// LeukoLens review workstation: analyse the cells of a sample, review each suggestion by
// keyboard or mouse, keep each tab's session in the browser, export a lab record and a report.
// Plain JavaScript modules with no dependency and no build step, so the page works inside a
// hospital network offline. This module draws the page from the state and wires the rest.
import { resumePending, retryAfterSignIn } from "./decisions.js";
import { renderDetail, wireDetailPane } from "./detail-pane.js";
import { el, setStatus } from "./dom.js";
import { renderGallery, wireGallery } from "./gallery.js";
import { askToSignIn, identify, onSignedIn, renderIdentity, wireIdentity } from "./identity.js";
import { renderReport, wireReport } from "./report.js";
import { renderTable, wireResultsTable } from "./results-table.js";
import { wireReviewKeys } from "./review-keys.js";
import { newSampleId } from "./sample-ids.js";
import { fetchSampleList, openSample, syncSample } from "./sample-sync.js";
import { renderCounts, renderSampleSelect, renderShare } from "./sample-summary.js";
import { clearSession, restoreTab, saveSession } from "./session-store.js";
import { renderSignOff, wireSignOff } from "./sign-off.js";
import { somethingUnstored, state, subscribe } from "./state.js";
import { describeChoice, setRunning, wireUploads } from "./upload-queue.js";

// The fields the whole workstation is drawn from.
const PAGE_FIELDS = ["rows", "currentSample", "selectedKey", "shares", "records", "pending"];
// Why the server did not say who this tab is, where signing in is the answer.
const SIGN_IN_PROBLEMS = new Set(["key", "badKey", "signOn"]);

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
  // Focus stays in the gallery, on the current cell (never on the one just left), without
  // scrolling the page to it.
  const hadFocus = el.gallery.contains(document.activeElement);
  renderGallery();
  if (hadFocus && state.selectedKey) {
    el.gallery.querySelector(`[data-key="${CSS.escape(state.selectedKey)}"]`)?.focus({ preventScroll: true });
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
  if (changed.has("identity")) {
    renderIdentity();
    renderSampleSelect();
    renderSignOff();
  }
  if (PAGE_FIELDS.some((field) => changed.has(field))) {
    render();
    return;
  }
  if (changed.has("serverSamples")) renderSampleSelect();
  if (changed.has("sort")) renderTable();
});

wireIdentity();
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
el.byId("clear-button").addEventListener("click", () => clearSession(newSampleId));
// A sample opened again may hold decisions this tab has not got stored yet: they go again.
const reopen = (sampleId) => openSample(sampleId).then(resumePending);
el.sampleSelect.addEventListener("change", () => { if (!state.run) reopen(el.sampleSelect.value); });
el.byId("open-sample-button").addEventListener("click", () => {
  if (el.openSelect.value && !state.run) reopen(el.openSelect.value);
});
el.reviewerInput.addEventListener("change", saveSession);
// Leaving asks first only while something is not on the server: an analysis running, or a
// decision not stored.
window.addEventListener("beforeunload", (event) => {
  if (somethingUnstored()) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// Signed in: the list and the sample are read again, and the decisions refused for want of a
// sign-in go again.
onSignedIn(async () => {
  setStatus(state.identity.reviewer ? `Signed in as ${state.identity.reviewer}.` : "Signed in.");
  await (state.currentSample ? syncSample(state.currentSample) : fetchSampleList());
  retryAfterSignIn();
});

async function start() {
  render();
  renderIdentity();
  await identify();
  await restoreTab();
  if (SIGN_IN_PROBLEMS.has(state.identity.problem)) askToSignIn();
  // This browser's copy is a cache: the sample on screen is read again from the server, and
  // the server's list of samples with it.
  try {
    await (state.currentSample ? syncSample(state.currentSample) : fetchSampleList());
  } catch {
    // The list is a convenience; the cached samples stay reachable.
  }
  resumePending();
  document.body.dataset.restored = "true";
}

start();
