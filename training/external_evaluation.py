"""How a model does on patients it never saw: C-NMC subjects outside its training data.

Fold-1 cross-validation (14 subjects, 3 of them HEM, one acquisition batch) scored every
candidate about 0.9; on other patients they scored about 0.6. This measurement decides between
candidates (docs/model-selection.md), so it reports only what a few dozen cells of a few dozen
subjects support: intervals from resampling whole subjects, each part of the data on its own
(the training-fold patients resemble fold 1, the preliminary-test patients do not), every
subject, and two baselines computed from the images alone (cell area, mean brightness) that a
model has to beat to have learned more than those cues.

Never fit, tune or choose a threshold on these figures: then they stop measuring new patients.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel
from scipy.stats import rankdata

from app.core.manifest import (
    UNSEEN_SUBJECTS_PROTOCOL,
    Evaluation,
    ModelManifest,
    changelog_entry,
    load_manifest,
    write_manifest,
)
from app.core.preprocessing import foreground_mask
from app.service.model_registry import STORE_INDEX, record_model
from training.artifacts import EXTERNAL_REPORT, CvDir
from training.dataset_index import (
    LABEL_ALL,
    LABEL_HEM,
    LABEL_NAMES,
    PRELIM_FOLD,
    CellImage,
    DatasetError,
    hash_images,
    list_extra_root,
    read_image,
    remove_duplicates,
)

PART_ALL = "all"
PART_TRAINING_FOLDS = "training_folds"
PART_PRELIM = "preliminary_test"
PARTS = (PART_ALL, PART_TRAINING_FOLDS, PART_PRELIM)
PART_TITLES = {
    PART_ALL: "all",
    PART_TRAINING_FOLDS: "training-fold part",
    PART_PRELIM: "preliminary-test part",
}
DEFAULT_RESAMPLES = 2000
BASELINE_FOREGROUND_THRESHOLD = 15


def part_of(image: CellImage) -> str:
    return PART_PRELIM if image.fold == PRELIM_FOLD else PART_TRAINING_FOLDS


@dataclass(frozen=True)
class ExternalData:
    images: tuple[CellImage, ...]
    prelim_listed: int
    prelim_missing: int
    duplicates_removed: int

    def part(self, name: str) -> list[int]:
        """Positions of the images in a part (`all` is every image)."""
        return [i for i, image in enumerate(self.images) if name in (PART_ALL, part_of(image))]


def index_external(root: Path) -> ExternalData:
    """Cells of the official training folds (`training_data/fold_*/{all,hem}`) and of the
    preliminary test set under `root`, de-duplicated by pixels across both."""
    extra = list_extra_root(root)
    deduplicated = remove_duplicates(hash_images(extra.images))
    return ExternalData(
        images=deduplicated.images,
        prelim_listed=extra.prelim_listed,
        prelim_missing=extra.prelim_missing,
        duplicates_removed=deduplicated.duplicates_removed,
    )


@dataclass(frozen=True)
class Scores:
    """One scorer's output per image: a probability of ALL, or a baseline's raw feature."""

    name: str
    values: np.ndarray
    threshold: float | None
    kind: str = "model"


def cell_appearance_baselines(images: Sequence[CellImage]) -> list[Scores]:
    """What the fold-1 cues alone give: a larger cell, a brighter cell = ALL."""
    areas, greys = [], []
    for image in images:
        rgb = read_image(image.path)
        mask = foreground_mask(rgb, BASELINE_FOREGROUND_THRESHOLD)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        areas.append(float(mask.sum()))
        greys.append(float(grey[mask].mean()) if mask.any() else 0.0)
    return [
        Scores("baseline: cell area (larger = ALL)", np.asarray(areas), None, "baseline"),
        Scores(
            "baseline: mean grey in the cell (brighter = ALL)", np.asarray(greys), None, "baseline"
        ),
    ]


class Interval(BaseModel):
    value: float
    low: float
    high: float


class PartFigures(BaseModel):
    cells: int
    subjects_all: int
    subjects_hem: int
    roc_auc: Interval
    balanced_accuracy: Interval | None = None
    sensitivity: Interval | None = None
    specificity: Interval | None = None
    confusion_matrix: list[list[int]] | None = None
    """[[tn, fp], [fn, tp]] at the scorer's threshold."""


