"""The model card for people: plain-word numbers and plot geometry drawn from the manifest.

Everything comes from the card's own data (nothing is re-measured here); the templates draw the
plots as inline SVG so the page works offline. Local paths in the provenance are cut to their
last component: they name the training machine's folders, which say nothing to a reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from app.core.blast_share import RATES_UNSEEN, held_out_counts
from app.core.manifest import UNSEEN_SUBJECTS_PROTOCOL, Evaluation, ModelManifest

ARCHITECTURE_NAMES = {
    "tf_efficientnet_lite0": "EfficientNet-Lite0",
    "efficientnet_lite0": "EfficientNet-Lite0",
    "convnext_atto": "ConvNeXt-Atto",
}
_LOCAL_PATH = re.compile(r"(?<![\w.])(?:\.{1,2})?/(?:\w[\w.+-]*/)*(\w[\w.+-]*)/?")
METRIC_NAMES = {
    "n": "images",
    "threshold": "decision threshold",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "precision": "positive predictive value (precision)",
    "recall": "sensitivity (recall) for ALL",
    "specificity": "specificity (normal cells called normal)",
    "f1": "F1 score",
    "weighted_f1": "class-weighted F1 score",
    "roc_auc": "ROC AUC (area under the ROC curve)",
}


def human_model_name(manifest: ModelManifest) -> str:
    """The architecture and input size, and how many people it learned from when it learned
    from more than one source (two models of one architecture must not read alike)."""
    architecture = ARCHITECTURE_NAMES.get(manifest.architecture, manifest.architecture)
    name = f"{architecture}, {manifest.input.size} px"
    people = manifest.training_data.people_per_population
    if people:
        name += f", trained on {sum(people.values())} people"
    return name


def without_local_paths(text: str) -> str:
    return _LOCAL_PATH.sub(lambda match: f"<{match.group(1)}>", text)


def readable_metric(key: str) -> str:
    for suffix, words in (("_mean", "mean of folds"), ("_std", "std over folds")):
        if key.endswith(suffix):
            return f"{readable_metric(key.removesuffix(suffix))}, {words}"
    return METRIC_NAMES.get(key, key.replace("_", " "))


@dataclass(frozen=True)
class SubjectBar:
    subject: str
    label: str
    accuracy: float
    images: int


@dataclass(frozen=True)
class ReliabilityPoint:
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_fraction: float


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    false_alarm_rate: float
    sensitivity: float
    served: bool


@dataclass(frozen=True)
class UnseenPart:
    """ROC AUC on one part of the patients outside the training data, with its interval."""

    title: str
    cells: int
    subjects: int
    roc_auc: float
    low: float
    high: float


UNSEEN_PARTS = {
    "all": "all of them",
    "training_folds": "patients like the training ones (official training folds)",
    "preliminary_test": "preliminary-test patients (cells of another size and brightness)",
}


@dataclass
class CardView:
    name: str
    images: int | None = None
    subjects: int = 0
    subjects_all: int = 0
    subjects_hem: int = 0
    threshold: float = 0.5
    confusion: tuple[tuple[int, int], tuple[int, int]] | None = None  # rows true HEM/ALL
    flagged_of_100_all: int | None = None
    flagged_of_100_hem: int | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    roc_auc_pooled: float | None = None
    roc_auc_fold_mean: float | None = None
    roc_auc_fold_std: float | None = None
    operating_points: list[OperatingPoint] = field(default_factory=list)
    worst_subject: SubjectBar | None = None
    subject_bars: list[SubjectBar] = field(default_factory=list)
    reliability: list[ReliabilityPoint] = field(default_factory=list)
    unseen_parts: list[UnseenPart] = field(default_factory=list)
    unseen_sensitivity: float | None = None
    unseen_specificity: float | None = None
    unseen_out_of_fold: bool = False
    """The unseen people were scored out of fold (the served model was trained on them too)."""
    correction_sensitivity: float | None = None
    correction_specificity: float | None = None
    correction_on_unseen: bool = False
    """Which rates a sample's blast-share correction uses: those on unseen patients, or else
    the held-out training subjects'; the box shows the same numbers."""

    @property
    def summary(self) -> str:
        """One paragraph for reports: how the model did on patients it never saw."""
        if self.confusion is None or self.images is None:
            return f"{self.name}: no held-out evaluation is recorded for this model."
        text = (
            f"{self.name}, tested on {self.images:,} cells of {self.subjects} people it never "
            f"saw during training (subject-grouped cross-validation on C-NMC 2019): of 100 ALL "
            f"cells it flags about {self.flagged_of_100_all}; of 100 normal cells it wrongly "
            f"flags about {self.flagged_of_100_hem}"
        )
        if self.roc_auc_pooled is not None:
            text += f"; ROC AUC {self.roc_auc_pooled:.2f}"
        if self.worst_subject is not None:
            worst = self.worst_subject
            text += (
                f". Worst person: {'a healthy donor' if worst.label == 'HEM' else 'a patient'} "
                f"({worst.subject}) with {100 * (1 - worst.accuracy):.0f}% of cells misread"
            )
        unseen = {part.title: part for part in self.unseen_parts}
        if UNSEEN_PARTS["all"] in unseen:
            text += (
                f". On {unseen[UNSEEN_PARTS['all']].subjects} patients outside its training "
                f"data it reached ROC AUC {unseen[UNSEEN_PARTS['all']].roc_auc:.2f}"
            )
            prelim = unseen.get(UNSEEN_PARTS["preliminary_test"])
            if prelim is not None:
                text += f", {prelim.roc_auc:.2f} on the preliminary-test patients"
        return text + ". A research and screening aid, not a diagnosis."


