"""The sample as one record, in a real browser: whatever a technician does (cancel at any
moment, drop the same files again, two tabs, another browser), the page and the server hold the
same cells, each image once. Debian's Chromium driven by Playwright, offline."""

import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.app.web.test_browser_ui import (
    ARTIFACTS,
    AXE,
    BATCH_ROUTE,
    axe_violations,
    distinct_cells,
    fixture_cells,
    gallery_rows,
    sha256,
    shot,
    wait_for_run_end,
    wait_for_stored,
)

pytestmark = pytest.mark.browser


def server_cells(base: str, sample_id: str) -> list[str]:
    answer = httpx.get(f"{base}/api/v1/samples/{sample_id}", timeout=30)
    if answer.status_code == 404:
        return []
    return [p["image_sha256"] for p in answer.json()["predictions"]]


def page_cells(page) -> list[str]:
    return [row["sha256"] for row in gallery_rows(page) if row["sha256"]]


def start_analysis(page, files, sample_id: str, reviewer: str = "A. Tech") -> None:
    page.fill("#sample-id", sample_id)
    page.fill("#reviewer", reviewer)
    page.set_input_files("#file-input", [str(p) for p in files])
    page.click("#analyse-button")


def reload(page) -> None:
    page.reload()
    page.locator("body[data-restored=true]").wait_for()


def open_sample(page, sample_id: str) -> None:
    page.select_option("#open-sample", sample_id)
    page.click("#open-sample-button")
    page.locator("#status").filter(has_text=f"Sample {sample_id}:").wait_for(timeout=30_000)


def pass_first_hold_the_rest(routed: list):
    """A route handler: the first upload goes through, later ones are held (never sent)."""

    def handle(route) -> None:
        routed.append(route)
        if len(routed) == 1:
            route.continue_()

    return handle


