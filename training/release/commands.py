"""`export` (a run to ONNX with its model card) and `adapt` (a site model from a lab's
reviewed cells)."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from training.command_line import CommandError, Subparsers, add_command
from training.fit.config_flags import command_for


def add_export_parser(commands: Subparsers) -> None:
    export = add_command(commands, "export", run_export)
    export.add_argument("--run", type=Path, required=True, help="a train run directory")
    export.add_argument("--out", type=Path, required=True, help="model directory to write")
    export.add_argument(
        "--id",
        dest="model_id",
        help="model id (default: the --out folder's name when it is a valid id, else "
        "arch-size-crop); the store finds a model by its folder",
    )
    export.add_argument("--version", default="1")
    export.add_argument(
        "--cv",
        type=Path,
        help="a cv directory: its out-of-fold predictions fit the calibration and choose the "
        "threshold; its metrics go into the card",
    )
    export.add_argument(
        "--selection",
        help="for the card: how this model was chosen against the others (e.g. the bake-off)",
    )
    export.add_argument(
        "--changes",
        default="",
        help="for the card's changelog: what is new in this version (default: names the run)",
    )
    export.add_argument(
        "--threshold-rule",
        choices=["best_balanced_accuracy", "uncalibrated_half"],
        default="best_balanced_accuracy",
        help="with --cv: the threshold with the best balanced accuracy on the out-of-fold "
        "predictions, or where the uncalibrated probability is 0.5 (for a model trained "
        "class-balanced; fitted to nothing)",
    )
    export.add_argument(
        "--no-tta-measurement",
        action="store_true",
        help="skip measuring test-time augmentation on held-out subjects",
    )


def add_adapt_parser(commands: Subparsers) -> None:
    adapt = add_command(commands, "adapt", run_adapt)
    adapt.add_argument("--model", type=Path, required=True, help="the parent model directory")
    adapt.add_argument(
        "--reviews",
        required=True,
        help="the review records: the server's database (its SQLite file, or the "
        "LEUKOLENS_DATABASE_URL of a PostgreSQL deployment), or a CSV with the columns "
        "image,label,subject",
    )
    adapt.add_argument(
        "--images", type=Path, required=True, help="folder the reviewed images are under"
    )
    adapt.add_argument("--out", type=Path, required=True, help="new model directory to write")
    adapt.add_argument(
        "--strength", choices=["recalibration", "head_refit"], default="recalibration"
    )
    adapt.add_argument("--id", dest="model_id", required=True, help="the adapted model's id")
    adapt.add_argument("--version", default="1")
    adapt.add_argument("--min-subjects-per-class", type=int, default=3)
    adapt.add_argument("--head-l2", type=float, default=1.0, help="pull toward the parent head")


def add_recipe_rates_parser(commands: Subparsers) -> None:
    rates = add_command(commands, "recipe-rates", run_recipe_rates)
    rates.add_argument("--model", type=Path, required=True, help="a served model directory")
    rates.add_argument(
        "--cv", type=Path, required=True, help="a cv directory of the model's own recipe"
    )
    rates.add_argument("--resamples", type=int, default=2000)


def run_recipe_rates(args: argparse.Namespace) -> None:
    """re-record a served model's unseen-patient rates from a newer cross-validation of its own
    recipe (the graph, calibration and threshold stay)"""
    from training.data.dataset_index import DatasetError
    from training.release.recipe_rates import record_recipe_rates

    try:
        written = record_recipe_rates(args.model, args.cv, resamples=args.resamples)
    except (OSError, ValueError, DatasetError) as error:
        raise CommandError(str(error)) from error
    print(f"recorded in {written}")


def run_export(args: argparse.Namespace) -> None:
    """export a run to ONNX with its model card"""
    from training.fit.artifacts import RunDir
    from training.release.export import ExportOptions, export_run

    config = RunDir(args.run).read_config().train
    folder_id = args.out.name if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", args.out.name) else None
    options = ExportOptions(
        model_id=args.model_id or folder_id,
        version=args.version,
        cv_dir=args.cv,
        training_command=command_for("train", config),
        selection=args.selection,
        measure_tta_gain=not args.no_tta_measurement,
        threshold_rule=args.threshold_rule,
        changes=args.changes,
    )
    manifest = export_run(args.run, args.out, options)
    print(
        f"exported {manifest.id} v{manifest.version} to {args.out} "
        f"(threshold {manifest.threshold.value:.4f}, sha256 {manifest.onnx_sha256[:12]})"
    )


def run_adapt(args: argparse.Namespace) -> None:
    """a site model from a lab's reviewed cells (recalibration or head refit), measured on the
    lab's held-out subjects; written as a new model directory"""
    from training.release.adaptation import adapt_model
    from training.release.site_reviews import AdaptationError

    try:
        manifest = adapt_model(
            args.model,
            args.reviews,
            args.images,
            args.out,
            strength=args.strength,
            model_id=args.model_id,
            version=args.version,
            minimum_subjects_per_class=args.min_subjects_per_class,
            head_l2=args.head_l2,
            command=shlex.join(["python", "-m", "training", *sys.argv[1:]]),
        )
    except AdaptationError as error:
        raise CommandError(str(error)) from error
    adaptation = manifest.adaptation
    assert adaptation is not None
    before, after = adaptation.before.metrics, adaptation.after.metrics
    for name in ("roc_auc", "balanced_accuracy", "sensitivity", "specificity"):
        print(
            f"{name:<18} parent {before[name]:.3f} [{before[name + '_low']:.2f}, "
            f"{before[name + '_high']:.2f}]   adapted {after[name]:.3f} "
            f"[{after[name + '_low']:.2f}, {after[name + '_high']:.2f}]"
        )
    print(f"held out: {adaptation.held_out_protocol}")
    if not adaptation.better_on_held_out:
        print("NOT better than the parent on held-out subjects: keep using the parent.")
    print(f"written to {args.out} ({manifest.id} v{manifest.version})")
