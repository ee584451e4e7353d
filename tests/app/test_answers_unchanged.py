"""The answers stay what they were: the 18 fixture cells and a set of hostile uploads, through
/api/v1/predict, /api/v1/predict/batch and the batch command line, on the bundled model store,
against a golden file made from the code before app/ was split into packages.

The golden file keeps the command line's refusals as they were written then ("413: reason");
the command line now writes the refusal's kind ("too_large: reason"), so each kind is mapped to
its HTTP status through the web layer's one mapping before the two are compared.

Regenerate (only when an answer is meant to change): LEUKOLENS_WRITE_GOLDEN=1 pytest this file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from tests.app.web.api.test_hostile_uploads import CASES

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden_answers.json"
VOLATILE = {"request_id", "timings_ms", "time"}
WRITE = os.environ.get("LEUKOLENS_WRITE_GOLDEN") == "1"
# A representative set: truncated files, text, bombs, 16-bit, scan and tile bombs, odd shapes.
HOSTILE = [
    "empty",
    "truncated png",
    "truncated bmp",
    "truncated tiff",
    "png sent as text/plain",
    "plain text",
    "text as octet-stream",
    "compression bomb",
    "png header claiming 100000x100000",
    "jpeg header claiming 7000x7000",
    "rle bmp claiming 7000x7000",
    "16-bit rgba png 1000x1000 (8 MB decoded)",
    "16-bit png",
    "progressive jpeg scan bomb (200,000 scans)",
    "tiff with a 16368-px tile for 1024x1024",
    "tiff with one 256-px tile",
    "1x4000 png",
    "grayscale png",
    "float tiff",
    "animated gif",
    "zip archive",
]


def stable(value):
    """The answer without what changes from run to run."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [stable(item) for item in value]
    return value


def assert_same(actual, expected, where="") -> None:
    """Equal, floats to 1e-6 (onnxruntime's kernels may round differently on another CPU)."""
    if isinstance(expected, float) and isinstance(actual, int | float):
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-7), where
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert actual.keys() == expected.keys(), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), where
        assert len(actual) == len(expected), where
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def cells(cnmc_root: Path) -> list[Path]:
    return sorted(cnmc_root.rglob("*.png"))


def api_answers(client, cnmc_root: Path) -> dict:
    single = {}
    for path in cells(cnmc_root):
        response = client.post(
            "/api/v1/predict", files={"file": (path.name, path.read_bytes(), "image/png")}
        )
        single[path.name] = {"status": response.status_code, "body": stable(response.json())}
    for name in HOSTILE:
        data, content_type, _ = CASES[name]
        response = client.post("/api/v1/predict", files={"file": ("upload", data, content_type)})
        single[name] = {"status": response.status_code, "body": stable(response.json())}
    batches = {}
    fixture_files = [("files", (p.name, p.read_bytes(), "image/png")) for p in cells(cnmc_root)]
    hostile_files = [
        ("files", (name, CASES[name][0], CASES[name][1] or "application/octet-stream"))
        for name in HOSTILE
    ]
    # A few per request: the batch body's limit is a few files at the per-file limit.
    groups = {"cells": fixture_files}
    for start in range(0, len(hostile_files), 4):
        groups[f"hostile {start // 4}"] = [fixture_files[0], *hostile_files[start : start + 4]]
    for name, files in groups.items():
        response = client.post("/api/v1/predict/batch", files=files)
        batches[name] = {"status": response.status_code, "body": stable(response.json())}
    return {"predict": single, "batch": batches}


def cli_tables(cnmc_root: Path, tmp_path: Path) -> dict:
    from app.cli.predict import main

    folder = tmp_path / "sample-1"
    folder.mkdir()
    for path in cells(cnmc_root):
        shutil.copy(path, folder / path.name)
    for index, name in enumerate(HOSTILE):
        (folder / f"hostile-{index:02d}.png").write_bytes(CASES[name][0])
    out, samples_out = tmp_path / "results.csv", tmp_path / "samples.csv"
    code = main(
        [str(folder), "--out", str(out), "--samples-out", str(samples_out), "--workers", "2"]
    )
    assert code == 0
    with out.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        row["filename"] = Path(row["filename"]).name
    with samples_out.open(encoding="utf-8") as stream:
        samples = list(csv.DictReader(stream))
    return {"results": rows, "samples": samples}


def refusal_as_status(error: str) -> str:
    """ "kind: reason" written now, as "status: reason" it was written before."""
    if not error:
        return error
    from app.core.domain.outcomes import RefusalKind
    from app.web.errors import STATUS_FOR_REFUSAL

    kind, _, reason = error.partition(": ")
    return f"{STATUS_FOR_REFUSAL[RefusalKind(kind)]}: {reason}"


@pytest.fixture(scope="module")
def golden() -> dict:
    if WRITE:
        return {}
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_api_answers_as_before(bundled_client, cnmc_root, golden):
    answers = api_answers(bundled_client, cnmc_root)
    if WRITE:
        stored = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
        GOLDEN.write_text(json.dumps({**stored, "api": answers}, indent=1) + "\n")
        return
    assert_same(answers, golden["api"], "api")


def test_the_command_line_writes_what_it_wrote(cnmc_root, tmp_path, golden, monkeypatch):
    monkeypatch.delenv("LEUKOLENS_MODEL_STORE", raising=False)
    tables = cli_tables(cnmc_root, tmp_path)
    if WRITE:
        stored = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
        GOLDEN.write_text(json.dumps({**stored, "cli": tables}, indent=1) + "\n")
        return
    if not any(row["error"][:3].isdigit() for row in tables["results"] if row["error"]):
        for row in tables["results"]:
            row["error"] = refusal_as_status(row["error"])
    assert_same(tables, golden["cli"], "cli")
