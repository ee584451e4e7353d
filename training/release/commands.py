"""`export` (a run to ONNX with its model card) and `adapt` (a site model from a lab's
reviewed cells)."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from datetime import UTC, datetime
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
    source = adapt.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--reviews",
        help="the review records: the server's database (its SQLite file, or the "
        "LEUKOLENS_DATABASE_URL of a PostgreSQL deployment), or a CSV with the columns "
        "image,label,subject",
    )
    source.add_argument(
        "--from-records",
        metavar="URL",
        help="the server's records database (sqlite:///data/audit.sqlite3, or the deployment's "
        "LEUKOLENS_DATABASE_URL): the reviewed cells of the parent's version exactly as the "
        "performance page counts them",
    )
    adapt.add_argument("--since", help="with --from-records: cells scored from (ISO 8601)")
    adapt.add_argument("--until", help="with --from-records: cells scored before (ISO 8601)")
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
    adapt.add_argument(
        "--head-l2",
        type=float,
        default=None,
        help="pull toward the parent head (default: chosen by inner sample-grouped folds)",
    )


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
    from training.release.card_inputs import ExportOptions
    from training.release.export import export_run

    run = RunDir(args.run)
    config = run.read_config().train
    # The command the run saved (linear-head, train, ...), else the train command its config
    # reproduces.
    command = run.read_command() if run.command_file.is_file() else command_for("train", config)
    folder_id = args.out.name if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", args.out.name) else None
    options = ExportOptions(
        model_id=args.model_id or folder_id,
        version=args.version,
        cv_dir=args.cv,
        training_command=command,
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


def _epoch(moment: str | None) -> float | None:
    """An ISO 8601 time as seconds since the epoch; without a zone, UTC (as the records)."""
    if moment is None:
        return None
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError as error:
        raise CommandError(f"{moment!r} is not an ISO 8601 time") from error
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def run_adapt(args: argparse.Namespace) -> None:
    """a site model from a lab's reviewed cells (recalibration or head refit), measured on the
    lab's held-out subjects; written as a new model directory"""
    from training.release.adaptation import adapt_model
    from training.release.site_reviews import AdaptationError

    since, until = (_epoch(args.since), _epoch(args.until))
    try:
        manifest = adapt_model(
            args.model,
            args.from_records or args.reviews,
            args.images,
            args.out,
            strength=args.strength,
            model_id=args.model_id,
            version=args.version,
            minimum_subjects_per_class=args.min_subjects_per_class,
            head_l2=args.head_l2,
            command=shlex.join(["python", "-m", "training", *sys.argv[1:]]),
            from_records=args.from_records is not None,
            since=since,
            until=until,
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
    gain = adaptation.gain
    if gain is not None:
        print(
            f"gain in balanced accuracy {gain.value:+.3f} "
            f"[{gain.low:+.3f}, {gain.high:+.3f}] (whole samples resampled)"
        )
    if not adaptation.recommended:
        print("NOT RECOMMENDED: the gain's interval does not lie above 0; keep using the parent.")
    print(f"written to {args.out} ({manifest.id} v{manifest.version})")
