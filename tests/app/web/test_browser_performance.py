"""The local performance page in Debian's Chromium: its SVG plots render, axe-core finds no
serious violation, it works at 390 px and prints to one page; and the lab CSV of a sample
agrees cell for cell with the cells the figures count."""

import csv
import io
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.core.manifest import load_manifest, write_manifest
from app.core.model_registry import record_model
from app.records.performance_read import Selection, counted_cells, open_existing
from bench.seeded_records import SeededLab, migrated_engine, seed
from tests.app.web.api.routes.test_performance import UNSEEN
from tests.app.web.test_browser_ui import AXE, analyse, axe_violations, shot, wait_for_stored
from tests.conftest import write_channel_mean_model

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def performance_server(module_server_launcher, tmp_path_factory) -> tuple[str, Path]:
    """A server whose records hold 3 months of a lab's reviews, the model's sensitivity
    falling from 0.92 to 0.42 against its card's 0.80 to 0.97."""
    folder = tmp_path_factory.mktemp("performance")
    store = folder / "store"
    model_dir = write_channel_mean_model(store / "redness", (8.0, 0.0, 0.0))
    write_manifest(load_manifest(model_dir).model_copy(update={"evaluations": [UNSEEN]}), model_dir)
    record_model(store, model_dir, default=True)
    database = folder / "audit.sqlite3"
    engine = migrated_engine(f"sqlite:///{database}")
    lab = SeededLab(
        samples=90,
        cells_per_sample=40,
        start=time.time() - 92 * 86400,
        days=91,
        model_id="redness",
        sensitivity=0.92,
        sensitivity_drift=-0.5,
        specificity=0.62,
    )
    seed(engine, lab)
    engine.dispose()
    base = module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(store),
        LEUKOLENS_AUDIT_LOG_PATH=str(database),
        LEUKOLENS_PERFORMANCE_REFRESH_SECONDS="0.5",
    )
    return base, database


def test_three_months_by_week_render_as_plots_with_bands_and_a_warning(page, performance_server):
    base, _ = performance_server
    page.goto(f"{base}/performance?period=week")
    for name in ("sensitivity", "specificity", "balanced_accuracy"):
        plot = page.locator(f"#plot-{name}")
        assert plot.is_visible()
        box = plot.bounding_box()
        assert box["width"] > 200
        assert box["height"] > 80
        assert plot.locator("rect.card-band").count() == 1
        assert plot.locator("g.local-point").count() >= 12
    assert page.locator("#performance-alert").is_visible()
    assert "does worse here than its card says" in page.locator("#performance-alert").inner_text()
    assert (
        "cells your reviewers confirmed ALL-like" in page.locator("#confusion-words").inner_text()
    )
    assert page.locator("#narrowing li").count() == 3
    assert "./scripts/train adapt" in page.locator("#adaptation-readiness").inner_text()
    shot(page, "performance-3-months.png")
    if AXE.exists():
        assert axe_violations(page) == []
    page.emulate_media(media="print")
    from pypdf import PdfReader

    pdf = page.pdf(format="A4")
    (Path(__file__).parents[3] / "artifacts" / "browser" / "performance.pdf").write_bytes(pdf)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_it_works_at_390_px(browser, performance_server):
    base, _ = performance_server
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{base}/performance?period=month")
        wide = page.evaluate(
            "[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 390)"
            ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)"
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
        assert page.locator("#plot-sensitivity").bounding_box()["width"] <= 390
        # Dates and figures stay whole (they broke into "202 / 6- / 12- / 01"): the tables
        # scroll sideways instead.
        broken = page.evaluate(
            "[...document.querySelectorAll('#periods-table td, #rates-table td')]"
            ".filter(e => { const r = document.createRange(); r.selectNodeContents(e);"
            " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size > 1; })"
            ".map(e => e.textContent.trim()).slice(0, 5)"
        )
        assert broken == []
        shot(page, "performance-phone.png")
        if AXE.exists():
            assert axe_violations(page) == []
    finally:
        context.close()


def red_cells(folder: Path, count: int) -> list[Path]:
    """Round red cells on black, large ones called ALL-like, small ones normal."""
    paths = []
    for index in range(count):
        image = np.zeros((64, 64, 3), np.uint8)
        cv2.circle(image, (32, 32), 8 + 4 * (index % 6), (60, 60, 255), -1)  # BGR
        image[32, 32] = (index, 0, 255)
        path = folder / f"cell-{index}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_the_lab_csv_agrees_cell_for_cell_with_the_counted_cells(
    page, performance_server, tmp_path
):
    base, database = performance_server
    page.goto(base)
    analyse(page, red_cells(tmp_path, 6), sample_id="LAB-CSV", reviewer="Dr CSV")
    page.locator("#gallery .thumb").first.click()
    for key in ["a", "n", "a", "x", "n"]:  # five decided, the sixth left undecided
        page.keyboard.press(key)
    wait_for_stored(page, 5)
    with page.expect_download() as download:
        page.click("#csv-button")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    rows = [row for row in rows if row["status"] != "summary"]
    from_csv = {
        row["image_sha256"]: (row["label"], row["decision"])
        for row in rows
        if row["assessable"] == "true" and row["decision"] in ("ALL", "HEM")
    }
    engine = open_existing(database)
    with engine.connect() as connection:
        counted = [
            c
            for c in counted_cells(connection, Selection("redness", "1"))
            if c.sample_id == "LAB-CSV"
        ]
    engine.dispose()
    assert {c.image_sha256: (c.label, c.decision) for c in counted} == from_csv
    assert len(from_csv) == 4  # two ALL, two normal; the not-assessable decision left out
    assert {label for label, _ in from_csv.values()} == {"ALL", "HEM"}