def wait_until(predicate, page, timeout_ms: int = 30_000) -> None:
    for _ in range(timeout_ms // 100):
        if predicate():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition not met in time")


def analyse_holding_later_uploads(page, base: str, files, sample_id: str) -> list:
    """Open the page at `base` and analyse `files` for `sample_id`, the first upload going
    through and later ones held; once the second is held, the held routes (first included)."""
    page.goto(base)
    routed: list = []
    page.route(BATCH_ROUTE, pass_first_hold_the_rest(routed))
    start_analysis(page, files, sample_id)
    wait_until(lambda: len(routed) == 2, page)
    return routed


def test_cancel_mid_upload_leaves_page_and_server_in_agreement(page, review_server, cnmc_root):
    analyse_holding_later_uploads(page, review_server, fixture_cells(cnmc_root)[:12], "CANCEL-UP")
    page.click("#cancel-button")
    page.locator("#status").filter(has_text="Cancelled").wait_for()
    page.locator("#gallery .thumb").nth(7).wait_for()
    assert sorted(page_cells(page)) == sorted(server_cells(review_server, "CANCEL-UP"))
    assert len(page_cells(page)) == 8
    reload(page)
    assert sorted(page_cells(page)) == sorted(server_cells(review_server, "CANCEL-UP"))


def test_cancel_during_analysis_withdraws_what_the_server_scored(page, review_server, cnmc_root):
    cells = fixture_cells(cnmc_root)[:16]
    routed = analyse_holding_later_uploads(page, review_server, cells, "CANCEL-AN")
    # The second upload reaches the server, which scores and records it under the page's own
    # X-Request-ID, while its answer never reaches the page: the page is analysing.
    held = routed[1]
    sent = httpx.post(
        held.request.url,
        files=[("files", (p.name, p.read_bytes())) for p in cells[8:]],
        headers={"X-Request-ID": held.request.headers["x-request-id"]},
        timeout=60,
    )
    assert sent.status_code == 200
    assert len(server_cells(review_server, "CANCEL-AN")) == 16
    page.click("#cancel-button")
    page.locator("#status").filter(has_text="Cancelled").wait_for()
    wait_until(lambda: len(server_cells(review_server, "CANCEL-AN")) == 8, page)
    assert sorted(page_cells(page)) == sorted(server_cells(review_server, "CANCEL-AN"))
    assert "Cells8" in page.locator("#sample-counts").inner_text().replace("\n", "")
    if AXE.exists():
        assert axe_violations(page) == []  # the cancelled state
    reload(page)
    assert sorted(page_cells(page)) == sorted(server_cells(review_server, "CANCEL-AN"))
    assert len(page_cells(page)) == 8
    # the audit keeps every answer: the withdrawal is a record, never a deletion
    assert sent.json()["results"][0]["prediction"]["request_id"]


def test_the_progress_says_when_the_server_is_analysing(page, review_server, cnmc_root):
    page.goto(review_server)
    page.evaluate(
        "() => { window.stages = []; new MutationObserver(() => window.stages.push("
        "[document.querySelector('#progress-row').dataset.stage,"
        " document.querySelector('#progress-text').textContent])).observe("
        "document.querySelector('#progress-row'), {attributes: true, subtree: true,"
        " childList: true, characterData: true}); }"
    )
    start_analysis(page, fixture_cells(cnmc_root)[:8], "STAGES-1")
    wait_for_run_end(page)
    stages = page.evaluate("() => window.stages")
    analysing = [text for stage, text in stages if stage == "analysing"]
    assert analysing
    assert analysing[0] == "Analysing images 1\u20138 of 8 on the server\u2026"


def test_dropping_the_same_30_files_again_after_a_cancel_gives_30_cells_with_views(
    page, review_server, cnmc_root, tmp_path
):
    cells = distinct_cells(cnmc_root, tmp_path, 30)
    analyse_holding_later_uploads(page, review_server, cells, "REDROP-30")
    page.click("#cancel-button")
    page.locator("#status").filter(has_text="Cancelled").wait_for()
    page.unroute(BATCH_ROUTE)
    assert len(page_cells(page)) == 8
    reload(page)
    # After the reload the first 8 cells have no views in this browser; the same 30 files again
    start_analysis(page, cells, "REDROP-30")
    wait_for_run_end(page)
    page.locator("#gallery .thumb").nth(29).wait_for()
    assert len(page_cells(page)) == 30
    assert len(set(page_cells(page))) == 30
    assert sorted(page_cells(page)) == sorted(sha256(p) for p in cells)
    sample = httpx.get(f"{review_server}/api/v1/samples/REDROP-30").json()
    assert sample["counts"]["images"] == 30
    assert sample["blast_share"]["n_cells"] == 30
    # the views of a re-attached cell are back
    first = cells[0]
    page.locator(f"#gallery .thumb[data-sha256='{sha256(first)}']").click()
    card = page.locator("#detail .result-card")
    assert card.locator(".view-enhanced").count() == 1
    assert card.locator(".views-missing").is_hidden()
    with page.expect_download() as download:
        page.click("#csv-button")
    lines = Path(download.value.path()).read_text().strip().splitlines()
    assert len(lines) == 1 + 30 + 1  # header, one row per cell, the summary


def test_two_tabs_with_two_samples_both_reopen_after_a_reload(context, review_server, cnmc_root):
    cells = fixture_cells(cnmc_root)
    first, second = context.new_page(), context.new_page()
    for tab, sample_id, part in ((first, "TAB-1", cells[:5]), (second, "TAB-2", cells[5:10])):
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.goto(review_server)
        start_analysis(tab, part, sample_id)
        wait_for_run_end(tab)
        tab.locator("#gallery .thumb").first.click()
        tab.keyboard.press("a")
        wait_for_stored(tab, 1)
    reload(first)
    options = first.locator("#open-sample option").all_inner_texts()
    assert any(o.startswith("TAB-1") for o in options)
    assert any(o.startswith("TAB-2") for o in options)
    for sample_id, part in (("TAB-2", cells[5:10]), ("TAB-1", cells[:5])):
        open_sample(first, sample_id)
        assert sorted(page_cells(first)) == sorted(sha256(p) for p in part)
        assert "ALL ✓" in first.locator("#gallery").inner_text()
        assert "1 of 5" in first.locator("#sample-counts").inner_text()


def test_a_sample_reopens_in_another_browser_and_the_files_reattach(
    browser, review_server, cnmc_root
):
    cells = fixture_cells(cnmc_root)[:4]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 1000}) for _ in range(2)]
    try:
        one, two = (c.new_page() for c in contexts)
        one.goto(review_server)
        start_analysis(one, cells, "ELSEWHERE-1", reviewer="Dr One")
        wait_for_run_end(one)
        one.locator("#gallery .thumb").first.click()
        one.keyboard.press("n")
        wait_for_stored(one, 1)
        two.goto(review_server)
        two.locator("body[data-restored=true]").wait_for()
        open_sample(two, "ELSEWHERE-1")
        assert sorted(page_cells(two)) == sorted(sha256(p) for p in cells)
        assert "normal ✓" in two.locator("#gallery").inner_text()
        assert "not in this browser" in two.locator("#detail .result-file").inner_text()
        shot(two, "reopened-sample.png")
        if AXE.exists():
            assert axe_violations(two) == []
        # dropping the files there attaches them: still 4 cells, now with their names
        two.fill("#reviewer", "Dr Two")
        two.set_input_files("#file-input", [str(p) for p in cells])
        two.click("#analyse-button")
        wait_for_run_end(two)
        assert sorted(r["filename"] for r in gallery_rows(two)) == sorted(p.name for p in cells)
        assert len(server_cells(review_server, "ELSEWHERE-1")) == 4
    finally:
        for c in contexts:
            c.close()


