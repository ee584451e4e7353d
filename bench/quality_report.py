"""How the served answers behave on a C-NMC folder: input warnings per code, Grad-CAM heat on
the cell, and calibration error of the served probabilities.

    python -m bench.quality_report --data ../shared/data/C-NMC_Leukemia [--model <id>]
        [--explain-every N]   # Grad-CAM on every N-th image only (it costs ~0.1-0.3 s each)
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from app.core.domain.predictions import Prediction
from app.core.model_registry import ModelRegistry
from app.inference.prediction_path import PredictOptions, Upload, predict_uploads
from app.inference.upload_checks import UploadLimits
from app.settings import bundled_model_store
from bench.common import write_result
from training.data.dataset_index import list_images
from training.metrics.classification_metrics import binary_metrics
from training.release.calibration import reliability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", help="model id in the bundled store (default: its default)")
    parser.add_argument("--explain-every", type=int, default=1, metavar="N")
    args = parser.parse_args()
    registry = ModelRegistry.load(bundled_model_store(), args.model)
    limits = UploadLimits(10**8, 10**8)
    classifier = registry.get()
    images = list_images(args.data)
    codes: Counter[str] = Counter()
    flagged = 0
    heat, probabilities = [], []
    for position, image in enumerate(images):
        upload = Upload(image.path.name, image.path.read_bytes())
        options = PredictOptions(explain=position % args.explain_every == 0)
        (prediction,) = predict_uploads([upload], classifier, limits, options)
        if not isinstance(prediction, Prediction):
            raise SystemExit(f"{image.path}: refused ({prediction.reason})")
        probability = prediction.probability_all
        found = {w.code for w in prediction.warnings}
        codes.update(found)
        flagged += bool(found - {"uncertain"})
        probabilities.append(probability)
        if prediction.explanation is not None and prediction.explanation.heat_in_cell is not None:
            heat.append(prediction.explanation.heat_in_cell)
    labels = np.asarray([image.label for image in images])
    served = np.asarray(probabilities)
    ece, _ = reliability(served, labels)
    results = {
        "model": classifier.manifest.id,
        "data": str(args.data),
        "images": len(images),
        "warning_counts": dict(codes),
        "share_with_a_warning_other_than_uncertain": round(flagged / len(images), 4),
        "heat_in_cell_images": len(heat),
        "heat_in_cell_mean": round(float(np.mean(heat)), 4) if heat else None,
        "heat_in_cell_share_at_least_0.9": round(float(np.mean(np.asarray(heat) >= 0.9)), 4)
        if heat
        else None,
        "served_ece": round(ece, 4),
        "metrics_at_served_threshold": binary_metrics(
            labels, served, classifier.manifest.threshold.value
        ).as_dict(),
        "note": "the model's own training images: calibration and metrics here are in-sample",
    }
    # The default's report is quality_report.json; another model's carries its id.
    name = "quality_report" if args.model is None else f"quality_report-{args.model}"
    print(write_result(name, results).read_text())


if __name__ == "__main__":
    main()
