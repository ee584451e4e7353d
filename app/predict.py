"""`python -m app.predict PATH... --out results.csv`: score files and folders of cell images.

The same engine as the server (checks, recipe, model store), for whole archives at once.
Reading, decoding, the recipe and the checks run on a pool of threads (OpenCV and numpy
release the GIL) while the main thread runs onnxruntime on the batches already prepared, so
the cores are busy with both at once; results are written in the order the files were found.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from app.archive_scoring import LOCAL
from app.engine import PredictionEngine, PreparedUpload, Upload
from app.inference import OnnxCellClassifier
from app.model_registry import ModelRegistry, ModelStoreError, UnknownModelError
from app.result_table import result_row, results_writer
from app.schemas import Prediction
from app.settings import get_settings
from app.upload_checks import UploadLimits, UploadRejectedError

IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def find_images(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given; folders searched recursively for image suffixes, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


Prepared = tuple[Upload, PreparedUpload | UploadRejectedError]


def score(
    engine: PredictionEngine,
    classifier: OnnxCellClassifier,
    paths: Iterable[Path],
    *,
    batch_size: int,
    workers: int,
) -> Iterator[tuple[Upload, Prediction | UploadRejectedError]]:
    """Each file's outcome, in order; up to `workers` files are being prepared while a batch
    is in onnxruntime, and at most a few batches are held in memory."""

    def prepare(path: Path) -> Prepared:
        upload = Upload(filename=str(path), data=path.read_bytes())
        return upload, engine.prepare_or_refuse(upload, classifier)

    remaining = iter(paths)
    window: deque[Future[Prepared]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="leukolens-prepare") as pool:

        def top_up() -> None:
            while len(window) < batch_size * 3:
                path = next(remaining, None)
                if path is None:
                    return
                window.append(pool.submit(prepare, path))

        top_up()
        while window:
            batch = []
            while window and len(batch) < batch_size:
                batch.append(window.popleft().result())
                top_up()
            uploads = [upload for upload, _ in batch]
            outcomes = engine.answer_prepared([item for _, item in batch], classifier)
            yield from zip(uploads, outcomes, strict=True)


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path, help="image files or folders")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--model", help="model id (default: the store's default)")
    parser.add_argument("--model-store", type=Path, default=settings.model_store)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="threads that read, decode and prepare images (default: one per core)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        default=settings.int8,
        help="use the model's int8 graph where it ships one (see docs/performance.md)",
    )
    parser.add_argument(
        "--inference-threads",
        type=int,
        default=1,
        help="onnxruntime threads per batch; 1 leaves the other cores to the preparing",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help="score on Ray (the cluster extra): a cluster's address (auto, ray://host:10001), "
        "or none for a local instance",
    )
    parser.add_argument(
        "--ray-cpus", type=int, help="CPUs of the local Ray instance (default: all)"
    )
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """`--ray FOLDER` means a local instance and FOLDER, not a cluster at FOLDER."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ray not in (None, LOCAL) and Path(args.ray).exists():
        args.paths.insert(0, Path(args.ray))
        args.ray = LOCAL
    if not args.paths:
        parser.error("give at least one image file or folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    settings = get_settings()
    try:
        images = list(find_images(args.paths))
        registry = ModelRegistry.load(
            args.model_store, intra_op_threads=args.inference_threads, int8=args.int8
        )
        classifier = registry.get(args.model)
    except (FileNotFoundError, ModelStoreError, UnknownModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    limits = UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    if args.ray is not None:
        from app.archive_scoring import score_on_ray

        scored, failures = score_on_ray(
            images,
            args.out,
            model_store=args.model_store,
            model_id=args.model,
            limits=limits,
            address=args.ray,
            local_cpus=args.ray_cpus,
            batch_size=args.batch_size,
        )
        print(f"{scored} scored, {failures} failed; results in {args.out}", file=sys.stderr)
        return 0
    engine = PredictionEngine(registry, limits, worker_threads=1)
    failures = 0
    with args.out.open("w", newline="", encoding="utf-8") as stream:
        writer = results_writer(stream)
        with tqdm(total=len(images), unit="image", file=sys.stderr) as progress:
            for upload, outcome in score(
                engine,
                classifier,
                images,
                batch_size=max(1, args.batch_size),
                workers=max(1, args.workers),
            ):
                failures += isinstance(outcome, UploadRejectedError)
                writer.writerow(result_row(upload.filename, outcome))
                progress.update(1)
    engine.close()
    print(
        f"{len(images) - failures} scored, {failures} failed; results in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