class SubjectRow(BaseModel):
    subject: str
    part: str
    label: str
    cells: int
    mean_score: float
    called_all: float | None
    accuracy: float | None


class ScorerReport(BaseModel):
    name: str
    kind: str
    threshold: float | None
    parts: dict[str, PartFigures]
    per_subject: list[SubjectRow]


class PairedComparison(BaseModel):
    model: str
    against: str
    roc_auc_difference: dict[str, Interval]


class ExternalReport(BaseModel):
    root: str
    protocol: str
    resamples: int
    seed: int
    cells: dict[str, int]
    subjects: dict[str, int]
    prelim_listed_in_csv: int
    prelim_missing: int
    duplicates_removed: int
    scorers: list[ScorerReport]
    paired: list[PairedComparison]

    def scorer(self, name: str) -> ScorerReport:
        return next(s for s in self.scorers if s.name == name)


def subject_resamples(
    subjects: Sequence[str], labels: np.ndarray, resamples: int, seed: int
) -> list[np.ndarray]:
    """Bootstrap draws of whole subjects, stratified by class (each draw keeps as many ALL and
    HEM subjects as the data has): cells of one patient are not independent."""
    rng = np.random.default_rng(seed)
    cells_of: dict[str, list[int]] = defaultdict(list)
    for position, subject in enumerate(subjects):
        cells_of[subject].append(position)
    by_class = {
        label: sorted({s for s, y in zip(subjects, labels, strict=True) if y == label})
        for label in (LABEL_ALL, LABEL_HEM)
    }
    draws = []
    for _ in range(resamples):
        chosen = [
            subject
            for members in by_class.values()
            if members
            for subject in rng.choice(members, size=len(members), replace=True)
        ]
        draws.append(np.concatenate([cells_of[s] for s in chosen]))
    return draws


MetricFunction = Callable[[np.ndarray, np.ndarray], float]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney form of ROC AUC (ties count half), equal to scikit-learn's
    `roc_auc_score` and about fifty times faster, which thousands of resamples need."""
    positives = labels == LABEL_ALL
    n_positive = int(positives.sum())
    n_negative = len(labels) - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float(
        (ranks[positives].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    )


def threshold_metrics(threshold: float) -> dict[str, MetricFunction]:
    def sensitivity(labels: np.ndarray, scores: np.ndarray) -> float:
        positives = labels == LABEL_ALL
        return float((scores[positives] >= threshold).mean()) if positives.any() else np.nan

    def specificity(labels: np.ndarray, scores: np.ndarray) -> float:
        negatives = labels == LABEL_HEM
        return float((scores[negatives] < threshold).mean()) if negatives.any() else np.nan

    def balanced_accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
        return (sensitivity(labels, scores) + specificity(labels, scores)) / 2

    return {
        "balanced_accuracy": balanced_accuracy,
        "sensitivity": sensitivity,
        "specificity": specificity,
    }


def confusion_matrix(labels: np.ndarray, scores: np.ndarray, threshold: float) -> list[list[int]]:
    """[[tn, fp], [fn, tp]]: the counts the blast-share correction's posteriors start from."""
    positives, called = labels == LABEL_ALL, scores >= threshold
    return [
        [int((~positives & ~called).sum()), int((~positives & called).sum())],
        [int((positives & ~called).sum()), int((positives & called).sum())],
    ]


def metric_interval(
    metric: MetricFunction, labels: np.ndarray, scores: np.ndarray, draws: list[np.ndarray]
) -> Interval:
    values = np.asarray([metric(labels[d], scores[d]) for d in draws])
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan)
    return Interval(value=metric(labels, scores), low=float(low), high=float(high))


