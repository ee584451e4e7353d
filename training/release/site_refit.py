"""What a site adaptation fits on the parent's outputs: a recalibration (temperature, bias,
threshold) or a refit of the last linear layer with an L2 pull toward the parent's head, and
the parent's graph with that head written in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from scipy.optimize import minimize
from sklearn.model_selection import StratifiedGroupKFold

from app.core.classifier import OnnxCellClassifier, sigmoid
from app.core.manifest import Calibration
from training.data.image_batches import preprocessed_batches
from training.metrics.classification_metrics import best_balanced_accuracy_threshold
from training.release.calibration import calibrate
from training.release.site_reviews import AdaptationError

Strength = Literal["recalibration", "head_refit"]


DEFAULT_HEAD_L2 = 1.0


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
    head_l2: float | None = None


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
HEAD_L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
INNER_FOLDS = 3


def _balanced_log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-6, 1 - 1e-6)
    losses = [
        float(-np.log(np.where(labels == c, p if c else 1 - p, 1)[labels == c]).mean())
        for c in (0, 1)
        if (labels == c).any()
    ]
    return float(np.mean(losses))


def choose_head_l2(
    parent: ParentOutputs, rows: np.ndarray, labels: np.ndarray, groups: Sequence[str]
) -> float:
    """The pull toward the parent's head that predicts held-out samples best: inner folds
    that keep each sample (person) whole, scored by the class-balanced log loss. With fewer
    than two samples of a class to fold, the default."""
    per_class = [len({g for g, y in zip(groups, labels, strict=True) if y == c}) for c in (0, 1)]
    splits = min(INNER_FOLDS, *per_class)
    if splits < 2:
        return DEFAULT_HEAD_L2
    folds = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=0)
    losses = dict.fromkeys(HEAD_L2_GRID, 0.0)
    for train, held in folds.split(np.zeros(len(rows)), labels, groups=list(groups)):
        for l2 in HEAD_L2_GRID:
            rule = fit_head(parent, rows[train], labels[train], l2)
            losses[l2] += _balanced_log_loss(labels[held], rule.probability(rows[held]))
    return min(losses, key=lambda l2: (losses[l2], -l2))  # ties: the stronger pull


def fit(
    strength: Strength,
    parent: ParentOutputs,
    rows: np.ndarray,
    labels: np.ndarray,
    l2: float | None,
    groups: Sequence[str] = (),
) -> FittedRule:
    """`l2` None: chosen by inner sample-grouped folds on these rows (`groups`: their samples)."""
    if strength == "head_refit":
        chosen = choose_head_l2(parent, rows, labels, groups) if l2 is None else l2
        rule = fit_head(parent, rows, labels, chosen)
        return replace(rule, head_l2=chosen)
    return fit_recalibration(parent, rows, labels)


def replace_head(source: Path, target: Path, rule: FittedRule) -> None:
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
