"""Images per second of the batch command line, today's code against an earlier commit's, in
one run.

    python -m bench.batch_cli --data ../shared/data/C-NMC_Leukemia --baseline 5b557d6

Each configuration runs `python -m app.cli.predict FOLDER --out CSV` as a user would, in its own
process (the earlier commit from a temporary git worktree); the runs alternate `--repeats`
times, and each rate is images scored over the command's wall-clock time, start-up included.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench.common import write_result
from bench.same_run import ROOT, checkout, describe, tree_environment

FIXTURES = ROOT / "tests/fixtures/cnmc"
ANSWER_COLUMNS = ("status", "label", "state", "warnings")


def cli_module(tree: Path) -> str:
    """The batch command line of `tree`: app/predict.py at first, then app/predict_cli.py,
    then app/cli/predict.py once app/ was split into packages."""
    for module, path in (
        ("app.cli.predict", "app/cli/predict.py"),
        ("app.predict_cli", "app/predict_cli.py"),
    ):
        if (tree / path).is_file():
            return module
    return "app.predict"


def run_cli(tree: Path, data: Path, extra: list[str]) -> tuple[float, list[dict[str, str]]]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "results.csv"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", cli_module(tree), str(data), "--out", str(out), *extra],
            cwd=tree,
            env=tree_environment(tree),
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - started
        rows = list(csv.DictReader(out.read_text().splitlines()))
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=FIXTURES)
    parser.add_argument("--baseline", help="an earlier commit to measure in the same run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="batch_cli", help="the result file's name")
    parser.add_argument(
        "--model", help="score with this model in every tree (trees may differ in their default)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra arguments for today's CLI, e.g. '--workers 3 --inference-threads 1'",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        configurations: dict[str, tuple[Path, list[str]]] = {"current": (ROOT, [])}
        for variant in args.variant:
            configurations[f"current {variant}"] = (ROOT, variant.split())
        if args.baseline:
            configurations["baseline"] = (stack.enter_context(checkout(args.baseline)), [])
        seconds: dict[str, list[float]] = {name: [] for name in configurations}
        answers: dict[str, list[dict[str, str]]] = {}
        for repeat in range(args.repeats):
            names = list(configurations)
            for name in names if repeat % 2 == 0 else reversed(names):
                tree, extra = configurations[name]
                print(f"repeat {repeat + 1}: {name}", file=sys.stderr)
                model = ["--model", args.model] if args.model else []
                took, rows = run_cli(tree, args.data, [*model, *extra])
                seconds[name].append(took)
                answers[name] = rows
        trees = {name: describe(tree) for name, (tree, _) in configurations.items()}
    images = len(answers["current"])
    rates = {name: round(images / statistics.median(values), 1) for name, values in seconds.items()}
    result: dict[str, object] = {
        "data": str(args.data),
        "model": args.model or "each tree's default",
        "images": images,
        "trees": trees,
        "seconds": seconds,
        "images_per_second": rates,
    }
    if "baseline" in answers:
        old = {row["filename"]: row for row in answers["baseline"]}
        same = sum(
            row["probability_all"] == old[row["filename"]]["probability_all"]
            and row["warnings"] == old[row["filename"]]["warnings"]
            for row in answers["current"]
        )
        result["rows_identical_to_baseline"] = same
        # Where rows differ: by how much (probabilities are written to 6 decimals) and whether
        # any answer a reader acts on (scored or refused, label, answer state, warnings) changed.
        scored_in_both = [
            (row, old[row["filename"]])
            for row in answers["current"]
            if row.get("status", "ok") == old[row["filename"]].get("status", "ok") == "ok"
        ]
        result["max_abs_probability_difference"] = max(
            (
                abs(float(new["probability_all"]) - float(was["probability_all"]))
                for new, was in scored_in_both
            ),
            default=0.0,
        )
        result["rows_with_another_status_label_state_or_warnings"] = sum(
            any(row.get(c) != old[row["filename"]].get(c) for c in ANSWER_COLUMNS)
            for row in answers["current"]
        )
        result["speedup_over_baseline"] = round(rates["current"] / rates["baseline"], 2)
    print(write_result(args.name, result).read_text())


if __name__ == "__main__":
    main()
