// The sample's records: the printed report (the sample on screen alone: its status, figures,
// cells, amendments and sign-offs, every page headed by the sample id and status and numbered)
// and the lab CSV (one row per cell, then the sample's summary).
import { el, optionFor } from "./dom.js";
import { saveSession } from "./session-store.js";
import { countEntries, headlineEntries, modelRates, shareSentences } from "./share.js";
import { sampleRecord, sampleStatus, statusSentence } from "./sign-off.js";
import { renderModelRates } from "./sample-summary.js";
import { markExported, sampleRows, state } from "./state.js";
import { DECISION_WORDS, STATE_WORDS, cellNumber, humanTime, plural, rowState } from "./words.js";

// Each printed page's margins name the sample and its status; the page numbers come from the
// stylesheet (@page in style.css). A constructed sheet: the page's policy allows no inline style.
const pageSheet = new CSSStyleSheet();
document.adoptedStyleSheets = [...document.adoptedStyleSheets, pageSheet];
const cssString = (text) => `"${text.replace(/["\\]/g, "\\$&").replace(/\n/g, " ")}"`;

function setPageMargins(sampleId, status) {
  pageSheet.replaceSync(`@page {
    @top-left { content: ${cssString(`LeukoLens review report · sample ${sampleId}`)}; }
    @top-right { content: ${cssString(`status: ${status.toUpperCase()}`)}; }
  }`);
}

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

// How a column's cells break: numbers never, file names anywhere, words between words.
const COLUMN_CLASSES = { "#": "number", File: "file", Cell: "file" };

// A table with its header row in <thead>, repeated on every printed page.
function table(className, headers, rows) {
  const made = element("table", className);
  const head = made.createTHead().insertRow();
  for (const name of headers) {
    const th = element("th", COLUMN_CLASSES[name] || "", name);
    th.scope = "col";
    head.appendChild(th);
  }
  const body = made.createTBody();
  for (const cells of rows) {
    const tr = body.insertRow();
    cells.forEach((cell, position) => {
      const td = element("td", COLUMN_CLASSES[headers[position]] || "");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell;
      tr.appendChild(td);
    });
  }
  return made;
}

// "who, when" in a table cell: the date and the time each whole, never broken inside.
function byAt(who, time) {
  const cell = document.createDocumentFragment();
  const [date, ...clock] = humanTime(time).split(" ");
  cell.append(`${who}, `, element("span", "time", date), " ", element("span", "time", clock.join(" ")));
  return cell;
}

function signOffLines(record) {
  const signOffs = record?.sign_offs || [];
  if (!signOffs.length) {
    return [element("p", "report-sign-off", "Not signed off: sign it off in LeukoLens, which " +
      "keeps who signed, when, and what they signed.")];
  }
  return signOffs.map((s) => element("p", "report-sign-off", `Signed off by ${s.by}, ` +
    `${humanTime(s.time)}${s.comment ? ` (“${s.comment}”)` : ""}` +
    `${s.undecided_cells ? `, with ${plural(s.undecided_cells, "cell")} left undecided` : ""}; signed ` +
    `content SHA-256 ${s.content_sha256}.`));
}

// The printed record of the sample on screen, and only that sample.
export function renderReport() {
  const id = state.currentSample;
  el.report.replaceChildren();
  if (!id) return;
  const record = sampleRecord(id);
  const status = sampleStatus(id);
  setPageMargins(id, status);
  const rows = sampleRows(id).sort((a, b) => a.index - b.index);
  const page = element("article", "report-sample");
  page.dataset.sample = id;
  page.dataset.status = status;
  const title = element("h1", "", `LeukoLens review report: sample ${id}`);
  const standing = element("p", "report-status");
  standing.append(element("strong", "", "Status: "), statusSentence(record));
  const reviewers = [...new Set(rows.filter((r) => r.decision).map((r) => r.decision.reviewer))];
  const models = [...new Set(rows.filter((r) => r.prediction).map((r) =>
    `${optionFor(r.prediction.model.id)?.dataset.name || r.prediction.model.id} ` +
    `v${r.prediction.model.version}${r.prediction.tta ? " with TTA" : ""}`))];
  const meta = element("p", "", `Printed ${humanTime(new Date())} · reviewers: ` +
    `${reviewers.join(", ") || "none yet"} · model: ${models.join(", ") || "–"}`);
  const counts = table("report-counts", [], []);
  counts.deleteTHead();
  for (const [term, value] of [...headlineEntries(id), ...countEntries(rows)]) {
    const tr = counts.tBodies[0].insertRow();
    const th = element("th", "", term);
    th.scope = "row";
    tr.append(th, element("td", "", value));
  }
  const reading = element("p", "report-share", shareSentences(id));
  const rates = element("p", "report-error-rates");
  renderModelRates(rates, modelRates(id));
  const cells = table("report-cells", ["#", "Image", "File", "Suggestion", "Decision",
    "Reviewer, time", "Comment"], rows.map((row) => {
    let image = "";
    if (row.thumb) {
      image = element("img");
      image.src = row.thumb;
      image.alt = row.filename;
    }
    return [String(cellNumber(row)), image, row.filename, STATE_WORDS[rowState(row)],
      row.decision ? DECISION_WORDS[row.decision.decision] : "undecided",
      row.decision ? byAt(row.decision.reviewer, row.decision.time) : "",
      row.decision?.comment || ""];
  }));
  page.append(title, standing, meta, counts, reading, rates, cells);
  const amendments = record?.amendments || [];
  if (amendments.length) {
    const bySha = new Map(rows.map((row) => [row.sha256, row]));
    page.append(element("h2", "", "Amendments after sign-off"), table("report-cells report-amendments",
      ["#", "Cell", "Change", "By, time", "Reason"], amendments.map((a) => {
        const row = bySha.get(a.image_sha256);
        const word = (d) => (d ? DECISION_WORDS[d] : "undecided");
        return [row ? String(cellNumber(row)) : "", row ? row.filename : a.image_sha256.slice(0, 12),
          `${word(a.old_decision)} → ${word(a.new_decision)}`, byAt(a.reviewer, a.time),
          a.reason];
      })));
  }
  const notice = element("p", "report-notice", "Research and screening aid, not a diagnosis. " +
    "Every result must be reviewed by a qualified person; the counts above are the reviewer's " +
    "and the model's, not a clinical differential.");
  page.append(...signOffLines(record), notice);
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
  "decision_time_utc", "decision_stored", "comment", "amendment", "error", "note"];

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
      row.decision?.comment, row.decision?.amendment,
      row.error ? `${row.error.status_code}: ${row.error.detail}` : "", "",
    ].map(csvCell).join(","));
  }
  const summary = [...headlineEntries(sampleId), ...countEntries(rows)]
    .map(([term, value]) => `${term}: ${value}`).join("; ");
  const reading = shareSentences(sampleId);
  const record = sampleRecord(sampleId);
  const signed = record?.signed_off;
  // Times in the record are data: ISO 8601 in UTC, as the API gives them.
  const standing = `Status: ${sampleStatus(sampleId)}` + (signed ? `; signed off by ${signed.by} at ` +
    `${signed.time}; signed content SHA-256 ${signed.content_sha256}; ` +
    `${(record.amendments || []).length} amendments` : "; not signed off");
  const fields = Object.fromEntries(LAB_COLUMNS.map((name) => [name, ""]));
  Object.assign(fields, { date_time_utc: new Date().toISOString(), sample_id: sampleId,
    status: "summary", note: `${standing}. ${summary}. ${reading}` });
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
