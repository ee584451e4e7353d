"""Adapt a served model to a lab's own patients from the lab's reviewed cells.

The bundled models come from 14 people of one batch; on other populations they lose most of
what they learned (docs/model-selection.md). A lab's reviewed cells are labelled cells of its
own population. Two strengths, as clinical systems meet site shift:

- recalibration: temperature, bias and threshold refitted on the parent's logits. The ranking
  (ROC AUC) cannot change; sensitivity and specificity move to the site's population.
- head refit: the last linear layer refitted on the frozen network's features, with an L2 pull
  toward the parent's weights, so that a few dozen cells move the head only as far as they
  must. The graph is the parent's with two initialisers replaced: nothing else changes.

Every figure is measured on subjects left out of the fit (leave-one-subject-out; grouped
folds when there are many), and the result is a new model directory with its own id, naming
its parent: the parent is never replaced in place. Torch-free: onnxruntime, scipy, sklearn.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
import sqlalchemy as sa
from onnx import numpy_helper
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedGroupKFold
from sqlalchemy.exc import SQLAlchemyError

from app.core.classifier import OnnxCellClassifier, logit, sigmoid
from app.core.manifest import (
    Adaptation,
    Calibration,
    Evaluation,
    ModelManifest,
    SubjectCounts,
    ThresholdChoice,
    changelog_entry,
    file_sha256,
    load_manifest,
    write_manifest,
)
from app.service.model_registry import STORE_INDEX, record_model
from app.service.review_records import latest_decisions_in
from training.calibration import calibrate
from training.dataset_index import LABEL_ALL, LABEL_HEM, LABEL_NAMES
from training.decision_rule import best_balanced_accuracy_threshold
from training.external_evaluation import (
    Interval,
    metric_interval,
    roc_auc,
    subject_resamples,
    threshold_metrics,
)
from training.image_batches import preprocessed_batches

Strength = Literal["recalibration", "head_refit"]
MINIMUM_SUBJECTS_PER_CLASS = 3
"""Leave-one-subject-out must leave at least two subjects of each class in every fit, or a
fit could learn one person as "the" HEM (or ALL) class; hence three per class at the least."""
MAX_FOLDS = 5
DEFAULT_HEAD_L2 = 1.0
RESAMPLES = 2000


class AdaptationError(ValueError):
    """The reviews cannot make a site model; the message says why."""


@dataclass(frozen=True)
class ReviewedCell:
    path: Path
    subject: str
    label: int


DECISIONS = {"ALL": LABEL_ALL, "HEM": LABEL_HEM, "1": LABEL_ALL, "0": LABEL_HEM}
NOT_ASSESSABLE = "not_assessable"


def read_review_csv(csv_path: Path, images: Path) -> list[ReviewedCell]:
    """Columns image (relative to `images`), label (ALL/HEM, 1/0 or not_assessable), subject."""
    cells = []
    with csv_path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or not {"image", "label", "subject"} <= set(reader.fieldnames):
            raise AdaptationError(f"{csv_path}: needs the columns image, label, subject")
        for row in reader:
            label = row["label"].strip()
            if label.lower() == NOT_ASSESSABLE:
                continue
            if label.upper() not in DECISIONS:
                raise AdaptationError(f"{csv_path}: label {label!r} is not ALL, HEM or 1/0")
            path = images / row["image"].strip()
            if not path.is_file():
                raise AdaptationError(f"{csv_path}: {path} does not exist")
            cells.append(ReviewedCell(path, row["subject"].strip(), DECISIONS[label.upper()]))
    return cells


def read_review_database(database: Path | str, images: Path) -> list[ReviewedCell]:
    """The review workstation's decisions (the last one per image of a sample wins), read from
    the records' database (a SQLite file, or the deployment's PostgreSQL URL) through the
    module that writes them, matched to the files under `images` by the sha256 of their bytes:
    the records never hold images."""
    by_hash: dict[str, Path] = {}
    for path in sorted(p for p in images.rglob("*") if p.is_file()):
        by_hash.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    try:
        decisions = latest_decisions_in(database)
    except (LookupError, SQLAlchemyError) as error:
        raise AdaptationError(f"{database}: no review records ({error})") from error
    latest = {(d.sample_id, d.image_sha256): d.decision for d in decisions}
    cells, unmatched = [], 0
    for (sample, sha), decision in latest.items():
        if decision == NOT_ASSESSABLE:
            continue
        if sha not in by_hash:
            unmatched += 1
            continue
        cells.append(ReviewedCell(by_hash[sha], sample, DECISIONS[decision]))
    if unmatched:
        print(f"{unmatched} reviewed images are not under {images}; left out")
    return cells


def reviews_source_name(reviews: Path | str) -> str:
    """For the card: a file's name, or a database URL without its password or host."""
    if "://" in str(reviews):
        url = sa.make_url(str(reviews))
        return f"{url.get_backend_name()} database {url.database or ''}".strip()
    return Path(reviews).name


