"""The review workstation in a real browser: Debian's Chromium driven by Playwright, offline."""

import csv
import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import cv2
import httpx
import pytest

ROOT = Path(__file__).parents[3]
ARTIFACTS = ROOT / "artifacts" / "browser"
AXE = ROOT / "tests" / "browser_tools" / "node_modules" / "axe-core" / "axe.min.js"
BATCH_ROUTE = "**/api/v1/predict/batch*"

pytestmark = pytest.mark.browser


def fixture_cells(cnmc_root) -> list[Path]:
    return sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))


def distinct_cells(cnmc_root, folder: Path, count: int) -> list[Path]:
    """`count` different real cells: the 18 fixtures, then their mirror images."""
    cells = fixture_cells(cnmc_root)
    made = list(cells[:count])
    for index, path in enumerate(cells * 2):
        if len(made) >= count:
            break
        image = cv2.imread(str(path))
        flipped = folder / f"flip{index}_{path.name}"
        cv2.imwrite(str(flipped), cv2.flip(image, 1 if index < len(cells) else 0))
        made.append(flipped)
    return made


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def analyse(page, files, *, sample_id: str | None = None, reviewer: str = "A. Tech") -> None:
    if sample_id is not None:
        page.fill("#sample-id", sample_id)
    page.fill("#reviewer", reviewer)
    page.set_input_files("#file-input", [str(p) for p in files])
    page.click("#analyse-button")
    wait_for_run_end(page)


def wait_for_run_end(page, timeout_ms: int = 60_000) -> None:
    page.locator("#cancel-button").wait_for(state="hidden", timeout=timeout_ms)
    page.locator("#status").filter(has_text="Done").wait_for(timeout=timeout_ms)


def wait_for_stored(page, decisions: int, timeout_ms: int = 30_000) -> None:
    """Until the sample's counts hold `decisions` decisions stored on the server (pending ones
    are never counted)."""
    page.locator(f"#sample-counts[data-stored='{decisions}']").wait_for(
        state="attached", timeout=timeout_ms
    )


def gallery_rows(page) -> list[dict[str, str]]:
    return [
        {
            "filename": thumb.get_attribute("data-filename"),
            "sha256": thumb.get_attribute("data-sha256"),
            "key": thumb.get_attribute("data-key"),
        }
        for thumb in page.locator("#gallery .thumb").all()
    ]


def hold_first(held: list):
    """A route handler that holds the first matching request and lets the rest through."""

    def handle(route) -> None:
        if held:
            route.continue_()
        else:
            held.append(route)

    return handle


def shot(target, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    whole = {"full_page": True} if hasattr(target, "goto") else {}
    target.screenshot(path=str(ARTIFACTS / name), **whole)


def test_one_real_cell_with_views_and_a_faint_honest_heatmap(page, start_server, cnmc_root):
    base = start_server()  # the bundled model store, as the README's serve command
    external_requests = []
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith((base, "data:", "blob:")) else external_requests.append(r.url)
        ),
    )
    page.goto(base)
    assert "not a diagnosis" in page.locator(".notice").inner_text()
    cell = cnmc_root / "training_data/fold_1/all/UID_16_11_1_all.png"
    analyse(page, [cell])
    card = page.locator("#detail .result-card")
    assert card.locator(".result-file").inner_text() == cell.name
    answer = httpx.post(
        f"{base}/api/v1/predict?explain=true", files={"file": (cell.name, cell.read_bytes())}
    ).json()
    words = {"suggests_all": "suggests ALL-like", "suggests_normal": "suggests normal"}
    assert card.locator(".badge").inner_text() == words.get(answer["state"], answer["state"])
    assert (
        f"{answer['probability_all'] * 100:.1f}%" in card.locator(".probability-text").inner_text()
    )
    assert "quality warning" in card.locator(".warning-count").inner_text()
    for view in ("original", "enhanced", "cropped"):
        image = card.locator(f".view-{view}")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    # The heatmap is off until asked for; then it comes with a legend and its grid size.
    heat = card.locator(".view-heat")
    assert heat.is_hidden()
    assert card.locator(".heat-legend").is_hidden()
    card.locator(".heat-toggle").check()
    assert heat.is_visible()
    assert "scaled within this image" in card.locator(".heat-legend").inner_text()
    assert "8 \u00d7 8 cells" in card.locator(".heat-grid").inner_text()  # 128 px input, 1/16
    share = card.locator(".heat-share")
    explanation = answer["explanation"]
    assert f"{explanation['heat_in_cell'] * 100:.1f}% of the heat on the cell" in share.inner_text()
    assert ("below the 90% a map needs" in share.inner_text()) == (explanation["on_cell"] is False)
    # Enlarging shows the upload itself, at its native resolution.
    card.locator(".enlarge").click()
    enlarged = page.locator("#enlarge-image")
    enlarged.wait_for()
    assert enlarged.evaluate("img => img.naturalWidth") == cv2.imread(str(cell)).shape[1]
    page.click("#enlarge-close")
    shot(page.locator("#detail-section"), "detail-pane.png")
    assert external_requests == []


