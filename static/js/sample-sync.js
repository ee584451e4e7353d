// The sample on the server: the page's rows are a cache of it. Opening or syncing a sample
// reads the server's cells (each image once, withdrawn uploads left out) and its latest stored
// decision per cell and where the sample is in its life cycle (status, sign-offs, amendments),
// keeping what only this browser has (file names, thumbnails, views of images analysed here)
// and its refused files.
import { fetchSample, fetchSamples } from "./api.js";
import { el, setStatus } from "./dom.js";
import { askToSignIn } from "./identity.js";
import { loadCachedSample, saveSession } from "./session-store.js";
import {
  firstCellKey, noteSampleRecord, openSampleId, renameLive, replaceSample, sampleRows, setServerSamples,
  state, update,
} from "./state.js";
import { plural } from "./words.js";

export const cellKey = (sampleId, sha256) => `${sampleId}:${sha256}`;

// The server's samples, newest change first (every sync reads them: the lists stay current).
// A server that wants a key asks for it.
export async function fetchSampleList() {
  const answer = await fetchSamples();
  if (answer.ok) setServerSamples(answer.body.samples);
  if (answer.status === 401) askToSignIn();
  return answer;
}

export function decisionFromServer(record) {
  return { decision: record.decision, reviewer: record.reviewer, comment: record.comment,
    time: new Date(record.time).toISOString(), stored: true, id: record.id,
    reviewerSource: record.reviewer_source, ...(record.amendment ? { amendment: record.amendment } : {}) };
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
      attached: false, time: new Date(cell.time).toISOString() };
    row.index = position;
    row.requestId = cell.request_id;
    row.uploader = cell.uploader || "";
    row.prediction = { ...predictionFromServer(cell), ...(known ? pick(known.prediction) : {}) };
    const record = latest.get(cell.image_sha256);
    row.decision = record ? decisionFromServer(record) : null; // only what the server stored
    return row;
  });
  const kept = refused.map((row, position) => ({ ...row, index: rows.length + position }));
  noteSampleRecord(sampleId, answer.ok ? answer.body : null);
  replaceSample(sampleId, [...rows, ...kept], answer.ok ? { ...answer.body.blast_share } : null, selectedKey);
  saveSession();
  return true;
}

// A sample from the list: this browser's copy at once (file names and thumbnails of the
// images analysed here, in any tab), then the server's.
export async function openSample(sampleId) {
  el.sampleInput.value = sampleId;
  openSampleId(sampleId);
  await loadCachedSample(sampleId);
  update({ selectedKey: firstCellKey() });
  setStatus(`Opening sample ${sampleId} from the server…`);
  const synced = await syncSample(sampleId);
  update({ selectedKey: state.selectedKey && sampleRows(sampleId).some((r) => r.key === state.selectedKey)
    ? state.selectedKey : firstCellKey() });
  setStatus(synced ? `Sample ${sampleId}: ${plural(sampleRows(sampleId).length, "image")}, as the server holds it.`
    : `Sample ${sampleId} could not be read from the server; showing this browser's copy.`);
}
