"""The suite runs against pinned versions: constraints.txt pins every dependency, and the
environment scripts install with it (a fresh resolve could otherwise break a suite in which
warnings are errors)."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).parents[1]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {
        canonical(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
        for requirement in requirements
    }


def test_every_dependency_is_pinned_to_one_version():
    pins = pinned()
    assert declared() <= set(pins)
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version) for version in pins.values())


def test_the_environment_scripts_install_with_the_constraints():
    venv_script = (ROOT / "scripts" / "_venv.sh").read_text()
    assert '--constraint "$constraints"' in venv_script
    assert "constraints.txt" in venv_script.split("stamp=")[0]  # a new pin reinstalls
    assert 'PIP_CONSTRAINT="$PWD/constraints.txt"' in (ROOT / ".ci" / "run").read_text()


def test_the_suite_runs_on_the_pinned_versions():
    for name, version in pinned().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # platform-specific wheels (CUDA) absent here
        assert installed == version, name
