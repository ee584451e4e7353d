"""An exported model ready to run: its manifest, its onnxruntime sessions, its recipe.

Calibration (temperature and bias) and test-time augmentation are applied here, so every
caller (server, command line, evaluation) gets the same probabilities for the same input.
The Grad-CAM graph is a second file, loaded on the first explanation asked for.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from app.core.manifest import ModelManifest, file_sha256, load_manifest
from app.core.recipe import preprocess
from app.core.tta_transforms import average_over_transforms, dihedral_transforms

log = logging.getLogger("leukolens.inference")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
# Images per onnxruntime call. Throughput on the CPU is flat past a few images per call, while
# peak memory grows with the call: a chunk bounds it (a Grad-CAM call also keeps the backward
# pass's tensors, hence its smaller chunk).
CHUNK_IMAGES = 16
EXPLAIN_CHUNK_IMAGES = 2  # 65 MB over resident at 2 images, 190 MB at 4, 5% faster


def providers_for(execution_provider: str) -> list[str]:
    """CUDA first when asked for and installed (the gpu extra), the CPU always behind it."""
    if execution_provider == "cuda" and CUDA_PROVIDER in ort.get_available_providers():
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


@dataclass(frozen=True)
class BatchOutput:
    logits: np.ndarray
    probabilities: np.ndarray
    gradcam: np.ndarray | None = None


def sigmoid(values: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-values)))


def logit(probabilities: np.ndarray | float, epsilon: float = 1e-12) -> np.ndarray:
    """The inverse of `sigmoid`, with probabilities clipped `epsilon` away from 0 and 1 so that
    a certain answer stays finite."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), epsilon, 1 - epsilon)
    return np.log(clipped) - np.log1p(-clipped)


INT8_CARD_FILENAME = "int8.json"


