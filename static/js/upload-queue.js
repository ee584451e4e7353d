// Choosing files and analysing them: uploads in chunks with their progress, a cancel that
// withdraws what the server scored of the cancelled upload, and the rows the answers make.
import { newClientRequestId, postFiles, postWithdrawal } from "./api.js";
import { el, optionFor, setStatus, showAlert } from "./dom.js";
import { askToSignIn } from "./identity.js";
import { analysisRefusal, withdrawalRefusal } from "./refusals.js";
import { newSampleId, sampleIdProblem } from "./sample-ids.js";
import { cellKey, syncSample } from "./sample-sync.js";
import { saveSession } from "./session-store.js";
import { addAnalysed, choose, endRun, live, sampleRows, startRun, state } from "./state.js";
import { plural } from "./words.js";

// A cancelled upload the server is still recording is not there yet: the withdrawal, which
// names only what exists, is tried again for a few seconds.
const WITHDRAWAL_TRIES = 6;
const WITHDRAWAL_WAIT_MS = 500;

const maxFiles = Number(el.uploadPanel.dataset.maxFiles);
const maxBytes = Number(el.uploadPanel.dataset.maxBytes);
const CHUNK = Math.max(1, Math.min(8, maxFiles));
const THUMB_SIDE = 96;

// -- choosing files ------------------------------------------------------------------------

export function describeChoice() {
  const { chosen, run } = state;
  if (chosen.length === 0) {
    el.summary.textContent = "No file chosen";
  } else {
    const names = chosen.length === 1 ? chosen[0].name : `${chosen.length} files chosen`;
    el.summary.textContent = run ? `${names}: ready once the current analysis ends` : names;
  }
  el.analyseButton.disabled = run !== null || chosen.length === 0;
}

function chooseFiles(files) {
  showAlert("");
  choose(files);
}

// Why nothing of the choice can be sent, or "". A file over the size limit alone stops nothing:
// the rest is analysed without it (leftOut says so).
function checkChoice(files) {
  if (files.length > maxFiles) {
    return `${files.length} files chosen; at most ${maxFiles} can be analysed at once. Choose fewer.`;
  }
  if (files.every((file) => file.size > maxBytes)) {
    return `Nothing was sent: ${leftOut(files)}`;
  }
  return sampleIdProblem(el.sampleInput.value.trim());
}

// The files over the size limit, said by name ("" when none is).
function leftOut(files) {
  const large = files.filter((file) => file.size > maxBytes).map((file) => file.name);
  if (!large.length) return "";
  const limit = `${(maxBytes / 1048576).toFixed(0)} MB`;
  return large.length === 1 ? `${large[0]} is larger than ${limit}, the most one image may be.`
    : `${large.join(", ")} are larger than ${limit}, the most one image may be.`;
}

// -- thumbnails ----------------------------------------------------------------------------

function thumbnail(dataUri) {
  return new Promise((resolve) => {
    const image = new Image();
    image.addEventListener("load", () => {
      const scale = THUMB_SIDE / Math.max(image.naturalWidth, image.naturalHeight);
      const canvas = document.createElement("canvas");
      canvas.width = Math.max(1, Math.round(image.naturalWidth * Math.min(1, scale)));
      canvas.height = Math.max(1, Math.round(image.naturalHeight * Math.min(1, scale)));
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      resolve(canvas.toDataURL("image/jpeg", 0.85));
    });
    image.addEventListener("error", () => resolve(null));
    image.src = dataUri;
  });
}

// What IndexedDB keeps of an answer: not the views nor the heatmap (they stay in this tab).
function persistable(prediction) {
  const { views, explanation, ...rest } = prediction;
  if (explanation) {
    rest.explanation = { heat_in_cell: explanation.heat_in_cell, on_cell: explanation.on_cell };
  }
  return rest;
}

// -- analysis ------------------------------------------------------------------------------

