// Sample ids as this server takes them. The lab's rule (LEUKOLENS_SAMPLE_ID_PATTERN) comes with
// the page, on the sample id field, in the server's words: no copy of it lives in a script.
import { el } from "./dom.js";

const { pattern, inWords } = el.sampleInput.dataset;

// The server matches the whole id with Python's re. Read with the u flag, a pattern in syntax
// JavaScript does not share (a named group (?P<n>), \Z, an inline (?i)) fails to compile rather
// than mean something else: the page then leaves the judgement to the server, whose refusal it
// shows.
function compiled(source) {
  try {
    return new RegExp(`^(?:${source})$`, "u");
  } catch {
    return null;
  }
}

const rule = compiled(pattern);

// Why the page would not send this id, or "". The server checks every id again, with its rule
// that no name stands beside a date.
export function sampleIdProblem(sampleId) {
  if (rule === null || rule.test(sampleId)) return "";
  return `The sample id must be a lab number (${inWords}), never a patient's name.`;
}

// A new sample's id from the clock, where the lab's rule takes one; else empty, for the lab's
// own number.
export function newSampleId() {
  const now = new Date();
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  const sampleId = `S-${stamp}`;
  return sampleIdProblem(sampleId) ? "" : sampleId;
}