def test_files_chosen_mid_run_never_take_over_the_running_rows(page, review_server, cnmc_root):
    cells = fixture_cells(cnmc_root)
    first, second = cells[:10], cells[10:15]
    page.goto(review_server)
    page.fill("#reviewer", "A. Tech")
    held = []
    page.route(BATCH_ROUTE, hold_first(held))  # until new files are chosen
    page.set_input_files("#file-input", [str(p) for p in first])
    page.click("#analyse-button")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the batch request never left the page"
    assert page.locator("#cancel-button").is_visible()
    page.set_input_files("#file-input", [str(p) for p in second])  # mid-run
    assert page.locator("#analyse-button").is_disabled()
    assert "ready once the current analysis ends" in page.locator("#file-summary").inner_text()
    held[0].continue_()
    wait_for_run_end(page)
    assert not page.locator("#analyse-button").is_disabled()  # the queued selection waits
    page.click("#analyse-button")
    page.locator("#gallery .thumb").nth(14).wait_for(timeout=60_000)
    wait_for_run_end(page)
    rows = gallery_rows(page)
    by_name = {p.name: p for p in first + second}
    assert sorted(r["filename"] for r in rows) == sorted(by_name)
    for row in rows:  # every row holds its own image's result
        assert row["sha256"] == sha256(by_name[row["filename"]])
        assert row["key"].endswith(row["sha256"])
    # Opening a row shows the stored answer: no new prediction is requested.
    predictions_sent = []
    page.on("request", lambda r: predictions_sent.append(r.url) if "/predict" in r.url else None)
    for index in (0, 7, 13):
        thumb = page.locator("#gallery .thumb").nth(index)
        thumb.click()
        name = thumb.get_attribute("data-filename")
        card = page.locator("#detail .result-card")
        assert card.locator(".result-file").inner_text() == name
        assert card.locator(".meta").get_attribute("data-sha256") == sha256(by_name[name])
        expected = httpx.post(
            f"{review_server}/api/v1/predict/batch",
            files=[("files", (name, by_name[name].read_bytes()))],
        ).json()["results"][0]["prediction"]["probability_all"]
        if card.locator(".show-anyway").is_visible():
            card.locator(".show-anyway").click()
        assert f"{expected * 100:.1f}%" in card.locator(".probability-text").inner_text()
    assert predictions_sent == []


def test_cancel_keeps_nothing_from_the_cancelled_request(page, review_server, cnmc_root):
    page.goto(review_server)
    held = []
    page.route(BATCH_ROUTE, hold_first(held))
    page.set_input_files("#file-input", [str(p) for p in fixture_cells(cnmc_root)[:3]])
    page.click("#analyse-button")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    page.click("#cancel-button")
    page.locator("#status").filter(has_text="Cancelled").wait_for()
    assert page.locator("#gallery .thumb").count() == 0
    assert page.locator("#cancel-button").is_hidden()


def test_too_many_files_are_refused_before_uploading(page, review_server, tmp_path, cnmc_root):
    source = fixture_cells(cnmc_root)[0]
    files = [tmp_path / f"c{i}.png" for i in range(65)]
    for path in files:
        shutil.copyfile(source, path)
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/predict" in r.url else None)
    page.goto(review_server)
    page.set_input_files("#file-input", [str(p) for p in files])
    page.click("#analyse-button")
    alert = page.locator("#alert")
    alert.wait_for()
    assert "65 files chosen; at most 64" in alert.inner_text()
    assert alert.evaluate("e => getComputedStyle(e).color") != "rgb(180, 35, 24)"  # not ALL red
    assert sent == []


