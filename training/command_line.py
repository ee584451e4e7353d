"""What every stage's commands share: the error a command reports as `error: ...` (exit 2),
the subparsers type, the resampling flags of the per-population tables, and JSON written
beside a printed table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandError(Exception):
    """A command cannot run with these arguments or inputs; the message says why."""


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The resampling and output flags every per-population table takes."""
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every report here")


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
