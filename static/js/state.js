// The page's one state. Modules read `state` (an import binding, so nobody can reassign it, and
// frozen, so nobody can patch it in place); only update() and the named actions below change it.
// Each change tells the subscribed renderers which fields moved, so each redraws what it shows.
import { STATES, rowState } from "./words.js";

// The session: what IndexedDB keeps, a cache of the server's samples. Every row is one file
// of a sample, keyed by sample id and image sha256 (refused files by request and position).
export const SESSION_FIELDS = ["rows", "currentSample", "exported", "savedAt", "shares", "records"];
const emptySession = () => ({ rows: [], currentSample: "", exported: true, savedAt: null, shares: {},
  records: {} });

export let state = freeze({
  ...emptySession(),
  selectedKey: null, // the current cell: the one the review keys act on
  chosen: [], // the files chosen for the next analysis
  run: null, // the analysis in progress: { controller }
  serverSamples: [], // the server's samples, newest change first
  sort: { key: "index", ascending: true }, // the results table's order
});

// What only this tab has and never stores: the files and full answers (views, heatmap) of the
// images analysed here, by row key, for the views and the native-resolution image.
export const live = { files: new Map(), views: new Map() };

const listeners = [];
let pending = new Set(); // fields changed quietly, announced with the next update

export function subscribe(listener) {
  listeners.push(listener);
}

// Rows and their decisions are frozen when they enter the state: a row changes by being
// replaced, through an action, never in place.
function freezeRow(row) {
  if (Object.isFrozen(row)) return row;
  if (row.decision) Object.freeze(row.decision);
  return Object.freeze(row);
}

function freeze(next) {
  next.rows = Object.isFrozen(next.rows) ? next.rows : Object.freeze(next.rows.map(freezeRow));
  for (const key of ["chosen", "shares", "records", "serverSamples", "sort"]) Object.freeze(next[key]);
  return Object.freeze(next);
}

// Merges `patch` into the state and calls every renderer with the set of changed fields.
// quiet: the change is made now and announced with the next update (the page redraws then),
// for changes the page should not show on their own.
export function update(patch, { quiet = false } = {}) {
  const next = { ...state, ...patch };
  // Rows always belong to a sample on screen: the newest row's, when none was named.
  if (next.rows.length && !next.currentSample) next.currentSample = next.rows[next.rows.length - 1].sampleId;
  for (const key of Object.keys(next)) {
    if (next[key] !== state[key]) pending.add(key);
  }
  state = freeze(next);
  if (quiet) return;
  const changed = pending;
  pending = new Set();
  for (const listener of listeners) listener(changed);
}

// -- reading the state ---------------------------------------------------------------------

export function sampleRows(sampleId = state.currentSample, from = state) {
  return from.rows.filter((row) => row.sampleId === sampleId);
}

export const rowByKey = (key) => state.rows.find((row) => row.key === key);

// The gallery's order: by suggestion, then as analysed.
export function galleryOrder(from = state) {
  const rows = sampleRows(from.currentSample, from);
  const order = [];
  for (const [kind] of STATES) {
    order.push(...rows.filter((row) => rowState(row) === kind).sort((a, b) => a.index - b.index));
  }
  return order;
}

export const firstCellKey = (from = state) => galleryOrder(from).find((row) => row.status === "ok")?.key || null;

// -- actions -------------------------------------------------------------------------------

export function choose(files) {
  update({ chosen: Array.from(files) });
}

export function selectCell(key) {
  update({ selectedKey: key });
}

// The sample id becomes the page's now, but the page shows it once the first answer is in.
export function startRun(controller, sampleId) {
  update({ chosen: [], run: { controller } });
  update({ currentSample: sampleId }, { quiet: true });
}

export function endRun() {
  update({ run: null });
}

// One answered chunk: its new rows, and the rows it brought files and views back to.
export function addAnalysed(sampleId, made, reattached) {
  const rows = [...state.rows.map((row) =>
    reattached.has(row.key) ? { ...row, ...reattached.get(row.key) } : row), ...made];
  const ofSample = rows.filter((row) => row.sampleId === sampleId);
  const selectedKey = ofSample.some((row) => row.key === state.selectedKey) ? state.selectedKey
    : ofSample.find((row) => row.status === "ok")?.key || null;
  update({ rows, exported: false, selectedKey });
}

// The sample as the server holds it replaces the page's rows of that sample; share is its
// blast share, or null where the server holds no such sample.
export function replaceSample(sampleId, sampleRowsNow, share, renamedSelection) {
  const rows = [...state.rows.filter((row) => row.sampleId !== sampleId), ...sampleRowsNow];
  const shares = { ...state.shares };
  if (share) {
    shares[sampleId] = share;
  } else {
    delete shares[sampleId];
  }
  const next = { rows, currentSample: state.currentSample };
  let selectedKey = renamedSelection;
  if (!sampleRows(state.currentSample, next).some((row) => row.key === selectedKey)) {
    selectedKey = firstCellKey(next);
  }
  update({ rows, shares, selectedKey });
}

// Where the server says the sample is in its life cycle (status, sign-offs, amendments, its
// headline), from its answer; null: the server holds no such sample. Quiet: the sample's rows
// follow (replaceSample), and the page redraws once.
export function noteSampleRecord(sampleId, answer) {
  const records = { ...state.records };
  if (answer) {
    const { status, signed_off, sign_offs, amendments, headline } = answer;
    records[sampleId] = Object.freeze({ status, signed_off, sign_offs, amendments, headline });
  } else {
    delete records[sampleId];
  }
  update({ records }, { quiet: true });
}

// A decision taken on the page: shown at once (quietly: the move to the next cell draws it).
export function recordDecision(key, record) {
  const rows = state.rows.map((row) => (row.key === key ? { ...row, decision: record } : row));
  update({ rows, exported: false }, { quiet: true });
}

// The server's answer to a decision, where the row still holds that decision (a sync may have
// brought the server's record meanwhile).
export function settleDecision(record, outcome) {
  if (!state.rows.some((row) => row.decision === record)) return;
  const rows = state.rows.map((row) =>
    (row.decision === record ? { ...row, decision: { ...record, ...outcome } } : row));
  update({ rows });
}

export function openSampleId(sampleId) {
  update({ currentSample: sampleId, selectedKey: null });
}

export function restore(saved, selectedKey) {
  update({ rows: saved.rows, currentSample: saved.currentSample, exported: saved.exported,
    savedAt: saved.savedAt, shares: saved.shares || {}, records: saved.records || {}, selectedKey });
}

// Quiet: the page shows the cleared session once the browser's copy is gone.
export function clearAll() {
  update({ ...emptySession(), selectedKey: null }, { quiet: true });
  live.files.clear();
  live.views.clear();
}

export const markExported = () => update({ exported: true });
export const markSaved = (savedAt) => update({ savedAt }, { quiet: true });
export const setServerSamples = (samples) => update({ serverSamples: samples });

export function sortBy(key) {
  const ascending = state.sort.key === key ? !state.sort.ascending : true;
  update({ sort: { key, ascending } });
}

export function renameLive(from, to) {
  for (const map of [live.files, live.views]) {
    if (map.has(from)) map.set(to, map.get(from));
  }
}
