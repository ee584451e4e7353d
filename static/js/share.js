// The sample's figures, from the server's blast share and the page's rows: the same words on
// the page, in the printed report and in the lab CSV.
import { optionFor } from "./dom.js";
import { sampleRows, state } from "./state.js";
import { STATES, percent, plural, points, rowState } from "./words.js";

export const HEADLINE_LABEL = "Reviewer-confirmed ALL-like share";
export const ESTIMATE_LABEL = "Model-estimated share of blast-like cells, whole sample";

// The headline in the server's words (app/core/sample_headline.py): what it counts, and the
// cells marked not assessable beside it, never dropped in silence.
export function headlineText(share, assessable, notAssessable) {
  const text = share === null ? "no assessable reviewed cell yet"
    : `${percent(share)} of ${plural(assessable, "assessable reviewed cell")}`;
  return notAssessable ? `${text}; ${notAssessable} not assessable` : text;
}

// The models that scored the sample's cells, each with its one sentence of error rates (the
// card's, as the server wrote it into the model selector).
export function modelRates(sampleId = state.currentSample) {
  const models = new Map();
  for (const row of sampleRows(sampleId)) {
    const model = row.prediction?.model;
    if (!model || models.has(model.id)) continue;
    const option = optionFor(model.id);
    models.set(model.id, { id: model.id, version: model.version, name: option?.dataset.name || model.id,
      sentence: option?.dataset.errorRates || "" });
  }
  return [...models.values()];
}

// How cells count, said once (page, report and CSV): every figure below follows it.
const COUNTING_RULE = "Counted cells: each image once; not-assessable cells (by the model or a " +
  "reviewer) are left out; a reviewer's decision replaces the model's call; an undecided " +
  "indeterminate cell counts on the side of the threshold the model put it.";

// Why the server gives no share: it holds no cell of the sample because it refused every file
// (the page shows each refusal), or it has not answered yet.
function noShareReason(cells, files) {
  if (cells || !files) return "the server has not answered for this sample yet";
  return `no cell of this sample could be analysed (${files === 1 ? "its one file was" : `all ${files} files were`} refused)`;
}

// The sample's figures, one per thing they describe: the reviewers' confirmed share (the
// headline once cells are reviewed) and the model's corrected estimate with its interval,
// or why that estimate is not readable.
export function headline(sampleId) {
  const rows = sampleRows(sampleId).filter((row) => row.status === "ok");
  const reviewed = rows.filter((row) => row.decision && row.decision.decision !== "not_assessable");
  const confirmedAll = reviewed.filter((row) => row.decision.decision === "ALL").length;
  const notAssessable = rows.filter((row) => row.decision?.decision === "not_assessable").length;
  const share = state.shares[sampleId];
  const figures = {
    reviewed: reviewed.length,
    reviewedShare: reviewed.length ? confirmedAll / reviewed.length : null,
    notAssessable,
    estimate: null,
    reason: "",
  };
  // The server's words while they count the same cells (a decision not yet synced: the page's).
  const told = state.records[sampleId]?.headline;
  figures.text = told && told.assessable_reviewed === reviewed.length
    && told.confirmed_all_like === confirmedAll && told.not_assessable === notAssessable
    ? told.text : headlineText(figures.reviewedShare, reviewed.length, notAssessable);
  if (!share || share.observed === null || share.observed === undefined) {
    figures.reason = share ? "no assessable cell" : noShareReason(rows.length, sampleRows(sampleId).length);
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

export function headlineEntries(sampleId) {
  const figures = headline(sampleId);
  const entries = [[HEADLINE_LABEL, figures.text]];
  const estimate = figures.estimate;
  let text = "–";
  if (estimate && estimate.readable) {
    text = `${percent(estimate.value)} (95%: ${percent(estimate.low)}–${percent(estimate.high)}) of ${plural(estimate.n, "cell")}`;
  } else if (estimate) {
    text = `not readable (95%: ${percent(estimate.low)}–${percent(estimate.high)})`;
  } else if (figures.reason) {
    text = `not available: ${figures.reason}`;
  }
  entries.push([ESTIMATE_LABEL, text]);
  return entries;
}

export function shareSentences(sampleId) {
  const share = state.shares[sampleId];
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
  const rates = share.n_model_called > 0 && share.corrected !== null && share.corrected !== undefined
    ? "Cells not yet reviewed are corrected with the model's error rates (below)." : "";
  return [reading, rates, COUNTING_RULE, aid].filter(Boolean).join(" ");
}

// Only decisions the server stored count (a row's `decision` is only ever one); those on their
// way are counted apart, as pending, by the page alone.
export function sampleCounts(rows) {
  const tally = Object.fromEntries(STATES.map(([key]) => [key, 0]));
  const decided = { ALL: 0, HEM: 0, not_assessable: 0 };
  for (const row of rows) {
    tally[rowState(row)] += 1;
    if (row.decision) decided[row.decision.decision] += 1;
  }
  const cells = rows.filter((row) => row.status === "ok").length;
  const decidedTotal = decided.ALL + decided.HEM + decided.not_assessable;
  return { tally, decided, cells, decidedTotal, undecided: cells - decidedTotal };
}

// The counts of the record: the same on the page, in the printed report and in the lab CSV.
export function countEntries(rows) {
  const c = sampleCounts(rows);
  const entries = [
    ["Cells", String(c.cells)],
    ["Suggests ALL-like / normal / indeterminate",
      `${c.tally.suggests_all} / ${c.tally.suggests_normal} / ${c.tally.indeterminate}`],
    ["Not assessable (model)", String(c.tally.not_assessable)],
    ["Reviewed (stored on the server)", `${c.decidedTotal} of ${c.cells}`],
    ["Undecided", String(c.undecided)],
    ["Confirmed ALL / normal / not assessable", `${c.decided.ALL} / ${c.decided.HEM} / ${c.decided.not_assessable}`],
  ];
  if (c.tally.error) entries.splice(3, 0, ["Files not analysed (refused)", String(c.tally.error)]);
  return entries;
}
