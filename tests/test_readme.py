"""The README and the docs by reader walked as a newcomer would: every command block in them
says how it is checked (an HTML comment `<!-- walk: ... -->` just before it), and this test
holds it to that:

- `run`: run here as written. The README's first block starts the server (`./scripts/test`
  beside it is this very suite); then each file's other `run` blocks run against that server,
  in the order of `WALKED`, each file's blocks as one shell session (a variable set in one
  block is there in the next, as in a reader's terminal), from the repository's root;
- a test file (`tests/...py`): that test runs the block's lines itself;
- `serves`: a server command that keeps its terminal; parsed by `./scripts/serve`'s parser;
- `suite`: a part of `./scripts/test`, which runs it; the paths it names exist;
- `needs gpu` / `docker` / `kubernetes` / `postgresql` / `root`: not run here (hours on a CPU,
  no Docker engine or cluster, a real database, root); every line of this project's commands
  is still parsed by the real command line, and every file of the repository a line names
  exists, so the docs cannot drift from them.
"""

import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
WALKED = (
    "README.md",
    "docs/usage.md",
    "docs/api.md",
    "docs/deployment.md",
    "docs/development.md",
    "docs/models.md",
)
MARKER = re.compile(r"^\s*<!-- walk: (.+?) -->\s*$")
ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
NEEDS = ("gpu", "docker", "kubernetes", "postgresql", "root")
NOT_RUN = ("serves", "suite", *(f"needs {what}" for what in NEEDS))
# Programs of other projects a `needs ...` line may call; their arguments are not parsed here.
OTHER_PROGRAMS = {"docker", "kubectl", "psql", "apt-get", "command"}
# Every curl of a walked block fails on an HTTP error, and on an empty answer other than 204.
CURL_CHECKED = """
curl() {
    local answer status
    answer=$(command curl --silent --show-error --fail-with-body --write-out '\\n%{http_code}' "$@") || {
        printf 'curl %s failed: %s\\n' "$*" "$answer" >&2; return 1; }
    status=${answer##*$'\\n'}
    answer=${answer%$'\\n'*}
    if [ -n "$answer" ]; then printf '%s\\n' "$answer"
    elif [ "$status" != 204 ]; then printf 'curl %s: an empty answer\\n' "$*" >&2; return 1; fi
}
"""


@dataclass(frozen=True)
class CommandBlock:
    how: str | None
    lines: tuple[str, ...]
    starts_at: int
    text: str


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
        raw: list[str] = []
        while index < len(lines) and (
            lines[index].startswith(" " * indent) or not lines[index].strip()
        ):
            if lines[index].strip():
                body.append(" ".join(lines[index].split()))
                raw.append(lines[index][indent:])
            index += 1
        markers = [MARKER.match(lines[k]) for k in range(max(start - 3, 0), start)]
        how = next((m.group(1) for m in reversed(markers) if m), None)
        blocks.append(
            CommandBlock(how, tuple(_join_continuations(body)), start + 1, "\n".join(raw))
        )
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