def test_keyboard_review_of_a_30_cell_sample_is_stored_on_the_server(
    page, review_server, cnmc_root, tmp_path
):
    cells = distinct_cells(cnmc_root, tmp_path, 30)
    assert len({sha256(p) for p in cells}) == 30
    page.goto(review_server)
    analyse(page, cells, sample_id="LAB-30", reviewer="R. Viewer")
    page.locator("#gallery .thumb").nth(29).wait_for()
    shot(page, "gallery.png")
    rows = gallery_rows(page)
    keys = ["a", "n", "x"]
    expected = {
        row["sha256"]: ["ALL", "HEM", "not_assessable"][i % 3] for i, row in enumerate(rows)
    }
    page.locator("#gallery .thumb").first.focus()
    page.locator("#gallery .thumb").first.click()
    started = time.perf_counter()
    for index in range(30):
        page.keyboard.press(keys[index % 3])
    wait_for_stored(page, 30, timeout_ms=60_000)
    seconds = time.perf_counter() - started
    # J and K move without deciding: back one cell, and the decision there is unchanged.
    page.keyboard.press("k")
    assert (
        page.locator("#gallery .thumb[aria-current=true]").get_attribute("data-key")
        == rows[-2]["key"]
    )
    sample = httpx.get(f"{review_server}/api/v1/samples/LAB-30").json()
    stored = {d["image_sha256"]: d["decision"] for d in sample["decisions"]}
    assert stored == expected
    assert {d["reviewer"] for d in sample["decisions"]} == {"R. Viewer"}
    assert sample["counts"]["decided"] == 30
    assert sample["counts"]["by_decision"] == {"ALL": 10, "HEM": 10, "not_assessable": 10}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "keyboard-review-30.json").write_text(
        json.dumps({"cells": 30, "seconds_from_first_key_to_all_stored": round(seconds, 3)})
    )
    print(f"keyboard review of 30 cells, all stored: {seconds:.2f} s")


def test_a_reload_restores_the_session_and_the_lab_csv(page, review_server, cnmc_root):
    cells = fixture_cells(cnmc_root)[:4]
    page.goto(review_server)
    # Restoring an earlier session re-renders the page and can move the focus: wait for it.
    # A selector, not a JavaScript expression: the page's CSP forbids eval, which Playwright
    # needs to poll an expression that is not yet true on its first check.
    page.wait_for_selector("body[data-restored='true']", state="attached")
    with page.expect_file_chooser() as chooser:
        page.press("#choose-button", "Enter")  # the picker opens from the keyboard
    chooser.value.set_files([str(p) for p in cells])
    page.fill("#sample-id", "LAB-R")
    page.fill("#reviewer", "A. Tech")
    page.click("#analyse-button")
    wait_for_run_end(page)
    # Focus lands on the sample, not the body, and the outcome is announced.
    assert page.evaluate("document.activeElement.id") == "sample-heading"
    assert "Done: 4 images analysed" in page.locator("#status[role=status]").inner_text()
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    saved = page.locator("body").get_attribute("data-saved-at")
    page.reload()  # not yet exported: the page asks first; the fixture accepts
    page.locator("body[data-restored=true]").wait_for()
    assert saved is not None
    rows = gallery_rows(page)
    assert sorted(r["sha256"] for r in rows) == sorted(sha256(p) for p in cells)
    assert page.locator("#sample-title").inner_text() == "LAB-R"
    assert "ALL ✓" in page.locator("#gallery").inner_text()
    assert page.input_value("#reviewer") == "A. Tech"
    with page.expect_download() as download:
        page.click("#csv-button")
    assert download.value.suggested_filename.startswith("leukolens-LAB-R-")
    records = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    summary = records.pop()  # the sample's summary row closes the record
    assert summary["status"] == "summary"
    assert summary["sample_id"] == "LAB-R"
    assert "Cells: 4" in summary["note"]
    assert "Counted cells: each image once" in summary["note"]
    assert len(records) == 4
    assert {
        "date_time_utc",
        "sample_id",
        "request_id",
        "image_sha256",
        "model_version",
        "tta",
        "calibrated",
        "suggestion",
        "decision",
        "reviewer",
        "comment",
        "assessable",
    } <= set(records[0])
    assert [r["decision"] for r in records].count("ALL") == 1
    assert {r["image_sha256"] for r in records} == {sha256(p) for p in cells}
    page.click("#clear-button")
    page.locator("#workstation").wait_for(state="hidden")
    page.reload()
    page.locator("body[data-restored=true]").wait_for()
    assert page.locator("#gallery .thumb").count() == 0