// Called whenever state.run changes: nothing that changes the sample while a run writes to it.
export function setRunning(running) {
  el.cancelButton.hidden = !running;
  el.progressRow.hidden = !running;
  for (const control of [el.modelSelect, el.ttaInput, el.sampleInput, el.byId("new-sample"),
    el.byId("clear-button"), el.sampleSelect, el.openSelect, el.byId("open-sample-button")]) {
    control.disabled = running;
  }
  describeChoice();
}

function showProgress(done, total, sending, fraction) {
  el.progress.max = total;
  el.progress.value = done + (sending ? sending * fraction : 0);
  const range = `${done + 1}–${done + sending} of ${total}`;
  if (!sending) {
    el.progressText.textContent = `Analysed ${done} of ${total}`;
  } else if (fraction < 1) {
    el.progressText.textContent = `Sending images ${range} (${Math.round(fraction * 100)}% uploaded)`;
  } else {
    // Uploaded: the server is working. A cancel now withdraws these images from the sample.
    el.progressText.textContent = `Analysing images ${range} on the server…`;
  }
  el.progressRow.dataset.stage = !sending ? "done" : fraction < 1 ? "uploading" : "analysing";
}

// One row per image of a sample, known by its sha256: an image scored again (a re-drop after
// a reload, say) is the same cell, and brings its file, views and heatmap back to it. Returns
// the new rows and, by key, what changes in the rows the sample already has.
async function rowsFrom(files, answer, sampleId) {
  const results = answer.body.results;
  const requestId = answer.requestId
    || results.find((result) => result.prediction)?.prediction.request_id || "unknown";
  const made = [];
  const reattached = new Map();
  let index = sampleRows(sampleId).length;
  for (const [position, result] of results.entries()) {
    const file = files[position];
    const base = { sampleId, requestId, filename: file.name, time: new Date().toISOString(),
      decision: null };
    if (result.filename !== file.name) {
      made.push({ ...base, index: index++, key: `${requestId}:error:${position}`, status: "error",
        error: { status_code: 0, detail: "the answer did not match the file sent" } });
      continue;
    }
    if (result.status !== "ok") {
      made.push({ ...base, index: index++, key: `${requestId}:error:${position}`, status: "error",
        error: result.error });
      continue;
    }
    const prediction = result.prediction;
    const key = cellKey(sampleId, prediction.image_sha256);
    const thumb = prediction.views ? await thumbnail(prediction.views.original) : null;
    live.files.set(key, file);
    live.views.set(key, prediction);
    const mine = made.find((row) => row.key === key); // twice in this chunk: not yet in the state
    const stored = state.rows.find((row) => row.key === key);
    const known = mine || (stored && { ...stored, ...reattached.get(key) });
    if (known) {
      // The same cell: its record stays the first answer's; the file and views come back.
      const back = { filename: known.attached ? known.filename : file.name, attached: true,
        thumb: thumb || known.thumb, repeats: (known.repeats || 0) + 1 };
      if (mine) Object.assign(mine, back);
      else reattached.set(key, back);
      continue;
    }
    made.push({ ...base, index: index++, key, sha256: prediction.image_sha256, status: "ok",
      requestId: prediction.repeat_of || prediction.request_id, attached: true,
      prediction: persistable(prediction), thumb });
  }
  return { made, reattached };
}

