"""An exported model ready to run: its manifest, its onnxruntime session, its recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.manifest import ModelManifest, load_manifest
from app.preprocessing import preprocess


@dataclass(frozen=True)
class BatchOutput:
    logits: np.ndarray
    probabilities: np.ndarray


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
        self._outputs = [self.manifest.outputs.logit, self.manifest.outputs.probability]

    def predict(self, batch: np.ndarray) -> BatchOutput:
        logits, probabilities = self.session.run(
            self._outputs, {self.manifest.input.name: batch.astype(np.float32, copy=False)}
        )
        return BatchOutput(logits=np.asarray(logits), probabilities=np.asarray(probabilities))

    def predict_images(self, rgb_images: list[np.ndarray]) -> BatchOutput:
        recipe = self.manifest.preprocessing
        return self.predict(np.stack([preprocess(image, recipe) for image in rgb_images]))