def read_reviews(reviews: Path | str, images: Path) -> list[ReviewedCell]:
    """A CSV, a records file, or the deployment's database URL (PostgreSQL)."""
    if "://" in str(reviews):
        return read_review_database(str(reviews), images)
    reviews = Path(reviews)
    if not reviews.is_file():
        raise AdaptationError(f"{reviews}: not found")
    if reviews.suffix.lower() == ".csv":
        return read_review_csv(reviews, images)
    return read_review_database(reviews, images)


def check_enough_subjects(cells: Sequence[ReviewedCell], minimum: int) -> None:
    subjects = {label: {c.subject for c in cells if c.label == label} for label in LABEL_NAMES}
    short = [
        f"{len(subjects[label])} {LABEL_NAMES[label]}"
        for label in (LABEL_ALL, LABEL_HEM)
        if len(subjects[label]) < minimum
    ]
    if short:
        raise AdaptationError(
            f"adaptation needs at least {minimum} subjects (samples) of each class, to hold "
            f"each one out and still fit on two of its class; the reviews have "
            f"{' and '.join(short)} subject(s). Review cells of more people first."
        )
    mixed = {c.subject for c in cells if c.subject in subjects[LABEL_ALL]} & subjects[LABEL_HEM]
    if mixed:
        raise AdaptationError(f"subjects with both ALL and HEM cells: {sorted(mixed)}")


@dataclass(frozen=True)
class ParentOutputs:
    """The parent's raw logits and the features its last layer reads, per cell."""

    logits: np.ndarray
    features: np.ndarray
    head_weight: np.ndarray
    head_bias: float


@dataclass(frozen=True)
class LastLayer:
    """Where the last linear layer sits in an exported graph."""

    features: str
    weight: str
    bias: str
    transposed: bool


