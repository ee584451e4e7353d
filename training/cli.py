"""`python -m training <job>`, a command per job: index; train, linear-head (fitting); cv,
linear-head-cv (a cross-validation and its figures); export, adapt, recipe-rates (release);
evaluate, counterfactual, heat-in-cell, external, morphology, compare, populations, weighting,
summarize, sample-simulation, share-readability (measurements).

The train and cv flags are generated from `TrainConfig`, so every flag is a config field and
every saved config can be turned back into the command that reproduces it; `--config FILE`
reruns a saved config (its values are the defaults, flags given beside it override them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from training.command_line import CommandError
from training.data.commands import add_index_parser
from training.data.dataset_index import DatasetError
from training.evaluation.commands import add_cross_validation_parsers
from training.fit.artifacts import read_train_config
from training.fit.commands import add_summarize_parser, add_training_parsers
from training.fit.config_flags import CONFIG_COMMANDS
from training.fit.train_config import TrainConfig
from training.release.commands import (
    add_adapt_parser,
    add_export_parser,
    add_recipe_rates_parser,
)
from training.studies.commands import (
    add_compare_parser,
    add_counterfactual_parser,
    add_evaluate_parser,
    add_heat_in_cell_parser,
    add_sample_simulation_parser,
    add_share_readability_parser,
)
from training.studies.unseen_subject_commands import (
    add_external_parser,
    add_morphology_parser,
    add_populations_parser,
    add_weighting_parser,
)


def build_parser(saved: TrainConfig | None = None) -> argparse.ArgumentParser:
    """The whole command line; `saved` gives the train and cv flags their defaults. Each
    command's parser sits beside its code and names its handler (`set_defaults(handler=...)`)."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_index_parser(commands)
    add_training_parsers(commands, saved)
    add_cross_validation_parsers(commands, saved)
    add_export_parser(commands)
    add_evaluate_parser(commands)
    add_counterfactual_parser(commands)
    add_heat_in_cell_parser(commands)
    add_external_parser(commands)
    add_morphology_parser(commands)
    add_adapt_parser(commands)
    add_recipe_rates_parser(commands)
    add_compare_parser(commands)
    add_populations_parser(commands)
    add_weighting_parser(commands)
    add_summarize_parser(commands)
    add_sample_simulation_parser(commands)
    add_share_readability_parser(commands)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """As timm's -c/--config: read the saved config first, then parse every flag with its
    values as the defaults, so that the flags given override them one by one."""
    words = list(sys.argv[1:] if argv is None else argv)
    saved = None
    if words and words[0] in CONFIG_COMMANDS:
        config_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        config_parser.add_argument("-c", "--config", type=Path)
        known, _ = config_parser.parse_known_args(words[1:])
        if known.config is not None:
            try:
                saved = read_train_config(known.config)
            except (OSError, ValueError) as error:
                build_parser().error(f"--config {known.config}: {error}")
    return build_parser(saved).parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.handler(args)
    except (CommandError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
