"""`cv` and `linear-head-cv`: a subject-grouped cross-validation (a flag per `TrainConfig`
field), then what is measured on its held-out people. Fitting writes the predictions; the
figures are read from them afterwards."""

from __future__ import annotations

import argparse
import json

from training.command_line import Subparsers, add_command
from training.fit.config_flags import add_config_arguments, command_for, config_from_args
from training.fit.train_config import TrainConfig


def add_cross_validation_parsers(commands: Subparsers, saved: TrainConfig | None) -> None:
    for name, handler in (("cv", run_cv), ("linear-head-cv", run_linear_head_cv)):
        # No abbreviations: `--conf` must not pass silently for a flag the pre-parser never saw.
        parser = add_command(commands, name, handler, allow_abbrev=False)
        add_config_arguments(parser, saved)


def run_cv(args: argparse.Namespace) -> None:
    """subject-grouped cross-validation"""
    from training.evaluation.cross_validation_reports import evaluate_cross_validation
    from training.fit.cross_validation import run_cross_validation

    config = config_from_args(args)
    run_cross_validation(config, command=command_for("cv", config))
    summary = evaluate_cross_validation(config.out)
    figures = summary.model_dump(mode="json", include={"mean_std", "pooled"})
    print(json.dumps({k: figures[k] for k in ("mean_std", "pooled")}, indent=2))


def run_linear_head_cv(args: argparse.Namespace) -> None:
    """the subject-grouped cross-validation of linear-head"""
    from training.evaluation.population_report import cv_population_report, markdown_table
    from training.fit.artifacts import CvDir
    from training.fit.linear_head import linear_head_cv

    config = config_from_args(args)
    cv = linear_head_cv(config)
    CvDir(cv).write_command(command_for("linear-head-cv", config))
    print(markdown_table([cv_population_report(cv)]))
