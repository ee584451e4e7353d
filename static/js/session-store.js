// This browser's IndexedDB: one session per tab and one cache per sample. The server holds every
// sample (any tab, browser or reviewer sees the same); the browser keeps what only it has.
//   "tab:<id>"     this tab's session (tab-session.js names it): the sample on screen, the
//                  typed reviewer name, the decisions not yet stored, the comment drafts. A
//                  reload restores the tab's own; another tab never reads it.
//   "sample:<id>"  the rows of a sample as this browser last saw them, with the file names and
//                  thumbnails of the images it analysed, its share and where it stood in its
//                  life cycle (status, sign-offs): shared by the tabs, merged on save.
import { el, setStatus, showAlert } from "./dom.js";
import {
  TAB_FIELDS, adoptCachedRows, clearAll, firstCellKey, markSaved, restore, sampleRows, state, update,
} from "./state.js";
import { tabId } from "./tab-session.js";
import { humanTime, plural } from "./words.js";

const DB_NAME = "leukolens";
const STORE = "session";
const LEGACY_SESSION = "current"; // the one shared session of earlier releases
const TAB_RECORD = `tab:${tabId}`;
const FORGET_TABS_AFTER_DAYS = 30;
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

// One transaction: `work(store)` may read and write; resolves with what it returns.
async function transact(mode, work) {
  const db = await openDatabase();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    let result;
    Promise.resolve(work(transaction.objectStore(STORE))).then((value) => { result = value; },
      (error) => { transaction.abort(); reject(error); });
    transaction.addEventListener("complete", () => resolve(result));
    transaction.addEventListener("error", () => reject(transaction.error));
  });
}

const read = (store, key) => new Promise((resolve, reject) => {
  const request = store.get(key);
  request.addEventListener("success", () => resolve(request.result));
  request.addEventListener("error", () => reject(request.error));
});

const sampleRecord = (sampleId) => `sample:${sampleId}`;

// Two tabs' copies of a sample: by row, this tab's, keeping the file name and thumbnail the
// other tab had where this one has none (the cell was analysed there).
function mergeRows(mine, theirs) {
  const merged = new Map((theirs || []).map((row) => [row.key, row]));
  for (const row of mine) {
    const other = merged.get(row.key);
    merged.set(row.key, other && other.attached && !row.attached
      ? { ...row, filename: other.filename, thumb: other.thumb, attached: true } : row);
  }
  return [...merged.values()].sort((a, b) => a.index - b.index);
}

// Saves queue up, so that an older snapshot never lands after a newer one.
let saving = Promise.resolve();
export function saveSession() {
  markSaved(new Date().toISOString());
  const tab = JSON.parse(JSON.stringify({
    ...Object.fromEntries(TAB_FIELDS.map((name) => [name, state[name]])),
    reviewer: el.reviewerInput.readOnly ? "" : el.reviewerInput.value, // a typed name only
    selectedKey: state.selectedKey,
  }));
  const samples = new Map();
  for (const row of state.rows) {
    if (!samples.has(row.sampleId)) samples.set(row.sampleId, []);
    samples.get(row.sampleId).push(row);
  }
  const copies = JSON.parse(JSON.stringify([...samples].map(([id, rows]) =>
    [id, { rows, share: state.shares[id] || null, record: state.records[id] || null,
      savedAt: tab.savedAt }])));
  saving = saving
    .then(() => transact("readwrite", async (store) => {
      store.put(tab, TAB_RECORD);
      for (const [id, copy] of copies) {
        const cached = await read(store, sampleRecord(id));
        store.put({ ...copy, rows: mergeRows(copy.rows, cached?.rows) }, sampleRecord(id));
      }
    }))
    .then(() => { document.body.dataset.savedAt = tab.savedAt; })
    .catch((error) => showAlert(`The session could not be saved in this browser: ${error.message}`));
  return saving;
}

