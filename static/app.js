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
  const openSelect = $("open-sample");
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
  let pointerAt = 0; // when the gallery was last touched or clicked (a tap reveals the detail)
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
  function postFiles(url, files, signal, onProgress, clientRequestId) {
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
      // Names the upload, so that a cancelled one can be withdrawn from the sample.
      if (clientRequestId) xhr.setRequestHeader("X-Request-ID", clientRequestId);
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

  // The body of an answer, or null when it has none that parses.
  async function bodyOf(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...apiHeaders() },
      body: JSON.stringify(body),
    });
    const answer = await bodyOf(response);
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
    const { views, explanation, ...rest } = prediction;
    if (explanation) {
      rest.explanation = { heat_in_cell: explanation.heat_in_cell, on_cell: explanation.on_cell };
    }
    return rest;
  }

  // -- analysis ------------------------------------------------------------------------------

  function setRunning(running) {
    cancelButton.hidden = !running;
    progressRow.hidden = !running;
    for (const control of [modelSelect, ttaInput, sampleInput, $("new-sample"), $("clear-button"),
      sampleSelect, openSelect, $("open-sample-button")]) {
      control.disabled = running;
    }
    describeChoice();
  }

  function showProgress(done, total, sending, fraction) {
    progress.max = total;
    progress.value = done + (sending ? sending * fraction : 0);
    const range = `${done + 1}–${done + sending} of ${total}`;
    if (!sending) {
      progressText.textContent = `Analysed ${done} of ${total}`;
    } else if (fraction < 1) {
      progressText.textContent = `Sending images ${range} (${Math.round(fraction * 100)}% uploaded)`;
    } else {
      // Uploaded: the server is working. A cancel now withdraws these images from the sample.
      progressText.textContent = `Analysing images ${range} on the server…`;
    }
    progressRow.dataset.stage = !sending ? "done" : fraction < 1 ? "uploading" : "analysing";
  }

  const cellKey = (sampleId, sha256) => `${sampleId}:${sha256}`;

  // One row per image of a sample, known by its sha256: an image scored again (a re-drop after
  // a reload, say) is the same cell, and brings its file, views and heatmap back to it.
  async function rowsFrom(files, answer, sampleId) {
    const results = answer.body.results;
    const requestId = answer.requestId
      || results.find((result) => result.prediction)?.prediction.request_id || "unknown";
    const made = [];
    let index = sampleRows(sampleId).length;
    for (const [position, result] of results.entries()) {
      const file = files[position];
      const base = { sampleId, requestId, filename: file.name, time: new Date().toISOString(),
        decision: null };
      if (result.filename !== file.name) {
        made.push({ ...base, index: index++, key: `${requestId}:error:${position}`, status: "error",
          error: { status_code: 0, detail: "the answer did not match the file sent" } });
        continue;
      }
      if (result.status !== "ok") {
        made.push({ ...base, index: index++, key: `${requestId}:error:${position}`, status: "error",
          error: result.error });
        continue;
      }
      const prediction = result.prediction;
      const key = cellKey(sampleId, prediction.image_sha256);
      const thumb = prediction.views ? await thumbnail(prediction.views.original) : null;
      liveFiles.set(key, file);
      liveViews.set(key, prediction);
      const known = session.rows.find((row) => row.key === key) || made.find((row) => row.key === key);
      if (known) {
        // The same cell: its record stays the first answer's; the file and views come back.
        if (!known.attached) known.filename = file.name;
        known.attached = true;
        known.thumb = thumb || known.thumb;
        known.repeats = (known.repeats || 0) + 1;
        continue;
      }
      made.push({ ...base, index: index++, key, sha256: prediction.image_sha256, status: "ok",
        requestId: prediction.repeat_of || prediction.request_id, attached: true,
        prediction: persistable(prediction), thumb });
    }
    return made;
  }

  // -- the sample on the server: the page's rows are a cache of it ----------------------------

  function newClientRequestId() {
    const random = crypto.randomUUID ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
    return `upload-${random}`;
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: apiHeaders() });
    return { status: response.status, ok: response.ok, body: await bodyOf(response) };
  }

  function decisionFromServer(record) {
    return { decision: record.decision, reviewer: record.reviewer, comment: record.comment,
      time: new Date(record.time).toISOString(), stored: true, id: record.id };
  }

  function predictionFromServer(cell) {
    return { request_id: cell.request_id, image_sha256: cell.image_sha256,
      probability_all: cell.probability_all, threshold: cell.threshold ?? 0.5,
      label: cell.label, state: cell.state, assessable: cell.assessable, tta: Boolean(cell.tta),
      model: { id: cell.model_id, version: cell.model_version },
      warnings: (cell.warnings || []).map((code) => ({ code, message: "" })) };
  }

  // The server holds the sample: its cells (each image once, withdrawn uploads left out) and
  // every decision. The page takes them as they are, keeping what only it has (file names,
  // thumbnails, views of images dropped in this browser) and its refused files.
  const syncTurns = new Map(); // sample id -> the latest sync asked for it

  async function syncSample(sampleId) {
    const turn = (syncTurns.get(sampleId) || 0) + 1;
    syncTurns.set(sampleId, turn);
    let answer;
    try {
      const listed = await fetchSampleList();
      const known = !listed.ok || listed.body.total > listed.body.samples.length
        || serverSamples.some((s) => s.sample_id === sampleId);
      // A sample the server does not hold (every upload cancelled) has no cells: no request
      // that could only answer 404.
      answer = known ? await getJson(`/api/v1/samples/${encodeURIComponent(sampleId)}`)
        : { ok: false, status: 404, body: null };
    } catch {
      return false; // the server is away: the cached rows stay until the next answer
    }
    if (!answer.ok && answer.status !== 404) return false;
    // A newer sync was asked for meanwhile, or an analysis began: its answer, or the run's own
    // end, brings the sample up to date; this older answer would undo what came after it.
    if (syncTurns.get(sampleId) !== turn || run) return false;
    const cells = answer.ok ? answer.body.predictions : [];
    const latest = new Map();
    for (const record of answer.ok ? answer.body.decisions : []) latest.set(record.image_sha256, record);
    // By sha256, not by key: rows cached by an earlier release were keyed by request id.
    const local = new Map(sampleRows(sampleId).filter((row) => row.status === "ok").map((row) => [row.sha256, row]));
    const refused = sampleRows(sampleId).filter((row) => row.status !== "ok");
    const rows = cells.map((cell, position) => {
      const key = cellKey(sampleId, cell.image_sha256);
      const known = local.get(cell.image_sha256);
      if (known && known.key !== key) {
        for (const live of [liveFiles, liveViews]) {
          if (live.has(known.key)) live.set(key, live.get(known.key));
        }
        if (selectedKey === known.key) selectedKey = key;
        known.key = key;
      }
      const row = known || { key, sampleId, sha256: cell.image_sha256, status: "ok", thumb: null,
        filename: `image ${cell.image_sha256.slice(0, 8)} (not in this browser)`, attached: false,
        time: new Date(cell.time).toISOString(), decision: null };
      row.index = position;
      row.requestId = cell.request_id;
      row.prediction = { ...predictionFromServer(cell), ...(known ? pick(known.prediction) : {}) };
      const record = latest.get(cell.image_sha256);
      if (record) {
        row.decision = decisionFromServer(record);
      } else if (row.decision && row.decision.stored) {
        row.decision = null; // the server has no decision on it
      }
      return row;
    });
    refused.forEach((row, position) => { row.index = rows.length + position; });
    session.rows = [...session.rows.filter((row) => row.sampleId !== sampleId), ...rows, ...refused];
    if (answer.ok) {
      session.shares[sampleId] = { ...answer.body.blast_share };
    } else {
      delete session.shares[sampleId];
    }
    if (!sampleRows().some((row) => row.key === selectedKey)) {
      selectedKey = galleryOrder().find((row) => row.status === "ok")?.key || null;
    }
    render();
    saveSession();
    return true;
  }

  // What the page's own answer knows beyond the record: the warnings' messages, its explanation.
  function pick(prediction) {
    const kept = {};
    if (prediction.warnings?.some((w) => w.message)) kept.warnings = prediction.warnings;
    if (prediction.explanation) kept.explanation = prediction.explanation;
    return kept;
  }

  let serverSamples = [];

  // The server's samples, newest change first (every sync reads them: the lists stay current).
  async function fetchSampleList() {
    const answer = await getJson("/api/v1/samples?limit=200");
    if (answer.ok) serverSamples = answer.body.samples;
    return answer;
  }

  async function openSample(sampleId) {
    session.currentSample = sampleId;
    sampleInput.value = sampleId;
    selectedKey = null;
    render();
    setStatus(`Opening sample ${sampleId} from the server…`);
    const synced = await syncSample(sampleId);
    selectedKey = galleryOrder().find((row) => row.status === "ok")?.key || null;
    render();
    setStatus(synced ? `Sample ${sampleId}: ${plural(sampleRows(sampleId).length, "image")}, as the server holds it.`
      : `Sample ${sampleId} could not be read from the server; showing this browser's copy.`);
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
    let done = 0;
    let outcome = ""; // said once the page holds what the server holds
    let inFlight = null; // the client request id of the upload whose answers are not yet kept
    setStatus(`Analysing ${plural(files.length, "image")} for sample ${sampleId}…`);
    try {
      for (let start = 0; start < files.length; start += CHUNK) {
        const part = files.slice(start, start + CHUNK);
        inFlight = newClientRequestId();
        showProgress(done, files.length, part.length, 0);
        const answer = await postFiles(`/api/v1/predict/batch?${query}`, part, controller.signal,
          (fraction) => showProgress(done, files.length, part.length, fraction), inFlight);
        if (controller.signal.aborted) throw new DOMException("cancelled", "AbortError");
        const made = await rowsFrom(part, answer, sampleId);
        session.rows.push(...made);
        inFlight = null;
        session.exported = false;
        done += part.length;
        showProgress(done, files.length, 0, 0);
        if (!sampleRows(sampleId).some((row) => row.key === selectedKey)) {
          selectedKey = sampleRows(sampleId).find((row) => row.status === "ok")?.key || null;
        }
        render();
        saveSession();
      }
      const failed = session.rows.filter((r) => r.sampleId === sampleId && r.status !== "ok").length;
      outcome = `Done: ${plural(done, "image")} analysed for sample ${sampleId}` +
        (failed ? `, ${failed} could not be analysed.` : ".");
    } catch (error) {
      if (error.name === "AbortError") {
        // The server may have scored (or may still be scoring) the cancelled upload: it is
        // withdrawn from the sample, so that page and server hold the same cells.
        if (inFlight) await withdraw(sampleId, inFlight);
        outcome = `Cancelled after ${done} of ${files.length} images; the finished ones are kept.`;
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
    await syncSample(sampleId);
    renderSampleSelect(); // the sync read the server's list, even where it changed no row
    if (outcome) setStatus(outcome);
  }

  async function withdraw(sampleId, clientRequestId) {
    const failed = "The cancelled images could not be withdrawn: the server may count them. " +
      "Reload to see what it holds.";
    try {
      const response = await fetch(`/api/v1/samples/${encodeURIComponent(sampleId)}/withdrawals`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...apiHeaders() },
        body: JSON.stringify({ client_request_id: clientRequestId }),
      });
      if (!response.ok) showAlert(failed);
    } catch {
      showAlert(failed);
    }
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

  function select(key, { focus = false, reveal = false } = {}) {
    const changed = key !== selectedKey;
    selectedKey = key;
    render();
    if (changed) {
      detail.scrollTop = 0;
      $("detail-section").scrollTop = 0;
    }
    if (reveal && window.matchMedia("(max-width: 760px)").matches) {
      $("detail-section").scrollIntoView({ block: "start" });
    }
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

  function nextUndecided() {
    const order = galleryOrder().filter((row) => row.status === "ok");
    const at = order.findIndex((row) => row.key === selectedKey);
    const rotated = [...order.slice(at + 1), ...order.slice(0, at + 1)];
    const next = rotated.find((row) => !row.decision);
    if (next) {
      select(next.key, { focus: true });
    } else {
      setStatus("Every cell of this sample has a decision.");
    }
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
      record.time = new Date(stored.time).toISOString();
    } catch (error) {
      record.error = error.message;
      showAlert(`The decision on ${row.filename} was not stored: ${error.message}`);
    }
    render();
    saveSession();
    if (record.stored && !run) await syncSample(row.sampleId); // a run syncs at its end
  }

  // -- the sample's share of blast-like cells, from the server -------------------------------

  const points = (value) => `${Math.round(value * 100)} percentage points`;

  // How cells count, said once (page, report and CSV): every figure below follows it.
  const COUNTING_RULE = "Counted cells: each image once; not-assessable cells (by the model or a " +
    "reviewer) are left out; a reviewer's decision replaces the model's call; an undecided " +
    "indeterminate cell counts on the side of the threshold the model put it.";

  // The sample's figures, one per thing they describe: the reviewers' confirmed share (the
  // headline once cells are reviewed) and the model's corrected estimate with its interval,
  // or why that estimate is not readable.
  function headline(sampleId) {
    const rows = sampleRows(sampleId).filter((row) => row.status === "ok");
    const reviewed = rows.filter((row) => row.decision && row.decision.decision !== "not_assessable");
    const confirmedAll = reviewed.filter((row) => row.decision.decision === "ALL").length;
    const share = session.shares[sampleId];
    const figures = {
      reviewed: reviewed.length,
      reviewedShare: reviewed.length ? confirmedAll / reviewed.length : null,
      estimate: null,
      reason: "",
    };
    if (!share || share.observed === null || share.observed === undefined) {
      figures.reason = share ? "no assessable cell" : "the server has not answered for this sample yet";
      return figures;
    }
    if (share.corrected === null || share.corrected === undefined) {
      figures.reason = share.note || "no correction is available for this model";
      return figures;
    }
    figures.estimate = { value: share.corrected, low: share.ci_low, high: share.ci_high,
      readable: !share.too_wide, n: share.n_assessable };
    if (share.too_wide) {
      figures.reason = share.more_cells_needed !== null && share.more_cells_needed !== undefined
        ? `its 95% interval is wider than ${points(share.readable_width)}; roughly ` +
          `${share.more_cells_needed} more assessable cells would narrow it`
        : share.n_model_called === 0
          ? `its 95% interval is wider than ${points(share.readable_width)}: more reviewed cells would narrow it`
          : `its 95% interval is wider than ${points(share.readable_width)}, and more cells alone ` +
            "would not narrow it: the model's error rates on patients it never saw are too " +
            "uncertain; reviewing cells counts them directly";
    }
    return figures;
  }

  function headlineEntries(sampleId) {
    const figures = headline(sampleId);
    const entries = [];
    if (figures.reviewedShare !== null) {
      entries.push(["Reviewer-confirmed ALL-like share",
        `${percent(figures.reviewedShare)} of ${plural(figures.reviewed, "reviewed cell")}`]);
    }
    const estimate = figures.estimate;
    let text = "–";
    if (estimate && estimate.readable) {
      text = `${percent(estimate.value)} (95%: ${percent(estimate.low)}–${percent(estimate.high)}) of ${plural(estimate.n, "cell")}`;
    } else if (estimate) {
      text = `not readable (95%: ${percent(estimate.low)}–${percent(estimate.high)})`;
    } else if (figures.reason) {
      text = `not available: ${figures.reason}`;
    }
    entries.push(["Estimated share of blast-like cells, whole sample", text]);
    return entries;
  }

  function shareSentences(sampleId) {
    const share = session.shares[sampleId];
    const figures = headline(sampleId);
    const aid = "A research and screening aid: not a diagnosis and not a blast count.";
    if (!share) return `${COUNTING_RULE} ${aid}`;
    let reading = "";
    if (figures.estimate && !figures.estimate.readable) {
      reading = `The estimate is not readable: ${figures.reason}.`;
    } else if (!figures.estimate) {
      reading = `No estimate: ${figures.reason}.`;
    } else if (share.n_model_called === 0) {
      reading = "Every counted cell was reviewed: the estimate is the reviewers' count, with its interval.";
    }
    let rates = "";
    if (share.n_model_called > 0 && share.sensitivity !== null && share.sensitivity !== undefined) {
      const where = share.rates === "unseen_patients" ? "on patients it never saw"
        : "on held-out people of its own training data (the card has no rates on new patients)";
      rates = `Cells not yet reviewed are corrected with the model's error rates ${where}: ` +
        `sensitivity ${percent(share.sensitivity)} (${share.sensitivity_counts[0]} of ` +
        `${share.sensitivity_counts[0] + share.sensitivity_counts[1]} ALL cells), specificity ` +
        `${percent(share.specificity)} (${share.specificity_counts[0]} of ` +
        `${share.specificity_counts[0] + share.specificity_counts[1]} normal cells).`;
    }
    return [reading, rates, COUNTING_RULE, aid].filter(Boolean).join(" ");
  }

  function renderShare() {
    const figures = headline(session.currentSample);
    shareReading.textContent = shareSentences(session.currentSample);
    shareReading.dataset.tooWide = figures.estimate && !figures.estimate.readable ? "true" : "false";
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
    const cells = rows.filter((row) => row.status === "ok").length;
    const decidedTotal = decided.ALL + decided.HEM + decided.not_assessable;
    return { tally, decided, stored, cells, decidedTotal, undecided: cells - decidedTotal };
  }

  function countEntries(rows) {
    const c = sampleCounts(rows);
    const entries = [
      ["Cells", String(c.cells)],
      ["Suggests ALL-like / normal / indeterminate",
        `${c.tally.suggests_all} / ${c.tally.suggests_normal} / ${c.tally.indeterminate}`],
      ["Not assessable (model)", String(c.tally.not_assessable)],
      ["Reviewed", `${c.decidedTotal} of ${c.cells} (${c.stored} stored)`],
      ["Undecided", String(c.undecided)],
      ["Confirmed ALL / normal / not assessable", `${c.decided.ALL} / ${c.decided.HEM} / ${c.decided.not_assessable}`],
    ];
    if (c.tally.error) entries.splice(3, 0, ["Files not analysed (refused)", String(c.tally.error)]);
    return entries;
  }

  function renderCounts() {
    counts.replaceChildren();
    const entries = [...headlineEntries(session.currentSample), ...countEntries(sampleRows())];
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
        const name = document.createElement("span");
        name.className = "thumb-name";
        name.textContent = row.filename;
        name.setAttribute("aria-hidden", "true");
        const description = document.createElement("span");
        description.className = "visually-hidden";
        description.textContent = ` ${thumbLabel(row)}`;
        button.append(mark, name, description);
        button.title = row.filename;
        // The cell the keys act on is the one the reviewer sees as current: focusing a
        // thumbnail (Tab, a click) makes it the selected one.
        button.addEventListener("focus", () => {
          if (row.key !== selectedKey) select(row.key, { reveal: Date.now() - pointerAt < 800 });
        });
        button.addEventListener("click", () => select(row.key, { focus: true, reveal: true }));
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
      // A sample reopened from the server keeps the warnings' codes, not their messages.
      item.textContent = warning.message
        ? `${warning.code.replaceAll("_", " ")}: ${warning.message}` : warning.code.replaceAll("_", " ");
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
      image.classList.add("thumb-only"); // shown at its own size, never stretched
      image.alt = row.thumb ? `thumbnail of ${row.filename}` : "";
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
      // Below the 90% a map needs; the share itself may still be most of the heat.
      shareNote.textContent += ", below the 90% a map needs before it can say which parts of " +
        "the cell mattered: read it as showing where the model looked, not what in the cell counted";
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

  // Every sample the server holds (newest change first) and this browser's, in both lists.
  function renderSampleSelect() {
    const known = new Map(serverSamples.map((s) => [s.sample_id, s]));
    const local = [...new Set(session.rows.map((row) => row.sampleId))];
    const ids = [...new Set([...local.filter((id) => !known.has(id)), ...known.keys()])];
    const label = (id) => {
      const remote = known.get(id);
      const cells = remote ? remote.cells : sampleRows(id).filter((row) => row.status === "ok").length;
      const reviewed = remote ? `, ${remote.reviewed} reviewed` : "";
      return `${id} (${plural(cells, "cell")}${reviewed})`;
    };
    sampleSelect.replaceChildren(...ids.map((id) => {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = label(id);
      option.selected = id === session.currentSample;
      return option;
    }));
    const keep = openSelect.value;
    const first = document.createElement("option");
    first.value = "";
    first.textContent = ids.length ? "Choose a sample…" : "No sample on the server yet";
    openSelect.replaceChildren(first, ...ids.map((id) => {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = label(id);
      return option;
    }));
    openSelect.value = ids.includes(keep) ? keep : "";
  }

  // The printed record of the sample on screen, and only that sample: per cell its file name,
  // thumbnail, suggestion, decision, comment, reviewer and time; the counts, the headline, the
  // model; a sign-off line.
  function renderReport() {
    const id = session.currentSample;
    report.replaceChildren();
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
    performance.textContent = modelIds.map((m) => optionFor(m)?.dataset.summary || m).join(" ");
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
    report.appendChild(page);
  }

  function render() {
    const hasRows = session.rows.length > 0;
    workstation.hidden = !hasRows && !session.currentSample;
    renderSampleSelect();
    if (workstation.hidden) {
      report.replaceChildren();
      return;
    }
    if (!session.currentSample) session.currentSample = session.rows[session.rows.length - 1].sampleId;
    sampleTitle.textContent = session.currentSample;
    renderCounts();
    renderShare();
    // Focus stays in the gallery, on the current cell (never on the one just left).
    const hadFocus = gallery.contains(document.activeElement);
    renderGallery();
    if (hadFocus && selectedKey) gallery.querySelector(`[data-key="${CSS.escape(selectedKey)}"]`)?.focus();
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
    const blob = new Blob([labRecord(rows, session.currentSample)], { type: "text/csv" });
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
    // This browser's copy is a cache: the sample on screen is read again from the server,
    // and the server's list of samples with it.
    if (session.currentSample) {
      await syncSample(session.currentSample);
    } else {
      try {
        await fetchSampleList();
      } catch {
        // The list is a convenience; the cached samples stay reachable.
      }
    }
    renderSampleSelect();
    document.body.dataset.restored = "true";
  }

  async function clearSession() {
    if (run) return;
    if (!session.exported && !window.confirm("Clear this session? Results not yet exported are lost (decisions already stored on the server stay there).")) return;
    session = { rows: [], currentSample: "", exported: true, savedAt: null, shares: {} };
    liveFiles.clear();
    liveViews.clear();
    selectedKey = null;
    session.currentSample = "";
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
      u: () => nextUndecided(),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });

  gallery.addEventListener("pointerdown", () => { pointerAt = Date.now(); });
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
  sampleSelect.addEventListener("change", () => { if (!run) openSample(sampleSelect.value); });
  $("open-sample-button").addEventListener("click", () => {
    if (openSelect.value && !run) openSample(openSelect.value);
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
