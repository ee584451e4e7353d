// What the page calls things, and how it writes numbers: shared by the screen, the printed
// report and the lab CSV, so that the three always say the same.

export const STATES = [
  ["suggests_all", "suggests ALL-like", "Suggests ALL-like"],
  ["indeterminate", "indeterminate", "Indeterminate (near the threshold)"],
  ["suggests_normal", "suggests normal", "Suggests normal"],
  ["not_assessable", "not assessable", "Not assessable"],
  ["error", "could not be analysed", "Could not be analysed"],
];
export const STATE_WORDS = Object.fromEntries(STATES.map(([key, words]) => [key, words]));
export const DECISION_WORDS = { ALL: "ALL confirmed", HEM: "normal confirmed", not_assessable: "not assessable" };
export const DECISION_SHORT = { ALL: "ALL", HEM: "normal", not_assessable: "n/a" };

export const percent = (value) => `${(value * 100).toFixed(1)}%`;
export const rowState = (row) => (row.status === "ok" ? row.prediction.state : "error");
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const points = (value) => `${Math.round(value * 100)} percentage points`;

// A cell's one number, the same on its thumbnail, in the results table, the printed report and
// every message: its place in the sample as the server lists it (each image once, as it arrived;
// refused files after), never its place in the gallery's review order, which follows the
// suggestions and moves as cells are decided.
export const cellNumber = (row) => row.index + 1;
// How a sentence names a cell, after the word "cell": "#6, UID_16_12_2_all.png", or with its
// place somewhere else: "#6 (3 of 6 in review order), UID_16_12_2_all.png".
export const cellName = (row, place = "") => `#${cellNumber(row)}${place ? ` (${place})` : ""}, ${row.filename}`;

// The one human form of a time, on screen and in print: the browser's local time with its
// offset from UTC ("2026-12-07 19:19:36 UTC+01:00"). Data keeps ISO 8601 in UTC.
export function humanTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const zone = offset === 0 ? "UTC"
    : `UTC${offset > 0 ? "+" : "-"}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
}

// Quality warnings as the page says them (the codes stay in the lab CSV and the API).
export const WARNING_WORDS = {
  no_cell: "No cell found on the background",
  no_background: "No black background around the cell",
  multiple_objects: "More than one object in the image",
  touches_border: "The cell touches the edge of the image",
  too_small: "The cell is smaller than the training cells",
  too_large: "The cell is larger than the training cells",
  blurry: "The image is blurred",
  unusual_stain: "The staining looks unlike the training images",
  uncertain: "Close to the threshold: the model is unsure",
};
export const warningWords = (code) => WARNING_WORDS[code] || code.replaceAll("_", " ");
