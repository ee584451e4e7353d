// A decision is a decision once the server has stored it. Until then it is pending: drawn
// apart, counted nowhere (no count, headline, CSV or report), kept in this tab's session, and
// sent under its own Idempotency-Key, so that a retry after a lost answer is stored once. A
// 5xx or a lost connection is retried by itself, waiting longer each time; a refusal is said
// in the lab's words (refusals.js) with a retry and, where it would help, a sign-in. A comment
// changed after a decision is a new decision record with that comment. On a signed-off sample a
// decision is an amendment: its reason is asked first (sign-off.js) and travels with it, pending
// like any other until the server stored it.
import { newIdempotencyKey, postReview } from "./api.js";
import { el, showAlert } from "./dom.js";
import { askToSignIn, nameFromServer } from "./identity.js";
import { decisionRefusal } from "./refusals.js";
import { decisionFromServer, syncSample } from "./sample-sync.js";
import { saveSession } from "./session-store.js";
import { amendmentFor } from "./sign-off.js";
import { rowByKey, setDraft, setPending, settlePending, state } from "./state.js";
import { cellName } from "./words.js";

const FIRST_RETRY_MS = 1000;
const LONGEST_RETRY_MS = 30_000;
const sending = new Set(); // row keys with a request on its way
const retries = new Map(); // row key -> the timer of its next try

// The name a decision goes out under: the server's (the body carries none), or the one typed.
function reviewerName() {
  if (nameFromServer()) return { name: state.identity.reviewer || "" };
  const typed = el.reviewerInput.value.trim();
  if (!typed) return { problem: "Enter the reviewer's name before recording decisions." };
  if (typed.includes(",")) return { problem: "Write one person's name as the reviewer, without a comma." };
  return { name: typed };
}

// The comment a decision on the cell carries: the one typed for it, else its last decision's.
function commentFor(rowKey) {
  if (rowKey in state.drafts) return state.drafts[rowKey];
  return (state.pending[rowKey] || rowByKey(rowKey)?.decision)?.comment || "";
}

function queue(rowKey, decision, comment, reviewer, amendment) {
  setPending(rowKey, { decision, comment, reviewer, key: newIdempotencyKey(),
    time: new Date().toISOString(), status: "sending", reason: "", attempts: 0,
    ...(amendment ? { amendment } : {}) }, { quiet: true });
  saveSession();
  send(rowKey);
  return true;
}

// Queues a decision on the cell; false when it cannot be made (no reviewer name). On a
// signed-off sample the reviewer gives the reason first: then a promise of whether it was
// queued (false: cancelled, nothing changes).
export function decide(rowKey, decision, comment = commentFor(rowKey)) {
  const row = rowByKey(rowKey);
  if (!row || row.status !== "ok") return false;
  const who = reviewerName();
  if (who.problem) {
    showAlert(who.problem);
    if (!el.reviewerInput.readOnly) el.reviewerInput.focus();
    return false;
  }
  showAlert("");
  const asking = amendmentFor(row, decision);
  if (asking === undefined) return queue(rowKey, decision, comment, who.name);
  return asking.then((amendment) => amendment !== null && queue(rowKey, decision, comment, who.name, amendment));
}

function refused(row, pending, answer) {
  const refusal = decisionRefusal(answer);
  if (refusal.retry) {
    const attempts = (pending.attempts || 0) + 1;
    const wait = Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempts - 1));
    settlePending(row.key, pending.key, { status: "waiting", reason: refusal.words, attempts });
    retries.set(row.key, setTimeout(() => send(row.key), wait));
    return;
  }
  settlePending(row.key, pending.key, { status: "refused", reason: refusal.words,
    signIn: Boolean(refusal.signIn), conflict: Boolean(refusal.conflict),
    signedOff: Boolean(refusal.signedOff) });
  showAlert(`The decision on cell ${cellName(row)}, was not stored: ${refusal.words}`);
  if (answer.status === 401) askToSignIn();
}

// Sends the cell's pending decision, and the one after it if the reviewer made another
// meanwhile; one request per cell at a time.
async function send(rowKey) {
  clearTimeout(retries.get(rowKey));
  retries.delete(rowKey);
  if (sending.has(rowKey)) return;
  sending.add(rowKey);
  try {
    for (;;) {
      const pending = state.pending[rowKey];
      const row = rowByKey(rowKey);
      if (!pending || pending.status === "refused" || !row) return;
      const body = { request_id: row.requestId, image_sha256: row.sha256, sample_id: row.sampleId,
        decision: pending.decision, comment: pending.comment };
      if (!nameFromServer()) body.reviewer = pending.reviewer;
      if (pending.amendment) body.amendment = pending.amendment;
      const answer = await postReview(body, pending.key);
      if (answer.ok) {
        settlePending(rowKey, pending.key, { stored: decisionFromServer(answer.body) });
        saveSession();
        if (state.pending[rowKey]) continue; // a newer decision on the cell waits its turn
        if (!state.run) await syncSample(row.sampleId); // a run syncs at its end
        return;
      }
      if (state.pending[rowKey]?.key !== pending.key) continue; // replaced meanwhile
      refused(row, pending, answer);
      saveSession();
      return;
    }
  } finally {
    sending.delete(rowKey);
  }
}

// A decision refused for where the sample stands (signed off meanwhile, or not signed off after
// all): the sample is read again, and the reason asked for where it is signed off now, or
// dropped where it is not. undefined: nothing to ask; null: the reviewer cancelled.
async function reasonNow(rowKey, pending) {
  const row = rowByKey(rowKey);
  if (!pending.signedOff || !row) return pending.amendment;
  await syncSample(row.sampleId);
  return amendmentFor(rowByKey(rowKey) || row, pending.decision);
}

// The reviewer asks again (a refusal's Retry, or after signing in). A key the server holds for
// another decision (409) is replaced; any other refusal stored nothing, so the key stays.
export async function retry(rowKey) {
  const pending = state.pending[rowKey];
  if (!pending) return;
  const who = reviewerName();
  if (who.problem) {
    showAlert(who.problem);
    return;
  }
  showAlert("");
  const amendment = await reasonNow(rowKey, pending);
  const now = state.pending[rowKey];
  if (amendment === null || !now || now.key !== pending.key) return; // cancelled, or replaced
  settlePending(rowKey, pending.key, { status: "sending", reason: "", attempts: 0,
    reviewer: who.name, key: pending.conflict ? newIdempotencyKey() : pending.key, conflict: false,
    signedOff: false, amendment: amendment || undefined });
  saveSession();
  send(rowKey);
}

// After a sign-in: every decision refused for want of one, and every one waiting, goes again.
export function retryAfterSignIn() {
  for (const [rowKey, pending] of Object.entries(state.pending)) {
    if (pending.status !== "refused" || pending.signIn) retry(rowKey);
  }
}

// After a reload: the decisions this tab had not got stored are sent again (a refused one
// waits for the reviewer).
export function resumePending() {
  for (const [rowKey, pending] of Object.entries(state.pending)) {
    if (pending.status !== "refused") send(rowKey);
  }
}

// The comment box of a cell changed (on leaving it, or Enter).
export function commentChanged(rowKey, text) {
  const comment = text.trim();
  const pending = state.pending[rowKey];
  const current = pending || rowByKey(rowKey)?.decision;
  if (!current) {
    setDraft(rowKey, comment);
    saveSession();
    return;
  }
  if ((current.comment || "") === comment) return;
  if (pending && pending.status === "refused") { // nothing stored yet: the decision itself changes
    settlePending(rowKey, pending.key, { comment });
    saveSession();
    return;
  }
  decide(rowKey, current.decision, comment);
}
