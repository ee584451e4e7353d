// Who this tab is to the server, and signing in. GET /api/v1/whoami says the name a decision is
// recorded under: with reviewers' keys or the lab's sign-on the reviewer field shows it, read
// only, and nobody types it; on a server that authenticates nobody the reviewer types a name.
// A server that wants a key asks for it here; the key is kept for this tab alone
// (tab-session.js), and the sample list is read again as soon as it is accepted.
import { fetchWhoami } from "./api.js";
import { el } from "./dom.js";
import { signInReason } from "./refusals.js";
import { setIdentity, state } from "./state.js";
import { apiKey, keepApiKey } from "./tab-session.js";

const page = document.body.dataset;
const keyRequired = () => page.keyRequired === "true";
// Where the server, not the reviewer, says who decided.
export const nameFromServer = () => page.identity === "reviewer_keys" || page.identity === "sign_on";

const dialog = el.byId("sign-in-dialog");
const keyInput = el.byId("api-key");
const problem = el.byId("sign-in-problem");
const signedInCallbacks = [];

export function onSignedIn(callback) {
  signedInCallbacks.push(callback);
}

// Asks the server; true when it names this tab (a reviewer, the shared key or an open server).
export async function identify() {
  const answer = await fetchWhoami();
  if (answer.ok) {
    const { reviewer, reviewer_source: source, durable } = answer.body;
    setIdentity({ source, reviewer, durable, problem: source === "shared_key" ? "sharedKey" : null });
    return true;
  }
  let why = "unreachable";
  if (answer.status === 401 && /sign-on/.test(answer.detail)) why = "signOn"; // the key was fine
  else if (answer.status === 401) why = apiKey() ? "badKey" : "key";
  setIdentity({ source: "unknown", reviewer: null, problem: why });
  return false;
}

export function renderIdentity() {
  const { source, reviewer, problem: why } = state.identity;
  const input = el.reviewerInput;
  const hint = el.byId("reviewer-hint");
  input.readOnly = nameFromServer();
  if (input.readOnly) {
    input.value = reviewer || "";
    input.placeholder = "sign in first";
  }
  if (source === "reviewer_key") hint.textContent = "Decisions are recorded under this name: it comes with your key.";
  else if (source === "sso_header") hint.textContent = "Decisions are recorded under this name: it comes from the lab's sign-on.";
  else if (why === "sharedKey") hint.textContent = "The lab's shared key records no decisions: sign in with your own key.";
  else if (page.identity === "sign_on") hint.textContent = "Sign in through the lab's sign-on: the name comes from it.";
  else if (nameFromServer()) hint.textContent = "Sign in: the name comes with your own key.";
  else hint.textContent = "One person's name, as the record should show it.";
  const button = el.byId("sign-in-button");
  button.hidden = !(keyRequired() || why === "signOn");
  button.textContent = source === "reviewer_key" ? "Sign in with another key" : "Sign in";
  document.body.dataset.signedIn = String(Boolean(reviewer) || source === "free_text");
}

// Opens the sign-in prompt, saying why (the tab's identity tells).
export function askToSignIn() {
  const why = state.identity.problem || "key";
  el.byId("sign-in-reason").textContent = signInReason[why] || signInReason.key;
  el.byId("sign-in-key-field").hidden = !keyRequired();
  el.byId("sign-in-submit").textContent = keyRequired() ? "Sign in" : "Reload the page";
  problem.hidden = true;
  keyInput.value = "";
  if (!dialog.open) dialog.showModal();
  (keyRequired() ? keyInput : el.byId("sign-in-submit")).focus();
}

async function submit(event) {
  event.preventDefault();
  if (!keyRequired()) {
    window.location.reload();
    return;
  }
  const key = keyInput.value.trim();
  if (!key) {
    problem.textContent = "Enter your key.";
    problem.hidden = false;
    keyInput.focus();
    return;
  }
  const before = { key: apiKey(), identity: state.identity };
  keepApiKey(key);
  if (!(await identify())) {
    problem.textContent = signInReason[state.identity.problem] || signInReason.badKey;
    problem.hidden = false;
    keepApiKey(before.key); // the tab stays as it was
    setIdentity(before.identity);
    keyInput.select();
    return;
  }
  dialog.close();
  for (const callback of signedInCallbacks) await callback();
}

export function wireIdentity() {
  el.byId("sign-in-form").addEventListener("submit", submit);
  el.byId("sign-in-cancel").addEventListener("click", () => dialog.close());
  el.byId("sign-in-button").addEventListener("click", askToSignIn);
}
