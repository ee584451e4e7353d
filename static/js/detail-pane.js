// The detail pane: the current cell's suggestion, probability, warnings, decision buttons and
// views (with the Grad-CAM heatmap where the model explains), and the native-resolution image.
// The decision line says what the server stored; a decision not yet stored is said apart, with
// why and what to do (retry, sign in).
import { commentChanged, retry } from "./decisions.js";
import { el, optionFor } from "./dom.js";
import { askToSignIn } from "./identity.js";
import { decideCurrent } from "./review-keys.js";
import { live, state } from "./state.js";
import {
  DECISION_WORDS, STATE_WORDS, cellName, cellNumber, humanTime, percent, plural, rowState, warningWords,
} from "./words.js";

// The comment being typed survives a redraw (a sync, a stored decision): kept with its caret.
function typedComment(key) {
  const input = el.detail.querySelector(".comment");
  if (!input || input !== document.activeElement || input.closest("[data-key]")?.dataset.key !== key) return null;
  return { value: input.value, start: input.selectionStart, end: input.selectionEnd };
}

function renderDecision(card, row) {
  const stored = row.decision;
  const pending = state.pending[row.key];
  const line = card.querySelector(".decision-state");
  line.textContent = stored
    ? `Decision: ${DECISION_WORDS[stored.decision]} by ${stored.reviewer}, ${humanTime(stored.time)} ` +
      `(stored${stored.amendment ? `; amendment after sign-off: ${stored.amendment}` : ""}).`
    : "No decision stored yet.";
  const note = card.querySelector(".decision-pending");
  if (pending) {
    note.hidden = false;
    note.dataset.status = pending.status;
    const who = pending.reviewer ? ` by ${pending.reviewer}` : "";
    const why = pending.amendment ? `, amending the signed-off sample (${pending.amendment})` : "";
    const what = `${DECISION_WORDS[pending.decision]}${who}${why}`;
    note.querySelector(".pending-text").textContent = pending.status === "refused"
      ? `Not stored: ${what}. ${pending.reason} It is not counted until it is stored.`
      : `Pending: ${what}, not yet stored${pending.reason ? ` (${pending.reason})` : ""}. ` +
        "It is not counted until the server has it.";
    const retryButton = note.querySelector(".pending-retry");
    retryButton.hidden = pending.status !== "refused";
    retryButton.addEventListener("click", () => retry(row.key));
    const signIn = note.querySelector(".pending-sign-in");
    signIn.hidden = !(pending.status === "refused" && pending.signIn);
    signIn.addEventListener("click", askToSignIn);
  }
  const comment = card.querySelector(".comment");
  comment.value = row.key in state.drafts ? state.drafts[row.key]
    : (pending || stored)?.comment || "";
  comment.addEventListener("change", () => commentChanged(row.key, comment.value));
  comment.addEventListener("keydown", (event) => {
    if (event.key === "Enter") comment.blur(); // Enter records it, as leaving the box does
  });
  for (const button of card.querySelectorAll("[data-decision]")) {
    button.setAttribute("aria-pressed", String(stored?.decision === button.dataset.decision));
    button.addEventListener("click", () => decideCurrent(button.dataset.decision));
  }
}

export function renderDetail() {
  const row = state.rows.find((r) => r.key === state.selectedKey && r.sampleId === state.currentSample);
  if (!row) {
    el.detail.replaceChildren();
    const hint = document.createElement("p");
    hint.className = "muted";
    hint.textContent = "Select a cell in the gallery.";
    el.detail.appendChild(hint);
    return;
  }
  const card = el.template.content.firstElementChild.cloneNode(true);
  card.dataset.key = row.key;
  card.querySelector(".cell-number").textContent = `Cell #${cellNumber(row)}`;
  card.querySelector(".result-file").textContent = row.filename;
  const badge = card.querySelector(".badge");
  const kind = rowState(row);
  badge.textContent = STATE_WORDS[kind];
  badge.classList.add(`badge-${kind}`);
  if (row.status !== "ok") {
    card.querySelector(".probability").remove();
    card.querySelector(".decision").remove();
    card.querySelector(".views").remove();
    card.querySelector(".warning-count").textContent = row.error.detail;
    card.querySelector(".meta").textContent = `request ${row.requestId}`;
    el.detail.replaceChildren(card);
    return;
  }
  const prediction = row.prediction;
  const warnings = prediction.warnings;
  const warningCount = card.querySelector(".warning-count");
  warningCount.textContent = warnings.length ? plural(warnings.length, "quality warning") : "no quality warning";
  warningCount.classList.toggle("has-warnings", warnings.length > 0);
  const probability = card.querySelector(".probability");
  card.querySelector(".probability-text").textContent =
    `Probability of ALL: ${percent(prediction.probability_all)} (threshold ${percent(prediction.threshold)})`;
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-label",
    `Probability of ALL ${percent(prediction.probability_all)}, threshold ${percent(prediction.threshold)}`);
  const fill = card.querySelector(".bar-fill");
  fill.style.width = percent(prediction.probability_all);
  fill.classList.add(prediction.probability_all >= prediction.threshold ? "above" : "below");
  card.querySelector(".bar-threshold").style.left = percent(prediction.threshold);
  if (!prediction.assessable) {
    probability.hidden = true;
    const hidden = card.querySelector(".probability-hidden");
    hidden.hidden = false;
    hidden.querySelector(".show-anyway").addEventListener("click", () => {
      probability.hidden = false;
      hidden.hidden = true;
    });
  }
  const list = card.querySelector(".warnings");
  for (const warning of warnings) {
    const item = document.createElement("li");
    item.dataset.code = warning.code;
    // A sample reopened from the server keeps the warnings' codes, not their messages.
    const words = warningWords(warning.code);
    item.textContent = warning.message && warning.message !== words ? `${words}. ${warning.message}` : `${words}.`;
    list.appendChild(item);
  }
  const typed = typedComment(row.key);
  renderDecision(card, row);
  renderViews(card, row, prediction);
  const option = optionFor(prediction.model.id);
  const name = option ? option.dataset.name : prediction.model.id;
  card.querySelector(".meta").textContent =
    `Model ${name} v${prediction.model.version} · TTA ${prediction.tta ? "on" : "off"} · ` +
    `request ${prediction.request_id} · image sha256 ${row.sha256.slice(0, 12)}…`;
  card.querySelector(".meta").dataset.sha256 = row.sha256;
  el.detail.replaceChildren(card);
  if (typed) {
    const comment = card.querySelector(".comment");
    comment.value = typed.value;
    comment.focus({ preventScroll: true });
    comment.setSelectionRange(typed.start, typed.end);
  }
}

