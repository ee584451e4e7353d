// The page's fixed elements, found once, and the two lines every part of the page speaks on.

const $ = (id) => document.getElementById(id);

export const el = {
  byId: $,
  form: $("upload-form"),
  input: $("file-input"),
  dropZone: $("drop-zone"),
  summary: $("file-summary"),
  analyseButton: $("analyse-button"),
  cancelButton: $("cancel-button"),
  modelSelect: $("model-select"),
  ttaInput: $("tta-input"),
  sampleInput: $("sample-id"),
  reviewerInput: $("reviewer"),
  statusLine: $("status"),
  alertLine: $("alert"),
  progressRow: $("progress-row"),
  progress: $("progress"),
  progressText: $("progress-text"),
  workstation: $("workstation"),
  sampleSelect: $("sample-select"),
  openSelect: $("open-sample"),
  sampleTitle: $("sample-title"),
  counts: $("sample-counts"),
  shareReading: $("share-reading"),
  gallery: $("gallery"),
  detail: $("detail"),
  detailSection: $("detail-section"),
  template: $("detail-template"),
  tableBody: document.querySelector("#results-table tbody"),
  report: $("report"),
  dialog: $("enlarge-dialog"),
  uploadPanel: $("upload-panel"),
};

export function setStatus(message) {
  el.statusLine.textContent = message;
}

export function showAlert(message) {
  el.alertLine.textContent = message;
  el.alertLine.hidden = !message;
}

// The model's <option>: its name, card summary and flags come with the page.
export function optionFor(modelId) {
  return Array.from(el.modelSelect.options).find((option) => option.value === modelId);
}
