// Talking to the server: the API key header, JSON bodies, and the server's reasons as errors.

export function apiHeaders() {
  const key = document.getElementById("api-key");
  return key && key.value ? { "X-API-Key": key.value } : {};
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

// Never throws on an HTTP error: the caller reads the status (a 404 is an answer too).
export async function getJson(url) {
  const response = await fetch(url, { headers: apiHeaders() });
  return { status: response.status, ok: response.ok, body: await bodyOf(response) };
}

export async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...apiHeaders() },
    body: JSON.stringify(body),
  });
  const answer = await bodyOf(response);
  if (!response.ok) throw new Error(detailOf(answer, response.status));
  return answer;
}

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
        reject(new Error(detailOf(xhr.response, xhr.status)));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("the server could not be reached")));
    xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(data);
  });
}

export function newClientRequestId() {
  const random = crypto.randomUUID ? crypto.randomUUID()
    : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `upload-${random}`;
}

// Whether the server took the withdrawal; throws when it could not be reached.
export async function postWithdrawal(sampleId, clientRequestId) {
  const response = await fetch(`/api/v1/samples/${encodeURIComponent(sampleId)}/withdrawals`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...apiHeaders() },
    body: JSON.stringify({ client_request_id: clientRequestId }),
  });
  return response.ok;
}

export const fetchSample = (sampleId) => getJson(`/api/v1/samples/${encodeURIComponent(sampleId)}`);
export const fetchSamples = () => getJson("/api/v1/samples?limit=200");
export const postReview = (body) => postJson("/api/v1/reviews", body);
