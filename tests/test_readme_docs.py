"""The docs kept true to the code they describe: the README stays a front door, the settings
table names every setting, the API page every endpoint, every benchmark result is cited where
its numbers are discussed, and every link between the docs lands on a file and a heading."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS]
LINK = re.compile(r"\]\(([^)\s]+)\)")
PATH_PARAMETER = re.compile(r"\{[^}]*\}")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_readme_is_a_front_door():
    assert len(text(ROOT / "README.md").splitlines()) <= 200


def documented_settings() -> set[str]:
    section = text(ROOT / "docs/deployment.md").split("\n## Settings\n", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `LEUKOLENS_")]
    return {
        name
        for row in rows
        for name in re.findall(r"`(LEUKOLENS_[A-Z0-9_]+)`", row.split(" | ")[0])
    }


def test_the_settings_table_names_every_setting_and_no_other():
    from app.settings import Settings

    fields = {f"LEUKOLENS_{name.upper()}" for name in Settings.model_fields}
    assert documented_settings() == fields


def test_every_endpoint_of_the_api_is_documented():
    from app.main import create_app
    from app.settings import Settings

    schema = create_app(Settings()).openapi()
    api_page = PATH_PARAMETER.sub("{}", text(ROOT / "docs/api.md"))
    endpoints = [
        f"{method.upper()} {PATH_PARAMETER.sub('{}', path)}"
        for path, operations in schema["paths"].items()
        for method in operations
    ]
    assert len(endpoints) >= 17
    assert [endpoint for endpoint in endpoints if endpoint not in api_page] == []


def test_every_benchmark_result_is_named_in_a_doc():
    """A result file nobody cites is a number nobody can read: cite it where its numbers are
    discussed, or remove it (git keeps it)."""
    cited = "\n".join(text(page) for page in PAGES)
    results = sorted((ROOT / "bench/results").glob("*.json"))
    assert results
    uncited = [
        path.name
        for path in results
        if not re.search(rf"(?<![\w-]){re.escape(path.stem)}(?![\w-])", cited)
    ]
    assert uncited == []


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    words = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return words.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = text(path).splitlines()
    fenced = False
    found = set()
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.add(github_anchor(line.lstrip("#")))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_lands_on_a_file_and_a_heading(page):
    broken = []
    for target in LINK.findall(text(page)):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        lands = linked.exists() and (
            not anchor or linked.suffix != ".md" or anchor in anchors(linked)
        )
        if not lands:
            broken.append(target)
    assert broken == []
