// The page's one state. Modules read `state` (an import binding, so nobody can reassign it, and
// frozen, so nobody can patch it in place); only update() and the named actions below change it.
// Each change tells the subscribed renderers which fields moved, so each redraws what it shows.
import { STATES, rowState } from "./words.js";

// This tab's session (session-store.js keeps it per tab; the rows, per sample, are a cache of
// the server's samples shared by the tabs). A row is one file of a sample, keyed by sample id
// and image sha256 (refused files by request and position); its `decision` is the latest one
// the server stored, never one it has not.
//   pending: row key -> a decision not yet stored { decision, comment, reviewer, amendment
//            (why it changes a signed-off sample), key (its Idempotency-Key), time, status:
//            "sending" | "waiting" | "refused", reason, signIn (a sign-in would help),
//            signedOff (refused for the sample's sign-off) }: drawn apart, counted nowhere.
//   drafts:  row key -> a comment typed before any decision on the cell.
//   records: sample id -> where the server says the sample is in its life cycle (status,
//            sign-offs, amendments, headline); cached with the sample's rows.
export const TAB_FIELDS = ["currentSample", "exported", "savedAt", "pending", "drafts"];
const emptySession = () => ({ rows: [], currentSample: "", exported: true, savedAt: null,
  shares: {}, records: {}, pending: {}, drafts: {} });

export let state = freeze({
  ...emptySession(),
  selectedKey: null, // the current cell: the one the review keys act on
  chosen: [], // the files chosen for the next analysis
  run: null, // the analysis in progress: { controller }
  serverSamples: [], // the server's samples, newest change first
  sort: { key: "index", ascending: true }, // the results table's order
  // Whom the server takes this tab for (identity.js): source "unknown" until it has said.
  identity: { source: "unknown", reviewer: null, problem: null, durable: true },
});

// What only this tab has and never stores: the files and full answers (views, heatmap) of the
// images analysed here, by row key, for the views and the native-resolution image.
export const live = { files: new Map(), views: new Map() };

const listeners = [];
let quietlyChanged = new Set(); // fields changed quietly, announced with the next update

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
  for (const key of ["chosen", "shares", "records", "serverSamples", "sort", "pending", "drafts",
    "identity"]) {
    Object.freeze(next[key]);
  }
  for (const pending of Object.values(next.pending)) Object.freeze(pending);
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
    if (next[key] !== state[key]) quietlyChanged.add(key);
  }
  state = freeze(next);
  if (quiet) return;
  const changed = quietlyChanged;
  quietlyChanged = new Set();
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

// Decided, for moving on: a stored decision, or one on its way (a refused one needs the
// reviewer again).
export function isDecided(row) {
  const pending = state.pending[row.key];
  return Boolean(row.decision) || Boolean(pending && pending.status !== "refused");
}

// Something the server does not hold yet: an analysis running, or a decision not stored.
export const somethingUnstored = () => state.run !== null || Object.keys(state.pending).length > 0;

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

// The sample's rows numbered as the server lists them (its cells as they arrived, then the
// refused files), so that a cell keeps its number when the run's end reads the sample again.
function numbered(rows, sampleId) {
  const ofSample = rows.filter((row) => row.sampleId === sampleId).sort((a, b) => a.index - b.index);
  const order = [...ofSample.filter((row) => row.status === "ok"), ...ofSample.filter((row) => row.status !== "ok")];
  const places = new Map(order.map((row, place) => [row.key, place]));
  return rows.map((row) => (places.has(row.key) && places.get(row.key) !== row.index
    ? { ...row, index: places.get(row.key) } : row));
}

// One answered chunk: its new rows, and the rows it brought files and views back to.
export function addAnalysed(sampleId, made, reattached) {
  const rows = numbered([...state.rows.map((row) =>
    reattached.has(row.key) ? { ...row, ...reattached.get(row.key) } : row), ...made], sampleId);
  const ofSample = rows.filter((row) => row.sampleId === sampleId);
  const selectedKey = ofSample.some((row) => row.key === state.selectedKey) ? state.selectedKey
    : ofSample.find((row) => row.status === "ok")?.key || null;
  update({ rows, exported: false, selectedKey });
}

// Rows of a sample this browser cached (another tab's analysis, a reload): added where the
// page has none of that sample yet.
export function adoptCachedRows(sampleId, cached) {
  if (!cached.length || sampleRows(sampleId).length) return;
  update({ rows: [...state.rows, ...cached] }, { quiet: true });
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

// A decision on its way: shown at once, drawn as pending (quietly: the move to the next cell
// draws it).
export function setPending(key, pending, { quiet = false } = {}) {
  const drafts = { ...state.drafts };
  delete drafts[key];
  update({ pending: { ...state.pending, [key]: pending }, drafts, exported: false }, { quiet });
}

// The pending decision under `idempotencyKey` changed (its status) or was stored (`stored`:
// the server's record, which becomes the row's decision). A newer pending decision on the
// same cell stays pending.
export function settlePending(rowKey, idempotencyKey, { stored = null, ...change } = {}) {
  const pending = { ...state.pending };
  const current = pending[rowKey];
  if (current && current.key === idempotencyKey) {
    if (stored) delete pending[rowKey];
    else pending[rowKey] = { ...current, ...change };
  }
  const rows = stored
    ? state.rows.map((row) => (row.key === rowKey ? { ...row, decision: stored } : row))
    : state.rows;
  update({ pending, rows });
}

export function setDraft(key, comment) {
  update({ drafts: { ...state.drafts, [key]: comment } }, { quiet: true });
}

export function openSampleId(sampleId) {
  update({ currentSample: sampleId, selectedKey: null });
}

export function restore(saved, rows, selectedKey) {
  update({ rows, currentSample: saved.currentSample || "", exported: saved.exported ?? true,
    savedAt: saved.savedAt || null, shares: saved.shares || {}, records: saved.records || {},
    pending: saved.pending || {}, drafts: saved.drafts || {}, selectedKey });
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
export const setIdentity = (identity) => update({ identity: { ...state.identity, ...identity } });

export function sortBy(key) {
  const ascending = state.sort.key === key ? !state.sort.ascending : true;
  update({ sort: { key, ascending } });
}

export function renameLive(from, to) {
  for (const map of [live.files, live.views]) {
    if (map.has(from)) map.set(to, map.get(from));
  }
}
