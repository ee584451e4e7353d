"""From uploaded bytes to an answer, synchronously: checks, decode, recipe, inference, answer.

The command-line tool and the benchmarks call this directly; the server's prediction service
runs the same calls on its worker pool (OpenCV and onnxruntime release the GIL).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from app.core.answer_states import answer_state, is_assessable
from app.core.classifier import OnnxCellClassifier
from app.core.gradcam import upsample_gradcam
from app.core.model_registry import ModelRegistry
from app.core.preprocessing import (
    ImageDecodeError,
    decode_image,
    find_foreground,
    normalize_to_tensor,
    rescale_for_display,
    run_recipe,
)
from app.core.quality_checks import input_warnings, measure_foreground, uncertainty_warning
from app.core.tta_transforms import TRANSFORMS
from app.inference.budget import (
    WAITING,
    ClientGoneError,
    check_budget,
    client_has_gone,
    restart_budget,
    seconds_left,
)
from app.inference.decoder_processes import (
    ISOLATED_FORMATS,
    DecoderProcesses,
    DecodersBusyError,
    DecodeStoppedError,
    DecodeTimeoutError,
)
from app.inference.micro_batching import InferenceObserver
from app.inference.upload_checks import (
    ImageHeader,
    UploadLimits,
    UploadRejectedError,
    inspect_upload,
)
from app.rendering.explanations import display_images, render_explanation
from app.schemas import DisplayImages, ModelRef, Prediction, QualityWarning, Timings

# Outside a request (the command line, benchmarks) an isolated decode may take this long.
STANDALONE_DECODE_SECONDS = 10.0


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass
class PreparedUpload:
    """One upload after decoding and preprocessing, waiting for its inference."""

    tensor: np.ndarray
    model_input: np.ndarray
    image_sha256: str
    warnings: list[QualityWarning]
    views: DisplayImages | None
    decode_ms: float
    preprocess_ms: float
    started: float = field(default_factory=time.perf_counter)

    @cached_property
    def cropped_view(self) -> np.ndarray:
        """The model input stretched for people; made only when an answer shows it (views or
        an explanation), so that scoring alone does not pay for it."""
        return rescale_for_display(self.model_input)


@dataclass(frozen=True)
class InferenceResult:
    """One image's probability, its Grad-CAM map when asked for, and what inference cost."""

    probability: float
    gradcam: np.ndarray | None
    inference_ms: float


def milliseconds_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


