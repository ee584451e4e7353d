// LeukoLens upload page: picks or drops images, calls the JSON API, shows the results.
// Plain JavaScript with no dependency, so the page works inside a hospital network offline.
"use strict";

(() => {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const dropZone = document.getElementById("drop-zone");
  const summary = document.getElementById("file-summary");
  const button = document.getElementById("analyse-button");
  const modelSelect = document.getElementById("model-select");
  const status = document.getElementById("status");
  const batchSection = document.getElementById("batch-section");
  const tableBody = document.querySelector("#results-table tbody");
  const detailSection = document.getElementById("detail-section");
  const detail = document.getElementById("detail");
  const template = document.getElementById("detail-template");
  const csvButton = document.getElementById("csv-button");
  const ttaInput = document.getElementById("tta-input");

  function selectedModel() {
    return modelSelect.options[modelSelect.selectedIndex];
  }

  function syncTtaDefault() {
    ttaInput.checked = selectedModel().dataset.ttaDefault === "true";
  }

  function predictParams(extra = {}) {
    const params = { model: modelSelect.value, tta: String(ttaInput.checked), views: "true", ...extra };
    if (selectedModel().dataset.explains === "true") params.explain = "true";
    return params;
  }

  let chosen = [];
  let rows = [];
  const sortState = { key: "index", ascending: true };

  const percent = (value) => `${(value * 100).toFixed(1)}%`;

  function setStatus(message, isError = false) {
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  function choose(files) {
    chosen = Array.from(files);
    summary.textContent = chosen.length === 0 ? "No file chosen"
      : chosen.length === 1 ? chosen[0].name : `${chosen.length} files chosen`;
    button.disabled = chosen.length === 0;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  async function post(path, fieldName, files, params) {
    const data = new FormData();
    for (const file of files) data.append(fieldName, file, file.name);
    const query = new URLSearchParams(params);
    const apiKey = document.getElementById("api-key");
    const headers = apiKey && apiKey.value ? { "X-API-Key": apiKey.value } : {};
    const response = await fetch(`${path}?${query}`, { method: "POST", body: data, headers });
    if (!response.ok) throw new Error(await errorMessage(response));
    return response.json();
  }

  function renderDetail(filename, prediction) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector(".result-file").textContent = filename;
    const badge = card.querySelector(".badge");
    badge.textContent = prediction.label === "ALL" ? "ALL (leukemic blast)" : "HEM (normal)";
    badge.classList.add(prediction.label === "ALL" ? "badge-all" : "badge-hem");
    card.querySelector(".probability-text").textContent =
      `Probability of ALL: ${percent(prediction.probability_all)} (threshold ${percent(prediction.threshold)})`;
    const bar = card.querySelector(".bar");
    bar.setAttribute("aria-label",
      `Probability of ALL ${percent(prediction.probability_all)}, threshold ${percent(prediction.threshold)}`);
    card.querySelector(".bar-fill").style.width = percent(prediction.probability_all);
    card.querySelector(".bar-threshold").style.left = percent(prediction.threshold);
    const warnings = card.querySelector(".warnings");
    for (const warning of prediction.warnings) {
      const item = document.createElement("li");
      item.dataset.code = warning.code;
      item.textContent = `${warning.code}: ${warning.message}`;
      warnings.appendChild(item);
    }
    if (prediction.views) {
      for (const name of ["original", "enhanced", "cropped"]) {
        const image = card.querySelector(`.view-${name}`);
        image.src = prediction.views[name];
        image.alt = `${name} view of ${filename}`;
      }
    } else {
      card.querySelector(".views").remove();
    }
    if (prediction.views && prediction.explanation) {
      const heat = card.querySelector(".view-heat");
      const controls = card.querySelector(".heat-controls");
      const toggle = card.querySelector(".heat-toggle");
      const opacity = card.querySelector(".heat-opacity");
      heat.src = prediction.explanation.overlay;
      heat.alt = `Grad-CAM heatmap of ${filename}: where the model looked`;
      const share = prediction.explanation.heat_in_cell;
      const shareNote = card.querySelector(".heat-share");
      shareNote.textContent =
        share === null ? "" : `${percent(share)} of the heat on the cell`;
      if (prediction.explanation.on_cell === false) {
        shareNote.textContent +=
          ": most of this map lies around the cell, so it does not show which parts of the cell mattered";
        shareNote.classList.add("off-cell");
      }
      const update = () => {
        heat.hidden = !toggle.checked;
        heat.style.opacity = String(Number(opacity.value) / 100);
      };
      toggle.addEventListener("change", update);
      opacity.addEventListener("input", update);
      controls.hidden = false;
      update();
    }
    card.querySelector(".meta").textContent =
      `Model ${prediction.model.id} v${prediction.model.version} · ` +
      `${prediction.timings_ms.total.toFixed(0)} ms · request ${prediction.request_id}`;
    detail.replaceChildren(card);
    detailSection.hidden = false;
  }

  function warningCodes(row) {
    return row.prediction ? row.prediction.warnings.map((w) => w.code).join(", ") : "";
  }

  function sortValue(row, key) {
    if (key === "probability") return row.prediction ? row.prediction.probability_all : -1;
    if (key === "label") return row.prediction ? row.prediction.label : "~error";
    if (key === "warnings") return warningCodes(row);
    if (key === "filename") return row.filename.toLowerCase();
    return row.index;
  }

  function renderTable() {
    const sorted = [...rows].sort((a, b) => {
      const left = sortValue(a, sortState.key);
      const right = sortValue(b, sortState.key);
      const order = left < right ? -1 : left > right ? 1 : 0;
      return sortState.ascending ? order : -order;
    });
    tableBody.replaceChildren(...sorted.map((row) => {
      const tr = document.createElement("tr");
      if (row.status !== "ok") tr.classList.add("is-error");
      const cells = [
        String(row.index + 1),
        row.filename,
        row.prediction ? row.prediction.label : "error",
        row.prediction ? percent(row.prediction.probability_all) : row.error.detail,
        warningCodes(row),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      const action = document.createElement("td");
      if (row.prediction) {
        const view = document.createElement("button");
        view.type = "button";
        view.textContent = "View";
        view.setAttribute("aria-label", `View details of ${row.filename}`);
        view.addEventListener("click", () => showDetail(row));
        action.appendChild(view);
      }
      tr.appendChild(action);
      return tr;
    }));
    for (const th of document.querySelectorAll("#results-table th[aria-sort]")) {
      const key = th.querySelector("button").dataset.sort;
      th.setAttribute("aria-sort", key === sortState.key
        ? (sortState.ascending ? "ascending" : "descending") : "none");
    }
  }

  async function showDetail(row) {
    setStatus(`Preparing the views of ${row.filename}…`);
    try {
      const prediction = await post("/api/v1/predict", "file", [row.file], predictParams());
      renderDetail(row.filename, prediction);
      setStatus("");
      detailSection.scrollIntoView({ behavior: "smooth" });
    } catch (error) {
      setStatus(`${row.filename}: ${error.message}`, true);
    }
  }

  function csvCell(value) {
    let text = String(value ?? "");
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`; // keep spreadsheets from running formulas
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  }

  function downloadCsv() {
    const header = ["filename", "status", "label", "probability_all", "threshold", "model_id",
      "model_version", "warnings", "error"];
    const lines = [header.join(",")];
    for (const row of rows) {
      const p = row.prediction;
      lines.push([
        row.filename, row.status, p?.label, p?.probability_all.toFixed(6), p?.threshold.toFixed(6),
        p?.model.id, p?.model.version, p ? p.warnings.map((w) => w.code).join(";") : "",
        row.error ? `${row.error.status_code}: ${row.error.detail}` : "",
      ].map(csvCell).join(","));
    }
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "leukolens-results.csv";
    link.click();
    URL.revokeObjectURL(link.href);
  }

  async function analyse(event) {
    event.preventDefault();
    if (chosen.length === 0) return;
    button.disabled = true;
    detailSection.hidden = true;
    batchSection.hidden = true;
    setStatus(`Analysing ${chosen.length} image${chosen.length > 1 ? "s" : ""}…`);
    try {
      if (chosen.length === 1) {
        const prediction = await post("/api/v1/predict", "file", chosen, predictParams());
        renderDetail(chosen[0].name, prediction);
      } else {
        const batch = await post("/api/v1/predict/batch", "files", chosen,
          { model: modelSelect.value, tta: String(ttaInput.checked) });
        rows = batch.results.map((result, index) => ({ ...result, index, file: chosen[index] }));
        sortState.key = "index";
        sortState.ascending = true;
        renderTable();
        batchSection.hidden = false;
      }
      setStatus("Done.");
    } catch (error) {
      setStatus(`Could not analyse: ${error.message}`, true);
    } finally {
      button.disabled = chosen.length === 0;
    }
  }

  input.addEventListener("change", () => choose(input.files));
  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    dropZone.addEventListener(name, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    choose(event.dataTransfer.files);
  });
  for (const header of document.querySelectorAll("#results-table th button")) {
    header.addEventListener("click", () => {
      const key = header.dataset.sort;
      sortState.ascending = sortState.key === key ? !sortState.ascending : true;
      sortState.key = key;
      renderTable();
    });
  }
  csvButton.addEventListener("click", downloadCsv);
  modelSelect.addEventListener("change", syncTtaDefault);
  syncTtaDefault();
  form.addEventListener("submit", analyse);
})();
