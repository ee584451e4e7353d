"""An exported model ready to run: its manifest, its onnxruntime session, its recipe.

Calibration (temperature scaling) and test-time augmentation are applied here, so every
caller (server, command line, evaluation) gets the same probabilities for the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.manifest import ModelManifest, load_manifest
from app.preprocessing import preprocess
from app.test_time_augmentation import average_views, dihedral_views


@dataclass(frozen=True)
class BatchOutput:
    logits: np.ndarray
    probabilities: np.ndarray
    gradcam: np.ndarray | None = None


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


class OnnxCellClassifier:
    """One model directory loaded once; `predict` takes preprocessed NCHW tensors."""

    def __init__(self, model_dir: Path, *, intra_op_threads: int = 0) -> None:
        self.model_dir = model_dir
        self.manifest: ModelManifest = load_manifest(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_dir / self.manifest.onnx_file),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.temperature = (
            self.manifest.calibration.temperature if self.manifest.calibration else 1.0
        )

    @property
    def explains(self) -> bool:
        return self.manifest.outputs.gradcam is not None

    def _run(self, batch: np.ndarray, gradcam: bool) -> BatchOutput:
        outputs = self.manifest.outputs
        names = [outputs.logit] + ([outputs.gradcam] if gradcam and outputs.gradcam else [])
        results = self.session.run(
            names, {self.manifest.input.name: batch.astype(np.float32, copy=False)}
        )
        logits = np.asarray(results[0], dtype=np.float64)
        return BatchOutput(
            logits=logits,
            probabilities=sigmoid(logits / self.temperature),
            gradcam=np.asarray(results[1]) if len(results) > 1 else None,
        )

    def predict(
        self, batch: np.ndarray, *, tta: bool = False, gradcam: bool = False
    ) -> BatchOutput:
        """Calibrated probabilities; with `tta`, each the mean over its 8 symmetric views (one
        onnxruntime call for all); with `gradcam`, the map of the unaugmented image."""
        if not tta:
            return self._run(batch, gradcam)
        views = np.concatenate([dihedral_views(image) for image in batch])
        output = self._run(views, gradcam=False)
        probabilities = average_views(output.probabilities)
        logits = np.log(probabilities) - np.log1p(-probabilities)
        maps = self._run(batch, gradcam=True).gradcam if gradcam else None
        return BatchOutput(
            logits=logits * self.temperature, probabilities=probabilities, gradcam=maps
        )

    def predict_images(self, rgb_images: list[np.ndarray], *, tta: bool = False) -> BatchOutput:
        recipe = self.manifest.preprocessing
        return self.predict(np.stack([preprocess(image, recipe) for image in rgb_images]), tta=tta)
