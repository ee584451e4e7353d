"""Archive scoring on Ray: `python -m app.cli.predict --ray [ADDRESS] FOLDERS... --out CSV`.

The same pipeline as the local command (the same upload checks, recipe and model store) runs in
Ray Data actors, each holding one onnxruntime session per model, one CPU each. Rows stream
back to the driver in the input's order and are written to the CSV as they arrive, so the
file equals the local command's row for row. The images are read by the actors: on a cluster
of several machines, the folders and the model store must be on storage every node mounts
at the same path. Needs the `cluster` extra (Ray); `app/` never needs it otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.predictions import Prediction
from app.core.model_registry import ModelRegistry
from app.inference.prediction_path import PredictOptions, Upload, predict_uploads, tta_for
from app.inference.upload_checks import UploadLimits
from app.rendering.result_table import RESULT_COLUMNS, result_row, results_writer

LOCAL = "local"


class ArchiveScorer:
    """One Ray actor: loads the model store once, then scores batches of image paths."""

    def __init__(self, model_store: str, model_id: str | None, limits: UploadLimits) -> None:
        # One thread per actor: Ray gives each actor one CPU and runs as many actors as CPUs.
        registry = ModelRegistry.load(Path(model_store), intra_op_threads=1)
        self.classifier = registry.get(model_id)
        self.limits = limits
        self.options = PredictOptions(tta=tta_for(self.classifier, None))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Read by absolute path (the actor's working folder may differ); named as given.
        uploads = [
            Upload(filename=str(name), data=Path(path).read_bytes())
            for name, path in zip(batch["filename"], batch["path"], strict=True)
        ]
        outcomes = predict_uploads(uploads, self.classifier, self.limits, self.options)
        for outcome, sample in zip(outcomes, batch["sample_id"], strict=True):
            if isinstance(outcome, Prediction) and sample:
                outcome.sample_id = str(sample)
        rows = [
            result_row(upload.filename, outcome)
            for upload, outcome in zip(uploads, outcomes, strict=True)
        ]
        return {
            column: np.asarray([row.get(column, "") for row in rows], dtype=object)
            for column in RESULT_COLUMNS
        }


def score_on_ray(
    images: Sequence[tuple[Path, str | None]],
    out: Path,
    *,
    model_store: Path,
    model_id: str | None,
    limits: UploadLimits,
    address: str = LOCAL,
    local_cpus: int | None = None,
    batch_size: int = 16,
) -> tuple[int, int]:
    """Score `images` (each with its sample, or None) on Ray and write the CSV; returns
    (scored, failed)."""
    import ray
    import ray.data

    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address == LOCAL:
        init["num_cpus"] = local_cpus
    else:
        init["address"] = address
    ray.init(**init)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # the CSV keeps the input's order
        context.enable_progress_bars = False
        resources: dict[str, float] = ray.available_resources()  # type: ignore[no-untyped-call]
        actors = max(1, int(resources.get("CPU", 1)))
        dataset = ray.data.from_items(
            [
                {"path": str(path.resolve()), "filename": str(path), "sample_id": sample or ""}
                for path, sample in images
            ]
        ).map_batches(
            ArchiveScorer,
            fn_constructor_kwargs={
                "model_store": str(model_store.resolve()),
                "model_id": model_id,
                "limits": limits,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=1,
        )
        failed = scored = 0
        with out.open("w", newline="", encoding="utf-8") as stream:
            writer = results_writer(stream)
            for row in dataset.iter_rows():
                writer.writerow({column: row[column] for column in RESULT_COLUMNS})
                failed += row["status"] == "error"
                scored += row["status"] != "error"
        print(f"scored on Ray with {actors} actors", file=sys.stderr)
        return scored, failed
    finally:
        ray.shutdown()
