// What a technician reads when the server refuses or cannot be reached: the lab's words, never
// the API's (no setting names, no field names). Each says what happened and what to do.

const SIGN_ON = () => document.body.dataset.identity === "sign_on";

// A decision the server did not store: { words, signIn (a sign-in would help), retry (worth
// retrying by itself: the server or the network failed, not the decision), conflict (its
// Idempotency-Key holds another decision), signedOff (where the sample stands refused it: its
// retry reads the sample again and asks for, or drops, the amendment's reason) }.
export function decisionRefusal(answer) {
  const { status, detail } = answer;
  if (status === 0) return { words: "The server could not be reached; trying again.", retry: true };
  if (status >= 500) return { words: "The server could not store it just now; trying again.", retry: true };
  if (status === 401) {
    return SIGN_ON()
      ? { words: "You are not signed in through the lab's sign-on. Sign in, then reload this page.", signIn: true }
      : { words: "This server needs your own key to record decisions: sign in.", signIn: true };
  }
  if (status === 403 && /shared API key/.test(detail)) {
    return { words: "The lab's shared key cannot record decisions: sign in with your own key.", signIn: true };
  }
  if (status === 403 && /sign-on proxy/.test(detail)) {
    return { words: "Your sign-in could not be confirmed: open the page through the lab's sign-on.", signIn: true };
  }
  if (status === 403 && /authenticated as/.test(detail)) {
    return { words: "Your key belongs to another reviewer: decisions are recorded under that name. Retry to record it under it." };
  }
  if (status === 403) return { words: "This sign-in may not record decisions here.", signIn: true };
  if (status === 409 && /signed off by/.test(detail)) {
    return { words: "The sample was signed off meanwhile: a change now needs a reason. Retry to give it.",
      signedOff: true };
  }
  if (status === 409 && /not signed off/.test(detail)) {
    return { words: "The sample is not signed off, so the decision needs no reason. Retry to send it without one.",
      signedOff: true };
  }
  if (status === 409) {
    return { words: "The server already holds a different decision sent under this one's reference. Check the cell and retry (it is sent as a new decision).",
      conflict: true };
  }
  if (status === 422 && /no prediction/.test(detail)) {
    return { words: "This cell is no longer in the sample on the server (its upload was withdrawn). Reopen the sample." };
  }
  if (status === 422 && /reviewer/.test(detail)) {
    return { words: "The reviewer's name was not accepted: write one person's name, without a comma or special characters." };
  }
  return { words: `The server did not accept the decision (error ${status}).` };
}

// A sign-off the server did not record: { words, signIn }.
export function signOffRefusal(answer) {
  const { status, detail } = answer;
  if (status === 0) {
    return { words: "The server could not be reached. Check the sample's status, then sign off again if it is not final." };
  }
  if (status >= 500) return { words: "The server could not record it just now. Try again in a moment." };
  if (status === 409 && /undecided/.test(detail)) {
    return { words: "Some cells have no decision yet: decide them, or sign off leaving them undecided." };
  }
  if (status === 409 && /nothing changed since/.test(detail)) {
    return { words: "It is already signed off, and nothing changed since." };
  }
  if (status === 422 && /reviewer/.test(detail)) {
    return { words: "The signer's name was not accepted: write one person's name, without a comma or special characters." };
  }
  if (status === 404) return { words: "The server holds no cell of this sample." };
  const { words, signIn } = decisionRefusal(answer);
  return { words: words.replace("record decisions", "sign off"), signIn };
}

// A cancelled upload the server kept: why, and that the sample counts it.
export function withdrawalRefusal(answer) {
  if (answer.status === 409 && /signed off/.test(answer.detail)) {
    return "The sample is signed off, so the cancelled images stay in it (a change after sign-off " +
      "is an amendment of a cell's decision).";
  }
  if (answer.status === 403) {
    return "The cancelled images were uploaded under another sign-in, so they stay in the sample.";
  }
  if (answer.status === 409) {
    return "A cancelled image already has a stored decision, so it stays in the sample: record " +
      "it as not assessable if it should not count.";
  }
  return "The cancelled images could not be withdrawn: the server may count them. Reload to see what it holds.";
}

// An analysis the server refused as a whole (each file's own refusal is shown on its row).
export function analysisRefusal(error) {
  if (error.status === 0) return "The server could not be reached. Check the connection and analyse again.";
  if (error.status === 401) return SIGN_ON() ? "Sign in through the lab's sign-on, then reload this page."
    : "This server needs a key to analyse images: sign in.";
  if (error.status === 403) return "This sign-in may not analyse images here.";
  if (error.status === 409 && /signed off/.test(error.message)) {
    return "This sample is signed off: new images would change it. Start a new sample for them.";
  }
  if (error.status === 503) return "The server is busy: analyse again in a moment.";
  if (error.status === 413) return "The images are too large for the server. Send fewer or smaller files.";
  return `The server could not analyse the images: ${error.message}`;
}

export const signInReason = {
  key: "This server needs a key. Enter your own key to see its samples and record decisions under your name.",
  sharedKey: "You are signed in with the lab's shared key: it shows the samples but cannot record decisions. Enter your own key to record them.",
  badKey: "That key was not accepted. Check it and try again.",
  signOn: "Nobody is signed in through the lab's sign-on. Sign in there, then reload this page.",
  unreachable: "The server could not be reached. Check the connection and try again.",
};
