"""Absolute paths of the machine that wrote a card or an answer, made portable: a card
travels, the folders it was made in do not (and can name people or machines)."""

from __future__ import annotations

import re
from pathlib import Path

# An absolute path in free text: not glued to a word, a URL or another path.
_NAME = r"[^\s/'\",;()\[\]]+"  # a path component: up to a space, quote or punctuation
ABSOLUTE_PATH = re.compile(rf"(?<![\w.~:/-])/{_NAME}(?:/{_NAME})*")
# What may continue a path after a space ("/home/Jane Doe/cnmc"), slashes included.
_AFTER_SPACE = re.compile(r" [^\s'\",;()\[\]]+")


def portable_path_text(text: str, *, base: Path | None = None) -> str:
    """Absolute paths of the writing machine become relative to `base` (default: the current
    folder) when inside it, else "…/<name>": a card travels, the folders it was made in do not
    (and can name people or machines). Only paths whose top folder exists here are touched, so
    an API route such as /api/v1 in a sentence stays."""
    here = (base or Path.cwd()).resolve()
    pieces: list[str] = []
    position = 0
    for match in ABSOLUTE_PATH.finditer(text):
        if match.start() < position:
            continue  # inside a path already taken whole (one with spaces)
        path = Path(match.group(0))
        if len(path.parts) < 2 or not Path(path.anchor, path.parts[1]).exists():
            continue
        end = match.end()
        # A folder name with spaces ("/home/Jane Doe/cnmc") is one path where it exists here.
        while (more := _AFTER_SPACE.match(text, end)) and Path(
            text[match.start() : more.end()]
        ).exists():
            end = more.end()
        path = Path(text[match.start() : end])
        shortened = (
            str(path.relative_to(here)) or "." if path.is_relative_to(here) else f"…/{path.name}"
        )
        pieces += [text[position : match.start()], shortened]
        position = end
    return "".join(pieces) + text[position:]


def portable_paths(value: object) -> object:
    """`value` (strings, lists and mappings, nested) with every path made portable."""
    if isinstance(value, str):
        return portable_path_text(value)
    if isinstance(value, list):
        return [portable_paths(item) for item in value]
    if isinstance(value, dict):
        return {key: portable_paths(item) for key, item in value.items()}
    return value