def find_last_layer(model: onnx.ModelProto) -> LastLayer:
    """The Gemm whose output becomes the `logit` output (through a Squeeze)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    node = producers["logit"]
    while node.op_type != "Gemm":
        if node.op_type not in ("Squeeze", "Reshape", "Identity", "Flatten"):
            raise AdaptationError(f"the logit is not made by a linear layer ({node.op_type})")
        node = producers[node.input[0]]
    transposed = any(a.name == "transB" and a.i == 1 for a in node.attribute)
    return LastLayer(node.input[0], node.input[1], node.input[2], transposed)


def parent_outputs(classifier: OnnxCellClassifier, paths: Sequence[Path]) -> ParentOutputs:
    model = onnx.load(str(classifier.model_dir / classifier.manifest.onnx_file))
    layer = find_last_layer(model)
    initialisers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight = initialisers[layer.weight].astype(np.float64)
    weight = weight.reshape(-1) if layer.transposed else weight.T.reshape(-1)
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(layer.features, onnx.TensorProto.FLOAT, None)
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    recipe = classifier.manifest.preprocessing
    logits, features = [], []
    for batch in preprocessed_batches(list(paths), recipe, 32):
        batch_logits, feature = session.run(["logit", layer.features], {"image": batch})
        logits.append(np.asarray(batch_logits, np.float64))
        features.append(np.asarray(feature, np.float64).reshape(len(batch), -1))
    return ParentOutputs(
        logits=np.concatenate(logits),
        features=np.concatenate(features),
        head_weight=weight,
        head_bias=float(initialisers[layer.bias].reshape(-1)[0]),
    )


@dataclass(frozen=True)
class FittedRule:
    """What an adaptation fits: logits -> probability, and the threshold."""

    probability: Callable[[np.ndarray], np.ndarray]
    threshold: float
    calibration: Calibration | None = None
    head_weight: np.ndarray | None = None
    head_bias: float | None = None


def fit_recalibration(parent: ParentOutputs, rows: np.ndarray, labels: np.ndarray) -> FittedRule:
    calibration = calibrate(parent.logits[rows], labels, fitted_on="the lab's reviewed cells")

    def probability(positions: np.ndarray) -> np.ndarray:
        return sigmoid(calibration.apply(parent.logits[positions]))

    threshold = best_balanced_accuracy_threshold(labels.tolist(), probability(rows).tolist())
    return FittedRule(probability, threshold, calibration=calibration)


def fit_head(
    parent: ParentOutputs, rows: np.ndarray, labels: np.ndarray, l2: float = DEFAULT_HEAD_L2
) -> FittedRule:
    """Logistic loss, both classes weighed equally, plus l2/2 * |w - w_parent|^2: the parent's
    head is the prior, so few cells move it little."""
    x, y = parent.features[rows], labels.astype(np.float64)
    weights = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    start = np.append(parent.head_weight, parent.head_bias)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        scores = x @ theta[:-1] + theta[-1]
        residual = (sigmoid(scores) - y) * weights
        shift = theta[:-1] - parent.head_weight
        value = float(np.sum(weights * (np.logaddexp(0.0, scores) - y * scores)))
        value += 0.5 * l2 * float(shift @ shift) / len(y)
        gradient = np.append(x.T @ residual + l2 * shift / len(y), residual.sum())
        return value, gradient

    theta = minimize(loss, start, jac=True, method="L-BFGS-B").x
    head_weight, head_bias = theta[:-1], float(theta[-1])

    def probability(positions: np.ndarray) -> np.ndarray:
        return sigmoid(parent.features[positions] @ head_weight + head_bias)

    threshold = best_balanced_accuracy_threshold(labels.tolist(), probability(rows).tolist())
    return FittedRule(probability, threshold, head_weight=head_weight, head_bias=head_bias)


FITS = {"recalibration": fit_recalibration, "head_refit": fit_head}


def held_out_splits(subjects: Sequence[str], labels: np.ndarray) -> list[np.ndarray]:
    """Held-out positions per fit: subject-grouped folds that each hold out subjects of both
    classes. Holding out one subject alone shifts each fit's class balance against the very
    class held out, which scored a recalibration (that cannot change the ranking) at ROC AUC
    0.04 on 11 subjects: an artefact of the protocol, not of the model."""
    per_class = [len({s for s, y in zip(subjects, labels, strict=True) if y == c}) for c in (0, 1)]
    folds = StratifiedGroupKFold(n_splits=min(MAX_FOLDS, *per_class), shuffle=True, random_state=0)
    return [held for _, held in folds.split(np.zeros(len(labels)), labels, groups=subjects)]


@dataclass(frozen=True)
class HeldOutResult:
    protocol: str
    before: Evaluation
    after: Evaluation
    better: bool


def _figures(
    labels: np.ndarray,
    probabilities: np.ndarray,
    calls: np.ndarray,
    draws: list[np.ndarray],
    subjects: Sequence[str],
) -> tuple[dict[str, Interval], dict[str, float | int | list[list[int]]]]:
    """The figures with their intervals, and as a card's evaluation holds them."""
    figures = {"roc_auc": metric_interval(roc_auc, labels, probabilities, draws)}
    for name, metric in threshold_metrics(0.5).items():  # calls are 0 or 1
        figures[name] = metric_interval(metric, labels, calls.astype(float), draws)
    metrics: dict[str, float | int | list[list[int]]] = {
        "cells": len(labels),
        "subjects_all": len({s for s, y in zip(subjects, labels, strict=True) if y == 1}),
        "subjects_hem": len({s for s, y in zip(subjects, labels, strict=True) if y == 0}),
    }
    for name, interval in figures.items():
        metrics[name] = interval.value
        metrics[f"{name}_low"] = interval.low
        metrics[f"{name}_high"] = interval.high
    return figures, metrics


