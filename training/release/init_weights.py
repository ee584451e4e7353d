"""The weights a network started from, as a card names them: the package and version that
ship the file (where it came from an installed package) and its sha256, never the path on the
machine that trained it (`.venv/lib/python3.11/site-packages/...` says nothing to a reader)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from app.core.manifest import InitWeights, file_sha256

SITE_PACKAGES = ("site-packages", "dist-packages")


def describe_init_weights(path: Path) -> InitWeights:
    package = version = None
    parts = path.resolve().parts if path.exists() else path.parts
    for position, part in enumerate(parts[:-1]):
        if part in SITE_PACKAGES and position + 1 < len(parts) - 1:
            top_level = parts[position + 1]
            names = metadata.packages_distributions().get(top_level, [])
            if names:
                package = names[0]
                version = metadata.version(package)
            break
    return InitWeights(
        file=path.name, sha256=file_sha256(path), package=package, package_version=version
    )


def without_local_path(value: object, path: Path, weights: InitWeights) -> object:
    """`value` (a command line or a saved config, nested) with `path` named portably."""
    if isinstance(value, str):
        return value.replace(str(path), weights.portable_name())
    if isinstance(value, dict):
        return {key: without_local_path(item, path, weights) for key, item in value.items()}
    if isinstance(value, list):
        return [without_local_path(item, path, weights) for item in value]
    return value
