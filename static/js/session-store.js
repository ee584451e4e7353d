// The session in this browser's IndexedDB, and the server's samples it caches: the server holds
// every sample (any tab, browser or reviewer sees the same), the page keeps what only it has.
import { fetchSample, fetchSamples } from "./api.js";
import { el, newSampleId, setStatus, showAlert } from "./dom.js";
import {
  SESSION_FIELDS, clearAll, firstCellKey, markSaved, noteSampleRecord, openSampleId, renameLive,
  replaceSample, restore, sampleRows, setServerSamples, state, update,
} from "./state.js";
import { humanTime, plural } from "./words.js";

const DB_NAME = "leukolens";
const STORE = "session";
let database = null;

function openDatabase() {
  if (database) return database;
  database = new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.addEventListener("upgradeneeded", () => request.result.createObjectStore(STORE));
    request.addEventListener("success", () => resolve(request.result));
    request.addEventListener("error", () => reject(request.error));
  });
  return database;
}

async function storeOp(mode, operation) {
  const db = await openDatabase();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const request = operation(transaction.objectStore(STORE));
    transaction.addEventListener("complete", () => resolve(request.result));
    transaction.addEventListener("error", () => reject(transaction.error));
  });
}

// Saves queue up, so that an older snapshot never lands after a newer one.
let saving = Promise.resolve();
export function saveSession() {
  markSaved(new Date().toISOString());
  const kept = Object.fromEntries(SESSION_FIELDS.map((name) => [name, state[name]]));
  const snapshot = JSON.parse(JSON.stringify({ ...kept, reviewer: el.reviewerInput.value }));
  saving = saving
    .then(() => storeOp("readwrite", (store) => store.put(snapshot, "current")))
    .then(() => { document.body.dataset.savedAt = snapshot.savedAt; })
    .catch((error) => showAlert(`The session could not be saved in this browser: ${error.message}`));
}

export async function restoreSession() {
  try {
    const saved = await storeOp("readonly", (store) => store.get("current"));
    if (saved && saved.rows && saved.rows.length) {
      if (saved.reviewer && !el.reviewerInput.value) el.reviewerInput.value = saved.reviewer;
      el.sampleInput.value = saved.currentSample;
      restore(saved, firstCellKey({ rows: saved.rows, currentSample: saved.currentSample }));
      setStatus(`Restored the session saved ${humanTime(saved.savedAt)}: ` +
        `${plural(state.rows.length, "image")}.`);
    }
  } catch (error) {
    showAlert(`The saved session could not be read: ${error.message}`);
  }
  // This browser's copy is a cache: the sample on screen is read again from the server,
  // and the server's list of samples with it.
  if (state.currentSample) {
    await syncSample(state.currentSample);
  } else {
    try {
      await fetchSampleList();
    } catch {
      // The list is a convenience; the cached samples stay reachable.
    }
  }
  document.body.dataset.restored = "true";
}

export async function clearSession() {
  if (state.run) return;
  if (!state.exported && !window.confirm("Clear this session? Results not yet exported are lost (decisions already stored on the server stay there).")) return;
  clearAll();
  await storeOp("readwrite", (store) => store.delete("current"));
  el.sampleInput.value = newSampleId();
  update({}); // the page shows the cleared session now that the browser's copy is gone
  setStatus("Session cleared.");
}

// -- the sample on the server: the page's rows are a cache of it ----------------------------

export const cellKey = (sampleId, sha256) => `${sampleId}:${sha256}`;

// The server's samples, newest change first (every sync reads them: the lists stay current).
export async function fetchSampleList() {
  const answer = await fetchSamples();
  if (answer.ok) setServerSamples(answer.body.samples);
  return answer;
}

function decisionFromServer(record) {
  return { decision: record.decision, reviewer: record.reviewer, comment: record.comment,
    time: new Date(record.time).toISOString(), stored: true, id: record.id,
    ...(record.amendment ? { amendment: record.amendment } : {}) };
}

