// Talking to the server: this tab's API key, JSON bodies, and every answer as { status, ok,
// body, detail } so that callers can say what happened in the lab's words (refusals.js).
import { apiKey, randomId } from "./tab-session.js";

export function apiHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

function detailOf(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && body.detail) return JSON.stringify(body.detail);
  return `HTTP ${status}`;
}

// The body of an answer, or null when it has none that parses.
async function bodyOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// Never throws on an HTTP error (a 404 is an answer too); throws when the server could not be
// reached at all (status 0 for the caller that catches it).
async function call(url, options = {}) {
  const response = await fetch(url, { ...options, headers: { ...apiHeaders(), ...options.headers } });
  const body = await bodyOf(response);
  return { status: response.status, ok: response.ok, body, detail: response.ok ? "" : detailOf(body, response.status),
    headers: response.headers };
}

export const getJson = (url) => call(url);

// An answer even when the network failed: status 0, so that callers retry rather than throw.
async function reachable(url, options) {
  try {
    return await call(url, options);
  } catch {
    return { status: 0, ok: false, body: null, detail: "the server could not be reached", headers: null };
  }
}

const postJson = (url, body, headers = {}) => reachable(url, {
  method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

// XMLHttpRequest, not fetch: it reports upload progress. The AbortController cancels it.
export function postFiles(url, files, signal, onProgress, clientRequestId) {
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
        const error = new Error(detailOf(xhr.response, xhr.status));
        error.status = xhr.status;
        reject(error);
      }
    });
    xhr.addEventListener("error", () => {
      const error = new Error("the server could not be reached");
      error.status = 0;
      reject(error);
    });
    xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(data);
  });
}

export const newClientRequestId = () => `upload-${randomId()}`;
export const newIdempotencyKey = () => `decision-${randomId()}`;

export const postWithdrawal = (sampleId, clientRequestId) => postJson(
  `/api/v1/samples/${encodeURIComponent(sampleId)}/withdrawals`, { client_request_id: clientRequestId });

// One decision under its Idempotency-Key: sent again after a lost answer, it is stored once.
export const postReview = (body, idempotencyKey) =>
  postJson("/api/v1/reviews", body, { "Idempotency-Key": idempotencyKey });

// A sign-off: sent once; a retry after a lost answer is refused (nothing changed since).
export const postSignOff = (sampleId, body) =>
  postJson(`/api/v1/samples/${encodeURIComponent(sampleId)}/sign-off`, body);

export const fetchWhoami = () => reachable("/api/v1/whoami");
export const fetchSample = (sampleId) => getJson(`/api/v1/samples/${encodeURIComponent(sampleId)}`);
export const fetchSamples = () => getJson("/api/v1/samples?limit=200");
