// The sample's figures, from the server's blast share and the page's rows: the same words on
// the page, in the printed report and in the lab CSV.
import { sampleRows, state } from "./state.js";
import { STATES, percent, plural, points, rowState } from "./words.js";

// How cells count, said once (page, report and CSV): every figure below follows it.
const COUNTING_RULE = "Counted cells: each image once; not-assessable cells (by the model or a " +
  "reviewer) are left out; a reviewer's decision replaces the model's call; an undecided " +
  "indeterminate cell counts on the side of the threshold the model put it.";

// The sample's figures, one per thing they describe: the reviewers' confirmed share (the
// headline once cells are reviewed) and the model's corrected estimate with its interval,
// or why that estimate is not readable.
export function headline(sampleId) {
  const rows = sampleRows(sampleId).filter((row) => row.status === "ok");
  const reviewed = rows.filter((row) => row.decision && row.decision.decision !== "not_assessable");
  const confirmedAll = reviewed.filter((row) => row.decision.decision === "ALL").length;
  const share = state.shares[sampleId];
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

export function headlineEntries(sampleId) {
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
