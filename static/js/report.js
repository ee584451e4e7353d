// The sample's records: the printed report (the sample on screen alone, with a sign-off line)
// and the lab CSV (one row per cell, then the sample's summary).
import { el, optionFor } from "./dom.js";
import { saveSession } from "./session-store.js";
import { countEntries, headlineEntries, shareSentences } from "./share.js";
import { markExported, sampleRows, state } from "./state.js";
import { DECISION_WORDS, STATE_WORDS, rowState } from "./words.js";

// The printed record of the sample on screen, and only that sample: per cell its file name,
// thumbnail, suggestion, decision, comment, reviewer and time; the counts, the headline, the
// model; a sign-off line.
export function renderReport() {
  const id = state.currentSample;
  el.report.replaceChildren();
  if (!id) return;
  const rows = sampleRows(id).sort((a, b) => a.index - b.index);
  const printed = new Date();
  const page = document.createElement("article");
  page.className = "report-sample";
  page.dataset.sample = id;
  const title = document.createElement("h1");
  title.textContent = `LeukoLens review report: sample ${id}`;
  const meta = document.createElement("p");
  const reviewers = [...new Set(rows.filter((r) => r.decision).map((r) => r.decision.reviewer))];
  const models = [...new Set(rows.filter((r) => r.prediction).map((r) =>
    `${optionFor(r.prediction.model.id)?.dataset.name || r.prediction.model.id} v${r.prediction.model.version}` +
    `${r.prediction.tta ? " with TTA" : ""}`))];
  meta.textContent = `Printed ${printed.toISOString().slice(0, 16).replace("T", " ")} UTC · ` +
    `reviewers: ${reviewers.join(", ") || "none yet"} · model: ${models.join(", ") || "–"}`;
  const table = document.createElement("table");
  table.className = "report-counts";
  for (const [term, value] of [...headlineEntries(id), ...countEntries(rows)]) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = term;
    const td = document.createElement("td");
    td.textContent = value;
    tr.append(th, td);
    table.appendChild(tr);
  }
  const reading = document.createElement("p");
  reading.className = "report-share";
  reading.textContent = shareSentences(id);
  const cells = document.createElement("table");
  cells.className = "report-cells";
  const head = document.createElement("tr");
  for (const name of ["#", "Image", "File", "Suggestion", "Decision", "Reviewer, time", "Comment"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = name;
    head.appendChild(th);
  }
  cells.appendChild(head);
  for (const row of rows) {
    const tr = document.createElement("tr");
    const image = document.createElement("td");
    if (row.thumb) {
      const img = document.createElement("img");
      img.src = row.thumb;
      img.alt = row.filename;
      image.appendChild(img);
    }
    const when = row.decision ? new Date(row.decision.time).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "";
    const texts = [String(row.index + 1), null, row.filename, STATE_WORDS[rowState(row)],
      row.decision ? DECISION_WORDS[row.decision.decision] : "undecided",
      row.decision ? `${row.decision.reviewer}, ${when}` : "", row.decision?.comment || ""];
    for (const text of texts) {
      if (text === null) {
        tr.appendChild(image);
        continue;
      }
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    cells.appendChild(tr);
  }
  const performance = document.createElement("p");
  const modelIds = [...new Set(rows.filter((r) => r.prediction).map((r) => r.prediction.model.id))];
  performance.textContent = modelIds.map((m) => optionFor(m)?.dataset.errorRates || m).join(" ");
  const signOff = document.createElement("p");
  signOff.className = "report-sign-off";
  signOff.textContent = "Reviewed and signed off by: ______________________________   " +
    "Date and time: ____________________";
  const notice = document.createElement("p");
  notice.className = "report-notice";
  notice.textContent = "Research and screening aid, not a diagnosis. Every result must be " +
    "reviewed by a qualified person; the counts above are the reviewer's and the model's, " +
    "not a clinical differential.";
  page.append(title, meta, table, reading, cells, performance, signOff, notice);
  el.report.appendChild(page);
}

function csvCell(value) {
  let text = String(value ?? "");
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`; // keep spreadsheets from running formulas
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

const LAB_COLUMNS = ["date_time_utc", "sample_id", "request_id", "image_sha256", "filename",
  "status", "model_id", "model_name", "model_version", "tta", "calibrated", "probability_all",
  "threshold", "assessable", "label", "suggestion", "warnings", "decision", "reviewer",
  "decision_time_utc", "decision_stored", "comment", "error", "note"];

// One row per cell, then the sample's summary row (status "summary"). A not-assessable cell's
// probability describes nothing useful and is left out (the JSON API still has it).
function labRecord(rows, sampleId) {
  const lines = [LAB_COLUMNS.join(",")];
  for (const row of rows) {
    const p = row.prediction;
    const option = p ? optionFor(p.model.id) : null;
    const shown = p && p.assessable;
    lines.push([
      row.time, row.sampleId, row.requestId, row.sha256 || "", row.filename, row.status,
      p?.model.id, option?.dataset.name, p?.model.version, p ? String(p.tta) : "",
      option ? option.dataset.calibrated : "", shown ? p.probability_all.toFixed(6) : "",
      p?.threshold.toFixed(6), p ? String(p.assessable) : "", shown ? p.label || "" : "",
      STATE_WORDS[rowState(row)],
      p ? p.warnings.map((w) => w.code).join(";") : "", row.decision?.decision,
      row.decision?.reviewer, row.decision?.time, row.decision ? String(row.decision.stored) : "",
      row.decision?.comment, row.error ? `${row.error.status_code}: ${row.error.detail}` : "", "",
    ].map(csvCell).join(","));
  }
  const summary = [...headlineEntries(sampleId), ...countEntries(rows)]
    .map(([term, value]) => `${term}: ${value}`).join("; ");
  const reading = shareSentences(sampleId);
  const fields = Object.fromEntries(LAB_COLUMNS.map((name) => [name, ""]));
  Object.assign(fields, { date_time_utc: new Date().toISOString(), sample_id: sampleId,
    status: "summary", note: `${summary}. ${reading}` });
  lines.push(LAB_COLUMNS.map((name) => csvCell(fields[name])).join(","));
  return `${lines.join("\n")}\n`;
}

function downloadCsv() {
  const rows = sampleRows().sort((a, b) => a.index - b.index);
  const blob = new Blob([labRecord(rows, state.currentSample)], { type: "text/csv" });
  const link = document.createElement("a");
  const stamp = new Date().toISOString().replace(/[-:]/g, "").slice(0, 13);
  link.href = URL.createObjectURL(blob);
  link.download = `leukolens-${state.currentSample}-${stamp}Z.csv`;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  markExported();
  saveSession();
}

export function wireReport() {
  el.byId("csv-button").addEventListener("click", downloadCsv);
  el.byId("print-button").addEventListener("click", () => {
    renderReport();
    markExported();
    saveSession();
    window.print();
  });
  window.addEventListener("beforeprint", renderReport);
}
