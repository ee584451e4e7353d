"""`external`, `morphology`, `populations` and `weighting`: measurements on people the models
never saw, per part of the unseen data or per population."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from training.command_line import (
    CommandError,
    Subparsers,
    add_command,
    add_data_arguments,
    add_report_arguments,
    add_resampling_arguments,
    add_scored_arguments,
    write_json,
)

if TYPE_CHECKING:
    from training.evaluation.population_report import PopulationReport


def print_reports(args: argparse.Namespace, reports: Sequence[PopulationReport]) -> None:
    """The table per population that populations and weighting print, and its reports as JSON
    in --json when given."""
    from training.evaluation.population_report import markdown_table

    if args.json is not None:
        payload = [report.model_dump(mode="json") for report in reports]
        write_json(args.json, payload)
    print(markdown_table(reports))


def add_external_parser(commands: Subparsers) -> None:
    external = add_command(commands, "external", run_external)
    add_scored_arguments(external, "a cv directory: every fold model and their ensemble")
    external.add_argument(
        "--data",
        type=Path,
        required=True,
        help="root with training_data/fold_*/{all,hem} and/or the preliminary test set "
        "(C-NMC_test_prelim_phase_data/ and its labels CSV)",
    )
    external.add_argument(
        "--against", type=Path, help="a second exported model: paired AUC differences"
    )
    external.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None)
    external.add_argument(
        "--record-in-card",
        action="store_true",
        help="with --model: write the evaluation and a plain limitation into the model's card",
    )
    external.add_argument("--selection", help="with --record-in-card: the card's selection note")
    add_resampling_arguments(external)
    external.add_argument(
        "--out",
        type=Path,
        help="where to write external_evaluation.json/.md (default: the --cv directory; "
        "with --model, printed only)",
    )


def add_populations_parser(commands: Subparsers) -> None:
    populations = add_command(commands, "populations", run_populations)
    populations.add_argument("cv_dirs", type=Path, nargs="*", metavar="CV_DIR")
    populations.add_argument(
        "--model", type=Path, action="append", default=[], help="an exported model (repeatable)"
    )
    populations.add_argument(
        "--unseen",
        nargs="+",
        default=["external-folds", "external-prelim"],
        help="with --model: the populations the models never saw",
    )
    add_data_arguments(populations, "main root, for --model and --baselines")
    populations.add_argument("--baselines", action="store_true", help="add cell area and grey")
    populations.add_argument(
        "--blend",
        type=Path,
        nargs=2,
        action="append",
        default=[],
        metavar=("CV_A", "CV_B"),
        help="also the equal-weight blend of two cvs' out-of-fold logits (repeatable)",
    )
    populations.add_argument(
        "--against",
        type=Path,
        metavar="CV",
        help="the default's cv: each CV_DIR's rule-score difference against it on the same "
        "people, with a paired people-resampled interval (the rule: it must lie above 0)",
    )
    add_report_arguments(populations)


def add_weighting_parser(commands: Subparsers) -> None:
    weighting = add_command(commands, "weighting", run_weighting)
    add_data_arguments(weighting, "main C-NMC root", required=True)
    weighting.add_argument(
        "--recipe-from", type=Path, required=True, help="a train run: its recipe prepares cells"
    )
    weighting.add_argument("--arch", default="tf_efficientnet_lite0")
    weighting.add_argument("--init-weights", type=Path, help="the backbone's ImageNet weights")
    weighting.add_argument("--external-factor", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    weighting.add_argument("--folds", type=int, default=5)
    add_report_arguments(weighting)


def add_morphology_parser(commands: Subparsers) -> None:
    morphology = add_command(commands, "morphology", run_morphology)
    morphology.add_argument("--data", type=Path, required=True, help="training C-NMC root")
    morphology.add_argument("--external", type=Path, help="unseen-subject root to measure on")
    morphology.add_argument(
        "--extra-data",
        type=Path,
        nargs="*",
        default=[],
        help="roots of more people that join the CV: person-balanced, out-of-fold "
        "predictions written to --out as a cv directory for `populations`",
    )
    morphology.add_argument("--folds", type=int, default=3)
    morphology.add_argument("--resamples", type=int, default=2000)
    morphology.add_argument("--out", type=Path, help="write external_evaluation.json/.md here")
    morphology.add_argument(
        "--blend-with",
        type=Path,
        help="an exported model: also report it, and its equal-weight blend with the "
        "morphology model (threshold-centred logits; nothing fitted on the unseen cells)",
    )


def run_external(args: argparse.Namespace) -> None:
    """measure on patients outside the training data (per part, per subject, intervals from
    resampling subjects, image-only baselines); never tune on it"""
    from training.evaluation.external_evaluation import external_report, index_external
    from training.evaluation.external_report_writing import markdown, write_report
    from training.evaluation.scorers import score_cross_validation, score_model_dir
    from training.release.model_card import record_in_card

    data = index_external(args.data)
    if args.cv is not None:
        scorers = score_cross_validation(args.cv, data.images)
    else:
        scorers = [score_model_dir(args.model, data.images, tta=args.tta)]
    against = score_model_dir(args.against, data.images) if args.against else None
    report = external_report(
        data, scorers, root=args.data, against=against, resamples=args.resamples, seed=args.seed
    )
    out = args.out or args.cv
    print(write_report(report, out) if out is not None else markdown(report))
    if args.record_in_card:
        if args.model is None:
            raise CommandError("--record-in-card needs --model")
        print(f"recorded in {record_in_card(args.model, report, selection=args.selection)}")


def run_populations(args: argparse.Namespace) -> None:
    """the candidate table per population: each cv's out-of-fold figures, served models on the
    people they never saw, and the cell-area and mean-grey baselines"""
    from training.data.dataset_index import index_training_data
    from training.evaluation.paired_difference import markdown_table as paired_table
    from training.evaluation.paired_difference import paired_difference
    from training.evaluation.population_report import (
        baseline_reports,
        blended_report,
        cv_population_report,
        served_model_report,
    )

    if (args.model or args.baselines) and args.data is None:
        raise CommandError("--model and --baselines need --data (and --extra-data)")
    draws = {"resamples": args.resamples, "seed": args.seed}
    try:
        reports = [cv_population_report(cv_dir, **draws) for cv_dir in args.cv_dirs]
        reports += [blended_report(first, second, **draws) for first, second in args.blend]
        differences = [
            paired_difference(cv_dir, args.against, **draws)
            for cv_dir in args.cv_dirs
            if args.against is not None and cv_dir.resolve() != args.against.resolve()
        ]
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    if args.data is not None:
        images = index_training_data(args.data, args.extra_data).images
        reports += [
            served_model_report(model, images, unseen=args.unseen, **draws) for model in args.model
        ]
        if args.baselines:
            reports += baseline_reports(images, **draws)
    print_reports(args, reports)
    if differences:
        print()
        print(paired_table(differences))
        if args.json is not None:
            paired_json = args.json.with_name(args.json.stem + "-paired.json")
            write_json(paired_json, [row.model_dump(mode="json") for row in differences])


def run_weighting(args: argparse.Namespace) -> None:
    """what weighting external people up or down does: a linear head on frozen ImageNet
    features, per external factor, out of fold per population"""
    from training.data.dataset_index import index_training_data
    from training.fit.artifacts import RunDir
    from training.fit.linear_head import frozen_features
    from training.fit.models import create_classifier
    from training.studies.weighting_study import weighting_reports

    recipe = RunDir(args.recipe_from).read_config().preprocessing
    images = index_training_data(args.data, args.extra_data).images
    backbone = create_classifier(args.arch, init_weights=args.init_weights)
    features = frozen_features(images, recipe, backbone)
    reports = weighting_reports(
        features,
        images,
        args.external_factor,
        folds=args.folds,
        seed=args.seed,
        resamples=args.resamples,
    )
    print_reports(args, reports)


def run_morphology(args: argparse.Namespace) -> None:
    """the morphology candidate: shape, nucleus and texture features with a linear classifier;
    subject-grouped CV on --data, then measured on --external"""
    from app.core.manifest import ManifestError, load_manifest
    from training.studies.morphology_candidate import (
        morphology_candidate,
        morphology_over_populations,
    )

    if args.blend_with is not None:
        if args.external is None:
            raise CommandError("--blend-with needs --external")
        try:  # before minutes of feature extraction, not after
            load_manifest(args.blend_with)
        except (OSError, ManifestError) as error:
            raise CommandError(f"--blend-with {args.blend_with}: {error}") from error
    shared = {"folds": args.folds, "resamples": args.resamples, "out": args.out}
    if args.extra_data:
        if args.out is None:
            raise CommandError("--extra-data needs --out (a directory for the predictions)")
        print(morphology_over_populations(args.data, args.extra_data, **shared))
        return
    for text in morphology_candidate(
        args.data, external=args.external, blend_with=args.blend_with, **shared
    ):
        print(text)