def test_review_keys_act_on_the_current_cell_and_u_finds_the_next_undecided(
    page, review_server, cnmc_root
):
    cells = fixture_cells(cnmc_root)[:6]
    page.goto(review_server)
    start_analysis(page, cells, "KEYS-1")
    wait_for_run_end(page)
    thumbs = page.locator("#gallery .thumb")
    thumbs.nth(0).click()
    assert page.evaluate("document.activeElement.classList.contains('thumb')")  # focus kept
    page.keyboard.press("Tab")  # to the next thumbnail: it becomes the current cell
    focused = page.evaluate("document.activeElement.dataset.key")
    current = page.locator("#gallery .thumb[aria-current=true]").get_attribute("data-key")
    assert focused == current
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    sample = httpx.get(f"{review_server}/api/v1/samples/KEYS-1").json()
    assert [d["image_sha256"] for d in sample["decisions"]] == [focused.split(":")[1]]
    # selected and focused look different
    styles = page.evaluate(
        "() => { const t = document.querySelector('#gallery .thumb[aria-current=true]');"
        " return [getComputedStyle(t).backgroundColor, getComputedStyle(t).boxShadow]; }"
    )
    assert styles[0] != "rgb(255, 255, 255)"
    assert styles[1] != "none"
    # U: the next cell without a decision; the detail opens at its top
    page.locator("#detail-section").evaluate("e => { e.scrollTop = 500; }")
    page.keyboard.press("u")
    current = page.locator("#gallery .thumb[aria-current=true]")
    assert "✓" not in current.inner_text()
    assert page.locator("#detail-section").evaluate("e => e.scrollTop") == 0
    assert "Undecided5" in page.locator("#sample-counts").inner_text().replace("\n", "")
    shot(page.locator("#summary-panel"), "sample-summary.png")
    if AXE.exists():
        assert axe_violations(page) == []  # reviewing, a decision stored


def test_a_tap_at_390_px_shows_the_cells_detail(browser, review_server, cnmc_root):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        page.goto(review_server)
        start_analysis(page, fixture_cells(cnmc_root)[:6], "PHONE-1")
        wait_for_run_end(page)
        thumb = page.locator("#gallery .thumb").nth(3)
        thumb.scroll_into_view_if_needed()
        thumb.tap()
        detail = page.locator("#detail .result-file")
        wait_until(lambda: detail.evaluate("e => e.getBoundingClientRect().top") < 844, page)
        assert detail.inner_text() == thumb.get_attribute("data-filename")
        if AXE.exists():
            assert axe_violations(page) == []  # the phone layout
    finally:
        context.close()


def test_the_printed_report_renders_to_png(page, review_server, cnmc_root, tmp_path):
    import shutil

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    page.goto(review_server)
    start_analysis(page, fixture_cells(cnmc_root)[:5], "PRINT-1", reviewer="Dr Print")
    wait_for_run_end(page)
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    page.emulate_media(media="print")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(page.pdf(format="A4"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(ARTIFACTS / "report")],
        check=True,
    )
    png = next(ARTIFACTS.glob("report-*1.png"))
    assert hashlib.sha256(png.read_bytes()).hexdigest()  # a page image was made
