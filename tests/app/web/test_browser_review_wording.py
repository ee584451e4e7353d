"""What the review page says, in a real browser (Debian's Chromium under Playwright, offline):
one number per cell on every part of the page and in the report, bad input said as it happened
(every file refused; a file over the size limit left out while the rest is analysed), and sample
lists wide enough to read."""

import json

import cv2
import pytest

from tests.app.web.test_browser_sample_record import open_sample
from tests.app.web.test_browser_ui import (
    AXE,
    analyse,
    axe_violations,
    fixture_cells,
    gallery_rows,
    shot,
    wait_for_stored,
)

pytestmark = pytest.mark.browser

# The width a <select>'s selected entry needs beside what its box gives it (padding, arrow).
SELECT_ROOM = (
    "(id) => { const select = document.getElementById(id);"
    " const style = getComputedStyle(select);"
    " const pen = document.createElement('canvas').getContext('2d'); pen.font = style.font;"
    " const text = select.selectedOptions[0].text;"
    " const inside = select.clientWidth - parseFloat(style.paddingLeft)"
    " - parseFloat(style.paddingRight) - 16;"  # the drop-down arrow
    " return {text, needed: pen.measureText(text).width, inside}; }"
)


def test_every_part_of_the_page_names_a_cell_by_its_thumbnails_number(
    page, review_server, cnmc_root, tmp_path
):
    """The status line said "Cell 3 of 6" (its place in the review order, grouped by suggestion)
    for the cell the thumbnail and the printed report call #6."""
    cells = fixture_cells(cnmc_root)[:5]
    # Brighter, the last cell suggests ALL-like to the test model (its score is the mean
    # brightness): first in the review order, fifth in the sample.
    bright = tmp_path / "bright.png"
    cv2.imwrite(str(bright), cv2.convertScaleAbs(cv2.imread(str(cells[4])), alpha=4.0))
    page.goto(review_server)
    analyse(page, [*cells[:4], bright], sample_id="NUMBERS-1", reviewer="R. Viewer")
    thumbs = page.locator("#gallery .thumb")
    numbers = [thumb.locator(".thumb-number").inner_text() for thumb in thumbs.all()]
    assert numbers == ["#5", "#1", "#2", "#3", "#4"]
    row = gallery_rows(page)[0]
    assert row["filename"] == "bright.png"
    number = "#5"
    thumbs.first.click()
    status = page.locator("#status").inner_text()
    assert status.startswith("Cell #5 (1 of 5 in review order), bright.png: suggests ALL-like")
    assert page.locator("#detail .cell-number").inner_text() == f"Cell {number}"
    table_row = page.locator(f'#results-table tbody tr[data-key="{row["key"]}"] td')
    assert table_row.first.text_content() == number.removeprefix("#")
    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    printed = page.locator("#report .report-cells tbody tr", has_text=row["filename"])
    assert printed.locator("td").first.text_content() == number.removeprefix("#")

    # Decided, the cell keeps its number on the thumbnail (the mark says the decision).
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    thumb = page.locator(f'#gallery .thumb[data-key="{row["key"]}"]')
    assert thumb.locator(".thumb-number").inner_text() == number
    assert "ALL ✓" in thumb.locator(".thumb-mark").inner_text()

    # A refusal names the cell by the same number.
    page.route(
        "**/api/v1/reviews",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps({"detail": "the reviewer's name holds a control character"}),
        ),
    )
    thumb.click()
    page.keyboard.press("n")
    page.locator(f'#gallery .thumb[data-key="{row["key"]}"] .mark-refused').wait_for()
    assert (
        page.locator("#alert")
        .inner_text()
        .startswith(f"The decision on cell {number}, {row['filename']}, was not stored:")
    )
    page.unroute("**/api/v1/reviews")
    shot(page.locator("#workstation"), "cell-numbers.png")
    if AXE.exists():
        assert axe_violations(page) == []


def test_a_sample_whose_every_file_was_refused_says_so_not_that_the_server_is_silent(
    page, review_server, tmp_path
):
    """notes.txt alone: the share read "not available: the server has not answered for this
    sample yet", although the server had answered with a refusal."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello this is not an image\n")
    page.goto(review_server)
    analyse(page, [notes], sample_id="REFUSED-1")
    counts = page.locator("#sample-counts").inner_text()
    assert "has not answered" not in counts
    assert "not available: no cell of this sample could be analysed (its one file was refused)" in (
        counts.replace("\n", " ")
    )
    assert page.locator("#gallery .thumb.state-error").count() == 1
    assert page.locator("#status").inner_text() == (
        "Done: no image of sample REFUSED-1 could be analysed; the gallery says why for each file."
    )


def test_a_file_over_the_size_limit_is_left_out_by_name_and_the_rest_is_analysed(
    page, review_server, cnmc_root, tmp_path
):
    """One image and a 21 MB huge.png: the page said only "huge.png: larger than 20 MB." and
    analysed nothing, the valid image included."""
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024))
    cell = fixture_cells(cnmc_root)[0]
    sent: list[int] = []
    page.on(
        "request",
        lambda r: sent.append(len(r.post_data_buffer or b"")) if "/predict" in r.url else None,
    )
    page.goto(review_server)
    analyse(page, [cell, huge], sample_id="HUGE-1")
    assert page.locator("#alert").inner_text() == (
        "Left out of the analysis: huge.png is larger than 20 MB, the most one image may be. "
        "The other file is analysed."
    )
    assert page.locator("#status").inner_text() == (
        "Done: 1 image analysed for sample HUGE-1. "
        "Left out: huge.png is larger than 20 MB, the most one image may be."
    )
    assert [row["filename"] for row in gallery_rows(page)] == [cell.name]
    assert len(sent) == 1
    assert sent[0] < 1024 * 1024  # huge.png never went
    shot(page.locator("#upload-panel"), "left-out-file.png")

    # Only files over the limit: nothing goes, and the page says so and why.
    sent.clear()
    page.set_input_files("#file-input", [str(huge)])
    page.click("#analyse-button")
    assert page.locator("#alert").inner_text() == (
        "Nothing was sent: huge.png is larger than 20 MB, the most one image may be."
    )
    assert sent == []


def test_the_sample_lists_are_wide_enough_to_read_their_entries(page, review_server, cnmc_root):
    """The "Sample" list showed "LAB-2026-0101 (6 cells, 4" at 1280 px: a fixed width cut it."""
    page.goto(review_server)
    analyse(page, fixture_cells(cnmc_root)[:6], sample_id="LAB-2026-0101", reviewer="R. Viewer")
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    open_sample(page, "LAB-2026-0101")  # chosen in the server's list too
    page.select_option("#open-sample", "LAB-2026-0101")
    for select in ("sample-select", "open-sample"):
        room = page.evaluate(SELECT_ROOM, select)
        assert room["needed"] <= room["inside"], (select, room)
        assert room["text"] == "LAB-2026-0101 (1 of 6 reviewed)", select
    shot(page.locator("#summary-panel"), "sample-list.png")
