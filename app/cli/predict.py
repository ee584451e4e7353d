"""Score files and folders of cell images into a CSV, one row per image.

The same pipeline as the server (checks, recipe, model store), for whole archives at once.
Reading, decoding, the recipe and the checks run on a pool of threads (OpenCV and numpy
release the GIL) while the main thread runs onnxruntime on the batches already prepared, so
the cores are busy with both at once; results are written in the order the files were found.
Each folder is a sample named after it (or all of them one sample, with --sample-id);
--samples-out writes each sample's share of blast-like cells, corrected for the model's
held-out errors.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from app.cluster.archive_scoring import LOCAL
from app.core.blast_share import sample_blast_share, sample_score
from app.core.classifier import OnnxCellClassifier
from app.core.domain.outcomes import Outcome, Refusal
from app.core.domain.predictions import Prediction
from app.core.domain.samples import SamplePrediction
from app.core.manifest import ModelManifest
from app.core.model_registry import ModelRegistry, ModelStoreError, UnknownModelError
from app.core.sample_ids import SampleIdError, SampleIdPolicy
from app.inference.prediction_path import (
    PredictOptions,
    PreparedUpload,
    Upload,
    predict_prepared,
    prepare_or_refuse,
    tta_for,
)
from app.inference.upload_checks import UploadLimits
from app.rendering.result_table import result_row, results_writer, sample_row, samples_writer
from app.settings import get_settings

# The name people type (scripts/predict runs this module in .venv).
PROG = "./scripts/predict"
IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def find_images(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given; folders searched recursively for image suffixes, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from _images_in(path)
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def find_sample_images(
    paths: Sequence[Path], sample_id: str | None
) -> Iterator[tuple[Path, str | None]]:
    """Each image with its sample: the one given, else its input folder's name, else none.
    A folder name the sample-id policy refuses (a patient's name and birth date) is an error
    (SampleIdError) rather than a sample id."""
    for path in paths:
        if path.is_dir():
            sample = sample_id or folder_sample_id(path)
            problem = None if sample_id else sample_id_policy().problem(sample)
            if problem is not None:
                raise SampleIdError(
                    f"{path}: the folder's name is no sample id ({problem}); rename it to the "
                    "lab number or give --sample-id"
                )
            if not sample_id:
                warn_about_sample_id(sample, f"{path}: the folder's name")
            for image in _images_in(path):
                yield image, sample
        elif path.is_file():
            yield path, sample_id
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


def folder_sample_id(folder: Path) -> str:
    """The folder's name made a valid sample id (letters, digits, . _ -; at most 64)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", folder.resolve().name).lstrip("._-")[:64]
    return name or "sample"


def sample_id_policy() -> SampleIdPolicy:
    """The server's rule (LEUKOLENS_SAMPLE_ID_PATTERN), so that the CLI accepts the same ids."""
    return SampleIdPolicy(get_settings().sample_id_pattern)


def warn_about_sample_id(sample_id: str, where: str) -> None:
    """An accepted id whose letters could be a name: said on stderr, never refused."""
    warning = sample_id_policy().warning(sample_id)
    if warning is not None:
        print(f"warning: {where}: {warning}", file=sys.stderr)


def sample_id_argument(text: str) -> str:
    try:
        checked = sample_id_policy().check(text)
    except SampleIdError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    warn_about_sample_id(checked, "--sample-id")
    return checked


Prepared = tuple[Upload, PreparedUpload | Refusal]


def score(
    classifier: OnnxCellClassifier,
    limits: UploadLimits,
    paths: Iterable[Path],
    *,
    batch_size: int,
    workers: int,
) -> Iterator[tuple[Upload, Outcome]]:
    """Each file's outcome, in order, through the server's prediction path (without a time
    budget); up to `workers` files are being prepared while a batch is in onnxruntime, and
    at most a few batches are held in memory."""
    options = PredictOptions(tta=tta_for(classifier, None))

    def prepare(path: Path) -> Prepared:
        upload = Upload(filename=str(path), data=path.read_bytes())
        return upload, prepare_or_refuse(upload, classifier, limits)

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
            batch: list[Prepared] = []
            while window and len(batch) < batch_size:
                batch.append(window.popleft().result())
                top_up()
            uploads = [upload for upload, _ in batch]
            outcomes = predict_prepared([item for _, item in batch], classifier, options)
            yield from zip(uploads, outcomes, strict=True)


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="A refused file's row says status error and why in its error column.\n"
        "The upload limits and LEUKOLENS_SAMPLE_ID_PATTERN are the server's settings\n"
        "(docs/deployment.md); docs/usage.md describes the CSV's columns.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="image files (BMP, PNG, JPEG, TIFF) or folders, searched recursively",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="CSV",
        help="the CSV file to write, one row per image",
    )
    parser.add_argument(
        "--model", metavar="ID", help="model id (default: the store's default model)"
    )
    parser.add_argument(
        "--model-store",
        type=Path,
        default=settings.model_store,
        metavar="FOLDER",
        help="folder of exported models (default: LEUKOLENS_MODEL_STORE, else the bundled "
        "model_store/)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        metavar="N",
        help="images per onnxruntime call (default: 16)",
    )
    parser.add_argument(
        "--sample-id",
        type=sample_id_argument,
        metavar="ID",
        help="the sample every image belongs to, a lab number (default: each input folder's name)",
    )
    parser.add_argument(
        "--samples-out",
        type=Path,
        metavar="CSV",
        help="also write each sample's share of blast-like cells (corrected, with its 95%% "
        "interval) to this CSV file",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="threads that read, decode and prepare images (default: one per core)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        default=settings.int8,
        help="use the model's int8 graph where it ships one (default: LEUKOLENS_INT8; "
        "docs/performance.md)",
    )
    parser.add_argument(
        "--inference-threads",
        type=int,
        default=1,
        metavar="N",
        help="onnxruntime threads per batch; 1 leaves the other cores to the preparing "
        "(default: 1)",
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
        "--ray-cpus",
        type=int,
        metavar="N",
        help="CPUs of the local Ray instance (default: all)",
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
        images = list(find_sample_images(args.paths, args.sample_id))
        registry = ModelRegistry.load(
            args.model_store, intra_op_threads=args.inference_threads, int8=args.int8
        )
        classifier = registry.get(args.model)
    except (FileNotFoundError, SampleIdError, ModelStoreError, UnknownModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.int8:  # say what --int8 gave: a model without an int8 graph runs in float32
        print(
            f"{classifier.manifest.id}: {classifier.precision} graph"
            + ("" if classifier.precision == "int8" else " (it ships no int8 graph)"),
            file=sys.stderr,
        )
    limits = UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    if args.ray is not None:
        from app.cluster.archive_scoring import score_on_ray

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
    failures = 0
    samples: dict[str, list[Prediction]] = {}
    with args.out.open("w", newline="", encoding="utf-8") as stream:
        writer = results_writer(stream)
        with tqdm(total=len(images), unit="image", file=sys.stderr) as progress:
            outcomes = score(
                classifier,
                limits,
                [path for path, _ in images],
                batch_size=max(1, args.batch_size),
                workers=max(1, args.workers),
            )
            for (upload, outcome), (_, sample) in zip(outcomes, images, strict=True):
                failures += isinstance(outcome, Refusal)
                if isinstance(outcome, Prediction) and sample is not None:
                    outcome.sample_id = sample
                    samples.setdefault(sample, []).append(outcome)
                writer.writerow(result_row(upload.filename, outcome))
                progress.update(1)
    if args.samples_out is not None:
        write_samples(args.samples_out, samples, registry)
    print(
        f"{len(images) - failures} scored, {failures} failed; results in {args.out}"
        + (f"; samples in {args.samples_out}" if args.samples_out is not None else ""),
        file=sys.stderr,
    )
    return 0


def write_samples(
    path: Path, samples: dict[str, list[Prediction]], registry: ModelRegistry
) -> None:
    """One row per sample: the model's calls only (no reviewer has seen these cells)."""

    def card_for(model_id: str) -> ModelManifest | None:
        model = registry.models.get(model_id)
        return model.manifest if model is not None else None

    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = samples_writer(stream)
        for sample_id, predictions in samples.items():
            # An image is one cell of its sample: the same bytes twice count once.
            first = {p.image_sha256: p for p in reversed(predictions)}
            cells = [as_sample_prediction(p) for p in predictions if first[p.image_sha256] is p]
            share = sample_blast_share(cells, [], card_for)
            writer.writerow(sample_row(sample_id, share, sample_score(cells)))


def as_sample_prediction(prediction: Prediction) -> SamplePrediction:
    return SamplePrediction(
        time=datetime.now(UTC),
        request_id=prediction.request_id,
        image_sha256=prediction.image_sha256 or "",
        model_id=prediction.model.id,
        model_version=prediction.model.version,
        probability_all=prediction.probability_all,
        label=prediction.label,
        state=prediction.state,
        assessable=prediction.assessable,
    )


if __name__ == "__main__":
    sys.exit(main())
