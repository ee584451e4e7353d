"""An earlier commit's code checked out beside today's, so that both are measured in one run.

The machine is shared and its speed drifts by tens of percent between runs: a speed-up is only
claimed as a ratio of two measurements taken in the same run, interleaved.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parents[1]


def git(*arguments: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def describe(tree: Path) -> dict[str, object]:
    """The commit a tree is at and whether it has uncommitted changes to the code measured."""
    return {
        "commit": git("rev-parse", "--short", "HEAD", cwd=tree),
        "dirty": bool(git("status", "--porcelain", "--", "app", "bench", cwd=tree)),
    }


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A detached worktree of `ref` in a temporary folder, removed afterwards."""
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    with tempfile.TemporaryDirectory(prefix="leukolens-baseline-") as folder:
        tree = Path(folder) / "tree"
        git("worktree", "add", "--detach", str(tree), commit)
        try:
            yield tree
        finally:
            git("worktree", "remove", "--force", str(tree))


def tree_environment(tree: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment in which `python -m app...` runs the code of `tree`."""
    return {**os.environ, "PYTHONPATH": str(tree), **(extra or {})}