def evaluate_held_out(
    parent: ParentOutputs,
    classifier: OnnxCellClassifier,
    cells: Sequence[ReviewedCell],
    strength: Strength,
    *,
    head_l2: float = DEFAULT_HEAD_L2,
    resamples: int = RESAMPLES,
) -> HeldOutResult:
    """The parent as served against the adaptation fitted without each held-out subject."""
    labels = np.asarray([c.label for c in cells])
    subjects = [c.subject for c in cells]
    every = np.arange(len(cells))
    margins = np.zeros(len(cells))
    splits = held_out_splits(subjects, labels)
    for held in splits:
        fit_rows = np.setdiff1d(every, held)
        rule = fit(strength, parent, fit_rows, labels[fit_rows], head_l2)
        # Each fit's held-out scores relative to its own threshold, so that the fits' scores
        # can be ranked together.
        margins[held] = logit(rule.probability(held)) - logit(np.asarray(rule.threshold))
    calls = margins >= 0
    served = sigmoid(classifier.calibrated_logits(parent.logits))
    served_calls = served >= classifier.manifest.threshold.value
    draws = subject_resamples(subjects, labels, resamples, seed=0)
    before_figures, before = _figures(labels, served, served_calls, draws, subjects)
    # A recalibration keeps the parent's ranking: its ROC AUC is the parent's by construction,
    # while pooling fits with different thresholds would only measure their spread.
    ranking = parent.logits if strength == "recalibration" else margins
    after_figures, after = _figures(labels, ranking, calls, draws, subjects)
    protocol = (
        f"{len(splits)} subject-grouped folds of the reviewed cells, each holding out subjects "
        "of both classes, scored by the adaptation fitted on the other folds (its threshold "
        "chosen on those); ROC AUC "
        + (
            "of the parent's logits (a recalibration keeps the ranking)"
            if strength == "recalibration"
            else "over the held-out scores relative to each fit's threshold"
        )
        + "; "
        f"95% intervals from {resamples} resamples of whole subjects"
    )
    better = after_figures["balanced_accuracy"].value > before_figures["balanced_accuracy"].value
    if strength == "head_refit":
        better = better and after_figures["roc_auc"].value >= before_figures["roc_auc"].value
    return HeldOutResult(
        protocol=protocol,
        before=Evaluation(
            protocol=f"parent as served, on held-out subjects: {protocol}", metrics=before
        ),
        after=Evaluation(protocol=f"{strength}, held out: {protocol}", metrics=after),
        better=better,
    )


def fit(
    strength: Strength, parent: ParentOutputs, rows: np.ndarray, labels: np.ndarray, l2: float
) -> FittedRule:
    if strength == "head_refit":
        return fit_head(parent, rows, labels, l2)
    return fit_recalibration(parent, rows, labels)


