"""`python -m app.predict PATH... --out results.csv`: score files and folders of cell images.

The same engine as the server (checks, recipe, model store), for whole archives at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from app.engine import PredictionEngine, Upload
from app.model_registry import ModelRegistry, ModelStoreError, UnknownModelError
from app.result_table import result_row, results_writer
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


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.predict", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--model", help="model id (default: the store's default)")
    parser.add_argument("--model-store", type=Path, default=settings.model_store)
    parser.add_argument("--batch-size", type=int, default=16)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    try:
        images = list(find_images(args.paths))
        registry = ModelRegistry.load(args.model_store, intra_op_threads=0)
        registry.get(args.model)
    except (FileNotFoundError, ModelStoreError, UnknownModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    limits = UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    engine = PredictionEngine(registry, limits, worker_threads=1)
    failures = 0
    with args.out.open("w", newline="", encoding="utf-8") as stream:
        writer = results_writer(stream)
        with tqdm(total=len(images), unit="image", file=sys.stderr) as progress:
            for start in range(0, len(images), args.batch_size):
                chunk = images[start : start + args.batch_size]
                uploads = [Upload(filename=str(p), data=p.read_bytes()) for p in chunk]
                outcomes = engine.predict_many(uploads, model_id=args.model)
                for upload, outcome in zip(uploads, outcomes, strict=True):
                    failures += isinstance(outcome, UploadRejectedError)
                    writer.writerow(result_row(upload.filename, outcome))
                progress.update(len(chunk))
    engine.close()
    print(
        f"{len(images) - failures} scored, {failures} failed; results in {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
