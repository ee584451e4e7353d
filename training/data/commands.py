"""`index`: count images per fold, class and subject; and the index the evaluate command reads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.command_line import CommandError, Subparsers, add_command
from training.data.dataset_index import DatasetIndex, index_dataset, index_prelim_test


def add_index_parser(commands: Subparsers) -> None:
    index = add_command(commands, "index", run_index)
    index.add_argument(
        "--data", type=Path, help="C-NMC root (or --test-images with --test-csv alone)"
    )
    index.add_argument("--no-dedupe", action="store_true", help="keep pixel-identical images")
    add_prelim_test_arguments(index, "folder of the preliminary-test images")
    index.add_argument("--json", action="store_true")


def add_prelim_test_arguments(parser: argparse.ArgumentParser, images_help: str) -> None:
    """The preliminary test set `load_index` reads instead of --data."""
    parser.add_argument("--test-csv", type=Path, help="preliminary-test labels CSV")
    parser.add_argument("--test-images", type=Path, help=images_help)


def load_index(args: argparse.Namespace) -> DatasetIndex:
    """--data, or the preliminary test set (--test-csv with --test-images)."""
    if args.test_csv is not None or args.test_images is not None:
        if args.test_csv is None or args.test_images is None:
            raise CommandError("--test-csv and --test-images go together")
        return index_prelim_test(args.test_images, args.test_csv)
    if args.data is None:
        raise CommandError("give --data, or --test-csv with --test-images")
    return index_dataset(args.data, deduplicate=not args.no_dedupe)


def run_index(args: argparse.Namespace) -> None:
    """count images per fold, class and subject"""
    index = load_index(args)
    rows = index.counts()
    if args.json:
        payload = {
            "images": len(index.images),
            "duplicates_removed": index.duplicates_removed,
            "conflicting_duplicates": index.conflicting_duplicates,
            "counts": [
                {"fold": fold, "label": label, "subject": subject, "images": n}
                for fold, label, subject, n in rows
            ],
        }
        print(json.dumps(payload, indent=2))
        return
    print(f"{'fold':<12} {'label':<5} {'subject':<8} {'images':>6}")
    for fold, label, subject, n in rows:
        print(f"{fold or '-':<12} {label:<5} {subject:<8} {n:>6}")
    per_label = {label: sum(r[3] for r in rows if r[1] == label) for label in ("ALL", "HEM")}
    subjects = {label: len({r[2] for r in rows if r[1] == label}) for label in ("ALL", "HEM")}
    print(
        f"\n{len(index.images)} images: ALL {per_label['ALL']} ({subjects['ALL']} subjects), "
        f"HEM {per_label['HEM']} ({subjects['HEM']} subjects); "
        f"{index.duplicates_removed} pixel-identical duplicates removed"
    )