def test_the_printed_report_is_the_current_sample_alone_with_a_sign_off(
    page, review_server, cnmc_root
):
    from pypdf import PdfReader

    cells = fixture_cells(cnmc_root)
    page.goto(review_server)
    analyse(page, cells[:3], sample_id="LAB-P1")
    analyse(page, cells[3:8], sample_id="LAB-P2")
    # The new sample's first cell is shown, not the last sample's.
    shown = page.locator("#detail .result-file").inner_text()
    assert shown in {p.name for p in cells[3:8]}
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("x")
    wait_for_stored(page, 1)
    # The figures are the server's, fetched again after the decision: one per thing described.
    counts = page.locator("#sample-counts")
    counts.filter(has_text="Estimated share of blast-like cells").wait_for()
    share = httpx.get(f"{review_server}/api/v1/samples/LAB-P2").json()["blast_share"]
    assert share["n_assessable"] == 4  # 5 cells, 1 decided not assessable
    reading = page.locator("#share-reading")
    assert reading.get_attribute("data-too-wide") == ("true" if share["too_wide"] else "false")
    text = reading.inner_text()
    if share["too_wide"]:
        assert "not readable" in counts.inner_text()
        assert "The estimate is not readable" in text
        assert "more assessable cells would narrow it" in text
    assert "Counted cells: each image once" in text
    rates = page.locator("#sample-error-rates .error-rates-sentence").inner_text()
    assert "sensitivity 80.0% (800 of 1,000 ALL cells flagged)" in rates
    assert "not a diagnosis" in text
    interval = f"{share['ci_low'] * 100:.1f}%\u2013{share['ci_high'] * 100:.1f}%"
    assert interval in counts.inner_text()
    for old in ("Sample score", "ALL-like among assessable", "as called"):
        assert old not in counts.inner_text()
    page.evaluate("() => { window.print = () => { document.body.dataset.printed = 'yes'; }; }")
    page.click("#print-button")
    assert page.locator("body").get_attribute("data-printed") == "yes"
    page.emulate_media(media="print")
    shot(page, "report-print.png")
    pdf = page.pdf(format="A4")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.pdf").write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    printed = "\n".join(p.extract_text() for p in reader.pages)
    printed = printed.replace("ﬁ", "fi").replace("ﬀ", "ff").replace("ﬂ", "fl")
    assert "sample LAB-P2" in printed
    assert "LAB-P1" not in printed  # the current sample only
    assert "Cells 5" in printed
    assert "Confirmed ALL / normal / not assessable 0 / 0 / 1" in printed
    for cell in cells[3:8]:  # a long name may wrap inside its column
        assert cell.name in "".join(printed.split())
    assert "A. Tech" in printed  # the reviewer of the decided cell
    assert "Status: Preliminary — not signed off" in printed
    assert "Not signed off" in printed
    assert "not a diagnosis" in printed
    assert "Model-estimated share of blast-like cells" in printed
    assert "".join(rates.split()) in "".join(printed.split())  # the card's one sentence


PAGES = ["/", "/models/brightness", "/docs", "/no-such-page"]


def test_no_horizontal_overflow_at_390_px(browser, review_server, cnmc_root):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in PAGES[:2] + PAGES[3:]:
            page.goto(review_server + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        page.goto(review_server)
        analyse(page, fixture_cells(cnmc_root)[:6])
        page.locator("#table-details summary").click()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "phone.png")
    finally:
        context.close()


def axe_violations(page) -> list[dict]:
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))"
    )
    return [v for v in result if v["impact"] in {"serious", "critical"}]


def test_axe_finds_no_serious_violation_on_any_page(page, context, start_server, cnmc_root):
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("scripts/test must install axe-core (scripts/_browser_tools.sh)")
        pytest.skip("axe-core is not installed (scripts/_browser_tools.sh needs npm)")
    base = start_server()
    found = {}
    for path in ["/", "/models/efficientnet-lite0-128-cell", "/docs"]:
        page.goto(base + path)
        if path == "/docs":
            page.locator(".opblock").first.wait_for(timeout=30_000)
        found[path] = axe_violations(page)
    missing = context.new_page()  # its own 404 is logged to the console, rightly
    missing.goto(base + "/no-such-page")
    found["/no-such-page"] = axe_violations(missing)
    missing.close()
    page.goto(base)
    analyse(page, fixture_cells(cnmc_root)[:3])
    page.locator(".heat-toggle").check()
    page.locator("#table-details summary").click()
    found["/ (reviewing)"] = axe_violations(page)
    assert found == {path: [] for path in found}


def test_the_api_docs_render_an_operation(page, review_server):
    page.goto(review_server + "/docs")
    operation = page.locator("#operations-predictions-predict_batch_api_v1_predict_batch_post")
    operation.wait_for(timeout=30_000)
    operation.locator(".opblock-summary").click()
    parameters = operation.locator(".parameters-container")
    parameters.wait_for()
    assert "sample_id" in parameters.inner_text()
    assert "Unable to render" not in page.content()
    review = page.locator("#operations-review-add_review_api_v1_reviews_post")
    assert review.count() == 1


def test_the_model_card_for_people(page, start_server):
    base = start_server()
    page.goto(base)
    page.click("nav >> text=Model: ConvNeXt-Atto")
    assert page.locator("h1").inner_text().startswith("Model card: ConvNeXt-Atto")
    glance = page.locator("#at-a-glance")
    assert glance.locator("#error-rates").inner_text().startswith("Error rates on 41 people")
    assert "Of 100" not in glance.inner_text()
    assert "preliminary-test patients" in glance.inner_text()
    for plot in ("#roc-plot", "#subject-chart", "#reliability-plot"):
        assert page.locator(plot).is_visible()
    assert "/tmp/" not in page.content()
    shot(glance, "card-at-a-glance.png")
    shot(page, "model-card.png")
