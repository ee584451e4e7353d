// Keyboard review: J/→ and K/← move between cells, A/N/X decide the current cell and move on,
// U finds the next undecided cell. Decisions show at once and are stored on the server.
import { postReview } from "./api.js";
import { el, setStatus, showAlert } from "./dom.js";
import { select } from "./gallery.js";
import { saveSession, syncSample } from "./session-store.js";
import { amendmentFor } from "./sign-off.js";
import { galleryOrder, recordDecision, rowByKey, settleDecision, state } from "./state.js";

function move(step) {
  const order = galleryOrder().filter((row) => row.status === "ok");
  if (!order.length) return;
  const at = order.findIndex((row) => row.key === state.selectedKey);
  const next = at < 0 ? 0 : Math.min(order.length - 1, Math.max(0, at + step));
  select(order[next].key, { focus: true });
}

function nextUndecided() {
  const order = galleryOrder().filter((row) => row.status === "ok");
  const at = order.findIndex((row) => row.key === state.selectedKey);
  const rotated = [...order.slice(at + 1), ...order.slice(0, at + 1)];
  const next = rotated.find((row) => !row.decision);
  if (next) {
    select(next.key, { focus: true });
  } else {
    setStatus("Every cell of this sample has a decision.");
  }
}

export async function decide(decision) {
  const row = rowByKey(state.selectedKey);
  if (!row || row.status !== "ok") return;
  const reviewer = el.reviewerInput.value.trim();
  if (!reviewer) {
    showAlert("Enter the reviewer's name before recording decisions.");
    el.reviewerInput.focus();
    return;
  }
  showAlert("");
  // A signed-off sample changes only with a reason (an amendment); cancelled: nothing changes.
  const amendment = await amendmentFor(row, decision);
  if (amendment === null) return;
  const comment = el.detail.querySelector(".comment")?.value.trim() || "";
  const record = { decision, reviewer, comment, time: new Date().toISOString(), stored: false };
  recordDecision(row.key, record);
  move(1); // draws the decision with the move
  saveSession();
  let outcome;
  try {
    const stored = await postReview({
      request_id: row.requestId, image_sha256: row.sha256, sample_id: row.sampleId,
      decision, reviewer, comment, ...(amendment ? { amendment } : {}),
    });
    outcome = { stored: true, id: stored.id, time: new Date(stored.time).toISOString() };
  } catch (error) {
    outcome = { error: error.message };
    showAlert(`The decision on ${row.filename} was not stored: ${error.message}`);
  }
  settleDecision(record, outcome);
  saveSession();
  if (outcome.stored && !state.run) await syncSample(row.sampleId); // a run syncs at its end
}

function typing(target) {
  return target instanceof HTMLElement
    && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function wireReviewKeys() {
  document.addEventListener("keydown", (event) => {
    if (el.workstation.hidden || document.querySelector("dialog[open]") || event.altKey || event.ctrlKey
      || event.metaKey) return;
    if (typing(event.target)) return;
    const key = event.key.toLowerCase();
    const actions = {
      j: () => move(1), arrowright: () => move(1), k: () => move(-1), arrowleft: () => move(-1),
      a: () => decide("ALL"), n: () => decide("HEM"), x: () => decide("not_assessable"),
      u: () => nextUndecided(),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });
}
