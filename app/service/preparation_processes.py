"""Reading, decoding, the recipe and the checks in worker processes, for whole archives.

Threads share one interpreter: the Python between OpenCV calls holds the GIL, so two preparing
threads did not run twice as fast as one. Processes do not share it. Each worker loads the same
model store and prepares exactly as the server would; the main process keeps onnxruntime.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from app.core.classifier import OnnxCellClassifier
from app.service.model_registry import ModelRegistry
from app.service.prediction_pipeline import PredictionPipeline, PreparedUpload, Upload
from app.service.upload_checks import UploadLimits, UploadRejectedError

_worker: tuple[PredictionPipeline, OnnxCellClassifier] | None = None


def start_worker(model_store: Path, model_id: str | None, limits: UploadLimits) -> None:
    """Load the store once per worker; one OpenCV thread, since the workers are the threads."""
    global _worker
    cv2.setNumThreads(1)
    registry = ModelRegistry.load(model_store, intra_op_threads=1)
    _worker = PredictionPipeline(registry, limits), registry.get(model_id)


def prepare_file(path: Path) -> PreparedUpload | UploadRejectedError:
    if _worker is None:
        raise RuntimeError("prepare_file runs in a worker started by preparation_pool")
    pipeline, classifier = _worker
    return pipeline.prepare_or_refuse(
        Upload(filename=str(path), data=path.read_bytes()), classifier
    )


def preparation_pool(
    workers: int, model_store: Path, model_id: str | None, limits: UploadLimits
) -> ProcessPoolExecutor:
    """`workers` processes started afresh (spawn: no copy of this process's onnxruntime
    threads), each with the model store loaded."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(model_store, model_id, limits),
    )
