"""An external report as Markdown (the table docs/*.md carry), and its JSON and Markdown files
in a directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.evaluation.external_evaluation import PART_TITLES, ExternalReport, PartFigures
from training.fit.artifacts import EXTERNAL_REPORT
from training.metrics.subject_resampling import Interval


def _cell(interval: Interval | None) -> str:
    if interval is None or not np.isfinite(interval.value):
        return "—"
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def _threshold_cell(figures: PartFigures | None) -> str:
    if figures is None or figures.balanced_accuracy is None:
        return "—"
    sens, spec = figures.sensitivity, figures.specificity
    return (
        f"{_cell(figures.balanced_accuracy)} "
        f"({sens.value if sens else float('nan'):.2f} / {spec.value if spec else float('nan'):.2f})"
    )


def markdown(report: ExternalReport, *, per_subject_of: str | None = None) -> str:
    parts = list(report.cells)
    data_line = ", ".join(
        f"{PART_TITLES[p]}: {report.cells[p]} cells of {report.subjects[p]} subjects" for p in parts
    )
    lines = [
        f"Unseen subjects in `{report.root}` ({data_line}; preliminary-test CSV rows present "
        f"{report.prelim_listed_in_csv - report.prelim_missing} of "
        f"{report.prelim_listed_in_csv}; {report.duplicates_removed} pixel duplicates removed). "
        f"{report.protocol}; {report.resamples} resamples.",
        "",
        "| scorer | threshold | "
        + " | ".join(f"ROC AUC, {PART_TITLES[p]} [95%]" for p in parts)
        + " | "
        + " | ".join(f"balanced acc. (sens / spec), {PART_TITLES[p]}" for p in parts)
        + " |",
        "|" + "---|" * (2 + 2 * len(parts)),
    ]
    for scorer in report.scorers:
        threshold = "—" if scorer.threshold is None else f"{scorer.threshold:.3f}"
        aucs = " | ".join(
            _cell(scorer.parts[p].roc_auc if p in scorer.parts else None) for p in parts
        )
        accuracies = " | ".join(_threshold_cell(scorer.parts.get(p)) for p in parts)
        lines.append(f"| {scorer.name} | {threshold} | {aucs} | {accuracies} |")
    if report.paired:
        lines += [
            "",
            "| paired ROC AUC difference | " + " | ".join(PART_TITLES[p] for p in parts) + " |",
            "|" + "---|" * (1 + len(parts)),
        ]
        for pair in report.paired:
            cells = " | ".join(_cell(pair.roc_auc_difference.get(p)) for p in parts)
            lines.append(f"| {pair.model} minus {pair.against} | {cells} |")
    chosen = report.scorer(per_subject_of) if per_subject_of else report.scorers[0]
    lines += [
        "",
        f"Per subject, {chosen.name}:",
        "",
        "| subject | part | label | cells | mean score | share called ALL | accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in chosen.per_subject:
        called = "—" if row.called_all is None else f"{row.called_all:.2f}"
        accuracy = "—" if row.accuracy is None else f"{row.accuracy:.2f}"
        lines.append(
            f"| {row.subject} | {PART_TITLES[row.part]} | {row.label} | {row.cells} "
            f"| {row.mean_score:.3f} | {called} | {accuracy} |"
        )
    return "\n".join(lines)


def write_report(
    report: ExternalReport, out_dir: Path, *, per_subject_of: str | None = None
) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / EXTERNAL_REPORT).write_text(
        report.model_dump_json(indent=2) + "\n", encoding="utf-8"
    )
    table = markdown(report, per_subject_of=per_subject_of)
    (out_dir / EXTERNAL_REPORT.replace(".json", ".md")).write_text(table + "\n", encoding="utf-8")
    return table


def read_report(directory: Path) -> ExternalReport | None:
    path = directory / EXTERNAL_REPORT
    if not path.is_file():
        return None
    return ExternalReport.model_validate_json(path.read_text(encoding="utf-8"))
