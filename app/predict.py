"""`python -m app.predict PATH... --out results.csv`: score files and folders of cell images.

The same engine as the server (checks, recipe, model store), for whole archives at once. Each
folder is a sample named after it (or all of them one sample, with --sample-id); --samples-out
writes each sample's share of blast-like cells, corrected for the model's held-out errors.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from app.blast_share import sample_blast_share, sample_score
from app.engine import PredictionEngine, Upload
from app.manifest import ModelManifest
from app.model_registry import ModelRegistry, ModelStoreError, UnknownModelError
from app.result_table import result_row, results_writer, sample_row, samples_writer
from app.schemas import Prediction, SampleIdPattern, SamplePrediction
from app.settings import get_settings
from app.upload_checks import UploadLimits, UploadRejectedError

IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def find_images(paths: Sequence[Path]) -> Iterator[Path]:
    """Files as given; folders searched recursively for image suffixes, in a stable order."""
    for path, _ in find_sample_images(paths, None):
        yield path


def find_sample_images(
    paths: Sequence[Path], sample_id: str | None
) -> Iterator[tuple[Path, str | None]]:
    """Each image with its sample: the one given, else its input folder's name, else none."""
    for path in paths:
        if path.is_dir():
            sample = sample_id or folder_sample_id(path)
            for image in sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            ):
                yield image, sample
        elif path.is_file():
            yield path, sample_id
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


def folder_sample_id(folder: Path) -> str:
    """The folder's name made a valid sample id (letters, digits, . _ -; at most 64)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", folder.resolve().name).lstrip("._-")[:64]
    return name or "sample"


def sample_id_argument(text: str) -> str:
    if not re.fullmatch(SampleIdPattern, text):
        raise argparse.ArgumentTypeError("letters, digits, . _ - (up to 64), never a name")
    return text


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--model", help="model id (default: the store's default)")
    parser.add_argument("--model-store", type=Path, default=settings.model_store)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--sample-id",
        type=sample_id_argument,
        help="the sample every image belongs to (default: each input folder's name)",
    )
    parser.add_argument(
        "--samples-out",
        type=Path,
        help="CSV file of each sample's share of blast-like cells (corrected, with its interval)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    try:
        images = list(find_sample_images(args.paths, args.sample_id))
        registry = ModelRegistry.load(args.model_store, intra_op_threads=0)
        registry.get(args.model)
    except (FileNotFoundError, ModelStoreError, UnknownModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    limits = UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    engine = PredictionEngine(registry, limits, worker_threads=1)
    failures = 0
    samples: dict[str, list[Prediction]] = {}
    with args.out.open("w", newline="", encoding="utf-8") as stream:
        writer = results_writer(stream)
        with tqdm(total=len(images), unit="image", file=sys.stderr) as progress:
            for start in range(0, len(images), args.batch_size):
                chunk = images[start : start + args.batch_size]
                uploads = [Upload(filename=str(p), data=p.read_bytes()) for p, _ in chunk]
                outcomes = engine.predict_many(uploads, model_id=args.model)
                for upload, (_, sample), outcome in zip(uploads, chunk, outcomes, strict=True):
                    failures += isinstance(outcome, UploadRejectedError)
                    if isinstance(outcome, Prediction) and sample is not None:
                        outcome.sample_id = sample
                        samples.setdefault(sample, []).append(outcome)
                    writer.writerow(result_row(upload.filename, outcome))
                progress.update(len(chunk))
    engine.close()
    if args.samples_out is not None:
        write_samples(args.samples_out, samples, registry)
    print(
        f"{len(images) - failures} scored, {failures} failed; results in {args.out}",
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
            cells = [as_sample_prediction(p) for p in predictions]
            share = sample_blast_share(cells, [], card_for)
            writer.writerow(sample_row(sample_id, share, sample_score(cells)))


def as_sample_prediction(prediction: Prediction) -> SamplePrediction:
    return SamplePrediction(
        time=0.0,
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