function predictionFromServer(cell) {
  return { request_id: cell.request_id, image_sha256: cell.image_sha256,
    probability_all: cell.probability_all, threshold: cell.threshold ?? 0.5,
    label: cell.label, state: cell.state, assessable: cell.assessable, tta: Boolean(cell.tta),
    model: { id: cell.model_id, version: cell.model_version },
    warnings: (cell.warnings || []).map((code) => ({ code, message: "" })) };
}

// What the page's own answer knows beyond the record: the warnings' messages, its explanation.
function pick(prediction) {
  const kept = {};
  if (prediction.warnings?.some((w) => w.message)) kept.warnings = prediction.warnings;
  if (prediction.explanation) kept.explanation = prediction.explanation;
  return kept;
}

// The server holds the sample: its cells (each image once, withdrawn uploads left out) and
// every decision. The page takes them as they are, keeping what only it has (file names,
// thumbnails, views of images dropped in this browser) and its refused files.
const syncTurns = new Map(); // sample id -> the latest sync asked for it

export async function syncSample(sampleId) {
  const turn = (syncTurns.get(sampleId) || 0) + 1;
  syncTurns.set(sampleId, turn);
  let answer;
  try {
    const listed = await fetchSampleList();
    const known = !listed.ok || listed.body.total > listed.body.samples.length
      || state.serverSamples.some((s) => s.sample_id === sampleId);
    // A sample the server does not hold (every upload cancelled) has no cells: no request
    // that could only answer 404.
    answer = known ? await fetchSample(sampleId) : { ok: false, status: 404, body: null };
  } catch {
    return false; // the server is away: the cached rows stay until the next answer
  }
  if (!answer.ok && answer.status !== 404) return false;
  // A newer sync was asked for meanwhile, or an analysis began: its answer, or the run's own
  // end, brings the sample up to date; this older answer would undo what came after it.
  if (syncTurns.get(sampleId) !== turn || state.run) return false;
  const cells = answer.ok ? answer.body.predictions : [];
  const latest = new Map();
  for (const record of answer.ok ? answer.body.decisions : []) latest.set(record.image_sha256, record);
  // By sha256, not by key: rows cached by an earlier release were keyed by request id.
  const local = new Map(sampleRows(sampleId).filter((row) => row.status === "ok").map((row) => [row.sha256, row]));
  const refused = sampleRows(sampleId).filter((row) => row.status !== "ok");
  let selectedKey = state.selectedKey;
  const rows = cells.map((cell, position) => {
    const key = cellKey(sampleId, cell.image_sha256);
    const known = local.get(cell.image_sha256);
    if (known && known.key !== key) {
      renameLive(known.key, key);
      if (selectedKey === known.key) selectedKey = key;
    }
    const row = known ? { ...known, key } : { key, sampleId, sha256: cell.image_sha256,
      status: "ok", thumb: null, filename: `image ${cell.image_sha256.slice(0, 8)} (not in this browser)`,
      attached: false, time: new Date(cell.time).toISOString(), decision: null };
    row.index = position;
    row.requestId = cell.request_id;
    row.prediction = { ...predictionFromServer(cell), ...(known ? pick(known.prediction) : {}) };
    const record = latest.get(cell.image_sha256);
    if (record) {
      row.decision = decisionFromServer(record);
    } else if (row.decision && row.decision.stored) {
      row.decision = null; // the server has no decision on it
    }
    return row;
  });
  const kept = refused.map((row, position) => ({ ...row, index: rows.length + position }));
  noteSampleRecord(sampleId, answer.ok ? answer.body : null);
  replaceSample(sampleId, [...rows, ...kept], answer.ok ? { ...answer.body.blast_share } : null, selectedKey);
  saveSession();
  return true;
}

export async function openSample(sampleId) {
  el.sampleInput.value = sampleId;
  openSampleId(sampleId);
  setStatus(`Opening sample ${sampleId} from the server…`);
  const synced = await syncSample(sampleId);
  update({ selectedKey: firstCellKey() });
  setStatus(synced ? `Sample ${sampleId}: ${plural(sampleRows(sampleId).length, "image")}, as the server holds it.`
    : `Sample ${sampleId} could not be read from the server; showing this browser's copy.`);
}