async function analyse(event) {
  event.preventDefault();
  if (state.run || state.chosen.length === 0) return;
  const problem = checkChoice(state.chosen);
  if (problem) {
    showAlert(problem);
    return;
  }
  // The submission is a copy: files chosen from now on belong to the next analysis. Files
  // over the size limit stay out of it, said by name until the next choice.
  const files = state.chosen.filter((file) => file.size <= maxBytes);
  const skipped = leftOut(state.chosen);
  showAlert(skipped && `Left out of the analysis: ${skipped} ` +
    (files.length === 1 ? "The other file is analysed." : `The other ${files.length} files are analysed.`));
  const sampleId = el.sampleInput.value.trim();
  const option = optionFor(el.modelSelect.value);
  const query = new URLSearchParams({
    model: el.modelSelect.value, tta: String(el.ttaInput.checked), views: "true", sample_id: sampleId,
  });
  if (option.dataset.explains === "true") query.set("explain", "true");
  el.input.value = "";
  const controller = new AbortController();
  startRun(controller, sampleId);
  let done = 0;
  let analysed = 0; // of this run: answered with a prediction, and refused
  let refusedFiles = 0;
  let outcome = ""; // said once the page holds what the server holds
  let inFlight = null; // the client request id of the upload whose answers are not yet kept
  setStatus(`Analysing ${plural(files.length, "image")} for sample ${sampleId}…`);
  try {
    for (let start = 0; start < files.length; start += CHUNK) {
      const part = files.slice(start, start + CHUNK);
      inFlight = newClientRequestId();
      showProgress(done, files.length, part.length, 0);
      const answer = await postFiles(`/api/v1/predict/batch?${query}`, part, controller.signal,
        (fraction) => showProgress(done, files.length, part.length, fraction), inFlight);
      if (controller.signal.aborted) throw new DOMException("cancelled", "AbortError");
      const { made, reattached } = await rowsFrom(part, answer, sampleId);
      inFlight = null;
      done += part.length;
      const failed = answer.body.results.filter((result) => result.status !== "ok").length;
      refusedFiles += failed;
      analysed += part.length - failed;
      showProgress(done, files.length, 0, 0);
      addAnalysed(sampleId, made, reattached);
      saveSession();
    }
    outcome = analysed ? `Done: ${plural(analysed, "image")} analysed for sample ${sampleId}` +
      (refusedFiles ? `, ${refusedFiles} could not be analysed.` : ".")
      : `Done: no image of sample ${sampleId} could be analysed; the gallery says why for each file.`;
    if (skipped) outcome += ` Left out: ${skipped}`;
  } catch (error) {
    if (error.name === "AbortError") {
      // The server may have scored (or may still be scoring) the cancelled upload: it is
      // withdrawn from the sample, so that page and server hold the same cells.
      if (inFlight) {
        setStatus("Cancelling: taking the stopped upload's images back out of the sample…");
        await withdraw(sampleId, inFlight);
      }
      outcome = `Cancelled after ${done} of ${files.length} images; the finished ones are kept.`;
    } else {
      showAlert(analysisRefusal(error));
      setStatus("");
      if (error.status === 401) askToSignIn();
    }
  } finally {
    endRun();
    saveSession();
    el.byId("sample-heading").focus();
  }
  await syncSample(sampleId); // also reads the server's list of samples, for both lists
  if (outcome) setStatus(outcome);
}

// The server holds the cancelled upload once it has recorded it (404 until then, and for good
// when it never received it: nothing to withdraw); another's upload or a decided cell stays.
async function withdraw(sampleId, clientRequestId) {
  let answer = null;
  for (let attempt = 1; attempt <= WITHDRAWAL_TRIES; attempt += 1) {
    answer = await postWithdrawal(sampleId, clientRequestId);
    if (answer.ok) return;
    if (answer.status !== 404 && answer.status !== 0 && answer.status < 500) break;
    await new Promise((resolve) => { setTimeout(resolve, WITHDRAWAL_WAIT_MS); });
  }
  if (answer.status !== 404) showAlert(withdrawalRefusal(answer));
}

export function wireUploads() {
  el.input.addEventListener("change", () => chooseFiles(el.input.files));
  el.byId("choose-button").addEventListener("click", () => el.input.click());
  const { dropZone } = el;
  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropZone.addEventListener(name, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    chooseFiles(event.dataTransfer.files);
  });
  el.cancelButton.addEventListener("click", () => state.run?.controller.abort());
  el.byId("new-sample").addEventListener("click", () => {
    el.sampleInput.value = newSampleId();
    el.sampleInput.focus();
  });
  el.modelSelect.addEventListener("change", () => {
    el.ttaInput.checked = el.modelSelect.selectedOptions[0].dataset.ttaDefault === "true";
  });
  el.ttaInput.checked = el.modelSelect.selectedOptions[0].dataset.ttaDefault === "true";
  el.sampleInput.value = newSampleId();
  el.form.addEventListener("submit", analyse);
}
