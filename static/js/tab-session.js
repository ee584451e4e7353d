// What belongs to this tab alone and lives in its sessionStorage: the tab's id (the key of its
// session in IndexedDB, so that two tabs never overwrite each other) and the API key it signed
// in with (kept until the tab closes; never in IndexedDB or localStorage, which every tab and
// every later visit share). A reload keeps both; another tab has its own.
const TAB_ID = "leukolens-tab";
const API_KEY = "leukolens-api-key";

export function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0")).join("");
}

function stored(name) {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null; // storage switched off: the tab still works, without surviving a reload
  }
}

function keep(name, value) {
  try {
    if (value) sessionStorage.setItem(name, value);
    else sessionStorage.removeItem(name);
  } catch {
    // as above
  }
}

export const tabId = stored(TAB_ID) || (() => {
  const id = randomId();
  keep(TAB_ID, id);
  return id;
})();

let key = stored(API_KEY) || "";

export const apiKey = () => key;

export function keepApiKey(value) {
  key = value;
  keep(API_KEY, value);
}
