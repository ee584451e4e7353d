"""Evaluate an exported model as it is served: onnxruntime and the manifest's recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.classifier import OnnxCellClassifier
from training.data.dataset_index import DatasetIndex
from training.data.image_batches import preprocessed_batches
from training.metrics.classification_metrics import (
    BinaryMetrics,
    binary_metrics,
    per_subject_accuracy,
)


@dataclass(frozen=True)
class EvaluationResult:
    model_id: str
    threshold: float
    metrics: BinaryMetrics
    per_subject_accuracy: dict[str, float]
    labels: np.ndarray
    probabilities: np.ndarray

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model_id,
            **self.metrics.as_dict(),
            "per_subject_accuracy": self.per_subject_accuracy,
        }


def evaluate_model(
    model_dir: Path, index: DatasetIndex, *, batch_size: int = 32, threshold: float | None = None
) -> EvaluationResult:
    classifier = OnnxCellClassifier(model_dir)
    recipe = classifier.manifest.preprocessing
    images = index.images
    batches = preprocessed_batches([image.path for image in images], recipe, batch_size)
    probability = np.concatenate([classifier.predict(batch).probabilities for batch in batches])
    labels = np.asarray([image.label for image in images])
    cutoff = classifier.manifest.threshold.value if threshold is None else threshold
    return EvaluationResult(
        model_id=classifier.manifest.id,
        threshold=cutoff,
        metrics=binary_metrics(labels, probability, cutoff),
        per_subject_accuracy=per_subject_accuracy(
            [image.subject for image in images], labels.tolist(), probability.tolist(), cutoff
        ),
        labels=labels,
        probabilities=probability,
    )


def format_table(result: EvaluationResult) -> str:
    lines = [f"model {result.model_id}  threshold {result.threshold:.4f}", ""]
    for key, value in result.metrics.as_dict().items():
        if key == "confusion_matrix":
            (tn, fp), (fn, tp) = result.metrics.confusion_matrix
            lines.append(
                f"{'confusion':<18} HEM->HEM {tn}  HEM->ALL {fp}  ALL->HEM {fn}  ALL->ALL {tp}"
            )
        elif isinstance(value, float):
            lines.append(f"{key:<18} {value:.4f}")
        else:
            lines.append(f"{key:<18} {value}")
    lines += ["", "per-subject accuracy"]
    lines += [
        f"  {subject:<8} {accuracy:.4f}"
        for subject, accuracy in result.per_subject_accuracy.items()
    ]
    return "\n".join(lines)


def save_plots(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """ROC curve and confusion matrix as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    roc_path, confusion_path = out_dir / "roc.png", out_dir / "confusion_matrix.png"
    figure, axis = plt.subplots(figsize=(5, 5))
    RocCurveDisplay.from_predictions(
        result.labels, result.probabilities, name=result.model_id, ax=axis
    )
    axis.set_title("ROC, ALL as positive")
    figure.savefig(roc_path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_predictions(
        result.labels,
        (result.probabilities >= result.threshold).astype(int),
        labels=[0, 1],
        display_labels=["HEM", "ALL"],
        ax=axis,
        colorbar=False,
    )
    axis.set_title(f"threshold {result.threshold:.3f}")
    figure.savefig(confusion_path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return [roc_path, confusion_path]
