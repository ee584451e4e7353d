// The sample's life cycle on the page: its status (preliminary, final, amended), the "Sign off"
// action with a confirmation that names the counts, and the reason a decision on a signed-off
// sample must give (an amendment, sent as any decision is: decisions.js). The server holds the
// record; the page asks and shows. The signer is whom the server names (whoami: a reviewer's
// own key or the lab's sign-on), or the typed name where it authenticates nobody.
import { postSignOff } from "./api.js";
import { el, setStatus, showAlert } from "./dom.js";
import { askToSignIn, nameFromServer } from "./identity.js";
import { signOffRefusal } from "./refusals.js";
import { syncSample } from "./sample-sync.js";
import { headline } from "./share.js";
import { sampleRows, state } from "./state.js";
import { DECISION_WORDS, cellName, humanTime, plural } from "./words.js";

export const STATUS_WORDS = { preliminary: "preliminary", final: "final", amended: "amended" };

export const sampleRecord = (sampleId = state.currentSample) => state.records[sampleId] || null;
export const sampleStatus = (sampleId = state.currentSample) => sampleRecord(sampleId)?.status || "preliminary";

// One line on where the sample is: on screen and at the head of the printed report.
export function statusSentence(record) {
  const signed = record?.signed_off;
  if (!record || record.status === "preliminary" || !signed) {
    return "Preliminary — not signed off; its figures may still change.";
  }
  const by = `${signed.by}, ${humanTime(signed.time)}`;
  if (record.status === "amended") {
    return `Amended — changed after the sign-off by ${by} ` +
      `(${plural(record.amendments.length, "amendment")}); not signed off since.`;
  }
  const left = signed.undecided_cells ? `; ${plural(signed.undecided_cells, "cell")} left undecided` : "";
  return `Final — signed off by ${by}${left}.`;
}

// The counts the confirmation names, from the page's rows: the server's stored decisions
// alone; a decision still pending (or refused) is named apart and holds the sign-off back.
function signOffCounts(sampleId) {
  const rows = sampleRows(sampleId).filter((row) => row.status === "ok");
  const tally = { ALL: 0, HEM: 0, not_assessable: 0 };
  let unstored = 0;
  for (const row of rows) {
    if (state.pending[row.key]) unstored += 1;
    if (row.decision) tally[row.decision.decision] += 1;
  }
  const decided = tally.ALL + tally.HEM + tally.not_assessable;
  return { cells: rows.length, tally, undecided: rows.length - decided, unstored };
}

// Why this tab cannot sign now (the shared key names nobody; a keyed server wants a sign-in);
// "" when it can.
function cannotSign() {
  if (state.identity.source === "shared_key") return "The lab's shared key cannot sign off: sign in with your own key.";
  if (nameFromServer() && !state.identity.reviewer) return "Sign in to sign off: the signer's name comes with the sign-in.";
  return "";
}

export function renderSignOff() {
  const id = state.currentSample;
  const record = sampleRecord(id);
  const status = sampleStatus(id);
  const line = el.byId("sample-status");
  line.dataset.status = status;
  line.textContent = statusSentence(record);
  const button = el.byId("sign-off-button");
  button.textContent = status === "amended" ? "Sign off again…" : "Sign off…";
  const why = cannotSign();
  button.disabled = Boolean(state.run) || !id || status === "final" || !record || Boolean(why);
  button.title = why;
}

function openSignOff() {
  const id = state.currentSample;
  if (!id || state.run) return;
  const c = signOffCounts(id);
  const dialog = el.byId("sign-off-dialog");
  dialog.querySelector(".dialog-sample").textContent = id;
  el.byId("sign-off-counts").textContent = `${plural(c.cells, "cell")}: ` +
    `${c.tally.ALL} confirmed ALL-like, ${c.tally.HEM} confirmed normal, ` +
    `${c.tally.not_assessable} not assessable, ${c.undecided} undecided.`;
  el.byId("sign-off-headline").textContent = `Reviewer-confirmed ALL-like share: ${headline(id).text}.`;
  const warning = el.byId("sign-off-warning");
  warning.hidden = c.unstored === 0;
  warning.textContent = c.unstored
    ? `${plural(c.unstored, "decision")} not yet stored on the server (pending or refused): ` +
      "wait until stored, or settle the refused ones, then sign off." : "";
  const leave = el.byId("sign-off-leave");
  leave.checked = false;
  el.byId("sign-off-leave-label").hidden = c.undecided === 0;
  el.byId("sign-off-leave-text").textContent =
    `Sign off with ${plural(c.undecided, "cell")} left undecided (the report states it)`;
  el.byId("sign-off-comment").value = "";
  const confirm = el.byId("sign-off-confirm");
  const ready = () => { confirm.disabled = c.unstored > 0 || (c.undecided > 0 && !leave.checked); };
  leave.onchange = ready;
  ready();
  dialog.returnValue = "";
  dialog.showModal();
}

async function signOff(sampleId) {
  const body = {
    comment: el.byId("sign-off-comment").value.trim(),
    undecided_cells: el.byId("sign-off-leave").checked ? "leave" : "refuse",
  };
  if (!nameFromServer()) { // the server names nobody: the typed name signs
    const typed = el.reviewerInput.value.trim();
    if (!typed) {
      showAlert("Enter the reviewer's name before signing off: it is the signer's.");
      el.reviewerInput.focus();
      return;
    }
    body.reviewer = typed;
  }
  const answer = await postSignOff(sampleId, body);
  if (answer.ok) {
    showAlert("");
    setStatus(`Sample ${sampleId} signed off by ${answer.body.by}, ${humanTime(answer.body.time)}.`);
  } else {
    const refusal = signOffRefusal(answer);
    showAlert(`Sample ${sampleId} was not signed off: ${refusal.words}`);
    if (refusal.signIn) askToSignIn();
  }
  await syncSample(sampleId);
}

// Why a decision changes a signed-off sample: undefined when the sample is not signed off (no
// reason is asked), else a promise of the reason, or of null when the reviewer cancels.
export function amendmentFor(row, decision) {
  if (sampleStatus(row.sampleId) === "preliminary") return undefined;
  const signed = sampleRecord(row.sampleId).signed_off;
  const dialog = el.byId("amend-dialog");
  if (dialog.open) return Promise.resolve(null); // one reason at a time
  const before = row.decision ? DECISION_WORDS[row.decision.decision] : "undecided";
  el.byId("amend-what").textContent = `Sample ${row.sampleId} was signed off by ${signed.by}, ` +
    `${humanTime(signed.time)}. Changing cell ${cellName(row)}, from ${before} to ` +
    `${DECISION_WORDS[decision]} is an amendment: give the reason; the report lists it.`;
  const reason = el.byId("amend-reason");
  reason.value = "";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const given = reason.value.trim();
      resolve(dialog.returnValue === "confirm" && given ? given : null);
    }, { once: true });
  });
}

export function wireSignOff() {
  el.byId("sign-off-button").addEventListener("click", openSignOff);
  const dialog = el.byId("sign-off-dialog");
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "confirm" && state.currentSample) signOff(state.currentSample);
  });
}