// The rows this browser cached for a sample (any tab's), added to the page's.
export async function loadCachedSample(sampleId) {
  try {
    const cached = await transact("readonly", (store) => read(store, sampleRecord(sampleId)));
    if (cached?.rows) {
      adoptCachedRows(sampleId, cached.rows);
      if (cached.share && !state.shares[sampleId]) {
        update({ shares: { ...state.shares, [sampleId]: cached.share } }, { quiet: true });
      }
      if (cached.record && !state.records[sampleId]) {
        update({ records: { ...state.records, [sampleId]: cached.record } }, { quiet: true });
      }
    }
  } catch {
    // a cache: the server's copy comes next
  }
}

// Earlier releases kept one session for every tab: its rows become the samples' caches (file
// names and thumbnails kept); its reviewer and sample belong to no tab in particular, so none
// adopts them.
async function adoptLegacySession(store) {
  const legacy = await read(store, LEGACY_SESSION);
  if (!legacy?.rows?.length) return;
  const bySample = new Map();
  for (const row of legacy.rows) {
    if (!bySample.has(row.sampleId)) bySample.set(row.sampleId, []);
    bySample.get(row.sampleId).push({ ...row, decision: null });
  }
  for (const [id, rows] of bySample) {
    const cached = await read(store, sampleRecord(id));
    store.put({ rows: mergeRows(rows, cached?.rows), share: null, record: null, savedAt: legacy.savedAt },
      sampleRecord(id));
  }
  store.delete(LEGACY_SESSION);
}

// Tabs closed long ago leave their sessions behind: forgotten after a month.
function forgetOldTabs(store) {
  const cutoff = Date.now() - FORGET_TABS_AFTER_DAYS * 86_400_000;
  const request = store.openCursor();
  request.addEventListener("success", () => {
    const cursor = request.result;
    if (!cursor) return;
    if (String(cursor.key).startsWith("tab:") && cursor.key !== TAB_RECORD
      && Date.parse(cursor.value?.savedAt || 0) < cutoff) cursor.delete();
    cursor.continue();
  });
}

// This tab's session as it was before the reload, with its sample's cached rows; null for a
// new tab. The server's copy of the sample is read next (sample-sync.js).
export async function restoreTab() {
  try {
    const { tab, cached } = await transact("readwrite", async (store) => {
      await adoptLegacySession(store);
      forgetOldTabs(store);
      const saved = await read(store, TAB_RECORD);
      const copy = saved?.currentSample ? await read(store, sampleRecord(saved.currentSample)) : null;
      return { tab: saved, cached: copy };
    });
    if (!tab) return null;
    const rows = cached?.rows || [];
    const shares = cached?.share ? { [tab.currentSample]: cached.share } : {};
    const records = cached?.record ? { [tab.currentSample]: cached.record } : {};
    const from = { rows, currentSample: tab.currentSample };
    const selectedKey = rows.some((row) => row.key === tab.selectedKey) ? tab.selectedKey : firstCellKey(from);
    restore({ ...tab, shares, records }, rows, selectedKey);
    if (tab.reviewer && !el.reviewerInput.value && !el.reviewerInput.readOnly) el.reviewerInput.value = tab.reviewer;
    if (tab.currentSample) {
      el.sampleInput.value = tab.currentSample;
      setStatus(`Restored sample ${tab.currentSample}: ${plural(sampleRows().length, "image")} ` +
        `(saved ${humanTime(tab.savedAt)}).`);
    }
    return tab;
  } catch (error) {
    showAlert(`The saved session could not be read: ${error.message}`);
    return null;
  }
}

// Forgets this tab's session and this browser's copies of its samples (the server keeps them).
export async function clearSession(newSampleId) {
  if (state.run) return;
  if ((!state.exported || Object.keys(state.pending).length)
    && !window.confirm("Clear this session? Results not yet exported, and decisions not yet " +
      "stored, are lost here (decisions already stored on the server stay there).")) return;
  const samples = [...new Set(state.rows.map((row) => row.sampleId))];
  clearAll();
  await transact("readwrite", (store) => {
    store.delete(TAB_RECORD);
    for (const id of samples) store.delete(sampleRecord(id));
  });
  el.sampleInput.value = newSampleId();
  update({}); // the page shows the cleared session now that the browser's copy is gone
  setStatus("Session cleared.");
}