def _per_subject(data: ExternalData, scores: Scores) -> list[SubjectRow]:
    positions: dict[str, list[int]] = defaultdict(list)
    for position, image in enumerate(data.images):
        positions[image.subject].append(position)
    rows = []
    for subject, members in sorted(positions.items()):
        first = data.images[members[0]]
        values = scores.values[members]
        called = None if scores.threshold is None else float((values >= scores.threshold).mean())
        correct = None if called is None else (called if first.label == LABEL_ALL else 1 - called)
        rows.append(
            SubjectRow(
                subject=subject,
                part=part_of(first),
                label=LABEL_NAMES[first.label],
                cells=len(members),
                mean_score=float(values.mean()),
                called_all=called,
                accuracy=correct,
            )
        )
    return rows


def evaluate_scores(
    data: ExternalData, scores: Scores, draws: dict[str, list[np.ndarray]]
) -> ScorerReport:
    labels = np.asarray([image.label for image in data.images])
    parts: dict[str, PartFigures] = {}
    for part, part_draws in draws.items():
        members = data.part(part)
        if not members:
            continue
        part_labels, part_scores = labels[members], scores.values[members]
        subjects = {(data.images[i].subject, data.images[i].label) for i in members}
        auc = metric_interval(roc_auc, part_labels, part_scores, part_draws)
        at_threshold: dict[str, Interval] = {}
        matrix = None
        if scores.threshold is not None:
            for name, metric in threshold_metrics(scores.threshold).items():
                at_threshold[name] = metric_interval(metric, part_labels, part_scores, part_draws)
            matrix = confusion_matrix(part_labels, part_scores, scores.threshold)
        parts[part] = PartFigures(
            cells=len(members),
            subjects_all=sum(label == LABEL_ALL for _, label in subjects),
            subjects_hem=sum(label == LABEL_HEM for _, label in subjects),
            roc_auc=auc,
            balanced_accuracy=at_threshold.get("balanced_accuracy"),
            sensitivity=at_threshold.get("sensitivity"),
            specificity=at_threshold.get("specificity"),
            confusion_matrix=matrix,
        )
    return ScorerReport(
        name=scores.name,
        kind=scores.kind,
        threshold=scores.threshold,
        parts=parts,
        per_subject=_per_subject(data, scores),
    )


def paired_comparison(
    data: ExternalData, first: Scores, second: Scores, draws: dict[str, list[np.ndarray]]
) -> PairedComparison:
    """AUC of `first` minus AUC of `second` on the same subject draws."""
    labels = np.asarray([image.label for image in data.images])
    differences: dict[str, Interval] = {}
    for part, part_draws in draws.items():
        members = data.part(part)
        if not members:
            continue
        y, a, b = labels[members], first.values[members], second.values[members]
        values = np.asarray([roc_auc(y[d], a[d]) - roc_auc(y[d], b[d]) for d in part_draws])
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, [2.5, 97.5]) if values.size else (np.nan, np.nan)
        differences[part] = Interval(
            value=roc_auc(y, a) - roc_auc(y, b), low=float(low), high=float(high)
        )
    return PairedComparison(model=first.name, against=second.name, roc_auc_difference=differences)


def score_model_dir(
    model_dir: Path, images: Sequence[CellImage], *, tta: bool | None = None
) -> Scores:
    """An exported model exactly as the server runs it: its recipe, onnxruntime, its
    calibration, its threshold, and test-time augmentation when its card turns it on."""
    from app.core.classifier import OnnxCellClassifier
    from training.image_batches import preprocessed_batches

    classifier = OnnxCellClassifier(model_dir)
    use_tta = classifier.tta_by_default if tta is None else tta
    recipe = classifier.manifest.preprocessing
    batches = preprocessed_batches([image.path for image in images], recipe, 32)
    probabilities = np.concatenate(
        [classifier.predict(batch, tta=use_tta).probabilities for batch in batches]
    )
    manifest = classifier.manifest
    name = f"{manifest.id} v{manifest.version}" + (" (TTA)" if use_tta else "")
    return Scores(name, probabilities, manifest.threshold.value)