class PredictionPipeline:
    def __init__(
        self,
        registry: ModelRegistry,
        limits: UploadLimits,
        *,
        observe_inference: InferenceObserver | None = None,
        decoders: DecoderProcesses | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.observe_inference = observe_inference
        self.decoders = decoders

    def decode(self, data: bytes, header: ImageHeader) -> np.ndarray:
        """In this thread, or for the codecs whose cost the header does not bound, in a
        decoder process that is killed at the budget or when the client leaves."""
        try:
            if self.decoders is None or header.format not in ISOLATED_FORMATS:
                return decode_image(data)
            return self.decoders.decode(
                data, seconds_left(STANDALONE_DECODE_SECONDS), stop=client_has_gone
            )
        except ImageDecodeError as error:
            raise UploadRejectedError(400, str(error)) from error
        except DecodeStoppedError as error:
            raise ClientGoneError from error
        except DecodersBusyError as error:
            raise UploadRejectedError(
                503, "the server is busy: no decoder was free within the time budget; retry"
            ) from error
        except DecodeTimeoutError as error:
            raise UploadRejectedError(
                413, "decoding took longer than the time budget per file; send a smaller image"
            ) from error

    def prepare(
        self, upload: Upload, classifier: OnnxCellClassifier, views: bool
    ) -> PreparedUpload:
        started = time.perf_counter()
        header = inspect_upload(upload.data, upload.content_type, self.limits)
        check_budget(WAITING)
        rgb = self.decode(upload.data, header)
        check_budget("decoding")
        decode_ms = milliseconds_since(started)
        preprocess_started = time.perf_counter()
        manifest = classifier.manifest
        recipe = manifest.preprocessing
        # One mask for the recipe and the checks; the whole enhanced frame only for display.
        foreground = find_foreground(rgb, recipe.foreground_threshold)
        output = run_recipe(rgb, recipe, foreground, whole_frame=views)
        display = cropped_view = None
        if views:
            enhanced = output.enhanced if output.enhanced is not None else rgb
            cropped_view = rescale_for_display(output.prepared)
            display = display_images(rgb, rescale_for_display(enhanced), cropped_view)
        measured = measure_foreground(rgb, foreground)
        check_budget("preprocessing")
        prepared = PreparedUpload(
            tensor=normalize_to_tensor(output.prepared, recipe),
            model_input=output.prepared,
            image_sha256=hashlib.sha256(upload.data).hexdigest(),
            warnings=input_warnings(measured, manifest.quality_reference),
            views=display,
            decode_ms=decode_ms,
            preprocess_ms=milliseconds_since(preprocess_started),
            started=started,
        )
        if cropped_view is not None:  # made for the views: an explanation reuses it
            prepared.cropped_view = cropped_view
        return prepared

    def prepare_or_refuse(
        self, upload: Upload, classifier: OnnxCellClassifier, views: bool = False
    ) -> PreparedUpload | UploadRejectedError:
        """`prepare`, with a refusal returned rather than raised (for batches)."""
        try:
            return self.prepare(upload, classifier, views)
        except UploadRejectedError as rejection:
            return rejection

    def answer(
        self,
        prepared: PreparedUpload,
        classifier: OnnxCellClassifier,
        inference: InferenceResult,
        request_id: str,
        *,
        tta: bool = False,
    ) -> Prediction:
        """The label at the card's threshold, the warnings and the state a reader may act on."""
        manifest = classifier.manifest
        threshold = manifest.threshold.value
        explanation = None
        # Drawing takes milliseconds; nobody is left to see it for a client that has gone (the
        # answer itself is still made: a batch's rows are audited for the work done).
        if inference.gradcam is not None and not client_has_gone():
            heat = upsample_gradcam(
                inference.gradcam,
                prepared.model_input,
                manifest.preprocessing.foreground_threshold,
            )
            explanation = render_explanation(heat, prepared.cropped_view)
        probability = inference.probability
        label = "ALL" if probability >= threshold else "HEM"
        warnings = prepared.warnings + uncertainty_warning(
            probability, threshold, manifest.quality_reference
        )
        assessable = is_assessable(warnings)
        return Prediction(
            label=label if assessable else None,
            probability_all=probability,
            threshold=threshold,
            model=ModelRef(id=manifest.id, version=manifest.version),
            warnings=warnings,
            assessable=assessable,
            state=answer_state(label, warnings),
            image_sha256=prepared.image_sha256,
            tta=tta,
            explanation=explanation,
            timings_ms=Timings(
                decode=prepared.decode_ms,
                preprocess=prepared.preprocess_ms,
                inference=inference.inference_ms,
                total=milliseconds_since(prepared.started),
            ),
            request_id=request_id,
            views=prepared.views,
        )

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
            return [item for item in prepared if isinstance(item, UploadRejectedError)]
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
        inference_ms = round(seconds * 1000, 3)
        return [
            item
            if isinstance(item, UploadRejectedError)
            else self.answer(
                item,
                classifier,
                InferenceResult(float(next(probabilities)), next(maps), inference_ms),
                request_id,
                tta=use_tta,
            )
            for item in prepared
        ]

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
        prepared = []
        for position, upload in enumerate(uploads):
            if position:
                restart_budget()  # each file has the whole budget
            prepared.append(self.prepare_or_refuse(upload, classifier, views))
        return self.answer_prepared(
            prepared, classifier, request_id=request_id, tta=tta, explain=explain
        )

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
        """One image with its Grad-CAM explanation."""
        classifier = self.registry.get(model_id)
        use_tta = self.tta_for(classifier, tta)
        prepared = self.prepare(upload, classifier, views=False)
        inference = self.infer_one(classifier, prepared.tensor, use_tta, gradcam=True)
        return self.answer(prepared, classifier, inference, "", tta=use_tta)

    @staticmethod
    def tta_for(classifier: OnnxCellClassifier, requested: bool | None) -> bool:
        """The request's choice, else the model's measured default."""
        return classifier.tta_by_default if requested is None else requested

    def infer_one(
        self, classifier: OnnxCellClassifier, tensor: np.ndarray, tta: bool, gradcam: bool
    ) -> InferenceResult:
        """One image's inference, outside any micro-batch."""
        started = time.perf_counter()
        output = classifier.predict(tensor[None], tta=tta, gradcam=gradcam)
        seconds = time.perf_counter() - started
        if self.observe_inference is not None:
            self.observe_inference(classifier.manifest.id, TRANSFORMS if tta else 1, seconds)
        maps = output.gradcam[0] if output.gradcam is not None else None
        return InferenceResult(float(output.probabilities[0]), maps, round(seconds * 1000, 3))
