// The local performance page. Where the server asks for an API key, the figures are fetched
// with it (the same page, rendered with the figures) and shown in place; otherwise the form
// is a plain GET and this script does nothing.
const form = document.getElementById("performance-form");
const key = document.getElementById("api-key");

async function showWithKey(event) {
  event.preventDefault();
  const error = document.getElementById("performance-error");
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (name !== "api-key" && value) query.set(name, value);
  }
  const response = await fetch(`/performance?${query}`, {
    headers: { "X-API-Key": key.value, Accept: "text/html" },
  });
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const body = page.getElementById("performance-body");
  if (!response.ok || page.getElementById("performance-locked") || !body) {
    error.textContent = response.ok ? "The key was not accepted." : `HTTP ${response.status}`;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  document.getElementById("performance-locked").hidden = true;
  document.getElementById("performance-body").replaceChildren(...body.childNodes);
}

if (form && key) form.addEventListener("submit", showWithKey);