class Int8Card(BaseModel):
    """An int8 twin of a model's graph and the evidence it was shipped on.

    Written by `python -m bench.quantization --install` only when the twin was at least 1.3x
    faster and moved ROC AUC by at most 0.002; served only when `LEUKOLENS_INT8` asks for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onnx_file: str
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    method: str = Field(description="e.g. static QDQ, per-channel int8 weights, uint8 activations")
    calibration: str = Field(description="Which images set the activation ranges.")
    speedup_batch1: float = Field(description="float32 / int8 p50, batch 1, one thread.")
    roc_auc_float32: float
    roc_auc_int8: float
    label_agreement: float
    max_abs_probability_change: float
    measured_on: str


def load_int8_card(model_dir: Path) -> Int8Card | None:
    path = model_dir / INT8_CARD_FILENAME
    if not path.is_file():
        return None
    card = Int8Card.model_validate_json(path.read_text(encoding="utf-8"))
    if file_sha256(model_dir / card.onnx_file) != card.onnx_sha256:
        raise ValueError(f"{model_dir / card.onnx_file}: sha256 differs from {path.name}")
    return card


class ExplanationUnavailableError(LookupError):
    """The model was exported without its Grad-CAM graph."""


class OnnxCellClassifier:
    """One model directory loaded once; `predict` takes preprocessed NCHW tensors."""

    def __init__(
        self,
        model_dir: Path,
        *,
        intra_op_threads: int = 0,
        int8: bool = False,
        execution_provider: str = "cpu",
    ) -> None:
        """With `int8`, the model's int8 graph where it ships one (see `Int8Card`), else the
        float32 graph; explanations always use the float32 Grad-CAM graph."""
        self.model_dir = model_dir
        self.manifest: ModelManifest = load_manifest(model_dir)
        self.intra_op_threads = intra_op_threads
        self.int8_card = load_int8_card(model_dir) if int8 else None
        self.precision = "int8" if self.int8_card is not None else "float32"
        self.providers = providers_for(execution_provider)
        graph = self.int8_card.onnx_file if self.int8_card else self.manifest.onnx_file
        self.session = self._session(graph)
        # What onnxruntime actually uses: it drops CUDA when the GPU cannot be initialised.
        self.provider: str = self.session.get_providers()[0]
        if execution_provider == "cuda" and self.provider != CUDA_PROVIDER:
            log.warning(
                "%s: the CUDA provider is unavailable (available: %s); running on the CPU",
                self.manifest.id,
                ", ".join(ort.get_available_providers()),
            )
        self._explain_session: ort.InferenceSession | None = None
        self._explain_lock = threading.Lock()

    def _session(self, filename: str, *, arena: bool = True) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Micro-batches vary in size, so a memory pattern planned for one shape is rarely
        # reused; without it peak memory was about 10% lower at the same speed (measured).
        options.enable_mem_pattern = False
        # onnxruntime's CPU arena keeps its largest call's memory for the life of the process.
        # Scoring keeps it (10-15% faster; chunks bound it); Grad-CAM, whose backward pass is
        # large and rare, gives it back after each call (docs/security.md).
        options.enable_cpu_mem_arena = arena
        return ort.InferenceSession(
            str(self.model_dir / filename), sess_options=options, providers=self.providers
        )

    @property
    def explains(self) -> bool:
        return (
            self.manifest.explain_onnx_file is not None
            and self.manifest.outputs.gradcam is not None
        )

    @property
    def tta_by_default(self) -> bool:
        """The model card's measured choice for test-time augmentation."""
        card = self.manifest.test_time_augmentation
        return bool(card and card.default)

    def explain_session(self) -> ort.InferenceSession:
        if not self.explains:
            raise ExplanationUnavailableError(f"{self.manifest.id} has no Grad-CAM graph")
        with self._explain_lock:
            if self._explain_session is None:
                self._explain_session = self._session(
                    self.manifest.explain_onnx_file or "", arena=False
                )
            return self._explain_session

    def calibrated_logits(self, logits: np.ndarray) -> np.ndarray:
        calibration = self.manifest.calibration
        return calibration.apply(logits) if calibration is not None else logits

    def _run(self, batch: np.ndarray, gradcam: bool) -> BatchOutput:
        outputs = self.manifest.outputs
        feed = {self.manifest.input.name: batch.astype(np.float32, copy=False)}
        if gradcam:
            logits, maps = self.explain_session().run([outputs.logit, outputs.gradcam], feed)
        else:
            (logits,), maps = self.session.run([outputs.logit], feed), None
        raw = np.asarray(logits, dtype=np.float64)
        return BatchOutput(
            logits=raw,
            probabilities=sigmoid(self.calibrated_logits(raw)),
            gradcam=None if maps is None else np.asarray(maps),
        )

    def _run_in_chunks(self, batch: np.ndarray, gradcam: bool) -> BatchOutput:
        """At most a chunk of images per onnxruntime call: a batch's peak memory is that of
        its chunk (activations, and the backward pass of Grad-CAM), whatever its size."""
        size = EXPLAIN_CHUNK_IMAGES if gradcam else CHUNK_IMAGES
        if len(batch) <= size:
            return self._run(batch, gradcam)
        parts = [
            self._run(batch[start : start + size], gradcam) for start in range(0, len(batch), size)
        ]
        maps = [part.gradcam for part in parts if part.gradcam is not None]
        return BatchOutput(
            logits=np.concatenate([part.logits for part in parts]),
            probabilities=np.concatenate([part.probabilities for part in parts]),
            gradcam=np.concatenate(maps) if maps else None,
        )

    def predict(
        self, batch: np.ndarray, *, tta: bool = False, gradcam: bool = False
    ) -> BatchOutput:
        """Calibrated probabilities; with `tta`, each the mean over its 8 symmetric views; with
        `gradcam`, the map of the unaugmented image."""
        if not tta:
            return self._run_in_chunks(batch, gradcam)
        views = np.concatenate([dihedral_transforms(image) for image in batch])
        probabilities = average_over_transforms(
            self._run_in_chunks(views, gradcam=False).probabilities
        )
        maps = self._run_in_chunks(batch, gradcam=True).gradcam if gradcam else None
        calibrated = logit(probabilities, epsilon=0.0)
        calibration = self.manifest.calibration
        raw = calibration.unapply(calibrated) if calibration is not None else calibrated
        return BatchOutput(logits=raw, probabilities=probabilities, gradcam=maps)

    def warm_up(self) -> None:
        """One run on a blank image, so the first request does not pay for lazy set-up."""
        size = self.manifest.input.size
        self._run_in_chunks(np.zeros((1, 3, size, size), dtype=np.float32), gradcam=False)

    def predict_images(self, rgb_images: list[np.ndarray], *, tta: bool = False) -> BatchOutput:
        recipe = self.manifest.preprocessing
        return self.predict(np.stack([preprocess(image, recipe) for image in rgb_images]), tta=tta)
