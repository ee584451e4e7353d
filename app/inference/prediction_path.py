"""The one way from uploaded bytes to answers: checks, decode, recipe, inference, answer.

`prepare` turns one upload into a model input (or refuses it); `predict_prepared` runs one
batched inference over prepared uploads and answers each, refusals passing through in place:
it is the only caller of `classifier.predict`. `predict_uploads` is both, for a batch. The
server's service adds admission, its worker pool and micro-batching around these; the command
line and the Ray actors call them as they are. Each takes the request's time budget as an
argument (no budget: no deadline).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ParamSpec

import numpy as np

from app.core.answer_states import answer_state, is_assessable
from app.core.cell_colour import find_foreground
from app.core.classifier import OnnxCellClassifier
from app.core.domain.outcomes import Outcome, Refusal, RefusalKind, RefusedError
from app.core.domain.predictions import DisplayImages, ModelRef, Prediction, Timings
from app.core.gradcam import upsample_gradcam
from app.core.image_decoding import ImageDecodeError, decode_image
from app.core.quality_checks import (
    QualityWarning,
    input_warnings,
    measure_foreground,
    uncertainty_warning,
)
from app.core.recipe import normalize_to_tensor, rescale_for_display, run_recipe
from app.core.tta_transforms import TRANSFORMS
from app.inference.budget import WAITING, WorkBudget, client_gone_refusal
from app.inference.decoder_processes import (
    ISOLATED_FORMATS,
    DecoderProcesses,
    DecodersBusyError,
    DecodeStoppedError,
    DecodeTimeoutError,
)
from app.inference.display_images import display_images, render_explanation
from app.inference.upload_checks import ImageHeader, UploadLimits, inspect_upload

# Without a deadline (the command line, Ray, benchmarks) an isolated decode may take this long.
STANDALONE_DECODE_SECONDS = 10.0

InferenceObserver = Callable[[str, int, float], None]
"""Told each inference: the model's id, the images onnxruntime ran, and the seconds it took."""


P = ParamSpec("P")


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str | None = None


@dataclass(frozen=True)
class PredictOptions:
    """What a request asks of the answers (`tta` already resolved against the model's card)."""

    tta: bool = False
    explain: bool = False
    request_id: str = ""


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


def milliseconds_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def tta_for(classifier: OnnxCellClassifier, requested: bool | None) -> bool:
    """The request's choice, else the model's measured default."""
    return classifier.tta_by_default if requested is None else requested


def decode(
    data: bytes, header: ImageHeader, budget: WorkBudget, decoders: DecoderProcesses | None
) -> np.ndarray:
    """In this thread, or for the codecs whose cost the header does not bound, in a decoder
    process that is killed at the budget or when the client leaves."""
    try:
        if decoders is None or header.format not in ISOLATED_FORMATS:
            return decode_image(data)
        return decoders.decode(
            data,
            budget.seconds_left(STANDALONE_DECODE_SECONDS),
            stop=lambda: budget.is_client_gone,
        )
    except ImageDecodeError as error:
        raise RefusedError(RefusalKind.UNREADABLE, str(error)) from error
    except DecodeStoppedError as error:
        raise client_gone_refusal() from error
    except DecodersBusyError as error:
        raise RefusedError(
            RefusalKind.BUSY,
            "the server is busy: no decoder was free within the time budget; retry",
        ) from error
    except DecodeTimeoutError as error:
        raise RefusedError(
            RefusalKind.OVER_BUDGET,
            "decoding took longer than the time budget per file; send a smaller image",
        ) from error


def prepare(
    upload: Upload,
    classifier: OnnxCellClassifier,
    limits: UploadLimits,
    *,
    views: bool = False,
    budget: WorkBudget | None = None,
    decoders: DecoderProcesses | None = None,
) -> PreparedUpload:
    """The model input of one upload, or RefusedError."""
    budget = budget or WorkBudget()
    started = time.perf_counter()
    header = inspect_upload(upload.data, upload.content_type, limits)
    budget.check(WAITING)
    rgb = decode(upload.data, header, budget, decoders)
    budget.check("decoding")
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
    budget.check("preprocessing")
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


