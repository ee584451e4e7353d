"""From uploaded bytes to a prediction: check, decode, preprocess, infer, explain.

The synchronous core is shared by the HTTP API and the command-line predictor; the server
runs it in a thread pool because OpenCV and onnxruntime release the GIL while they work.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import numpy as np

from app.inference import OnnxCellClassifier
from app.model_registry import ModelRegistry
from app.preprocessing import ImageDecodeError, decode_image, preprocess_with_views
from app.quality_checks import quality_warnings
from app.schemas import DisplayImages, ModelRef, Prediction, QualityWarning, Timings
from app.upload_checks import UploadLimits, UploadRejectedError, inspect_upload

DISPLAY_MAX_SIDE = 512
T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class _Prepared:
    """One upload after decoding and preprocessing, waiting for its inference."""

    tensor: np.ndarray
    warnings: list[QualityWarning]
    views: DisplayImages | None
    decode_ms: float
    preprocess_ms: float
    started: float = field(default_factory=time.perf_counter)


def _milliseconds(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


def png_data_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _display_copy(rgb: np.ndarray) -> np.ndarray:
    scale = DISPLAY_MAX_SIDE / max(rgb.shape[:2])
    if scale >= 1.0:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class PredictionEngine:
    def __init__(self, registry: ModelRegistry, limits: UploadLimits, worker_threads: int) -> None:
        self.registry = registry
        self.limits = limits
        self.executor = ThreadPoolExecutor(worker_threads, thread_name_prefix="leukolens")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _prepare(self, upload: Upload, classifier: OnnxCellClassifier, views: bool) -> _Prepared:
        started = time.perf_counter()
        inspect_upload(upload.data, upload.content_type, self.limits)
        try:
            rgb = decode_image(upload.data)
        except ImageDecodeError as error:
            raise UploadRejectedError(400, str(error)) from error
        decode_ms = _milliseconds(started)
        preprocess_started = time.perf_counter()
        processed = preprocess_with_views(rgb, classifier.manifest.preprocessing)
        display = (
            DisplayImages(
                original=png_data_uri(_display_copy(rgb)),
                enhanced=png_data_uri(_display_copy(processed.enhanced_view)),
                cropped=png_data_uri(processed.cropped_view),
            )
            if views
            else None
        )
        return _Prepared(
            tensor=processed.tensor,
            warnings=quality_warnings(processed),
            views=display,
            decode_ms=decode_ms,
            preprocess_ms=_milliseconds(preprocess_started),
            started=started,
        )

    def predict_many(
        self,
        uploads: Sequence[Upload],
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
    ) -> list[Prediction | UploadRejectedError]:
        """Each upload's prediction, or the reason it was refused; one batched inference."""
        classifier = self.registry.get(model_id)
        prepared: list[_Prepared | UploadRejectedError] = []
        for upload in uploads:
            try:
                prepared.append(self._prepare(upload, classifier, views))
            except UploadRejectedError as rejection:
                prepared.append(rejection)
        ready = [item for item in prepared if isinstance(item, _Prepared)]
        if not ready:
            return list(prepared)  # type: ignore[arg-type]
        inference_started = time.perf_counter()
        output = classifier.predict(np.stack([item.tensor for item in ready]))
        inference_ms = _milliseconds(inference_started)
        probabilities = iter(output.probabilities.tolist())
        manifest = classifier.manifest
        results: list[Prediction | UploadRejectedError] = []
        for item in prepared:
            if isinstance(item, UploadRejectedError):
                results.append(item)
                continue
            probability = float(next(probabilities))
            results.append(
                Prediction(
                    label="ALL" if probability >= manifest.threshold.value else "HEM",
                    probability_all=probability,
                    threshold=manifest.threshold.value,
                    model=ModelRef(id=manifest.id, version=manifest.version),
                    warnings=item.warnings,
                    timings_ms=Timings(
                        decode=item.decode_ms,
                        preprocess=item.preprocess_ms,
                        inference=inference_ms,
                        total=_milliseconds(item.started),
                    ),
                    request_id=request_id,
                    views=item.views,
                )
            )
        return results

    def predict_one(
        self,
        upload: Upload,
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
    ) -> Prediction:
        result = self.predict_many([upload], model_id=model_id, request_id=request_id, views=views)[
            0
        ]
        if isinstance(result, UploadRejectedError):
            raise result
        return result

    async def run(self, function: Callable[[], T]) -> T:
        """Run blocking work on the engine's pool, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, function)
