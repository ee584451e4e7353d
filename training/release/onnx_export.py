"""A trained classifier as ONNX graphs (the plain one and the explain graph with its Grad-CAM
output), GELUs in the order onnxruntime fuses, and the parity check against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import GRADCAM_OUTPUT, INPUT_NAME, LOGIT_OUTPUT, PROBABILITY_OUTPUT
from training.data.dataset_index import list_images, read_image
from training.fit.artifacts import RunConfig
from training.fit.models import (
    CellClassifier,
    ExplainedProbabilityExport,
    ProbabilityExport,
    predict_probabilities,
)
from training.fit.train_config import TrainConfig
from training.release.gelu_fusion import reorder_gelu_for_fusion

ONNX_OPSET = 18


def parity_images(config: TrainConfig, resolved: RunConfig, count: int) -> list[np.ndarray]:
    """Real cells from the run's data, validation subjects first."""
    images = list_images(config.data)
    held_out = set(resolved.validation_subjects)
    images.sort(key=lambda image: image.subject not in held_out)
    step = max(1, len(images) // max(count, 1)) if not held_out else 1
    return [read_image(image.path) for image in images[::step][:count]]


def check_parity(model: torch.nn.Module, onnx_dir: Path, batch: np.ndarray) -> float:
    """Both graphs' own probability output against PyTorch, before any calibration."""
    expected = predict_probabilities(model, batch)
    classifier = OnnxCellClassifier(onnx_dir)
    differences = []
    for session in (classifier.session, classifier.explain_session()):
        (actual,) = session.run([PROBABILITY_OUTPUT], {INPUT_NAME: batch})
        differences.append(float(np.max(np.abs(actual - expected))))
    return max(differences)


def export_onnx(
    model: CellClassifier, path: Path, input_size: int, *, explain: bool = False
) -> None:
    example = torch.zeros(2, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    wrapper = ExplainedProbabilityExport(model) if explain else ProbabilityExport(model)
    outputs = [LOGIT_OUTPUT, PROBABILITY_OUTPUT] + ([GRADCAM_OUTPUT] if explain else [])
    torch.onnx.export(
        wrapper.eval(),
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=outputs,
        opset_version=ONNX_OPSET,
        dynamic_shapes={"images": {0: batch}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    graph = onnx.load(str(path))
    rewritten = reorder_gelu_for_fusion(graph)
    onnx.checker.check_model(graph, full_check=True)
    if rewritten:
        onnx.save(graph, str(path))
