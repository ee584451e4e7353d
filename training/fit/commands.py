"""`train` and `linear-head` (a flag per `TrainConfig` field) and `summarize` (a cv's summary
again from its out-of-fold predictions); their cross-validations are evaluation's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.command_line import CommandError, Subparsers, add_command
from training.fit.config_flags import add_config_arguments, command_for, config_from_args
from training.fit.train_config import TrainConfig


def add_training_parsers(commands: Subparsers, saved: TrainConfig | None) -> None:
    """train and linear-head: a flag per TrainConfig field."""
    for name, handler in (("train", run_train), ("linear-head", run_linear_head)):
        # No abbreviations: `--conf` must not pass silently for a flag the pre-parser never saw.
        parser = add_command(commands, name, handler, allow_abbrev=False)
        add_config_arguments(parser, saved)


def add_summarize_parser(commands: Subparsers) -> None:
    summarize = add_command(commands, "summarize", run_summarize)
    summarize.add_argument("cv_dir", type=Path, metavar="CV_DIR")


def run_train(args: argparse.Namespace) -> None:
    """train one model (validation split optional)"""
    from training.fit import distributed
    from training.fit.trainer import train

    config = config_from_args(args)
    result = train(config, command=command_for("train", config))
    group = distributed.join_from_environment()
    distributed.leave(group)
    if not group.is_main:
        return
    if result.best_metrics is not None:
        print(json.dumps({"best_validation": result.best_metrics.as_dict()}, indent=2))
    print(f"run written to {result.run_dir}")


def run_linear_head(args: argparse.Namespace) -> None:
    """frozen ImageNet features + an L2 logistic head on every indexed person, as a run for
    export (--init-weights; --subject-balanced weighting, --population-weights)"""
    from training.fit.artifacts import RunDir
    from training.fit.linear_head import linear_head_run

    config = config_from_args(args)
    if config.has_validation:
        raise CommandError("linear-head fits every indexed person; its CV is linear-head-cv")
    run = linear_head_run(config)
    RunDir(run).write_command(command_for("linear-head", config))
    print(f"run written to {run}")


def run_summarize(args: argparse.Namespace) -> None:
    """write a cv's cv_summary.json again from its out-of-fold predictions (a cv stopped after
    its folds)"""
    from training.fit.cross_validation import summarize_out_of_fold

    try:
        summary = summarize_out_of_fold(args.cv_dir)
    except (OSError, ValueError) as error:
        raise CommandError(str(error)) from error
    print(f"{args.cv_dir}: pooled ROC AUC {summary.pooled.roc_auc:.3f} over {summary.protocol}")
