"""From uploaded bytes to a prediction: check, decode, preprocess, infer, record.

The synchronous core (`predict_many`, `predict_one`) is shared by the HTTP API and the
command-line predictor. The server's async path runs the blocking work in a thread pool
(OpenCV and onnxruntime release the GIL), micro-batches concurrent single-image requests,
and refuses new work with 503 beyond a configured number of requests in flight.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import cv2
import numpy as np

from app.answer_states import answer_state, is_assessable
from app.audit_log import AuditLog, AuditRecord
from app.explanations import composite, overlay_rgba, upsample_gradcam
from app.inference import OnnxCellClassifier
from app.micro_batching import InferenceObserver, MicroBatcher
from app.model_registry import ModelRegistry
from app.preprocessing import (
    ImageDecodeError,
    decode_image,
    find_foreground,
    normalize_to_tensor,
    rescale_for_display,
    run_recipe,
)
from app.quality_checks import input_warnings, measure_foreground, uncertainty_warning
from app.request_budget import WAITING, check_budget
from app.schemas import DisplayImages, Explanation, ModelRef, Prediction, QualityWarning, Timings
from app.test_time_augmentation import VIEWS
from app.upload_checks import UploadLimits, UploadRejectedError, inspect_upload

DISPLAY_MAX_SIDE = 512
T = TypeVar("T")


class ServerBusyError(Exception):
    """More requests in flight than the configured queue depth; the client should retry."""

    retry_after_seconds = 1


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class BatchingPolicy:
    max_batch: int = 8
    max_wait_seconds: float = 0.005


@dataclass
class PreparedUpload:
    """One upload after decoding and preprocessing, waiting for its inference."""

    tensor: np.ndarray
    model_input: np.ndarray
    cropped_view: np.ndarray
    image_sha256: str
    warnings: list[QualityWarning]
    views: DisplayImages | None
    decode_ms: float
    preprocess_ms: float
    started: float = field(default_factory=time.perf_counter)


def _milliseconds(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)


def png_data_uri(image: np.ndarray) -> str:
    """RGB or RGBA uint8 as a PNG data URI."""
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, code))
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
    def __init__(
        self,
        registry: ModelRegistry,
        limits: UploadLimits,
        worker_threads: int,
        *,
        max_in_flight: int | None = None,
        batching: BatchingPolicy | None = None,
        audit_log: AuditLog | None = None,
        observe_inference: InferenceObserver | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.executor = ThreadPoolExecutor(worker_threads, thread_name_prefix="leukolens")
        self.max_in_flight = max_in_flight
        self.audit_log = audit_log
        self.observe_inference = observe_inference
        self.in_flight = 0
        self.preparing = 0
        policy = batching or BatchingPolicy()
        self.batchers = {
            model_id: MicroBatcher(
                classifier,
                self.executor,
                max_batch=policy.max_batch,
                max_wait_seconds=policy.max_wait_seconds,
                incoming=lambda: self.preparing,
                observe=observe_inference,
            )
            for model_id, classifier in registry.models.items()
        }

    def close(self) -> None:
        """Stop the worker threads and flush the audit log."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.audit_log is not None:
            self.audit_log.close()

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
        self.close()

    # -- the synchronous core -------------------------------------------------------------

    def prepare(
        self, upload: Upload, classifier: OnnxCellClassifier, views: bool
    ) -> PreparedUpload:
        started = time.perf_counter()
        inspect_upload(upload.data, upload.content_type, self.limits)
        check_budget(WAITING)
        try:
            rgb = decode_image(upload.data)
        except ImageDecodeError as error:
            raise UploadRejectedError(400, str(error)) from error
        check_budget("decoding")
        decode_ms = _milliseconds(started)
        preprocess_started = time.perf_counter()
        manifest = classifier.manifest
        recipe = manifest.preprocessing
        # One mask for the recipe and the checks; the whole enhanced frame only for display.
        foreground = find_foreground(rgb, recipe.foreground_threshold)
        output = run_recipe(rgb, recipe, foreground, whole_frame=views)
        cropped_view = rescale_for_display(output.prepared)
        display = None
        if views:
            enhanced = output.enhanced if output.enhanced is not None else rgb
            display = DisplayImages(
                original=png_data_uri(_display_copy(rgb)),
                enhanced=png_data_uri(_display_copy(rescale_for_display(enhanced))),
                cropped=png_data_uri(cropped_view),
            )
        measured = measure_foreground(rgb, foreground)
        check_budget("preprocessing")
        return PreparedUpload(
            tensor=normalize_to_tensor(output.prepared, recipe),
            model_input=output.prepared,
            cropped_view=cropped_view,
            image_sha256=hashlib.sha256(upload.data).hexdigest(),
            warnings=input_warnings(measured, manifest.quality_reference),
            views=display,
            decode_ms=decode_ms,
            preprocess_ms=_milliseconds(preprocess_started),
            started=started,
        )

    def _prediction(
        self,
        prepared: PreparedUpload,
        classifier: OnnxCellClassifier,
        probability: float,
        inference_ms: float,
        request_id: str,
        *,
        tta: bool = False,
        gradcam: np.ndarray | None = None,
    ) -> Prediction:
        manifest = classifier.manifest
        threshold = manifest.threshold.value
        explanation = None
        if gradcam is not None:
            heat = upsample_gradcam(
                gradcam, prepared.model_input, manifest.preprocessing.foreground_threshold
            )
            explanation = Explanation(
                heatmap=png_data_uri(composite(heat.heat, prepared.cropped_view)),
                overlay=png_data_uri(overlay_rgba(heat.heat)),
                heat_in_cell=heat.heat_in_cell,
                on_cell=heat.on_cell,
            )
        label = "ALL" if probability >= threshold else "HEM"
        warnings = prepared.warnings + uncertainty_warning(
            probability, threshold, manifest.quality_reference
        )
        return Prediction(
            label=label,
            probability_all=probability,
            threshold=threshold,
            model=ModelRef(id=manifest.id, version=manifest.version),
            warnings=warnings,
            assessable=is_assessable(warnings),
            state=answer_state(label, warnings),
            image_sha256=prepared.image_sha256,
            tta=tta,
            heatmap=explanation.heatmap if explanation else None,
            explanation=explanation,
            timings_ms=Timings(
                decode=prepared.decode_ms,
                preprocess=prepared.preprocess_ms,
                inference=inference_ms,
                total=_milliseconds(prepared.started),
            ),
            request_id=request_id,
            views=prepared.views,
        )

    def _audit(self, pairs: Sequence[tuple[PreparedUpload, Prediction]]) -> None:
        if self.audit_log is None or not pairs:
            return
        now = time.time()
        self.audit_log.submit(
            [
                AuditRecord(
                    time=now,
                    request_id=prediction.request_id,
                    image_sha256=prepared.image_sha256,
                    model_id=prediction.model.id,
                    model_version=prediction.model.version,
                    probability_all=prediction.probability_all,
                    label=prediction.label,
                    latency_ms=prediction.timings_ms.total,
                )
                for prepared, prediction in pairs
            ]
        )

    def predict_many(
        self,
        uploads: Sequence[Upload],
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
        tta: bool | None = None,
        explain: bool = False,
    ) -> list[Prediction | UploadRejectedError]:
        """Each upload's prediction, or the reason it was refused; one batched inference
        (with `explain`, the Grad-CAM map of each too, so a viewer needs no second request)."""
        classifier = self.registry.get(model_id)
        prepared = [self.prepare_or_refuse(upload, classifier, views) for upload in uploads]
        return self.answer_prepared(
            prepared, classifier, request_id=request_id, tta=tta, explain=explain
        )

    def prepare_or_refuse(
        self, upload: Upload, classifier: OnnxCellClassifier, views: bool = False
    ) -> PreparedUpload | UploadRejectedError:
        """`prepare`, with a refusal returned rather than raised (for batches)."""
        try:
            return self.prepare(upload, classifier, views)
        except UploadRejectedError as rejection:
            return rejection

    def answer_prepared(
        self,
        prepared: Sequence[PreparedUpload | UploadRejectedError],
        classifier: OnnxCellClassifier,
        *,
        request_id: str = "",
        tta: bool | None = None,
        explain: bool = False,
    ) -> list[Prediction | UploadRejectedError]:
        """One batched inference over prepared uploads; refusals pass through in place (with
        `explain`, each answer carries its Grad-CAM map)."""
        use_tta = self.tta_for(classifier, tta)
        ready = [item for item in prepared if isinstance(item, PreparedUpload)]
        if not ready:
            return list(prepared)  # type: ignore[arg-type]
        started = time.perf_counter()
        explain = explain and classifier.explains
        output = classifier.predict(
            np.stack([item.tensor for item in ready]), tta=use_tta, gradcam=explain
        )
        seconds = time.perf_counter() - started
        if self.observe_inference is not None:
            self.observe_inference(classifier.manifest.id, len(ready), seconds)
        probabilities = iter(output.probabilities.tolist())
        maps = iter(output.gradcam if output.gradcam is not None else [None] * len(ready))
        results: list[Prediction | UploadRejectedError] = []
        answered: list[tuple[PreparedUpload, Prediction]] = []
        for item in prepared:
            if isinstance(item, UploadRejectedError):
                results.append(item)
                continue
            prediction = self._prediction(
                item,
                classifier,
                float(next(probabilities)),
                round(seconds * 1000, 3),
                request_id,
                tta=use_tta,
                gradcam=next(maps),
            )
            results.append(prediction)
            answered.append((item, prediction))
        self._audit(answered)
        return results

    def predict_one(
        self,
        upload: Upload,
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
        tta: bool | None = None,
    ) -> Prediction:
        outcome = self.predict_many(
            [upload], model_id=model_id, request_id=request_id, views=views, tta=tta
        )
        if isinstance(outcome[0], UploadRejectedError):
            raise outcome[0]
        return outcome[0]

    def predict_explained(
        self, upload: Upload, *, model_id: str | None = None, tta: bool | None = None
    ) -> Prediction:
        """One image with its Grad-CAM explanation, synchronously."""
        classifier = self.registry.get(model_id)
        use_tta = self.tta_for(classifier, tta)
        prepared = self.prepare(upload, classifier, views=False)
        probability, gradcam, inference_ms = self._explained(
            classifier, prepared.tensor, use_tta, True
        )
        return self._prediction(
            prepared, classifier, probability, inference_ms, "", tta=use_tta, gradcam=gradcam
        )

    @staticmethod
    def tta_for(classifier: OnnxCellClassifier, requested: bool | None) -> bool:
        """The request's choice, else the model's measured default."""
        return classifier.tta_by_default if requested is None else requested

    def _explained(
        self, classifier: OnnxCellClassifier, tensor: np.ndarray, tta: bool, gradcam: bool
    ) -> tuple[float, np.ndarray | None, float]:
        started = time.perf_counter()
        output = classifier.predict(tensor[None], tta=tta, gradcam=gradcam)
        seconds = time.perf_counter() - started
        if self.observe_inference is not None:
            self.observe_inference(classifier.manifest.id, VIEWS if tta else 1, seconds)
        maps = output.gradcam[0] if output.gradcam is not None else None
        return float(output.probabilities[0]), maps, round(seconds * 1000, 3)

    # -- the server's asynchronous path ---------------------------------------------------

    async def run(self, function: Callable[[], T]) -> T:
        """Run blocking work on the engine's pool, off the event loop, in this context."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, partial(context.run, function)
        )

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Hold a place in the queue, or refuse at once when it is full."""
        if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
            raise ServerBusyError
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def predict(
        self,
        upload: Upload,
        *,
        model_id: str | None = None,
        request_id: str = "",
        views: bool = False,
        tta: bool | None = None,
        explain: bool = False,
    ) -> Prediction:
        async with self.admitted():
            classifier = self.registry.get(model_id)
            use_tta = self.tta_for(classifier, tta)
            self.preparing += 1
            try:
                prepared = await self.run(partial(self.prepare, upload, classifier, views))
            finally:
                self.preparing -= 1
            gradcam = None
            alone = self.in_flight == 1
            if use_tta or explain or alone:
                # Already a batch of its own (8 views), needing the map, or with no request
                # to share a batch with: run it directly, without the batcher's extra hop.
                probability, gradcam, inference_ms = await self.run(
                    partial(self._explained, classifier, prepared.tensor, use_tta, explain)
                )
            else:
                result = await self.batchers[classifier.manifest.id].infer(prepared.tensor)
                probability, inference_ms = result.probability, result.inference_ms
            prediction = self._prediction(
                prepared,
                classifier,
                probability,
                inference_ms,
                request_id,
                tta=use_tta,
                gradcam=gradcam,
            )
            self._audit([(prepared, prediction)])
            return prediction

    async def predict_batch(
        self,
        uploads: Sequence[Upload],
        *,
        model_id: str | None = None,
        request_id: str = "",
        tta: bool | None = None,
        views: bool = False,
        explain: bool = False,
    ) -> list[Prediction | UploadRejectedError]:
        async with self.admitted():
            return await self.run(
                partial(
                    self.predict_many,
                    uploads,
                    model_id=model_id,
                    request_id=request_id,
                    tta=tta,
                    views=views,
                    explain=explain,
                )
            )