function renderViews(card, row, prediction) {
  const full = live.views.get(row.key);
  const views = card.querySelector(".views");
  if (!full || !full.views) {
    views.querySelector(".view-enhanced").closest("figure").remove();
    views.querySelector(".crop-figure").remove();
    card.querySelector(".views-missing").hidden = false;
    if (!row.thumb) {
      // Analysed in another browser: no image here at all, so no picture and no caption.
      views.remove();
      return;
    }
    const image = views.querySelector(".view-original");
    image.src = row.thumb;
    image.classList.add("thumb-only"); // shown at its own size, never stretched
    image.alt = `thumbnail of ${row.filename}`;
    views.querySelector("figcaption").textContent = "Thumbnail kept in this browser (select to enlarge)";
  } else {
    for (const name of ["original", "enhanced", "cropped"]) {
      const image = card.querySelector(`.view-${name}`);
      image.src = full.views[name];
      image.alt = `${name} view of ${row.filename}`;
    }
  }
  views.querySelector(".enlarge").addEventListener("click", () => enlarge(row));
  const explanation = full && full.explanation;
  if (!explanation || !prediction.assessable) return; // no heat for not-assessable answers
  const heat = card.querySelector(".view-heat");
  const toggle = card.querySelector(".heat-toggle");
  const opacity = card.querySelector(".heat-opacity");
  const legend = card.querySelector(".heat-legend");
  heat.src = explanation.overlay;
  heat.alt = `Grad-CAM heatmap of ${row.filename}: contribution to the ALL score, scaled within this image`;
  const option = optionFor(prediction.model.id);
  const grid = option ? option.dataset.grid : "?";
  card.querySelector(".heat-grid").textContent =
    `The map is ${grid} × ${grid} cells over the crop, smoothed for display.`;
  const share = explanation.heat_in_cell;
  const shareNote = card.querySelector(".heat-share");
  shareNote.textContent = share === null ? "" : `${percent(share)} of the heat on the cell`;
  if (explanation.on_cell === false) {
    // Below the 90% a map needs; the share itself may still be most of the heat.
    shareNote.textContent += ", below the 90% a map needs before it can say which parts of " +
      "the cell mattered: read it as showing where the model looked, not what in the cell counted";
    shareNote.classList.add("off-cell");
  }
  const update = () => {
    heat.hidden = !toggle.checked;
    legend.hidden = !toggle.checked;
    heat.style.opacity = String(Number(opacity.value) / 100);
  };
  toggle.addEventListener("change", update);
  opacity.addEventListener("input", update);
  card.querySelector(".heat-controls").hidden = false;
  update();
}

function enlarge(row) {
  const image = el.byId("enlarge-image");
  const file = live.files.get(row.key);
  const full = live.views.get(row.key);
  if (image.dataset.objectUrl) URL.revokeObjectURL(image.dataset.objectUrl);
  delete image.dataset.objectUrl;
  if (file && !/\.tiff?$/i.test(file.name)) {
    image.dataset.objectUrl = URL.createObjectURL(file);
    image.src = image.dataset.objectUrl;
  } else {
    image.src = full?.views?.original || row.thumb || "";
  }
  image.alt = `${row.filename} at native resolution`;
  el.byId("enlarge-title").textContent = `Cell ${cellName(row)}, at native resolution`;
  el.dialog.showModal();
}

export function wireDetailPane() {
  el.byId("enlarge-close").addEventListener("click", () => el.dialog.close());
  el.dialog.addEventListener("click", (event) => { if (event.target === el.dialog) el.dialog.close(); });
}
