"""What every stage's commands share: the error a command reports as `error: ...` (exit 2),
the subparsers type, a command's parser with its handler, the flags several commands declare
alike (the scored model or cv, the data roots, the resampling and output flags of the
per-population tables), and JSON written beside a printed table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler: TypeAlias = Callable[[argparse.Namespace], None]


class CommandError(Exception):
    """A command cannot run with these arguments or inputs; the message says why."""


def add_command(
    commands: Subparsers, name: str, handler: Handler, **options: Any
) -> argparse.ArgumentParser:
    """The parser of the command `name`, which names its handler (`args.handler(args)`); the
    handler's docstring is the command's help, as click takes it."""
    parser = commands.add_parser(name, help=handler.__doc__, **options)
    parser.set_defaults(handler=handler)
    return parser


def add_scored_arguments(parser: argparse.ArgumentParser, cv_help: str) -> None:
    """What is scored: an exported model (--model) or every fold of a cv (--cv), one of them."""
    scored = parser.add_mutually_exclusive_group(required=True)
    scored.add_argument("--model", type=Path, help="an exported model directory")
    scored.add_argument("--cv", type=Path, help=cv_help)


def add_data_arguments(
    parser: argparse.ArgumentParser, data_help: str, *, required: bool = False
) -> None:
    """The main C-NMC root (--data) and the roots of more people beside it (--extra-data)."""
    parser.add_argument("--data", type=Path, required=required, help=data_help)
    parser.add_argument("--extra-data", type=Path, nargs="*", default=[])


def add_resampling_arguments(parser: argparse.ArgumentParser) -> None:
    """How many subject resamples give the intervals, and their seed."""
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The resampling and output flags every per-population table takes."""
    add_resampling_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write every report here")


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