def score_cross_validation(cv_dir: Path, images: Sequence[CellImage]) -> list[Scores]:
    """Every fold model of a cross-validation, and the fold models as one ensemble (mean
    logit). Their threshold is the one export would serve: the best balanced accuracy on the
    cross-validation's own out-of-fold predictions (fold 1), never on these images."""
    from app.core.classifier import sigmoid
    from training.checkpoints import load_trained_model
    from training.decision_rule import best_balanced_accuracy_threshold
    from training.image_batches import preprocessed_batches
    from training.models import predict_logits

    cv = CvDir(cv_dir)
    out_of_fold = cv.read_out_of_fold()
    labels, probabilities = out_of_fold.labels.tolist(), out_of_fold.probabilities.tolist()
    threshold = best_balanced_accuracy_threshold(labels, probabilities)
    paths = [image.path for image in images]
    fold_logits = []
    scores = []
    for run in cv.folds():
        recipe = run.read_config().preprocessing
        model = load_trained_model(run.path)
        batches = preprocessed_batches(paths, recipe, 32)
        logits = np.concatenate([predict_logits(model, b) for b in batches]).astype(np.float64)
        fold_logits.append(logits)
        scores.append(Scores(f"{cv_dir.name}/{run.path.name}", sigmoid(logits), threshold))
    ensemble = sigmoid(np.mean(fold_logits, axis=0))
    scores.insert(0, Scores(f"{cv_dir.name} (fold ensemble)", ensemble, threshold))
    return scores


PROTOCOL = (
    "cells of C-NMC subjects outside the training data, scored as served; 95% intervals are "
    "the 2.5th and 97.5th percentiles over resamples of whole subjects (stratified by class), "
    "the same draws for every scorer, so differences are paired; threshold-dependent figures "
    "at each model's own threshold, chosen on its training data only"
)


