"""Per-image cost of each stage from bytes to answer, for the code of whichever tree runs it.

Run as a file by `bench.pipeline` with the tree's root first on `sys.path`, so `app` is that
tree's package. It imports only the public functions that earlier commits also have (stages
that a tree lacks are skipped), and prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

FORMATS = {"bmp": ".bmp", "png": ".png", "jpeg": ".jpg"}
# Where each module lived before the issue-29 and issue-15 layouts: earlier trees are measured
# too.
EARLIER_PATHS = {
    "app.core.preprocessing": ("app.preprocessing",),
    "app.core.quality_checks": ("app.quality_checks",),
    "app.inference.prediction_path": ("app.service.prediction_pipeline", "app.engine"),
    "app.core.model_registry": ("app.service.model_registry", "app.model_registry"),
    "app.inference.upload_checks": ("app.service.upload_checks", "app.upload_checks"),
}


def module(name: str) -> Any:
    """Today's module, or the same module at an earlier path in a tree from before a move."""
    for candidate in (name, *EARLIER_PATHS.get(name, ())):
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(name)


def recipe_functions() -> Any:
    """Today's recipe, spread over its modules since app/ was split into packages (with the
    reference crops that left it), or an earlier tree's single recipe module."""
    names = ("app.core.image_decoding", "app.core.cell_colour", "app.core.recipe")
    try:
        parts = [importlib.import_module(name) for name in (*names, "bench.reference_crops")]
    except ModuleNotFoundError:
        return module("app.core.preprocessing")
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(vars(part))
    return SimpleNamespace(**merged)


class PredictionPath:
    """Today's prediction path behind the methods the earlier pipelines had."""

    def __init__(self, registry: Any, limits: Any) -> None:
        self.registry = registry
        self.limits = limits

    def prepare(self, upload: Any, classifier: Any, views: bool) -> Any:
        from app.inference import prediction_path

        return prediction_path.prepare(upload, classifier, self.limits, views=views)

    def predict_one(self, upload: Any, *, model_id: str, tta: bool) -> Any:
        from app.inference import prediction_path

        options = prediction_path.PredictOptions(tta=tta)
        classifier = self.registry.get(model_id)
        return prediction_path.predict_uploads([upload], classifier, self.limits, options)[0]


def per_image_ms(
    function: Callable[[object], object], items: list, rounds: int
) -> dict[str, float]:
    """Median over rounds of the mean per item: one warm-up pass, then `rounds` passes."""
    for item in items[: min(3, len(items))]:
        function(item)
    passes = []
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            function(item)
        passes.append((time.perf_counter() - started) / len(items) * 1000)
    return {"ms": round(statistics.median(passes), 4), "min_ms": round(min(passes), 4)}


def measure_model(
    model_id: str,
    classifier: Any,
    engine: Any,
    raw: list[bytes],
    decoded: list[np.ndarray],
    rounds: int,
    explain_images: int,
) -> dict[str, object]:
    """Every stage of one model's path, per image."""
    recipe_module = recipe_functions()
    quality_checks = module("app.core.quality_checks")
    Upload = module("app.inference.prediction_path").Upload  # noqa: N806

    config = classifier.manifest.preprocessing
    threshold = config.foreground_threshold
    reference = classifier.manifest.quality_reference
    masks = [recipe_module.foreground_mask(image, threshold) for image in decoded]
    pairs = list(zip(decoded, masks, strict=True))
    stages: dict[str, object] = {}
    stages["foreground_mask"] = per_image_ms(
        lambda image: recipe_module.foreground_mask(image, threshold), decoded, rounds
    )
    if config.standardize_cell_colour:
        stages["standardize_cell_colour"] = per_image_ms(
            lambda pair: recipe_module.standardize_cell_colour(pair[0], pair[1], threshold),
            pairs,
            rounds,
        )
    stages["enhance_contrast"] = per_image_ms(
        lambda image: recipe_module.enhance_contrast(image, config), decoded, rounds
    )
    # Named crop_cell before the crops took MONAI-style names.
    recipe_crop = getattr(recipe_module, "recipe_crop", None) or recipe_module.crop_cell
    stages["crop_cell"] = per_image_ms(
        lambda pair: recipe_crop(pair[0], pair[1], config), pairs, rounds
    )
    crops = [recipe_crop(image, mask, config) for image, mask in pairs]
    stages["resize_square"] = per_image_ms(
        lambda crop: recipe_module.resize_square(crop, config.input_size), crops, rounds
    )
    prepared = [recipe_module.prepare_image(image, config) for image in decoded]
    stages["normalize_to_tensor"] = per_image_ms(
        lambda image: recipe_module.normalize_to_tensor(image, config), prepared, rounds
    )
    stages["recipe_preprocess"] = per_image_ms(
        lambda image: recipe_module.preprocess(image, config), decoded, rounds
    )
    stages["checks_measure_cell"] = per_image_ms(
        lambda image: quality_checks.measure_cell(image, threshold), decoded, rounds
    )
    measured = [quality_checks.measure_cell(image, threshold) for image in decoded]
    stages["checks_input_warnings"] = per_image_ms(
        lambda m: quality_checks.input_warnings(m, reference), measured, rounds
    )
    uploads = [Upload(f"{index}.png", data, "image/png") for index, data in enumerate(raw)]
    own_preprocess: list[float] = []
    stages["served_prepare_incl_decode"] = per_image_ms(
        lambda upload: own_preprocess.append(
            engine.prepare(upload, classifier, False).preprocess_ms
        ),
        uploads,
        rounds,
    )
    stages["served_recipe_plus_checks_own_timer"] = {
        "ms": round(statistics.median(own_preprocess), 4)
    }
    tensors = [recipe_module.preprocess(image, config) for image in decoded]
    stages["inference_batch1"] = per_image_ms(
        lambda tensor: classifier.predict(tensor[None]), tensors, rounds
    )
    batch = np.stack((tensors * 16)[:16])
    stages["inference_batch16_per_image"] = {
        "ms": round(per_image_ms(lambda b: classifier.predict(b), [batch], rounds)["ms"] / 16, 4)
    }
    if classifier.explains and explain_images > 0:
        sample = tensors[:explain_images]
        stages["explanation_gradcam"] = per_image_ms(
            lambda tensor: classifier.predict(tensor[None], gradcam=True), sample, 1
        )
    timings: list[dict[str, float]] = []
    stages["end_to_end_predict_one"] = per_image_ms(
        lambda upload: timings.append(
            engine.predict_one(upload, model_id=model_id, tta=False).timings_ms.model_dump()
        ),
        uploads,
        rounds,
    )
    out_timings = {
        key: round(statistics.median(t[key] for t in timings), 4)
        for key in ("decode", "preprocess", "inference", "total")
    }
    return {"stages": stages, "timings_ms_median": out_timings}