def _refusal_returned(
    prepare_one: Callable[P, PreparedUpload],
) -> Callable[P, PreparedUpload | Refusal]:
    def returning(*args: P.args, **kwargs: P.kwargs) -> PreparedUpload | Refusal:
        try:
            return prepare_one(*args, **kwargs)
        except RefusedError as refused:
            return refused.refusal

    return returning


prepare_or_refuse = _refusal_returned(prepare)
"""`prepare`, with a refusal returned rather than raised (for batches)."""


def predict_prepared(
    prepared: Sequence[PreparedUpload | Refusal],
    classifier: OnnxCellClassifier,
    options: PredictOptions,
    *,
    budget: WorkBudget | None = None,
    observe: InferenceObserver | None = None,
) -> list[Outcome]:
    """One batched inference over prepared uploads, each answered; refusals pass through in
    place (with `options.explain`, each answer carries its Grad-CAM map)."""
    ready = [item for item in prepared if isinstance(item, PreparedUpload)]
    if not ready:
        return [item for item in prepared if isinstance(item, Refusal)]
    started = time.perf_counter()
    explain = options.explain and classifier.explains
    output = classifier.predict(
        np.stack([item.tensor for item in ready]), tta=options.tta, gradcam=explain
    )
    seconds = time.perf_counter() - started
    if observe is not None:
        observe(classifier.manifest.id, len(ready) * (TRANSFORMS if options.tta else 1), seconds)
    probabilities = iter(output.probabilities.tolist())
    maps = iter(output.gradcam if output.gradcam is not None else [None] * len(ready))
    inference_ms = round(seconds * 1000, 3)
    # Drawing takes milliseconds; nobody is left to see it for a client that has gone (the
    # answer itself is still made: a batch's rows are audited for the work done).
    draw = budget is None or not budget.is_client_gone
    return [
        item
        if isinstance(item, Refusal)
        else answer(
            item,
            classifier,
            float(next(probabilities)),
            next(maps) if draw else None,
            inference_ms,
            options,
        )
        for item in prepared
    ]


def answer(
    prepared: PreparedUpload,
    classifier: OnnxCellClassifier,
    probability: float,
    gradcam: np.ndarray | None,
    inference_ms: float,
    options: PredictOptions,
) -> Prediction:
    """The label at the card's threshold, the warnings and the state a reader may act on."""
    manifest = classifier.manifest
    threshold = manifest.threshold.value
    explanation = None
    if gradcam is not None:
        heat = upsample_gradcam(
            gradcam, prepared.model_input, manifest.preprocessing.foreground_threshold
        )
        explanation = render_explanation(heat, prepared.cropped_view)
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
        tta=options.tta,
        explanation=explanation,
        timings_ms=Timings(
            decode=prepared.decode_ms,
            preprocess=prepared.preprocess_ms,
            inference=inference_ms,
            total=milliseconds_since(prepared.started),
        ),
        request_id=options.request_id,
        views=prepared.views,
    )


def predict_uploads(
    uploads: Sequence[Upload],
    classifier: OnnxCellClassifier,
    limits: UploadLimits,
    options: PredictOptions,
    *,
    views: bool = False,
    budget: WorkBudget | None = None,
    decoders: DecoderProcesses | None = None,
    observe: InferenceObserver | None = None,
) -> list[Outcome]:
    """Each upload's prediction, or the reason it was refused; one batched inference. The
    budget is per file: each file after the first starts with all of it again."""
    budget = budget or WorkBudget()
    prepared = []
    for position, upload in enumerate(uploads):
        if position:
            budget.restart()
        prepared.append(
            prepare_or_refuse(
                upload, classifier, limits, views=views, budget=budget, decoders=decoders
            )
        )
    return predict_prepared(prepared, classifier, options, budget=budget, observe=observe)