def blocks_of(name: str) -> list[CommandBlock]:
    return command_blocks((ROOT / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def blocks() -> dict[str, list[CommandBlock]]:
    return {name: blocks_of(name) for name in WALKED}


def test_the_walk_finds_the_blocks_it_should(blocks):
    counts = {name: len(found) for name, found in blocks.items()}
    assert counts["README.md"] >= 3
    assert all(counts.values()), counts
    runnable = {name: [b for b in found if b.how == "run"] for name, found in blocks.items()}
    assert len(runnable["docs/api.md"]) >= 5  # every area of the API, by example


@pytest.mark.parametrize("name", WALKED)
def test_every_command_block_says_how_it_is_checked(name, blocks):
    for block in blocks[name]:
        assert block.how is not None, f"{name} line {block.starts_at}: no <!-- walk: ... -->"
        if block.how.startswith("tests/"):
            test_file = ROOT / block.how
            assert test_file.is_file(), block.how
            # The named test runs these lines: it names each line's program.
            source = test_file.read_text(encoding="utf-8")
            for line in block.lines:
                program = next(word for word in shlex.split(line) if "=" not in word)
                assert Path(program).name in source, (block.how, line)
        else:
            assert block.how in ("run", *NOT_RUN), (name, block.starts_at, block.how)


def program_parsers():
    from app.__main__ import build_parser as serve_parser
    from app.cli.predict import build_parser as predict_parser
    from app.records.__main__ import build_parser as records_parser
    from app.settings import Settings
    from training.cli import build_parser as training_parser

    return {
        "./scripts/train": training_parser(),
        "./scripts/predict": predict_parser(),
        "./scripts/serve": serve_parser(Settings()),
        "python -m app.records": records_parser(),
    }


def settings_named(words: list[str]) -> list[str]:
    """The words after the leading VARIABLE=value ones, which are checked: a LEUKOLENS_ one
    must be a setting."""
    from app.settings import Settings

    fields = {f"LEUKOLENS_{name.upper()}" for name in Settings.model_fields}
    count = 0
    while count < len(words) and ASSIGNMENT.match(words[count]):
        variable = words[count].split("=", 1)[0]
        assert not variable.startswith("LEUKOLENS_") or variable in fields, words[count]
        count += 1
    return words[count:]


def repository_paths_exist(words: list[str]) -> None:
    for word in words:
        candidate = word.split("=", 1)[-1]
        if candidate.startswith(("deploy/", "tests/", "scripts/", "docs/")):
            assert (ROOT / candidate).exists(), word


def test_commands_not_run_here_are_still_valid_command_lines(blocks, capsys):
    parsers = program_parsers()
    checked = 0
    for name, found in blocks.items():
        for block in found:
            if block.how not in NOT_RUN:
                continue
            for line in block.lines:
                words = settings_named(shlex.split(line, comments=True))
                repository_paths_exist(words)
                program = " ".join(words[:3]) if words[0] == "python" else words[0]
                if block.how == "suite":
                    assert program == "./scripts/test", (name, line)
                elif program in parsers:
                    arguments = words[3:] if words[0] == "python" else words[1:]
                    try:
                        parsers[program].parse_args(arguments)
                    except SystemExit:
                        pytest.fail(f"{name}: {line!r} is refused: {capsys.readouterr().err}")
                else:
                    assert program in OTHER_PROGRAMS, (name, line)
                checked += 1
    assert checked >= 25


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_of(name: str, base: str, skip_first: bool) -> str:
    """A file's `run` blocks as one shell session against the server at `base`."""
    runnable = [block for block in blocks_of(name) if block.how == "run"]
    texts = [block.text for block in runnable[1 if skip_first else 0 :]]
    return "\n".join(texts).replace("http://127.0.0.1:8000", base)


def test_the_commands_marked_run_run_as_written(blocks, tmp_path, serve_in_session):
    first = next(block for block in blocks["README.md"] if block.how == "run")
    assert first.lines == (
        "./scripts/serve # serve the app on the bundled model at http://127.0.0.1:8000",
        "./scripts/test # run every check (lint, types, unit, end-to-end, browser)",
    )
    port = free_port()
    # The README's own serve command, on a free port (LEUKOLENS_PORT, as the README says).
    env = {
        **os.environ,
        "LEUKOLENS_PORT": str(port),
        "LEUKOLENS_AUDIT_LOG_PATH": str(tmp_path / "a.db"),
    }
    serve = shlex.split(first.lines[0], comments=True)
    top_level = set(ROOT.iterdir())
    # A first run of ./scripts/serve installs the extra: 300 s to become ready.
    with serve_in_session(serve, port, 300, "./scripts/serve", cwd=ROOT, env=env) as base:
        # first.lines[1] is ./scripts/test: the suite this test is part of.
        try:
            for name in WALKED:
                session = session_of(name, base, skip_first=name == "README.md")
                if not session:
                    continue
                script = f"set -euo pipefail\n{CURL_CHECKED}\n{session}\n"
                result = subprocess.run(
                    ["bash", "-c", script],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                assert result.returncode == 0, (name, result.stdout[-3000:], result.stderr)
        finally:
            # What the examples wrote (./scripts/predict's CSVs) leaves the checkout again.
            for path in set(ROOT.iterdir()) - top_level:
                assert path.is_file(), path
                path.unlink()
    written = [path.name for path in set(ROOT.iterdir()) - top_level]
    assert written == []