def floors(raw: list[bytes], decoded: list[np.ndarray], rounds: int) -> dict[str, object]:
    """What no recipe on this CPU can avoid: one pass over the frame's bytes, libpng itself,
    and the whole-frame lightness that CLAHE's tiles need (RGB to LAB, then CLAHE on L)."""
    lightness = [cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[:, :, 0].copy() for image in decoded]
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))
    side = 1024
    matrices = [np.random.default_rng(0).random((side, side), dtype=np.float32)] * 2
    gemm = per_image_ms(lambda pair: pair[0] @ pair[1], [matrices], rounds)
    return {
        "gemm_gflop_per_s_float32": round(2 * side**3 / (gemm["min_ms"] / 1000) / 1e9, 1),
        "frame_copy": per_image_ms(np.copy, decoded, rounds),
        "png_decode_without_conversion": per_image_ms(
            lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED),
            raw,
            rounds,
        ),
        "png_decode_straight_to_rgb": per_image_ms(
            lambda data: cv2.imdecode(
                np.frombuffer(data, np.uint8),
                cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION,
            ),
            raw,
            rounds,
        ),
        "rgb_to_lab_whole_frame": per_image_ms(
            lambda image: cv2.cvtColor(image, cv2.COLOR_RGB2LAB), decoded, rounds
        ),
        "clahe_on_lightness": per_image_ms(clahe.apply, lightness, rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=Path, nargs="+", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--explain-images", type=int, default=3)
    args = parser.parse_args()

    from app.settings import Settings

    recipe_module = recipe_functions()
    ModelRegistry = module("app.core.model_registry").ModelRegistry  # noqa: N806
    UploadLimits = module("app.inference.upload_checks").UploadLimits  # noqa: N806

    settings = Settings()
    raw = [path.read_bytes() for path in args.images]
    decoded = [recipe_module.decode_image(data) for data in raw]
    registry = ModelRegistry.load(settings.model_store, intra_op_threads=1)
    limits = UploadLimits(settings.max_upload_bytes, settings.max_image_pixels)
    pipeline_module = module("app.inference.prediction_path")
    if hasattr(pipeline_module, "predict_prepared"):
        engine = PredictionPath(registry, limits)
    elif hasattr(pipeline_module, "PredictionPipeline"):
        engine = pipeline_module.PredictionPipeline(registry, limits)
    else:  # a tree from before the pipeline and the service were split
        engine = pipeline_module.PredictionEngine(registry, limits, worker_threads=1)
    rounds = args.rounds
    out: dict[str, object] = {"images": len(raw), "default_model": registry.default_id}

    decode: dict[str, object] = {}
    for name, extension in FORMATS.items():
        encoded = [
            cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
            for image in decoded
        ]
        decode[name] = per_image_ms(recipe_module.decode_image, encoded, rounds) | {
            "bytes_mean": round(statistics.fmean(len(e) for e in encoded))
        }
    out["decode"] = decode
    out["floors"] = floors(raw, decoded, rounds)

    models = {
        model_id: measure_model(
            model_id, classifier, engine, raw, decoded, rounds, args.explain_images
        )
        for model_id, classifier in registry.models.items()
    }
    out["models"] = models
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