def _served_evaluation(manifest: ModelManifest) -> Evaluation | None:
    """The held-out evaluation of the training subjects at the threshold the server uses,
    with per-subject results."""
    served = [
        e
        for e in manifest.evaluations
        if "confusion_matrix" in e.metrics
        and not e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)
        and abs(e.number("threshold", -1) - manifest.threshold.value) < 1e-9
    ]
    return served[-1] if served else None


def _add_unseen_subjects(view: CardView, manifest: ModelManifest) -> None:
    """The card's evaluation on patients outside its training data, if it has one."""
    recorded = [e for e in manifest.evaluations if e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)]
    if not recorded:
        return
    evaluation = recorded[-1]
    metrics = evaluation.metrics
    view.unseen_out_of_fold = "out of fold" in evaluation.protocol
    for part, title in UNSEEN_PARTS.items():
        if f"roc_auc_{part}" not in metrics:
            continue
        view.unseen_parts.append(
            UnseenPart(
                title=title,
                cells=int(evaluation.number(f"cells_{part}")),
                subjects=int(evaluation.number(f"subjects_all_{part}"))
                + int(evaluation.number(f"subjects_hem_{part}")),
                roc_auc=evaluation.number(f"roc_auc_{part}"),
                low=evaluation.number(f"roc_auc_{part}_low"),
                high=evaluation.number(f"roc_auc_{part}_high"),
            )
        )
    if "sensitivity_all" in metrics:
        view.unseen_sensitivity = evaluation.number("sensitivity_all")
        view.unseen_specificity = evaluation.number("specificity_all")


def card_view(manifest: ModelManifest) -> CardView:
    labels = {row.subject: row for row in manifest.training_data.subjects}
    view = CardView(
        name=human_model_name(manifest),
        subjects=len(labels),
        subjects_all=sum(1 for row in labels.values() if row.label == "ALL"),
        subjects_hem=sum(1 for row in labels.values() if row.label == "HEM"),
        threshold=manifest.threshold.value,
    )
    for evaluation in manifest.evaluations:
        metrics = evaluation.metrics
        if "roc_auc_mean" in metrics:
            view.roc_auc_fold_mean = evaluation.number("roc_auc_mean")
            view.roc_auc_fold_std = evaluation.number("roc_auc_std", 0.0)
        elif "confusion_matrix" in metrics and "specificity" in metrics:
            threshold = evaluation.number("threshold")
            view.operating_points.append(
                OperatingPoint(
                    threshold=threshold,
                    false_alarm_rate=1 - evaluation.number("specificity"),
                    sensitivity=evaluation.number("recall"),
                    served=abs(threshold - manifest.threshold.value) < 1e-9,
                )
            )
    served = _served_evaluation(manifest)
    if served is not None:
        (tn, fp), (fn, tp) = served.confusion_matrix()
        view.confusion = ((int(tn), int(fp)), (int(fn), int(tp)))
        view.images = int(tn + fp + fn + tp)
        view.sensitivity = tp / (tp + fn) if tp + fn else None
        view.specificity = tn / (tn + fp) if tn + fp else None
        view.flagged_of_100_all = round(100 * view.sensitivity) if view.sensitivity else 0
        view.flagged_of_100_hem = round(100 * (1 - (view.specificity or 0.0)))
        view.roc_auc_pooled = served.number("roc_auc", 0.0) or None
        view.subject_bars = [
            SubjectBar(
                subject=subject,
                label=labels[subject].label if subject in labels else "?",
                accuracy=accuracy,
                images=labels[subject].images if subject in labels else 0,
            )
            for subject, accuracy in sorted(
                served.per_subject_accuracy.items(), key=lambda item: item[1]
            )
        ]
        view.worst_subject = view.subject_bars[0] if view.subject_bars else None
    _add_unseen_subjects(view, manifest)
    counts = held_out_counts(manifest)
    if counts is not None:
        view.correction_sensitivity = counts.sensitivity
        view.correction_specificity = counts.specificity
        view.correction_on_unseen = counts.rates == RATES_UNSEEN
    if manifest.calibration is not None:
        view.reliability = [
            ReliabilityPoint(b.lower, b.upper, b.count, b.mean_predicted, b.observed_fraction)
            for b in manifest.calibration.reliability_after
            if b.count and b.mean_predicted is not None and b.observed_fraction is not None
        ]
    return view