def _replace_head(source: Path, target: Path, rule: FittedRule) -> None:
    model = onnx.load(str(source))
    layer = find_last_layer(model) if any(o.name == "logit" for o in model.graph.output) else None
    if layer is None:
        raise AdaptationError(f"{source}: no logit output")
    for initialiser in model.graph.initializer:
        if initialiser.name == layer.weight:
            shape = tuple(initialiser.dims)
            values = np.asarray(rule.head_weight, np.float32)
            values = values.reshape(shape) if layer.transposed else values.reshape(shape[::-1]).T
            initialiser.CopyFrom(numpy_helper.from_array(values, layer.weight))
        elif initialiser.name == layer.bias:
            shape = tuple(initialiser.dims)
            bias = np.full(shape, rule.head_bias, np.float32)
            initialiser.CopyFrom(numpy_helper.from_array(bias, layer.bias))
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def adapt_model(
    parent_dir: Path,
    reviews: Path | str,
    images: Path,
    out_dir: Path,
    *,
    strength: Strength,
    model_id: str,
    version: str = "1",
    minimum_subjects_per_class: int = MINIMUM_SUBJECTS_PER_CLASS,
    head_l2: float = DEFAULT_HEAD_L2,
    command: str = "",
    resamples: int = RESAMPLES,
) -> ModelManifest:
    """A new model directory adapted from `parent_dir`; refuses to touch an existing one."""
    if out_dir.exists():
        raise AdaptationError(f"{out_dir} exists: an adapted model never replaces another")
    cells = read_reviews(reviews, images)
    check_enough_subjects(cells, minimum_subjects_per_class)
    classifier = OnnxCellClassifier(parent_dir)
    parent = parent_outputs(classifier, [c.path for c in cells])
    labels = np.asarray([c.label for c in cells])
    held_out = evaluate_held_out(
        parent, classifier, cells, strength, head_l2=head_l2, resamples=resamples
    )
    final = fit(strength, parent, np.arange(len(cells)), labels, head_l2)
    manifest = classifier.manifest
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_graphs(parent_dir, staging, manifest, strength, final)
        adapted = _adapted_card(
            manifest,
            staging,
            AdaptedFrom(
                cells=cells,
                reviews=reviews,
                strength=strength,
                final=final,
                held_out=held_out,
                minimum_subjects_per_class=minimum_subjects_per_class,
            ),
            model_id=model_id,
            version=version,
            command=command,
        )
        write_manifest(adapted, staging)
        load_manifest(staging)  # the graphs are the files the card describes
        staging.rename(out_dir)
        if (out_dir.parent / STORE_INDEX).is_file():  # served beside the others, not as default
            record_model(out_dir.parent, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return adapted


def _write_graphs(
    parent_dir: Path, staging: Path, manifest: ModelManifest, strength: Strength, final: FittedRule
) -> None:
    """The parent's graphs, with the refitted head where the head was refitted."""
    graphs = [manifest.onnx_file]
    graphs += [manifest.explain_onnx_file] if manifest.explain_onnx_file else []
    for name in graphs:
        if strength == "head_refit":
            _replace_head(parent_dir / name, staging / name, final)
        else:
            shutil.copy2(parent_dir / name, staging / name)


@dataclass(frozen=True)
class AdaptedFrom:
    """What an adaptation was made from and how it did: everything its card records."""

    cells: list[ReviewedCell]
    reviews: Path | str
    strength: Strength
    final: FittedRule
    held_out: HeldOutResult
    minimum_subjects_per_class: int


def _adapted_card(
    manifest: ModelManifest,
    staging: Path,
    made: AdaptedFrom,
    *,
    model_id: str,
    version: str,
    command: str,
) -> ModelManifest:
    """The parent's card with the new decision rule, the adaptation and its own history."""
    cells, held_out = made.cells, made.held_out
    subjects = len({c.subject for c in cells})
    counts = Counter((c.subject, c.label) for c in cells)
    verdict = "better" if held_out.better else "NOT better"
    adapted = manifest.model_copy(
        update={
            "id": model_id,
            "version": version,
            "created": datetime.now(UTC),
            "threshold": ThresholdChoice(
                value=made.final.threshold,
                source="best balanced accuracy (Youden's J) on the lab's reviewed cells; "
                "its held-out figures are in the card's adaptation",
            ),
            "calibration": made.final.calibration,
            "test_time_augmentation": None,
            "selection": f"adapted from {manifest.id} v{manifest.version} ({made.strength})",
            "limitations": [
                *(
                    []
                    if held_out.better
                    else [
                        "On the lab's held-out subjects this adapted model was NOT better "
                        f"than its parent {manifest.id}: use the parent."
                    ]
                ),
                f"Adapted on {len(cells)} reviewed cells of {subjects} "
                "subjects of one lab: it is meant for that lab's population only.",
                *manifest.limitations,
            ],
            "changelog": [
                changelog_entry(
                    version,
                    f"Adapted from {manifest.id} v{manifest.version} ({made.strength}) on "
                    f"{len(cells)} reviewed cells of {subjects} subjects; {verdict} than the "
                    "parent on the lab's held-out subjects.",
                )
            ],
            "onnx_sha256": file_sha256(staging / manifest.onnx_file),
            "explain_onnx_sha256": (
                file_sha256(staging / manifest.explain_onnx_file)
                if manifest.explain_onnx_file
                else None
            ),
            "adaptation": Adaptation(
                parent_id=manifest.id,
                parent_version=manifest.version,
                parent_onnx_sha256=manifest.onnx_sha256,
                strength=made.strength,
                reviews_source=reviews_source_name(made.reviews),
                reviewed_cells=[
                    SubjectCounts(subject=s, label=LABEL_NAMES[y], images=n)
                    for (s, y), n in sorted(counts.items())
                ],
                minimum_subjects_per_class=made.minimum_subjects_per_class,
                held_out_protocol=held_out.protocol,
                before=held_out.before,
                after=held_out.after,
                better_on_held_out=held_out.better,
            ),
            "provenance": manifest.provenance.model_copy(
                update={"training_command": command or "python -m training adapt"}
            ),
        }
    )
    return ModelManifest.model_validate(adapted.model_dump())
