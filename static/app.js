// LeukoLens review workstation: analyse the cells of a sample, review each suggestion by
// keyboard or mouse, keep the session in the browser, export a lab record and a report.
// Plain JavaScript with no dependency, so the page works inside a hospital network offline.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("upload-form");
  const input = $("file-input");
  const dropZone = $("drop-zone");
  const summary = $("file-summary");
  const analyseButton = $("analyse-button");
  const cancelButton = $("cancel-button");
  const modelSelect = $("model-select");
  const ttaInput = $("tta-input");
  const sampleInput = $("sample-id");
  const reviewerInput = $("reviewer");
  const statusLine = $("status");
  const alertLine = $("alert");
  const progressRow = $("progress-row");
  const progress = $("progress");
  const progressText = $("progress-text");
  const workstation = $("workstation");
  const sampleSelect = $("sample-select");
  const sampleTitle = $("sample-title");
  const counts = $("sample-counts");
  const shareReading = $("share-reading");
  const gallery = $("gallery");
  const detail = $("detail");
  const template = $("detail-template");
  const tableBody = document.querySelector("#results-table tbody");
  const report = $("report");
  const dialog = $("enlarge-dialog");
  const uploadPanel = $("upload-panel");
  const maxFiles = Number(uploadPanel.dataset.maxFiles);
  const maxBytes = Number(uploadPanel.dataset.maxBytes);
  const CHUNK = Math.max(1, Math.min(8, maxFiles));
  const SAMPLE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
  const THUMB_SIDE = 96;

  const STATES = [
    ["suggests_all", "suggests ALL-like", "Suggests ALL-like"],
    ["indeterminate", "indeterminate", "Indeterminate (near the threshold)"],
    ["suggests_normal", "suggests normal", "Suggests normal"],
    ["not_assessable", "not assessable", "Not assessable"],
    ["error", "could not be analysed", "Could not be analysed"],
  ];
  const STATE_WORDS = Object.fromEntries(STATES.map(([key, words]) => [key, words]));
  const DECISION_WORDS = { ALL: "ALL confirmed", HEM: "normal confirmed", not_assessable: "not assessable" };

  // The session: every row owns its file's result, keyed by request id and image sha256.
  let session = { rows: [], currentSample: "", exported: true, savedAt: null, shares: {} };
  const liveFiles = new Map(); // row key -> File, for the native-resolution view (not persisted)
  const liveViews = new Map(); // row key -> full prediction with views (not persisted)
  let selectedKey = null;
  let chosen = [];
  let run = null; // the analysis in progress: { controller }
  const sortState = { key: "index", ascending: true };

  const percent = (value) => `${(value * 100).toFixed(1)}%`;
  const rowState = (row) => (row.status === "ok" ? row.prediction.state : "error");
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function setStatus(message) {
    statusLine.textContent = message;
  }

  function showAlert(message) {
    alertLine.textContent = message;
    alertLine.hidden = !message;
  }

  function optionFor(modelId) {
    return Array.from(modelSelect.options).find((option) => option.value === modelId);
  }

  function newSampleId() {
    const now = new Date();
    const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    return `S-${stamp}`;
  }

  // -- choosing files ------------------------------------------------------------------------

  function describeChoice() {
    if (chosen.length === 0) {
      summary.textContent = "No file chosen";
    } else {
      const names = chosen.length === 1 ? chosen[0].name : `${chosen.length} files chosen`;
      summary.textContent = run ? `${names}: ready once the current analysis ends` : names;
    }
    analyseButton.disabled = run !== null || chosen.length === 0;
  }

  function choose(files) {
    chosen = Array.from(files);
    showAlert("");
    describeChoice();
  }

  function checkChoice(files) {
    if (files.length > maxFiles) {
      return `${files.length} files chosen; at most ${maxFiles} can be analysed at once. Choose fewer.`;
    }
    const large = files.filter((file) => file.size > maxBytes);
    if (large.length) {
      return `${large.map((f) => f.name).join(", ")}: larger than ${(maxBytes / 1048576).toFixed(0)} MB.`;
    }
    if (!SAMPLE_PATTERN.test(sampleInput.value.trim())) {
      return "The sample id must be letters, digits, dots, dashes or underscores (up to 64).";
    }
    return "";
  }

  // -- talking to the API --------------------------------------------------------------------

  function apiHeaders() {
    const key = $("api-key");
    return key && key.value ? { "X-API-Key": key.value } : {};
  }

  function detailOf(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && body.detail) return JSON.stringify(body.detail);
    return `HTTP ${status}`;
  }

  // XMLHttpRequest, not fetch: it reports upload progress. The AbortController cancels it.
  function postFiles(url, files, signal, onProgress) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(new DOMException("cancelled", "AbortError"));
        return;
      }
      const data = new FormData();
      for (const file of files) data.append("files", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      for (const [name, value] of Object.entries(apiHeaders())) xhr.setRequestHeader(name, value);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          resolve({ body: xhr.response, requestId: xhr.getResponseHeader("X-Request-ID") });
        } else {
          reject(new Error(detailOf(xhr.response, xhr.status)));
        }
      });
      xhr.addEventListener("error", () => reject(new Error("the server could not be reached")));
      xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
      signal.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(data);
    });
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...apiHeaders() },
      body: JSON.stringify(body),
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) throw new Error(detailOf(answer, response.status));
    return answer;
  }

  // -- thumbnails ----------------------------------------------------------------------------

  function thumbnail(dataUri) {
    return new Promise((resolve) => {
      const image = new Image();
      image.addEventListener("load", () => {
        const scale = THUMB_SIDE / Math.max(image.naturalWidth, image.naturalHeight);
        const canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(image.naturalWidth * Math.min(1, scale)));
        canvas.height = Math.max(1, Math.round(image.naturalHeight * Math.min(1, scale)));
        canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
        resolve(canvas.toDataURL("image/jpeg", 0.85));
      });
      image.addEventListener("error", () => resolve(null));
      image.src = dataUri;
    });
  }

  function persistable(prediction) {
    const { views, heatmap, explanation, ...rest } = prediction;
    if (explanation) {
      rest.explanation = { heat_in_cell: explanation.heat_in_cell, on_cell: explanation.on_cell };
    }
    return rest;
  }

  // -- analysis ------------------------------------------------------------------------------

  function setRunning(running) {
    cancelButton.hidden = !running;
    progressRow.hidden = !running;
    for (const control of [modelSelect, ttaInput, sampleInput, $("new-sample"), $("clear-button")]) {
      control.disabled = running;
    }
    describeChoice();
  }

  function showProgress(done, total, sending, fraction) {
    progress.max = total;
    progress.value = done + (sending ? sending * fraction : 0);
    progressText.textContent = sending
      ? `Sending images ${done + 1}–${done + sending} of ${total} (${Math.round(fraction * 100)}% uploaded)`
      : `Analysed ${done} of ${total}`;
  }

  async function rowsFrom(files, answer, sampleId, startIndex) {
    const results = answer.body.results;
    const requestId = answer.requestId
      || results.find((result) => result.prediction)?.prediction.request_id || "unknown";
    const made = [];
    for (const [position, result] of results.entries()) {
      const file = files[position];
      const base = { sampleId, requestId, filename: file.name, index: startIndex + position,
        time: new Date().toISOString(), decision: null };
      if (result.filename !== file.name) {
        made.push({ ...base, key: `${requestId}:error:${position}`, status: "error",
          error: { status_code: 0, detail: "the answer did not match the file sent" } });
        continue;
      }
      if (result.status !== "ok") {
        made.push({ ...base, key: `${requestId}:error:${position}`, status: "error", error: result.error });
        continue;
      }
      const prediction = result.prediction;
      let key = `${requestId}:${prediction.image_sha256}`;
      if (made.some((row) => row.key === key)) key = `${key}:${position}`;
      const thumb = prediction.views ? await thumbnail(prediction.views.original) : null;
      liveFiles.set(key, file);
      liveViews.set(key, prediction);
      made.push({ ...base, key, sha256: prediction.image_sha256, status: "ok",
        prediction: persistable(prediction), thumb });
    }
    return made;
  }

  async function analyse(event) {
    event.preventDefault();
    if (run || chosen.length === 0) return;
    const problem = checkChoice(chosen);
    if (problem) {
      showAlert(problem);
      return;
    }
    showAlert("");
    // The submission is a copy: files chosen from now on belong to the next analysis.
    const files = chosen.slice();
    const sampleId = sampleInput.value.trim();
    const option = optionFor(modelSelect.value);
    const query = new URLSearchParams({
      model: modelSelect.value, tta: String(ttaInput.checked), views: "true", sample_id: sampleId,
    });
    if (option.dataset.explains === "true") query.set("explain", "true");
    chosen = [];
    input.value = "";
    const controller = new AbortController();
    run = { controller };
    setRunning(true);
    session.currentSample = sampleId;
    const startIndex = session.rows.filter((row) => row.sampleId === sampleId).length;
    let done = 0;
    setStatus(`Analysing ${plural(files.length, "image")} for sample ${sampleId}…`);
    try {
      for (let start = 0; start < files.length; start += CHUNK) {
        const part = files.slice(start, start + CHUNK);
        showProgress(done, files.length, part.length, 0);
        const answer = await postFiles(`/api/v1/predict/batch?${query}`, part, controller.signal,
          (fraction) => showProgress(done, files.length, part.length, fraction));
        const made = await rowsFrom(part, answer, sampleId, startIndex + start);
        if (controller.signal.aborted) break;
        session.rows.push(...made);
        session.exported = false;
        done += part.length;
        showProgress(done, files.length, 0, 0);
        if (!sampleRows(sampleId).some((row) => row.key === selectedKey)) {
          selectedKey = made.find((row) => row.status === "ok")?.key || null;
        }
        render();
        saveSession();
      }
      const failed = session.rows.filter((r) => r.sampleId === sampleId && r.status !== "ok").length;
      setStatus(`Done: ${plural(done, "image")} analysed for sample ${sampleId}` +
        (failed ? `, ${failed} could not be analysed.` : "."));
    } catch (error) {
      if (error.name === "AbortError") {
        setStatus(`Cancelled after ${done} of ${files.length} images; the finished ones are kept.`);
      } else {
        showAlert(`Could not analyse: ${error.message}`);
        setStatus("");
      }
    } finally {
      run = null;
      setRunning(false);
      render();
      saveSession();
      $("sample-heading").focus();
    }
    await refreshShare(sampleId);
  }

  // -- review --------------------------------------------------------------------------------

  function sampleRows(sampleId = session.currentSample) {
    return session.rows.filter((row) => row.sampleId === sampleId);
  }

  function galleryOrder() {
    const rows = sampleRows();
    const order = [];
    for (const [state] of STATES) {
      order.push(...rows.filter((row) => rowState(row) === state).sort((a, b) => a.index - b.index));
    }
    return order;
  }

  function select(key, { focus = false } = {}) {
    selectedKey = key;
    render();
    const row = session.rows.find((r) => r.key === key);
    if (!row) return;
    const order = galleryOrder().filter((r) => r.status === "ok");
    const decision = row.decision ? DECISION_WORDS[row.decision.decision] : "not yet decided";
    if (row.status === "ok") {
      setStatus(`Cell ${order.indexOf(row) + 1} of ${order.length}, ${row.filename}: ` +
        `${STATE_WORDS[rowState(row)]}, ${plural(row.prediction.warnings.length, "quality warning")}; ${decision}.`);
    }
    if (focus) gallery.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
  }

  function move(step) {
    const order = galleryOrder().filter((row) => row.status === "ok");
    if (!order.length) return;
    const at = order.findIndex((row) => row.key === selectedKey);
    const next = at < 0 ? 0 : Math.min(order.length - 1, Math.max(0, at + step));
    select(order[next].key, { focus: true });
  }

  async function decide(decision) {
    const row = session.rows.find((r) => r.key === selectedKey);
    if (!row || row.status !== "ok") return;
    const reviewer = reviewerInput.value.trim();
    if (!reviewer) {
      showAlert("Enter the reviewer's name before recording decisions.");
      reviewerInput.focus();
      return;
    }
    showAlert("");
    const comment = detail.querySelector(".comment")?.value.trim() || "";
    const record = { decision, reviewer, comment, time: new Date().toISOString(), stored: false };
    row.decision = record;
    session.exported = false;
    move(1);
    saveSession();
    try {
      const stored = await postJson("/api/v1/reviews", {
        request_id: row.requestId, image_sha256: row.sha256, sample_id: row.sampleId,
        decision, reviewer, comment,
      });
      record.stored = true;
      record.id = stored.id;
      record.time = new Date(stored.time * 1000).toISOString();
    } catch (error) {
      record.error = error.message;
      showAlert(`The decision on ${row.filename} was not stored: ${error.message}`);
    }
    render();
    saveSession();
    if (record.stored) await refreshShare(row.sampleId);
  }

  // -- the sample's share of blast-like cells, from the server -------------------------------

  // The server holds the sample's calls and decisions and the model card's held-out error
  // counts, so it computes the corrected share and its interval; the page only shows them.
  async function refreshShare(sampleId) {
    // Nothing scored for it yet (a cancelled first run, say): the server has no such sample.
    if (!sampleRows(sampleId).some((row) => row.status === "ok")) return;
    try {
      const response = await fetch(`/api/v1/samples/${encodeURIComponent(sampleId)}`, {
        headers: apiHeaders(),
      });
      if (!response.ok) return;
      const body = await response.json();
      session.shares[sampleId] = { ...body.blast_share, sample_score: body.sample_score };
      render();
      saveSession();
    } catch {
      // The counts stay as they are; the share is fetched again after the next answer.
    }
  }

  const points = (value) => `${Math.round(value * 100)} percentage points`;

  function shareEntries(sampleId) {
    const share = session.shares[sampleId];
    if (!share || share.observed === null) {
      return [["Blast-like share, corrected (95% interval)", "–"]];
    }
    const corrected = share.corrected === null ? "not corrected"
      : `${percent(share.corrected)} (${percent(share.ci_low)}–${percent(share.ci_high)})`;
    return [
      ["Blast-like share, corrected (95% interval)", corrected],
      ["Blast-like share, as called", `${percent(share.observed)} of ${plural(share.n_assessable, "cell")}` +
        ` (${share.n_reviewed} reviewed)`],
      ["Sample score (mean P(ALL))", share.sample_score === null ? "–" : percent(share.sample_score)],
    ];
  }

  function shareSentences(sampleId) {
    const share = session.shares[sampleId];
    if (!share) return "The share of blast-like cells appears once the server has answered for this sample.";
    if (share.observed === null) return "No assessable cell: no share of blast-like cells can be given.";
    const aid = "A share of blast-like cells among the cells analysed, for research and screening: " +
      "not a diagnosis and not a blast count.";
    if (share.corrected === null) return `${share.note}. ${aid}`;
    const errors = share.n_model_called === 0 ? "Every counted cell was reviewed, so no model correction applies."
      : `Corrected for the model's errors measured on held-out people: sensitivity ` +
        `${percent(share.sensitivity)} (${share.sensitivity_counts[0]} of ` +
        `${share.sensitivity_counts[0] + share.sensitivity_counts[1]} ALL cells), specificity ` +
        `${percent(share.specificity)} (${share.specificity_counts[0]} of ` +
        `${share.specificity_counts[0] + share.specificity_counts[1]} normal cells).`;
    let reading = `The interval is narrow enough to read (at most ${points(share.readable_width)}).`;
    if (share.too_wide) {
      reading = `The interval is too wide to read (${points(share.interval_width)}, more than ` +
        `${points(share.readable_width)}): ` + (share.more_cells_needed === null
        ? "more cells alone would not narrow it: the model's error rates are too uncertain, " +
          "or differ too much from one held-out person to the next."
        : `roughly ${share.more_cells_needed} more assessable cells would narrow it.`);
    }
    return `${reading} ${errors} ${aid}`;
  }

  function renderShare() {
    const share = session.shares[session.currentSample];
    shareReading.textContent = shareSentences(session.currentSample);
    shareReading.dataset.tooWide = share && share.too_wide ? "true" : "false";
  }

  // -- rendering -----------------------------------------------------------------------------

  function sampleCounts(rows) {
    const tally = Object.fromEntries(STATES.map(([key]) => [key, 0]));
    const decided = { ALL: 0, HEM: 0, not_assessable: 0 };
    let stored = 0;
    for (const row of rows) {
      tally[rowState(row)] += 1;
      if (row.decision) {
        decided[row.decision.decision] += 1;
        if (row.decision.stored) stored += 1;
      }
    }
    const assessable = tally.suggests_all + tally.suggests_normal + tally.indeterminate;
    const reviewedAssessable = decided.ALL + decided.HEM;
    return {
      tally, decided, stored, assessable,
      decidedTotal: decided.ALL + decided.HEM + decided.not_assessable,
      allLikeShare: assessable ? tally.suggests_all / assessable : null,
      confirmedAllShare: reviewedAssessable ? decided.ALL / reviewedAssessable : null,
    };
  }

  function countEntries(rows) {
    const c = sampleCounts(rows);
    return [
      ["Images", String(rows.length)],
      ["Suggests ALL-like", String(c.tally.suggests_all)],
      ["Suggests normal", String(c.tally.suggests_normal)],
      ["Indeterminate", String(c.tally.indeterminate)],
      ["Not assessable", String(c.tally.not_assessable)],
      ["Could not be analysed", String(c.tally.error)],
      ["ALL-like among assessable (model)", c.allLikeShare === null ? "–" : percent(c.allLikeShare)],
      ["Reviewed", `${c.decidedTotal} of ${c.tally.suggests_all + c.tally.suggests_normal + c.tally.indeterminate + c.tally.not_assessable} (${c.stored} stored)`],
      ["Confirmed ALL / normal / not assessable", `${c.decided.ALL} / ${c.decided.HEM} / ${c.decided.not_assessable}`],
      ["ALL among reviewed cells (reviewer)", c.confirmedAllShare === null ? "–" : percent(c.confirmedAllShare)],
    ];
  }

  function renderCounts() {
    counts.replaceChildren();
    const entries = [...countEntries(sampleRows()), ...shareEntries(session.currentSample)];
    for (const [term, value] of entries) {
      const wrapper = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      wrapper.append(dt, dd);
      counts.appendChild(wrapper);
    }
  }

  function thumbLabel(row) {
    const decision = row.decision ? `, ${DECISION_WORDS[row.decision.decision]}` : ", not yet decided";
    return `${row.filename}: ${STATE_WORDS[rowState(row)]}${row.status === "ok" ? decision : ""}`;
  }

  function renderGallery() {
    const order = galleryOrder();
    gallery.replaceChildren();
    for (const [state, , heading] of STATES) {
      const rows = order.filter((row) => rowState(row) === state);
      if (!rows.length) continue;
      const group = document.createElement("section");
      group.className = `group group-${state}`;
      const title = document.createElement("h3");
      title.textContent = `${heading} (${rows.length})`;
      const list = document.createElement("ul");
      list.className = "thumbs";
      for (const row of rows) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = `thumb state-${state}`;
        button.dataset.key = row.key;
        button.dataset.filename = row.filename;
        if (row.sha256) button.dataset.sha256 = row.sha256;
        if (row.key === selectedKey) button.setAttribute("aria-current", "true");
        if (row.thumb) {
          const image = document.createElement("img");
          image.src = row.thumb;
          image.alt = "";
          button.appendChild(image);
        } else {
          const placeholder = document.createElement("span");
          placeholder.className = "thumb-placeholder";
          placeholder.textContent = row.status === "ok" ? "no view" : "error";
          button.appendChild(placeholder);
        }
        const mark = document.createElement("span");
        mark.className = "thumb-mark";
        mark.textContent = row.decision
          ? { ALL: "ALL ✓", HEM: "normal ✓", not_assessable: "n/a ✓" }[row.decision.decision]
          : `#${row.index + 1}`;
        if (row.decision && !row.decision.stored) mark.textContent += " …";
        const description = document.createElement("span");
        description.className = "visually-hidden";
        description.textContent = ` ${thumbLabel(row)}`;
        button.append(mark, description);
        button.addEventListener("click", () => select(row.key));
        item.appendChild(button);
        list.appendChild(item);
      }
      group.append(title, list);
      gallery.appendChild(group);
    }
  }

  function renderDetail() {
    const row = session.rows.find((r) => r.key === selectedKey && r.sampleId === session.currentSample);
    if (!row) {
      detail.replaceChildren();
      const hint = document.createElement("p");
      hint.className = "muted";
      hint.textContent = "Select a cell in the gallery.";
      detail.appendChild(hint);
      return;
    }
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.key = row.key;
    card.querySelector(".result-file").textContent = row.filename;
    const badge = card.querySelector(".badge");
    const state = rowState(row);
    badge.textContent = STATE_WORDS[state];
    badge.classList.add(`badge-${state}`);
    if (row.status !== "ok") {
      card.querySelector(".probability").remove();
      card.querySelector(".decision").remove();
      card.querySelector(".views").remove();
      card.querySelector(".warning-count").textContent = row.error.detail;
      card.querySelector(".meta").textContent = `request ${row.requestId}`;
      detail.replaceChildren(card);
      return;
    }
    const prediction = row.prediction;
    const warnings = prediction.warnings;
    const warningCount = card.querySelector(".warning-count");
    warningCount.textContent = warnings.length ? plural(warnings.length, "quality warning") : "no quality warning";
    warningCount.classList.toggle("has-warnings", warnings.length > 0);
    const probability = card.querySelector(".probability");
    card.querySelector(".probability-text").textContent =
      `Probability of ALL: ${percent(prediction.probability_all)} (threshold ${percent(prediction.threshold)})`;
    const bar = card.querySelector(".bar");
    bar.setAttribute("aria-label",
      `Probability of ALL ${percent(prediction.probability_all)}, threshold ${percent(prediction.threshold)}`);
    const fill = card.querySelector(".bar-fill");
    fill.style.width = percent(prediction.probability_all);
    fill.classList.add(prediction.probability_all >= prediction.threshold ? "above" : "below");
    card.querySelector(".bar-threshold").style.left = percent(prediction.threshold);
    if (!prediction.assessable) {
      probability.hidden = true;
      const hidden = card.querySelector(".probability-hidden");
      hidden.hidden = false;
      hidden.querySelector(".show-anyway").addEventListener("click", () => {
        probability.hidden = false;
        hidden.hidden = true;
      });
    }
    const list = card.querySelector(".warnings");
    for (const warning of warnings) {
      const item = document.createElement("li");
      item.dataset.code = warning.code;
      item.textContent = `${warning.code.replaceAll("_", " ")}: ${warning.message}`;
      list.appendChild(item);
    }
    const decisionState = card.querySelector(".decision-state");
    if (row.decision) {
      const when = new Date(row.decision.time).toLocaleString();
      decisionState.textContent = `Decision: ${DECISION_WORDS[row.decision.decision]} by ${row.decision.reviewer}, ${when}` +
        (row.decision.stored ? " (stored)" : row.decision.error ? ` (not stored: ${row.decision.error})` : " (storing…)");
      card.querySelector(".comment").value = row.decision.comment || "";
    } else {
      decisionState.textContent = "No decision yet.";
    }
    for (const button of card.querySelectorAll("[data-decision]")) {
      button.setAttribute("aria-pressed", String(row.decision?.decision === button.dataset.decision));
      button.addEventListener("click", () => decide(button.dataset.decision));
    }
    renderViews(card, row, prediction);
    const option = optionFor(prediction.model.id);
    const name = option ? option.dataset.name : prediction.model.id;
    card.querySelector(".meta").textContent =
      `Model ${name} v${prediction.model.version} · TTA ${prediction.tta ? "on" : "off"} · ` +
      `request ${prediction.request_id} · image sha256 ${row.sha256.slice(0, 12)}…`;
    card.querySelector(".meta").dataset.sha256 = row.sha256;
    detail.replaceChildren(card);
  }

  function renderViews(card, row, prediction) {
    const full = liveViews.get(row.key);
    const views = card.querySelector(".views");
    if (!full || !full.views) {
      views.querySelector(".view-enhanced").closest("figure").remove();
      views.querySelector(".crop-figure").remove();
      const image = views.querySelector(".view-original");
      if (row.thumb) image.src = row.thumb;
      image.alt = `thumbnail of ${row.filename}`;
      card.querySelector(".views-missing").hidden = false;
    } else {
      for (const name of ["original", "enhanced", "cropped"]) {
        const image = card.querySelector(`.view-${name}`);
        image.src = full.views[name];
        image.alt = `${name} view of ${row.filename}`;
      }
    }
    views.querySelector(".enlarge").addEventListener("click", () => enlarge(row));
    const explanation = full && full.explanation;
    if (!explanation || !prediction.assessable) return; // no heat for not-assessable answers
    const heat = card.querySelector(".view-heat");
    const toggle = card.querySelector(".heat-toggle");
    const opacity = card.querySelector(".heat-opacity");
    const legend = card.querySelector(".heat-legend");
    heat.src = explanation.overlay;
    heat.alt = `Grad-CAM heatmap of ${row.filename}: contribution to the ALL score, scaled within this image`;
    const option = optionFor(prediction.model.id);
    const grid = option ? option.dataset.grid : "?";
    card.querySelector(".heat-grid").textContent =
      `The map is ${grid} × ${grid} cells over the crop, smoothed for display.`;
    const share = explanation.heat_in_cell;
    const shareNote = card.querySelector(".heat-share");
    shareNote.textContent = share === null ? "" : `${percent(share)} of the heat on the cell`;
    if (explanation.on_cell === false) {
      shareNote.textContent +=
        ": most of this map lies around the cell, so it does not show which parts of the cell mattered";
      shareNote.classList.add("off-cell");
    }
    const update = () => {
      heat.hidden = !toggle.checked;
      legend.hidden = !toggle.checked;
      heat.style.opacity = String(Number(opacity.value) / 100);
    };
    toggle.addEventListener("change", update);
    opacity.addEventListener("input", update);
    card.querySelector(".heat-controls").hidden = false;
    update();
  }

  function enlarge(row) {
    const image = $("enlarge-image");
    const file = liveFiles.get(row.key);
    const full = liveViews.get(row.key);
    if (image.dataset.objectUrl) URL.revokeObjectURL(image.dataset.objectUrl);
    delete image.dataset.objectUrl;
    if (file && !/\.tiff?$/i.test(file.name)) {
      image.dataset.objectUrl = URL.createObjectURL(file);
      image.src = image.dataset.objectUrl;
    } else {
      image.src = full?.views?.original || row.thumb || "";
    }
    image.alt = `${row.filename} at native resolution`;
    $("enlarge-title").textContent = `${row.filename} at native resolution`;
    dialog.showModal();
  }

  function sortValue(row, key) {
    if (key === "probability") return row.status === "ok" ? row.prediction.probability_all : -1;
    if (key === "state") return STATES.findIndex(([state]) => state === rowState(row));
    if (key === "warnings") return row.status === "ok" ? row.prediction.warnings.length : -1;
    if (key === "decision") return row.decision ? row.decision.decision : "~";
    if (key === "filename") return row.filename.toLowerCase();
    return row.index;
  }

  function renderTable() {
    const rows = sampleRows().sort((a, b) => {
      const left = sortValue(a, sortState.key);
      const right = sortValue(b, sortState.key);
      const order = left < right ? -1 : left > right ? 1 : 0;
      return sortState.ascending ? order : -order;
    });
    tableBody.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.key = row.key;
      if (row.status !== "ok") tr.classList.add("is-error");
      if (row.key === selectedKey) tr.classList.add("is-selected");
      const p = row.prediction;
      const cells = [
        String(row.index + 1),
        null,
        STATE_WORDS[rowState(row)],
        p ? (p.assessable ? percent(p.probability_all) : "hidden") : row.error.detail,
        p ? String(p.warnings.length) : "",
        row.decision ? DECISION_WORDS[row.decision.decision] : "",
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        if (text === null) {
          const show = document.createElement("button");
          show.type = "button";
          show.className = "link-button";
          show.textContent = row.filename;
          show.addEventListener("click", () => {
            select(row.key);
            $("detail-section").scrollIntoView({ block: "nearest" });
          });
          td.appendChild(show);
        } else {
          td.textContent = text;
        }
        tr.appendChild(td);
      }
      return tr;
    }));
    for (const th of document.querySelectorAll("#results-table th[aria-sort]")) {
      const key = th.querySelector("button").dataset.sort;
      th.setAttribute("aria-sort", key === sortState.key ? (sortState.ascending ? "ascending" : "descending") : "none");
    }
  }

  function renderSampleSelect() {
    const ids = [...new Set(session.rows.map((row) => row.sampleId))];
    sampleSelect.replaceChildren(...ids.map((id) => {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = `${id} (${plural(sampleRows(id).length, "image")})`;
      option.selected = id === session.currentSample;
      return option;
    }));
  }

  function renderReport() {
    const ids = [...new Set(session.rows.map((row) => row.sampleId))];
    report.replaceChildren();
    const printed = new Date();
    for (const id of ids) {
      const rows = sampleRows(id).sort((a, b) => a.index - b.index);
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
        `reviewer: ${reviewers.join(", ") || "none yet"} · model: ${models.join(", ") || "–"}`;
      const table = document.createElement("table");
      table.className = "report-counts";
      for (const [term, value] of [...countEntries(rows), ...shareEntries(id)]) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = term;
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(th, td);
        table.appendChild(tr);
      }
      const cells = document.createElement("div");
      cells.className = "report-thumbs";
      for (const row of rows) {
        const figure = document.createElement("figure");
        if (row.thumb) {
          const image = document.createElement("img");
          image.src = row.thumb;
          image.alt = row.filename;
          figure.appendChild(image);
        }
        const caption = document.createElement("figcaption");
        caption.textContent = `#${row.index + 1} ${STATE_WORDS[rowState(row)]}` +
          (row.decision ? `; ${DECISION_WORDS[row.decision.decision]}` : "");
        figure.appendChild(caption);
        cells.appendChild(figure);
      }
      const reading = document.createElement("p");
      reading.className = "report-share";
      reading.textContent = shareSentences(id);
      const performance = document.createElement("p");
      const modelIds = [...new Set(rows.filter((r) => r.prediction).map((r) => r.prediction.model.id))];
      performance.textContent = modelIds.map((m) => optionFor(m)?.dataset.summary || m).join(" ");
      const notice = document.createElement("p");
      notice.className = "report-notice";
      notice.textContent = "Research and screening aid, not a diagnosis. Every result must be " +
        "reviewed by a qualified person; the counts above are the reviewer's and the model's, " +
        "not a clinical differential.";
      page.append(title, meta, table, reading, cells, performance, notice);
      report.appendChild(page);
    }
  }

  function render() {
    const hasRows = session.rows.length > 0;
    workstation.hidden = !hasRows;
    if (!hasRows) {
      report.replaceChildren();
      return;
    }
    if (!session.rows.some((row) => row.sampleId === session.currentSample)) {
      session.currentSample = session.rows[session.rows.length - 1].sampleId;
    }
    sampleTitle.textContent = session.currentSample;
    renderSampleSelect();
    renderCounts();
    renderShare();
    renderGallery();
    renderDetail();
    renderTable();
    renderReport();
  }

  // -- the lab record ------------------------------------------------------------------------

  function csvCell(value) {
    let text = String(value ?? "");
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`; // keep spreadsheets from running formulas
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  }

  const LAB_COLUMNS = ["date_time_utc", "sample_id", "request_id", "image_sha256", "filename",
    "status", "model_id", "model_name", "model_version", "tta", "calibrated", "probability_all",
    "threshold", "assessable", "suggestion", "warnings", "decision", "reviewer",
    "decision_time_utc", "decision_stored", "comment", "error"];

  function labRecord(rows) {
    const lines = [LAB_COLUMNS.join(",")];
    for (const row of rows) {
      const p = row.prediction;
      const option = p ? optionFor(p.model.id) : null;
      lines.push([
        row.time, row.sampleId, row.requestId, row.sha256 || "", row.filename, row.status,
        p?.model.id, option?.dataset.name, p?.model.version, p ? String(p.tta) : "",
        option ? option.dataset.calibrated : "", p?.probability_all.toFixed(6),
        p?.threshold.toFixed(6), p ? String(p.assessable) : "", STATE_WORDS[rowState(row)],
        p ? p.warnings.map((w) => w.code).join(";") : "", row.decision?.decision,
        row.decision?.reviewer, row.decision?.time, row.decision ? String(row.decision.stored) : "",
        row.decision?.comment, row.error ? `${row.error.status_code}: ${row.error.detail}` : "",
      ].map(csvCell).join(","));
    }
    return `${lines.join("\n")}\n`;
  }

  function downloadCsv() {
    const rows = sampleRows().sort((a, b) => a.index - b.index);
    const blob = new Blob([labRecord(rows)], { type: "text/csv" });
    const link = document.createElement("a");
    const stamp = new Date().toISOString().replace(/[-:]/g, "").slice(0, 13);
    link.href = URL.createObjectURL(blob);
    link.download = `leukolens-${session.currentSample}-${stamp}Z.csv`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    session.exported = true;
    saveSession();
  }

  // -- the session in IndexedDB --------------------------------------------------------------

  const DB_NAME = "leukolens";
  const STORE = "session";
  let database = null;

  function openDatabase() {
    if (database) return database;
    database = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.addEventListener("upgradeneeded", () => request.result.createObjectStore(STORE));
      request.addEventListener("success", () => resolve(request.result));
      request.addEventListener("error", () => reject(request.error));
    });
    return database;
  }

  async function storeOp(mode, operation) {
    const db = await openDatabase();
    return new Promise((resolve, reject) => {
      const transaction = db.transaction(STORE, mode);
      const request = operation(transaction.objectStore(STORE));
      transaction.addEventListener("complete", () => resolve(request.result));
      transaction.addEventListener("error", () => reject(transaction.error));
    });
  }

  let saving = Promise.resolve();
  function saveSession() {
    session.savedAt = new Date().toISOString();
    const snapshot = JSON.parse(JSON.stringify({ ...session, reviewer: reviewerInput.value }));
    saving = saving
      .then(() => storeOp("readwrite", (store) => store.put(snapshot, "current")))
      .then(() => { document.body.dataset.savedAt = snapshot.savedAt; })
      .catch((error) => showAlert(`The session could not be saved in this browser: ${error.message}`));
  }

  async function restoreSession() {
    try {
      const saved = await storeOp("readonly", (store) => store.get("current"));
      if (saved && saved.rows && saved.rows.length) {
        session = { rows: saved.rows, currentSample: saved.currentSample, exported: saved.exported,
          savedAt: saved.savedAt, shares: saved.shares || {} };
        if (saved.reviewer && !reviewerInput.value) reviewerInput.value = saved.reviewer;
        sampleInput.value = session.currentSample;
        selectedKey = galleryOrder().find((row) => row.status === "ok")?.key || null;
        render();
        setStatus(`Restored the session saved ${new Date(saved.savedAt).toLocaleString()}: ` +
          `${plural(session.rows.length, "image")}.`);
      }
    } catch (error) {
      showAlert(`The saved session could not be read: ${error.message}`);
    }
    document.body.dataset.restored = "true";
  }

  async function clearSession() {
    if (run) return;
    if (!session.exported && !window.confirm("Clear this session? Results not yet exported are lost (decisions already stored on the server stay there).")) return;
    session = { rows: [], currentSample: "", exported: true, savedAt: null, shares: {} };
    liveFiles.clear();
    liveViews.clear();
    selectedKey = null;
    await storeOp("readwrite", (store) => store.delete("current"));
    sampleInput.value = newSampleId();
    render();
    setStatus("Session cleared.");
  }

  // -- wiring --------------------------------------------------------------------------------

  function typing(target) {
    return target instanceof HTMLElement
      && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (workstation.hidden || dialog.open || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target)) return;
    const key = event.key.toLowerCase();
    const actions = {
      j: () => move(1), arrowright: () => move(1), k: () => move(-1), arrowleft: () => move(-1),
      a: () => decide("ALL"), n: () => decide("HEM"), x: () => decide("not_assessable"),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });

  input.addEventListener("change", () => choose(input.files));
  $("choose-button").addEventListener("click", () => input.click());
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
  cancelButton.addEventListener("click", () => run?.controller.abort());
  $("csv-button").addEventListener("click", downloadCsv);
  $("print-button").addEventListener("click", () => {
    renderReport();
    session.exported = true;
    saveSession();
    window.print();
  });
  window.addEventListener("beforeprint", renderReport);
  $("clear-button").addEventListener("click", clearSession);
  $("new-sample").addEventListener("click", () => {
    sampleInput.value = newSampleId();
    sampleInput.focus();
  });
  sampleSelect.addEventListener("change", () => {
    session.currentSample = sampleSelect.value;
    sampleInput.value = sampleSelect.value;
    selectedKey = galleryOrder().find((row) => row.status === "ok")?.key || null;
    render();
    saveSession();
  });
  reviewerInput.addEventListener("change", saveSession);
  $("enlarge-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
  modelSelect.addEventListener("change", () => {
    ttaInput.checked = modelSelect.selectedOptions[0].dataset.ttaDefault === "true";
  });
  window.addEventListener("beforeunload", (event) => {
    if (run || (session.rows.length && !session.exported)) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  ttaInput.checked = modelSelect.selectedOptions[0].dataset.ttaDefault === "true";
  sampleInput.value = newSampleId();
  form.addEventListener("submit", analyse);
  render();
  restoreSession();
})();
