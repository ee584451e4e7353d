"""The review flow as a technician lives it, in a real browser (Debian's
Chromium under Playwright, offline), axe-core on every new state. U from the current cell, a
comment changed after a decision, the phone at 390 px, counts of the sample on screen, the
Leave-site prompt, a sample reopened elsewhere, warnings in words, a lost answer retried and
stored once, and the banner of a server that keeps nothing."""

import httpx
import pytest

from tests.app.web.conftest import console_errors_of
from tests.app.web.test_browser_sample_record import open_sample, reload, wait_until
from tests.app.web.test_browser_ui import (
    ARTIFACTS,
    AXE,
    analyse,
    axe_violations,
    fixture_cells,
    gallery_rows,
    shot,
    wait_for_stored,
)

pytestmark = pytest.mark.browser

LEAVING_ASKS = (
    "() => { const leaving = new Event('beforeunload', {cancelable: true});"
    " window.dispatchEvent(leaving); return leaving.defaultPrevented; }"
)


def no_serious_violation(page) -> None:
    if AXE.exists():
        assert axe_violations(page) == []


def current_key(page) -> str:
    return page.locator("#gallery .thumb[aria-current=true]").get_attribute("data-key")


def server_sample(base: str, sample_id: str) -> dict:
    return httpx.get(f"{base}/api/v1/samples/{sample_id}", timeout=30).json()


def test_u_goes_to_the_next_undecided_cell_counting_the_current_one(page, review_server, cnmc_root):
    """'Decide, then U' skipped a cell every time, and U on a fresh sample skipped cell 1."""
    page.goto(review_server)
    analyse(page, fixture_cells(cnmc_root)[:5], sample_id="U-1", reviewer="R. Viewer")
    order = [row["key"] for row in gallery_rows(page)]
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("u")
    assert current_key(page) == order[0]  # a fresh sample: its first cell is undecided
    page.keyboard.press("a")  # decided; the decision moves on to cell 2
    assert current_key(page) == order[1]
    page.keyboard.press("u")
    assert current_key(page) == order[1]  # cell 2 is undecided: U stays, never skips it
    for key in ("j", "j", "n"):  # decide cell 4: on to cell 5
        page.keyboard.press(key)
    wait_for_stored(page, 2)
    page.keyboard.press("k")  # back on cell 4, decided
    page.keyboard.press("u")
    assert current_key(page) == order[4]
    no_serious_violation(page)


def test_a_comment_changed_after_a_decision_is_stored_as_a_new_record(
    page, review_server, cnmc_root
):
    """A comment typed after a decision was silently lost."""
    page.goto(review_server)
    analyse(page, fixture_cells(cnmc_root)[:3], sample_id="NOTE-1", reviewer="R. Viewer")
    rows = gallery_rows(page)
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")
    wait_for_stored(page, 1)
    page.locator("#gallery .thumb").first.click()  # back to the decided cell
    comment = page.locator("#detail .comment")
    comment.fill("smudged edge")
    comment.press("Enter")
    first = rows[0]["sha256"]

    def stored_on(sha: str) -> list[tuple[str, str]]:
        decisions = server_sample(review_server, "NOTE-1")["decisions"]
        return [(d["decision"], d["comment"]) for d in decisions if d["image_sha256"] == sha]

    wait_until(lambda: len(stored_on(first)) == 2, page)
    assert stored_on(first) == [("ALL", ""), ("ALL", "smudged edge")]
    page.locator("#sample-counts[data-pending='0']").wait_for(state="attached")
    assert page.locator("#detail .comment").input_value() == "smudged edge"
    # a comment typed before deciding goes with the decision
    page.locator("#gallery .thumb").nth(1).click()
    page.locator("#detail .comment").fill("two nuclei?")
    page.locator("#detail [data-decision=HEM]").click()
    wait_for_stored(page, 2)
    assert stored_on(rows[1]["sha256"]) == [("HEM", "two nuclei?")]
    # and the comment is the record's after a reload
    reload(page)
    page.locator(f"#gallery .thumb[data-key='{rows[0]['key']}']").click()
    assert page.locator("#detail .comment").input_value() == "smudged edge"
    assert page.locator("#sample-counts").get_attribute("data-stored") == "2"
    no_serious_violation(page)


