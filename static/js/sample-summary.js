// The sample's summary: its counts and figures, the reading of its blast share, and the two
// lists of samples (this browser's and the server's).
import { el } from "./dom.js";
import {
  countEntries, headline, headlineEntries, modelRates, sampleCounts, shareSentences,
} from "./share.js";
import { sampleRows, state } from "./state.js";
import { plural } from "./words.js";

// The record's counts, then (on the page only) the decisions not yet stored, said apart.
export function renderCounts() {
  el.counts.replaceChildren();
  const rows = sampleRows();
  const entries = [...headlineEntries(state.currentSample), ...countEntries(rows)];
  const pending = rows.filter((row) => state.pending[row.key]);
  const refused = pending.filter((row) => state.pending[row.key].status === "refused").length;
  if (pending.length) {
    entries.push(["Not yet stored (not counted)", refused
      ? `${pending.length} (${refused} refused: see the cell)` : String(pending.length)]);
  }
  el.counts.dataset.stored = String(sampleCounts(rows).decidedTotal);
  el.counts.dataset.pending = String(pending.length);
  for (const [term, value] of entries) {
    const wrapper = document.createElement("div");
    if (term.startsWith("Not yet stored")) wrapper.className = "counts-pending";
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    wrapper.append(dt, dd);
    el.counts.appendChild(wrapper);
  }
}

export function renderShare() {
  const figures = headline(state.currentSample);
  el.shareReading.textContent = shareSentences(state.currentSample);
  el.shareReading.dataset.tooWide = figures.estimate && !figures.estimate.readable ? "true" : "false";
  renderModelRates(el.byId("sample-error-rates"), modelRates());
}

// Each model of the sample with its one sentence of error rates (the same on the model
// selector, the printed report, the model card and the README).
export function renderModelRates(target, models) {
  target.replaceChildren(...models.map((model) => {
    const line = document.createElement("span");
    line.className = "model-rates";
    const name = document.createElement("strong");
    name.textContent = `${model.name} v${model.version}: `;
    const sentence = document.createElement("span");
    sentence.className = "error-rates-sentence";
    sentence.textContent = model.sentence;
    line.append(name, sentence);
    return line;
  }));
}

// Every sample the server holds (newest change first) and this browser's, in both lists.
export function renderSampleSelect() {
  const known = new Map(state.serverSamples.map((s) => [s.sample_id, s]));
  const local = [...new Set(state.rows.map((row) => row.sampleId))];
  const ids = [...new Set([...local.filter((id) => !known.has(id)), ...known.keys()])];
  const label = (id) => {
    const remote = known.get(id);
    // Short: the list stays readable on a phone.
    if (remote) return `${id} (${remote.reviewed} of ${remote.cells} reviewed)`;
    return `${id} (${plural(sampleRows(id).filter((row) => row.status === "ok").length, "cell")})`;
  };
  el.sampleSelect.replaceChildren(...ids.map((id) => {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = label(id);
    option.selected = id === state.currentSample;
    return option;
  }));
  const keep = el.openSelect.value;
  const first = document.createElement("option");
  first.value = "";
  const signedOut = ["key", "badKey", "signOn"].includes(state.identity.problem);
  first.textContent = ids.length ? "Choose a sample…"
    : signedOut ? "Sign in to see the server's samples" : "No sample on the server yet";
  el.openSelect.replaceChildren(first, ...ids.map((id) => {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = label(id);
    return option;
  }));
  el.openSelect.value = ids.includes(keep) ? keep : "";
}
