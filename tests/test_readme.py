"""The README walked as a newcomer would: every command block in it says how it is checked
(an HTML comment `<!-- walk: ... -->` just before it), and this test holds it to that:

- `run`: run here as written, after the two set-up commands (the server the first block starts
  is the one the curl examples call; `./scripts/test` is this very suite);
- a test file (`tests/...py`): that test runs the block's lines itself;
- `needs gpu` / `needs docker`: not run here (hours on a CPU, or no Docker engine); every
  `./scripts/train` and `./scripts/predict` line is still parsed by the real command line, so
  the README cannot drift from it.
"""

import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).parents[1]
MARKER = re.compile(r"^\s*<!-- walk: (.+?) -->\s*$")
KINDS = ("run", "needs gpu", "needs docker")


@dataclass(frozen=True)
class CommandBlock:
    how: str | None
    lines: tuple[str, ...]
    starts_at: int


def command_blocks(text: str) -> list[CommandBlock]:
    """Indented code blocks (4 spaces, or 6 inside a list item) after a blank line; a command
    continued with a backslash is one line; the marker is within the three lines above."""
    blocks: list[CommandBlock] = []
    lines = text.splitlines()
    index = 1
    while index < len(lines):
        line = lines[index]
        indent = len(line) - len(line.lstrip(" "))
        opens = not lines[index - 1].strip() and line.strip()
        if not (opens and indent in (4, 6) and not line.lstrip().startswith(("-", "|", "<"))):
            index += 1
            continue
        start = index
        body: list[str] = []
        while index < len(lines) and (
            lines[index].startswith(" " * indent) or not lines[index].strip()
        ):
            if lines[index].strip():
                body.append(" ".join(lines[index].split()))
            index += 1
        markers = [MARKER.match(lines[k]) for k in range(max(start - 3, 0), start)]
        how = next((m.group(1) for m in reversed(markers) if m), None)
        blocks.append(CommandBlock(how, tuple(_join_continuations(body)), start + 1))
    return blocks


def _join_continuations(lines: list[str]) -> list[str]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        joined.append(pending + line)
        pending = ""
    return joined


@pytest.fixture(scope="module")
def blocks() -> list[CommandBlock]:
    return command_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_every_command_block_says_how_it_is_checked(blocks):
    assert len(blocks) >= 6
    for block in blocks:
        assert block.how is not None, f"README line {block.starts_at}: no <!-- walk: ... --> marker"
        if block.how.startswith("tests/"):
            test_file = ROOT / block.how
            assert test_file.is_file(), block.how
            # The named test runs these lines: it names each line's program.
            source = test_file.read_text(encoding="utf-8")
            for line in block.lines:
                program = next(word for word in shlex.split(line) if "=" not in word)
                assert Path(program).name in source, (block.how, line)
        else:
            assert block.how in KINDS, (block.starts_at, block.how)


def program_parsers():
    from app.cli.predict import build_parser as predict_parser
    from training.cli import build_parser as training_parser

    return {"./scripts/train": training_parser(), "./scripts/predict": predict_parser()}


def test_commands_not_run_here_are_still_valid_command_lines(blocks, capsys):
    parsers = program_parsers()
    checked = 0
    for block in blocks:
        if block.how not in ("needs gpu", "needs docker"):
            continue
        for line in block.lines:
            words = shlex.split(line, comments=True)
            if words[0] in parsers:
                try:
                    parsers[words[0]].parse_args(words[1:])
                except SystemExit:
                    pytest.fail(f"README: {line!r} is refused: {capsys.readouterr().err}")
                checked += 1
            else:
                assert words[0] == "docker", line
    assert checked >= 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_example_images(folder: Path, cnmc_root: Path) -> None:
    """The files the curl examples name, from real fixture cells."""
    cells = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    for name, cell in zip(("cell.bmp", "a.bmp", "b.png"), cells, strict=False):
        image = cv2.imread(str(cell), cv2.IMREAD_COLOR)
        assert cv2.imwrite(str(folder / name), image)


def test_the_commands_marked_run_run_as_written(blocks, cnmc_root, tmp_path, serve_in_session):
    runnable = [line for block in blocks if block.how == "run" for line in block.lines]
    assert runnable[:2] == [
        "./scripts/serve # serve the app on the bundled model at http://127.0.0.1:8000",
        "./scripts/test # run the whole test suite (lint, unit, end-to-end, browser)",
    ]
    write_example_images(tmp_path, cnmc_root)
    port = free_port()
    # The README's own serve command, on a free port (LEUKOLENS_PORT, as the README says).
    env = {
        **os.environ,
        "LEUKOLENS_PORT": str(port),
        "LEUKOLENS_AUDIT_LOG_PATH": str(tmp_path / "a.db"),
    }
    serve = shlex.split(runnable[0], comments=True)
    # A first run of ./scripts/serve installs the extra: 300 s to become ready.
    with serve_in_session(serve, port, 300, "./scripts/serve", cwd=ROOT, env=env) as base:
        # runnable[1] is ./scripts/test: the suite this test is part of.
        for line in runnable[2:]:
            words = shlex.split(line.replace("http://127.0.0.1:8000", base), comments=True)
            assert words[0] == "curl", line
            result = subprocess.run(
                [*words, "--silent", "--show-error", "--fail-with-body"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, (line, result.stdout, result.stderr)
            assert result.stdout.strip(), line