def external_report(
    data: ExternalData,
    scorers: Sequence[Scores],
    *,
    root: Path,
    against: Scores | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> ExternalReport:
    """Every scorer and the image-only baselines on the same subject draws; with `against`,
    each model's AUC difference to it."""
    labels = np.asarray([image.label for image in data.images])
    subjects = [image.subject for image in data.images]
    draws: dict[str, list[np.ndarray]] = {}
    for part in PARTS:
        members = data.part(part)
        if members:
            local = subject_resamples(
                [subjects[i] for i in members], labels[members], resamples, seed
            )
            draws[part] = local
    everything = [
        *scorers,
        *([against] if against else []),
        *cell_appearance_baselines(data.images),
    ]
    paired = [paired_comparison(data, s, against, draws) for s in scorers] if against else []
    parts_present = [part for part in PARTS if part in draws]
    return ExternalReport(
        root=str(root),
        protocol=PROTOCOL,
        resamples=resamples,
        seed=seed,
        cells={part: len(data.part(part)) for part in parts_present},
        subjects={part: len({subjects[i] for i in data.part(part)}) for part in parts_present},
        prelim_listed_in_csv=data.prelim_listed,
        prelim_missing=data.prelim_missing,
        duplicates_removed=data.duplicates_removed,
        scorers=[evaluate_scores(data, s, draws) for s in everything],
        paired=paired,
    )


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


def card_evaluation(report: ExternalReport, scorer: ScorerReport) -> Evaluation:
    """The report of one served model as a model-card evaluation: every part's figures with
    their intervals, and each subject's accuracy."""
    metrics: dict[str, float | int | list[list[int]]] = {}
    for part, figures in scorer.parts.items():
        metrics[f"cells_{part}"] = figures.cells
        metrics[f"subjects_all_{part}"] = figures.subjects_all
        metrics[f"subjects_hem_{part}"] = figures.subjects_hem
        for name in ("roc_auc", "balanced_accuracy", "sensitivity", "specificity"):
            interval: Interval | None = getattr(figures, name)
            if interval is not None:
                metrics[f"{name}_{part}"] = interval.value
                metrics[f"{name}_{part}_low"] = interval.low
                metrics[f"{name}_{part}_high"] = interval.high
    everyone = scorer.parts.get(PART_ALL)
    if scorer.threshold is not None and everyone is not None and everyone.confusion_matrix:
        # What the blast-share correction reads: the counts on every unseen cell, at the
        # threshold the model serves.
        metrics["confusion_matrix"] = everyone.confusion_matrix
        metrics["threshold"] = scorer.threshold
    return Evaluation(
        protocol=f"{UNSEEN_SUBJECTS_PROTOCOL} ({Path(report.root).name}; parts: "
        f"{', '.join(PART_TITLES[p] for p in scorer.parts)}): {report.protocol}; "
        f"{report.resamples} resamples",
        metrics=metrics,
        per_subject_accuracy={
            row.subject: row.accuracy for row in scorer.per_subject if row.accuracy is not None
        },
    )


def unseen_limitation(scorer: ScorerReport) -> str:
    """Where the model fails on new patients, in plain words, from the figures."""
    words = []
    for part in (PART_TRAINING_FOLDS, PART_PRELIM):
        figures = scorer.parts.get(part)
        if figures is None:
            continue
        auc = figures.roc_auc
        verdict = "no better than chance" if auc.low <= 0.5 else "better than chance"
        words.append(
            f"ROC AUC {auc.value:.2f} (95% {auc.low:.2f} to {auc.high:.2f}, {verdict}) on the "
            f"{PART_TITLES[part]} ({figures.cells} cells, {figures.subjects_all} ALL and "
            f"{figures.subjects_hem} HEM subjects)"
        )
    return (
        "On patients it never saw (C-NMC subjects outside its training data): "
        + "; ".join(words)
        + ". The preliminary-test patients differ from the training subjects in cell size and "
        "brightness, and a model that learned those cues fails there: do not rely on it for a "
        "population it was not checked on."
    )


def record_in_card(model_dir: Path, report: ExternalReport, *, selection: str | None) -> Path:
    """Write the served model's unseen-subject evaluation (and, given, the selection note)
    into its card, replacing an earlier one; the graphs are untouched."""
    manifest = load_manifest(model_dir)
    scorer = report.scorers[0]
    trained_on = {row.subject for row in manifest.training_data.subjects}
    seen = sorted(trained_on & {row.subject for row in scorer.per_subject})
    if seen:
        # Rates on people it learned from are not rates on unseen patients (and would replace
        # the card's out-of-fold ones, which the blast-share correction reads).
        raise DatasetError(
            f"{model_dir.name} was trained on {len(seen)} of these people ({', '.join(seen[:5])}"
            f"{', ...' if len(seen) > 5 else ''}): not recorded as unseen subjects"
        )
    evaluations = [
        e for e in manifest.evaluations if not e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)
    ]
    limitations = [
        text for text in manifest.limitations if not text.startswith("On patients it never saw")
    ]
    overall = scorer.parts[PART_ALL].roc_auc
    entry = changelog_entry(
        manifest.version,
        f"Measured on {report.cells[PART_ALL]} cells of {report.subjects[PART_ALL]} subjects "
        f"outside its training data: ROC AUC {overall.value:.3f} (95% {overall.low:.2f} to "
        f"{overall.high:.2f}); recorded with a limitation saying where it fails.",
        card_only=True,
    )
    updated = manifest.model_copy(
        update={
            "evaluations": [*evaluations, card_evaluation(report, scorer)],
            "limitations": [unseen_limitation(scorer), *limitations],
            "changelog": [*manifest.changelog, entry],
            **({"selection": selection} if selection else {}),
        }
    )
    written = write_manifest(ModelManifest.model_validate(updated.model_dump()), model_dir)
    if (model_dir.parent / STORE_INDEX).is_file():  # the store must know the card's new checksum
        record_model(model_dir.parent, model_dir)
    return written
