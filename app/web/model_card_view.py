"""The model card for people: plain-word numbers and plot geometry drawn from the manifest.

Everything comes from the card's own data (nothing is re-measured here); the templates draw the
plots as inline SVG so the page works offline. Local paths in the provenance are cut to their
last component: they name the training machine's folders, which say nothing to a reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from app.core.blast_share import held_out_counts
from app.core.error_rates import error_rates_sentence
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
class OperatingDot:
    """One dot of the ROC plot: operating points that fall on the same place share it, and
    one label names every threshold there (two labels on one dot would overprint). The label
    is placed where no other dot's label is (plot units: 200 wide, y down)."""

    false_alarm_rate: float
    sensitivity: float
    served: bool
    lines: tuple[str, ...]
    """The label in short lines: ("threshold 0.497", "(served)"), or for thresholds on one
    place ("thresholds 0.500", "and 0.613 (served)")."""
    label_x: float = 0.0
    label_y: float = 0.0
    label_on_left: bool = False

    @property
    def label(self) -> str:
        return " ".join(self.lines)


# A 10-unit font is about 5.5 units a character; a line is 12 units high.
LABEL_UNITS_PER_CHARACTER = 5.5
LINE_HEIGHT = 12
PLOT_RIGHT = 220  # the right edge of the plot's view box
# Points closer than this (in ROC units, a plot 200 px wide: 2 px) are drawn as one dot.
SAME_DOT = 0.01
Box = tuple[float, float, float, float]


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _placed(dot: OperatingDot, taken: list[Box]) -> OperatingDot:
    """The dot with its label beside it, moved down a line at a time until it overlaps no
    label already placed; on the dot's left where the right would leave the plot."""
    x, y = 200 * dot.false_alarm_rate, 200 - 200 * dot.sensitivity
    width = LABEL_UNITS_PER_CHARACTER * max(len(line) for line in dot.lines)
    left = x + 8 + width > PLOT_RIGHT
    start = x - 8 - width if left else x + 8
    baseline = y + 14
    while True:
        box = (start, start + width, baseline - 10, baseline - 10 + LINE_HEIGHT * len(dot.lines))
        if not any(_overlaps(box, other) for other in taken):
            break
        baseline += LINE_HEIGHT
    taken.append(box)
    return replace(dot, label_x=x - 8 if left else x + 8, label_y=baseline, label_on_left=left)


def operating_dots(points: list[OperatingPoint]) -> list[OperatingDot]:
    groups: list[list[OperatingPoint]] = []
    for point in sorted(points, key=lambda p: (p.false_alarm_rate, p.sensitivity)):
        for group in groups:
            first = group[0]
            if (
                abs(first.false_alarm_rate - point.false_alarm_rate) < SAME_DOT
                and abs(first.sensitivity - point.sensitivity) < SAME_DOT
            ):
                group.append(point)
                break
        else:
            groups.append([point])
    dots = []
    for group in groups:
        ordered = sorted(group, key=lambda p: p.threshold)
        names = [f"{p.threshold:.3f}{' (served)' if p.served else ''}" for p in ordered]
        # Short lines keep a label inside the plot: "(served)" alone under a single threshold.
        lines = [f"threshold{'s' if len(names) > 1 else ''} {names[0]}"]
        lines += [f"and {name}" for name in names[1:]]
        if len(names) == 1 and lines[0].endswith(" (served)"):
            lines = [lines[0].removesuffix(" (served)"), "(served)"]
        served = [p for p in ordered if p.served]
        dots.append(
            OperatingDot(
                false_alarm_rate=group[0].false_alarm_rate,
                sensitivity=group[0].sensitivity,
                served=bool(served),
                lines=tuple(lines),
            )
        )
    taken: list[Box] = []
    # Placed from the top of the plot down, so that a label moves below its neighbour's.
    placed = {id(d): _placed(d, taken) for d in sorted(dots, key=lambda d: -d.sensitivity)}
    return [placed[id(d)] for d in dots]


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
    error_rates: str = ""
    """The one sentence of error rates (app/core/error_rates.py), as everywhere else."""
    rates_confusion: tuple[tuple[int, int], tuple[int, int]] | None = None  # rows true HEM/ALL
    rates_cells: int = 0
    rates_healthy_people: int = 0
    roc_auc_pooled: float | None = None
    roc_auc_fold_mean: float | None = None
    roc_auc_fold_std: float | None = None
    operating_points: list[OperatingPoint] = field(default_factory=list)
    subject_bars: list[SubjectBar] = field(default_factory=list)
    reliability: list[ReliabilityPoint] = field(default_factory=list)
    unseen_parts: list[UnseenPart] = field(default_factory=list)
    unseen_out_of_fold: bool = False
    """The unseen people were scored out of fold (the served model was trained on them too)."""

    @property
    def dots(self) -> list[OperatingDot]:
        return operating_dots(self.operating_points)

    @property
    def worst_subjects(self) -> list[SubjectBar]:
        """Every person at the lowest accuracy of the per-person chart (all of them, tied)."""
        if not self.subject_bars:
            return []
        lowest = min(bar.accuracy for bar in self.subject_bars)
        return [bar for bar in self.subject_bars if bar.accuracy <= lowest + 1e-9]

    @property
    def worst_people(self) -> str:
        """The worst people by name, patients first: "patient 27 and healthy donors H20, H28"."""
        worst = self.worst_subjects
        groups = []
        for label, one, many in (
            ("ALL", "patient", "patients"),
            ("HEM", "healthy donor", "healthy donors"),
        ):
            names = [bar.subject for bar in worst if bar.label == label]
            if names:
                groups.append(f"{one if len(names) == 1 else many} {', '.join(names)}")
        others = [bar.subject for bar in worst if bar.label not in {"ALL", "HEM"}]
        if others:
            groups.append(f"{'person' if len(others) == 1 else 'people'} {', '.join(others)}")
        return " and ".join(groups)


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
        view.images = int(tn + fp + fn + tp)
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
    _add_unseen_subjects(view, manifest)
    view.error_rates = error_rates_sentence(manifest)
    counts = held_out_counts(manifest)
    if counts is not None:
        view.rates_confusion = (
            (counts.true_negatives, counts.false_positives),
            (counts.false_negatives, counts.true_positives),
        )
        view.rates_cells = sum(view.rates_confusion[0]) + sum(view.rates_confusion[1])
        view.rates_healthy_people = len(counts.subject_specificities)
    if manifest.calibration is not None:
        view.reliability = [
            ReliabilityPoint(b.lower, b.upper, b.count, b.mean_predicted, b.observed_fraction)
            for b in manifest.calibration.reliability_after
            if b.count and b.mean_predicted is not None and b.observed_fraction is not None
        ]
    return view