def test_at_390_px_each_decision_keeps_the_next_cells_detail_and_buttons_in_view(
    browser, review_server, cnmc_root
):
    """Each Confirm scrolled back to the gallery, about 1,000 px from the next cell's buttons."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    errors = console_errors_of(page)
    try:
        page.goto(review_server)
        analyse(page, fixture_cells(cnmc_root)[:6], sample_id="PHONE-2", reviewer="R. Phone")
        page.locator("#gallery .thumb").first.tap()
        title = page.locator("#detail .result-file")
        buttons = page.locator("#detail .decision-buttons")

        def in_view(locator) -> bool:
            box = locator.bounding_box()
            return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 844

        def settles_in_view() -> None:
            """The cell's name and buttons on screen once the page is still (the counts above
            change height by a line as a decision goes pending, then stored: the browser's
            scroll anchoring follows within a frame)."""
            wait_until(lambda: in_view(title) and in_view(buttons), page, timeout_ms=2_000)

        settles_in_view()
        for decided in range(1, 4):
            before = title.inner_text()
            page.locator("#detail [data-decision=ALL]").tap()
            wait_until(lambda before=before: title.inner_text() != before, page)
            settles_in_view()
            wait_for_stored(page, decided)
            settles_in_view()  # the server's answer redraws the page, in place
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-after-decisions.png"))  # the screen only
        no_serious_violation(page)
    finally:
        context.close()
    assert errors == []


def test_counts_describe_the_sample_on_screen_and_leaving_asks_only_when_unstored(
    page, review_server, cnmc_root, tmp_path
):
    cells = fixture_cells(cnmc_root)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not an image")
    page.goto(review_server)
    analyse(page, [*cells[:5], broken], sample_id="COUNT-A")
    status = page.locator("#status").inner_text()
    assert "Done: 5 images analysed for sample COUNT-A, 1 could not be analysed." in status
    analyse(page, cells[5:8], sample_id="COUNT-B")
    reload(page)
    assert "Restored sample COUNT-B: 3 images" in page.locator("#status").inner_text()
    assert page.evaluate(LEAVING_ASKS) is False  # nothing unstored: no Leave-site prompt
    held = []
    page.route("**/api/v1/reviews", lambda route: held.append(route))
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")
    wait_until(lambda: held, page)
    page.locator("#sample-counts[data-pending='1']").wait_for(state="attached")
    page.locator("#gallery .thumb[data-decision=pending]").wait_for()
    assert page.evaluate(LEAVING_ASKS) is True  # a decision not yet stored
    no_serious_violation(page)  # a decision on its way
    held[0].continue_()
    wait_for_stored(page, 1)
    assert page.evaluate(LEAVING_ASKS) is False
    page.unroute("**/api/v1/reviews")


def test_a_lost_answer_is_retried_under_its_key_and_stored_once(context, review_server, cnmc_root):
    """A 5xx or a dropped connection after the server stored it: the page sends it again
    under the same Idempotency-Key, and the server answers the first record."""
    page = context.new_page()
    errors = console_errors_of(page)
    page.goto(review_server)
    analyse(page, fixture_cells(cnmc_root)[:2], sample_id="RETRY-1", reviewer="R. Viewer")
    keys: list[str] = []

    def lose_the_first_answer(route) -> None:
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.fetch()  # the server stores the decision ...
            route.fulfill(status=503, json={"detail": "the proxy lost the answer"})  # ... lost
        else:
            route.continue_()

    page.route("**/api/v1/reviews", lose_the_first_answer)
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("n")
    page.locator("#gallery .thumb[data-decision=pending]").wait_for()
    wait_for_stored(page, 1)
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert keys[0]
    decisions = server_sample(review_server, "RETRY-1")["decisions"]
    assert [d["decision"] for d in decisions] == ["HEM"]
    # the one 503 (the lost answer, made up above) is logged by the browser, nothing else
    assert errors == [
        "Failed to load resource: the server responded with a status of 503 (Service Unavailable)"
    ]


def test_a_sample_reopened_elsewhere_has_no_empty_picture_and_says_its_warnings_in_words(
    browser, review_server, cnmc_root
):
    contexts = [browser.new_context(viewport={"width": 1280, "height": 1000}) for _ in range(2)]
    try:
        here, elsewhere = (c.new_page() for c in contexts)
        errors = [console_errors_of(p) for p in (here, elsewhere)]
        here.goto(review_server)
        analyse(here, fixture_cells(cnmc_root)[:3], sample_id="ELSE-2")
        elsewhere.goto(review_server)
        elsewhere.locator("body[data-restored=true]").wait_for(state="attached")
        open_sample(elsewhere, "ELSE-2")
        card = elsewhere.locator("#detail .result-card")
        assert card.locator(".views").count() == 0  # no caption over a 0 px-high button
        assert card.locator(".views-missing").is_visible()
        for page in (here, elsewhere):
            items = page.locator("#detail .warnings li")
            for index in range(items.count()):
                code = items.nth(index).get_attribute("data-code")
                text = items.nth(index).inner_text()
                assert "_" not in text
                assert not text.lower().startswith(code.replace("_", " "))
                if code == "uncertain":
                    assert text.startswith("Close to the threshold: the model is unsure")
        shot(elsewhere.locator("#detail-section"), "reopened-elsewhere.png")
        no_serious_violation(elsewhere)
        assert errors == [[], []]
    finally:
        for context in contexts:
            context.close()


def test_a_server_that_keeps_nothing_says_so_on_the_page(
    module_server_launcher, review_model_store, page
):
    base = module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(review_model_store), LEUKOLENS_RECORDS_IN_MEMORY="true"
    )
    page.goto(base)
    banner = page.locator("#records-volatile")
    assert "nothing here is kept" in banner.inner_text()
    assert page.locator("body").get_attribute("data-durable") == "false"
    no_serious_violation(page)
