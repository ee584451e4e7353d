"""The bake-off table: one row per cross-validation run, read back from what `cv` wrote.

Every number comes from a run directory (cv_summary.json, colour_counterfactual.json,
heat_in_cell.json, metrics.jsonl, the fold models), so the table in docs/model-selection.md
can be rebuilt from the runs at any time and never typed by hand.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.evaluation.external_evaluation import (
    PART_ALL,
    PART_PRELIM,
    PART_TRAINING_FOLDS,
    ExternalReport,
)
from training.evaluation.external_report_writing import read_report
from training.fit.artifacts import CvDir, HeldOutReport, RunDir
from training.fit.checkpoints import load_trained_model
from training.fit.models import CellClassifier, count_parameters
from training.metrics.subject_resampling import Interval

LATENCY_REPEATS = 30


@dataclass(frozen=True)
class CandidateRow:
    name: str
    command: str
    roc_auc_per_fold: list[float]
    roc_auc_mean: float
    roc_auc_std: float
    roc_auc_pooled: float
    balanced_accuracy_mean: float
    balanced_accuracy_std: float
    weighted_f1_mean: float
    counterfactual_auc_drop: float | None
    counterfactual_probability_change: float | None
    heat_in_cell_mean: float | None
    heat_in_cell_at_goal: float | None
    train_minutes_per_fold: float
    threads: int | None
    parameters_millions: float | None
    onnx_megabytes: float | None
    latency_ms_batch1: float | None
    external_roc_auc: dict[str, Interval] | None = None
    """The fold ensemble on unseen subjects, by part (`python -m training external --cv`)."""
    external_balanced_accuracy: dict[str, Interval] | None = None
    external_rule_score: float | None = None


def _train_seconds(fold: RunDir) -> float:
    """Median epoch time x epochs, per phase: robust to an epoch slowed by other work on a
    shared machine (the bake-off runs shared two cores)."""
    by_phase: dict[str, list[float]] = {}
    for row in fold.read_metrics():
        by_phase.setdefault(row.phase, []).append(row.seconds)
    return sum(float(np.median(seconds)) * len(seconds) for seconds in by_phase.values())


def _onnx_size_and_latency(model: CellClassifier, size: int) -> tuple[float, float]:
    """Export the model as the server would run it and time one image at a time."""
    from training.release.onnx_export import export_onnx

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        export_onnx(model, path, size)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        image = np.random.default_rng(0).standard_normal((1, 3, size, size))
        feed = {session.get_inputs()[0].name: image.astype(np.float32)}
        session.run(None, feed)
        durations = []
        for _ in range(LATENCY_REPEATS):
            started = time.perf_counter()
            session.run(None, feed)
            durations.append((time.perf_counter() - started) * 1000)
        return path.stat().st_size / 1e6, float(np.median(durations))


def _pooled(report: HeldOutReport | None, name: str) -> float | None:
    """A pooled figure of an optional per-CV report (older runs lack some)."""
    return None if report is None else report.pooled[name]


def _external_figures(
    report: ExternalReport | None,
) -> tuple[dict[str, Interval] | None, dict[str, Interval] | None, float | None]:
    """The fold ensemble's ROC AUC and balanced accuracy per part, and the selection rule's
    score: the mean of the training-fold and preliminary-test parts' ROC AUC."""
    if report is None:
        return None, None, None
    ensemble = next(s for s in report.scorers if s.name.endswith("(fold ensemble)"))
    auc = {part: figures.roc_auc for part, figures in ensemble.parts.items()}
    balanced = {
        part: figures.balanced_accuracy
        for part, figures in ensemble.parts.items()
        if figures.balanced_accuracy is not None
    }
    both = (PART_TRAINING_FOLDS, PART_PRELIM)
    score = float(np.mean([auc[p].value for p in both])) if all(p in auc for p in both) else None
    return auc, balanced, score


