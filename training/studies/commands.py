"""`evaluate`, `counterfactual`, `heat-in-cell`, `compare` and `sample-simulation`: the checks
of one model or cross-validation, and the bake-off table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.command_line import (
    CommandError,
    Subparsers,
    add_command,
    add_scored_arguments,
    write_json,
)
from training.data.commands import add_prelim_test_arguments, load_index
from training.data.dataset_index import index_dataset


def add_evaluate_parser(commands: Subparsers) -> None:
    evaluate = add_command(commands, "evaluate", run_evaluate)
    evaluate.add_argument("--model", type=Path, required=True, help="model directory")
    evaluate.add_argument("--data", type=Path, help="C-NMC-layout root")
    add_prelim_test_arguments(evaluate, "preliminary-test image folder")
    evaluate.add_argument("--threshold", type=float, help="override the manifest's threshold")
    evaluate.add_argument("--no-dedupe", action="store_true")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--plots", type=Path, help="write roc.png and confusion_matrix.png here")


def add_counterfactual_parser(commands: Subparsers) -> None:
    counterfactual = add_command(commands, "counterfactual", run_counterfactual)
    add_scored_arguments(
        counterfactual,
        "a cv directory: each fold's model on its held-out subjects (out of sample)",
    )
    counterfactual.add_argument("--data", type=Path, help="C-NMC-layout root (with --model)")
    counterfactual.add_argument(
        "--reference", type=Path, help="root whose cells give the class colours (default: --data)"
    )
    counterfactual.add_argument("--json", action="store_true")


def add_heat_in_cell_parser(commands: Subparsers) -> None:
    heat = add_command(commands, "heat-in-cell", run_heat_in_cell)
    heat.add_argument("--cv", type=Path, required=True, help="a cv directory")
    heat.add_argument("--json", action="store_true", help="print the whole report")


def add_compare_parser(commands: Subparsers) -> None:
    compare = add_command(commands, "compare", run_compare)
    compare.add_argument("cv_dirs", type=Path, nargs="+", metavar="CV_DIR")
    compare.add_argument(
        "--no-latency", action="store_true", help="skip exporting fold 0 to time onnxruntime"
    )
    compare.add_argument("--json", type=Path, help="also write the rows here")


def add_sample_simulation_parser(commands: Subparsers) -> None:
    simulation = add_command(commands, "sample-simulation", run_sample_simulation)
    simulated = simulation.add_mutually_exclusive_group(required=True)
    simulated.add_argument(
        "--cv", type=Path, help="a cv directory: samples from its held-out subjects' cells"
    )
    simulated.add_argument(
        "--card",
        type=Path,
        help="an exported model directory: SYNTHETIC calls at its card's sensitivity and "
        "specificity (checks the estimator, not the model)",
    )
    simulation.add_argument(
        "--unseen-data",
        type=Path,
        help="with --card: score this C-NMC root's unseen subjects as served, each one sample, "
        "instead of simulating",
    )
    simulation.add_argument("--repeats", type=int, default=100, help="samples per table cell")
    simulation.add_argument("--seed", type=int, default=0)
    simulation.add_argument("--out", type=Path, help="write the report as JSON here")


def add_share_readability_parser(commands: Subparsers) -> None:
    readability = add_command(commands, "share-readability", run_share_readability)
    readability.add_argument("--card", type=Path, required=True, help="a model directory")
    readability.add_argument("--json", type=Path, help="also write the table here")


def run_share_readability(args: argparse.Namespace) -> None:
    """from how many cells, if any, a sample's corrected blast-like share is readable with a
    card's error rates (the server's estimator on samples of each size and apparent share)"""
    from training.studies.share_readability import markdown_table, share_readability

    try:
        report = share_readability(args.card)
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    if args.json is not None:
        write_json(args.json, report.model_dump(mode="json"))
    print(
        f"{report.model}: sensitivity {report.sensitivity:.3f}, specificity "
        f"{report.specificity:.3f} ({report.rates}; {report.source})"
    )
    print(markdown_table(report))


def run_evaluate(args: argparse.Namespace) -> None:
    """evaluate an exported model on a C-NMC folder"""
    from training.studies.served_model_evaluation import evaluate_model, format_table, save_plots

    result = evaluate_model(args.model, load_index(args), threshold=args.threshold)
    if args.plots is not None:
        save_plots(result, args.plots)
    print(json.dumps(result.as_json()) if args.json else format_table(result))


def run_counterfactual(args: argparse.Namespace) -> None:
    """colour-counterfactual test: re-colour each cell to the other class and re-score"""
    from app.core.classifier import OnnxCellClassifier
    from training.evaluation.colour_counterfactual import colour_counterfactual

    if args.cv is not None:
        from training.evaluation.cross_validation_reports import counterfactual_on_held_out_folds

        cv_report = counterfactual_on_held_out_folds(args.cv)
        print(
            json.dumps(
                cv_report.model_dump(mode="json") if args.json else cv_report.pooled,
                indent=None if args.json else 2,
            )
        )
        return
    if args.data is None:
        raise CommandError("--model needs --data")
    images = index_dataset(args.data).images
    reference = index_dataset(args.reference).images if args.reference else images
    result = colour_counterfactual(OnnxCellClassifier(args.model), images, reference)
    report = result.as_json()
    if args.json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key:<34} {value}")


def run_heat_in_cell(args: argparse.Namespace) -> None:
    """share of each fold's Grad-CAM heat inside the cell, on its held-out subjects"""
    from training.evaluation.cross_validation_reports import heat_on_held_out_folds

    report = heat_on_held_out_folds(args.cv)
    figures = report.model_dump(mode="json") if args.json else report.pooled
    print(json.dumps(figures, indent=None if args.json else 2))


def run_compare(args: argparse.Namespace) -> None:
    """the bake-off table: one markdown row per cross-validation directory"""
    from training.studies.comparison import candidate_row, markdown_table, rows_as_json

    rows = [candidate_row(d, measure_latency=not args.no_latency) for d in args.cv_dirs]
    if args.json is not None:
        write_json(args.json, rows_as_json(rows))
    print(markdown_table(rows))


def run_sample_simulation(args: argparse.Namespace) -> None:
    """samples of 10-200 cells at known blast shares: error and interval coverage of the
    corrected share of blast-like cells"""
    from training.studies.sample_simulation import markdown, run

    try:
        report = run(
            cv_dir=args.cv,
            card_dir=args.card,
            unseen_data=args.unseen_data,
            repeats=args.repeats,
            seed=args.seed,
        )
        if args.out is not None:
            write_json(args.out, report)
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    print(markdown(report))