def candidate_row(cv_dir: Path, *, measure_latency: bool = True) -> CandidateRow:
    """One row from a cv directory; the figures that need the fold models (parameters, ONNX
    size, latency) are left empty when their checkpoints were not kept."""
    cv = CvDir(cv_dir)
    summary = cv.read_summary()
    counterfactual, heat = cv.read_counterfactual(), cv.read_heat()
    folds = cv.folds()
    config = folds[0].read_config().train
    model = load_trained_model(folds[0].path) if folds[0].best_checkpoint.is_file() else None
    size, latency = (
        _onnx_size_and_latency(model, config.img_size)
        if measure_latency and model is not None
        else (None, None)
    )
    external_auc, external_balanced, rule_score = _external_figures(read_report(cv_dir))
    mean_std = summary.mean_std
    return CandidateRow(
        name=cv_dir.name,
        command=cv.read_command(),
        roc_auc_per_fold=[fold.metrics.roc_auc for fold in summary.per_fold],
        roc_auc_mean=mean_std["roc_auc"].mean,
        roc_auc_std=mean_std["roc_auc"].std,
        roc_auc_pooled=summary.pooled.roc_auc,
        balanced_accuracy_mean=mean_std["balanced_accuracy"].mean,
        balanced_accuracy_std=mean_std["balanced_accuracy"].std,
        weighted_f1_mean=mean_std["weighted_f1"].mean,
        counterfactual_auc_drop=_pooled(counterfactual, "auc_drop"),
        counterfactual_probability_change=_pooled(
            counterfactual, "mean_absolute_probability_change"
        ),
        heat_in_cell_mean=_pooled(heat, "mean"),
        heat_in_cell_at_goal=_pooled(heat, "at_goal"),
        train_minutes_per_fold=float(np.mean([_train_seconds(f) for f in folds])) / 60,
        threads=config.threads,
        parameters_millions=None if model is None else count_parameters(model) / 1e6,
        onnx_megabytes=size,
        latency_ms_batch1=latency,
        external_roc_auc=external_auc,
        external_balanced_accuracy=external_balanced,
        external_rule_score=rule_score,
    )


def _number(value: float | None, digits: int = 3) -> str:
    return "not run" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "not run" if value is None else f"{value:.0%}"


MARKDOWN_HEADER = (
    "| run | ROC AUC mean ± std (per fold) | pooled AUC | balanced acc. mean ± std | "
    "weighted F1 | colour-counterfactual AUC drop | mean abs. change in p | "
    "Grad-CAM heat in the cell, mean | maps with ≥ 90% in the cell | "
    "train min per fold model (threads) | params (M) | ONNX MB | ms per image | "
    "unseen subjects, fold ensemble ROC AUC [95%]: all / training-fold part / "
    "preliminary-test part | unseen: balanced acc., all | selection score |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "not run"
    return f"{interval.value:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def _external_cells(row: CandidateRow) -> str:
    if row.external_roc_auc is None:
        return "not run | not run | not run"
    aucs = " / ".join(
        _interval(row.external_roc_auc.get(part))
        for part in (PART_ALL, PART_TRAINING_FOLDS, PART_PRELIM)
    )
    balanced = _interval((row.external_balanced_accuracy or {}).get(PART_ALL))
    return f"{aucs} | {balanced} | {_number(row.external_rule_score)}"


def markdown_row(row: CandidateRow) -> str:
    per_fold = " / ".join(f"{auc:.3f}" for auc in row.roc_auc_per_fold)
    return (
        f"| {row.name} | {row.roc_auc_mean:.3f} ± {row.roc_auc_std:.3f} ({per_fold}) "
        f"| {row.roc_auc_pooled:.3f} "
        f"| {row.balanced_accuracy_mean:.3f} ± {row.balanced_accuracy_std:.3f} "
        f"| {row.weighted_f1_mean:.3f} | {_number(row.counterfactual_auc_drop)} "
        f"| {_number(row.counterfactual_probability_change)} "
        f"| {_number(row.heat_in_cell_mean)} | {_percent(row.heat_in_cell_at_goal)} "
        f"| {row.train_minutes_per_fold:.1f} ({row.threads or 'all'}) "
        f"| {_number(row.parameters_millions, 2)} | {_number(row.onnx_megabytes, 1)} "
        f"| {_number(row.latency_ms_batch1, 1)} | {_external_cells(row)} |"
    )


def markdown_table(rows: list[CandidateRow]) -> str:
    return "\n".join([MARKDOWN_HEADER, *(markdown_row(row) for row in rows)])


def rows_as_json(rows: list[CandidateRow]) -> list[dict[str, object]]:
    return [
        {
            **asdict(row),
            "external_roc_auc": _dump(row.external_roc_auc),
            "external_balanced_accuracy": _dump(row.external_balanced_accuracy),
        }
        for row in rows
    ]


def _dump(figures: dict[str, Interval] | None) -> dict[str, object] | None:
    return None if figures is None else {k: v.model_dump() for k, v in figures.items()}
