"""A finished sample, in a real browser: signing a sample off from the page, an amendment
after it (pending until stored, like every decision: a refused one is never shown, counted or
printed as stored), the printed report (status and "page N of M" on every page, as PDF and as
PNG), one sentence of error rates everywhere, and ISO 8601 times in the lab CSV."""

import csv
import io
import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from app.core.error_rates import README_BLOCK
from tests.app.web.conftest import console_errors_of
from tests.app.web.test_browser_identity import KEYS, SHARED, sign_in, start_without_a_name
from tests.app.web.test_browser_ui import (
    ARTIFACTS,
    AXE,
    analyse,
    axe_violations,
    distinct_cells,
    fixture_cells,
    gallery_rows,
    wait_for_stored,
)
from tests.app.web.test_browser_ui import shot as screenshot

pytestmark = pytest.mark.browser
ROOT = Path(__file__).parents[3]
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
HUMAN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC(?:[+-]\d{2}:\d{2})?")


@pytest.fixture
def berlin_page(browser):
    """A page in Berlin's time zone, so that the human form shows its offset."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 1000}, accept_downloads=True, timezone_id="Europe/Berlin"
    )
    page = context.new_page()
    errors = console_errors_of(page)
    yield page
    context.close()
    assert errors == []


def printed_pages(page, name: str) -> list[str]:
    """The report printed to PDF, each page's text; the pages as PNGs beside it (pdftoppm)."""
    from pypdf import PdfReader

    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    page.emulate_media(media="screen")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.pdf"
    path.write_bytes(pdf)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(path), str(ARTIFACTS / name)], check=True, timeout=120
    )
    texts = [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]
    assert len(sorted(ARTIFACTS.glob(f"{name}-*.png"))) == len(texts)
    return [t.replace("ﬁ", "fi").replace("ﬀ", "ff").replace("ﬂ", "fl") for t in texts]


def test_sign_off_from_the_page_then_an_amendment_and_the_printed_report(
    berlin_page, review_server, cnmc_root, tmp_path
):
    page = berlin_page
    page.on("dialog", lambda dialog: dialog.accept())  # leaving an unexported session
    cells = distinct_cells(cnmc_root, tmp_path, 24)  # enough rows for several printed pages
    page.goto(review_server)
    analyse(page, cells, sample_id="LAB-SIGN", reviewer="R. Viewer")
    page.locator("#gallery .thumb").nth(23).wait_for()
    assert "Preliminary" in page.locator("#sample-status").inner_text()
    page.locator("#gallery .thumb").first.click()
    for key in ["a", "n", "x"] * 7 + ["a", "n"]:  # 23 of 24 decided
        page.keyboard.press(key)
    wait_for_stored(page, 23, timeout_ms=60_000)
    assert page.locator("#sample-counts").get_attribute("data-pending") == "0"

    page.click("#sign-off-button")
    dialog = page.locator("#sign-off-dialog")
    dialog.wait_for()
    counts = page.locator("#sign-off-counts").inner_text()
    assert counts == (
        "24 cells: 8 confirmed ALL-like, 8 confirmed normal, 7 not assessable, 1 undecided."
    )
    sample = httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()
    assert sample["headline"]["text"] in page.locator("#sign-off-headline").inner_text()
    assert page.locator("#sign-off-confirm").is_disabled()  # the undecided cell is named first
    page.check("#sign-off-leave")
    page.fill("#sign-off-comment", "reviewed at the bench")
    screenshot(dialog, "sign-off-dialog.png")
    if AXE.exists():  # scripts/test installs it; test_browser_ui fails in CI without it
        assert axe_violations(page) == []
    page.click("#sign-off-confirm")
    page.locator("#sample-status[data-status=final]").wait_for(timeout=30_000)
    status = page.locator("#sample-status").inner_text()
    assert status.startswith("Final — signed off by R. Viewer, ")
    assert "UTC+01:00" in status or "UTC+02:00" in status  # Berlin, in the one human form
    assert "1 cell left undecided" in status
    assert page.locator("#sign-off-button").is_disabled()
    sample = httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()
    assert sample["status"] == "final"
    assert (sample["signed_off"]["by"], sample["signed_off"]["comment"]) == (
        "R. Viewer",
        "reviewed at the bench",
    )

    # A decision now asks why; cancelled, nothing changes; given, it is an amendment.
    rows = gallery_rows(page)
    page.locator(f'#gallery .thumb[data-key="{rows[0]["key"]}"]').click()
    page.keyboard.press("n")
    page.locator("#amend-dialog").wait_for()
    assert "is an amendment" in page.locator("#amend-what").inner_text()
    # The dialog names the cell by its thumbnail's number, as the report does.
    number = page.locator(
        f'#gallery .thumb[data-key="{rows[0]["key"]}"] .thumb-number'
    ).inner_text()
    assert f"Changing cell {number}, {rows[0]['filename']}, from ALL confirmed to normal" in (
        page.locator("#amend-what").inner_text()
    )
    page.keyboard.press("Escape")
    assert httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()["status"] == "final"
    page.locator(f'#gallery .thumb[data-key="{rows[0]["key"]}"]').click()
    page.keyboard.press("n")
    page.fill("#amend-reason", "second look: a large lymphocyte")
    screenshot(page.locator("#amend-dialog"), "amend-dialog.png")
    if AXE.exists():
        assert axe_violations(page) == []
    # The server refuses it the first time: the amendment stays pending, refused, uncounted.
    page.route(
        "**/api/v1/reviews",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps({"detail": "the reviewer's name holds a control character"}),
        ),
    )
    page.click("#amend-confirm")
    thumb = page.locator(f'#gallery .thumb[data-key="{rows[0]["key"]}"]')
    page.locator(f'#gallery .thumb[data-key="{rows[0]["key"]}"] .mark-refused').wait_for()
    assert page.locator("#sample-status").get_attribute("data-status") == "final"
    counts = page.locator("#sample-counts")
    assert (counts.get_attribute("data-stored"), counts.get_attribute("data-pending")) == (
        "23",
        "1",
    )
    thumb.click()
    refused_note = page.locator("#detail .decision-pending").inner_text()
    assert (
        "Not stored: normal confirmed by R. Viewer, amending the signed-off sample" in refused_note
    )
    stored_line = page.locator("#detail .decision-state").inner_text()
    assert stored_line.startswith("Decision: ALL confirmed by R. Viewer")  # the stored one still
    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    assert "second look" not in page.locator("#report").inner_text()
    assert httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()["amendments"] == []
    screenshot(page.locator("#detail"), "amendment-refused.png")
    page.unroute("**/api/v1/reviews")
    page.click("#detail .pending-retry")  # goes again with its reason
    page.locator("#sample-status[data-status=amended]").wait_for(timeout=30_000)
    page.locator("#sample-counts[data-pending='0']").wait_for(state="attached")
    wait_for_stored(page, 23)
    sample = httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()
    (amendment,) = sample["amendments"]
    assert amendment["reason"] == "second look: a large lymphocyte"
    assert page.locator("#sign-off-button").is_enabled()
    screenshot(page.locator("#summary-panel"), "sample-amended.png")

    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    texts = printed_pages(page, "report-amended")
    assert len(texts) >= 2
    for number, text in enumerate(texts, start=1):
        assert "sample LAB-SIGN" in text, number
        assert "status: AMENDED" in text, number
        assert f"page {number} of {len(texts)}" in text, number
    whole = " ".join(" ".join(texts).split())
    assert "Amendments after sign-off" in whole
    assert "second look: a large lymphocyte" in whole
    assert "ALL confirmed → normal confirmed" in whole
    assert "Signed off by R. Viewer" in whole
    assert sample["signed_off"]["content_sha256"] in whole.replace(" ", "")
    assert HUMAN_TIME.search(whole)
    assert not re.search(r"\d{1,2}/\d{1,2}/\d{4}", whole)  # no locale-dependent dates

    # The lab CSV: every time ISO 8601 with its zone.
    with page.expect_download() as download:
        page.click("#csv-button")
    records = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    times = [r[c] for r in records for c in ("date_time_utc", "decision_time_utc") if r[c]]
    assert len(times) >= 24
    assert [t for t in times if not ISO_WITH_ZONE.match(t)] == []
    summary = records[-1]
    assert summary["status"] == "summary"
    assert "Status: amended; signed off by R. Viewer at " in summary["note"]
    for stamp in re.findall(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+\S*", summary["note"]):
        assert ISO_WITH_ZONE.match(stamp.rstrip(";.")), stamp
    assert [r["amendment"] for r in records if r["amendment"]] == [amendment["reason"]]

    # Signed again from the page: final, the history kept.
    page.click("#sign-off-button")
    page.check("#sign-off-leave")
    page.click("#sign-off-confirm")
    page.locator("#sample-status[data-status=final]").wait_for(timeout=30_000)
    sample = httpx.get(f"{review_server}/api/v1/samples/LAB-SIGN").json()
    assert [s["by"] for s in sample["sign_offs"]] == ["R. Viewer", "R. Viewer"]
    texts = printed_pages(page, "report-final")
    for number, text in enumerate(texts, start=1):
        assert "status: FINAL" in text
        assert f"page {number} of {len(texts)}" in text


def test_one_sentence_of_error_rates_on_the_page_report_card_and_readme(
    page, start_server, cnmc_root
):
    base = start_server()  # the bundled models
    page.goto(base)
    page.locator("details.advanced summary").click()  # where the model is chosen
    selector = page.locator("#model-error-rates").inner_text()
    analyse(page, fixture_cells(cnmc_root)[:2], sample_id="LAB-RATES")
    on_page = page.locator("#sample-error-rates .error-rates-sentence").inner_text()
    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    in_report = page.locator("#report .report-error-rates .error-rates-sentence").inner_text()
    page.emulate_media(media="print")
    pdf_text = " ".join(printed_pages(page, "report-rates")).replace("\n", " ")
    default = httpx.get(f"{base}/api/v1/models").json()["default"]
    page.goto(f"{base}/models/{default}")
    in_card_box = page.locator("#at-a-glance #error-rates").inner_text()
    readme = README_BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert readme["model"] == default
    sentences = {
        "model selector": selector,
        "page": on_page,
        "report": in_report,
        "card box": in_card_box,
        "README": readme["sentence"],
    }
    assert len(set(sentences.values())) == 1, sentences
    assert selector.startswith("Error rates on ")
    assert "".join(selector.split()) in "".join(pdf_text.split())  # and in print
    assert "Of 100" not in pdf_text


@pytest.fixture(scope="module")
def keyed_server(module_server_launcher, review_model_store) -> str:
    """Reviewers' own keys beside the lab's shared one."""
    return module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(review_model_store),
        LEUKOLENS_API_KEY=SHARED,
        LEUKOLENS_REVIEWER_KEYS=json.dumps(KEYS),
    )


def test_on_a_keyed_server_the_signed_in_reviewer_signs_and_a_late_change_is_an_amendment(
    page, keyed_server, cnmc_root
):
    """The shared key cannot sign; the reviewer whom whoami names signs, never a typed name.
    A decision made while another reviewer signed the sample off is refused (pending, never
    counted); its retry reads the sample again and asks for the amendment's reason."""
    page.goto(keyed_server)
    sign_in(page, SHARED)
    page.locator("#sign-in-dialog").wait_for(state="hidden")
    start_without_a_name(page, fixture_cells(cnmc_root)[:2], "KEYED-SIGN")
    page.locator("#gallery .thumb").nth(1).wait_for()
    button = page.locator("#sign-off-button")
    assert button.is_disabled()
    assert "shared key cannot sign off" in button.get_attribute("title")
    page.click("#sign-in-button")
    sign_in(page, KEYS["Dr Alice"])
    page.locator("#sign-in-dialog").wait_for(state="hidden")
    page.locator("#reviewer[readonly]").wait_for(state="attached")
    assert page.input_value("#reviewer") == "Dr Alice"
    rows = gallery_rows(page)
    page.locator(f'#gallery .thumb[data-key="{rows[0]["key"]}"]').click()
    page.keyboard.press("a")
    wait_for_stored(page, 1)

    # Dr Bob signs it off elsewhere, leaving the second cell; this page does not know yet.
    bob = {"X-API-Key": KEYS["Dr Bob"]}
    signed = httpx.post(
        f"{keyed_server}/api/v1/samples/KEYED-SIGN/sign-off",
        json={"undecided_cells": "leave"},
        headers=bob,
        timeout=30,
    )
    assert signed.status_code == 201
    page.locator(f'#gallery .thumb[data-key="{rows[1]["key"]}"]').click()
    page.keyboard.press("n")
    page.locator(f'#gallery .thumb[data-key="{rows[1]["key"]}"] .mark-refused').wait_for()
    counts = page.locator("#sample-counts")
    assert (counts.get_attribute("data-stored"), counts.get_attribute("data-pending")) == ("1", "1")
    note = page.locator("#detail .decision-pending").inner_text()
    assert "signed off meanwhile" in note
    assert not any(word in note for word in ("LEUKOLENS", "'amendment'", "409"))
    page.click("#detail .pending-retry")
    page.locator("#amend-dialog").wait_for()
    assert "signed off by Dr Bob" in page.locator("#amend-what").inner_text()
    page.fill("#amend-reason", "decided after the sign-off")
    page.click("#amend-confirm")
    page.locator("#sample-status[data-status=amended]").wait_for(timeout=30_000)
    wait_for_stored(page, 2)
    sample = httpx.get(f"{keyed_server}/api/v1/samples/KEYED-SIGN", headers=bob, timeout=30).json()
    (amendment,) = sample["amendments"]
    assert (amendment["reviewer"], amendment["old_decision"], amendment["new_decision"]) == (
        "Dr Alice",
        None,
        "HEM",
    )
    assert amendment["reason"] == "decided after the sign-off"

    page.click("#sign-off-button")
    page.locator("#sign-off-dialog").wait_for()
    page.click("#sign-off-confirm")
    page.locator("#sample-status[data-status=final]").wait_for(timeout=30_000)
    assert page.locator("#sample-status").inner_text().startswith("Final — signed off by Dr Alice")
    sample = httpx.get(f"{keyed_server}/api/v1/samples/KEYED-SIGN", headers=bob, timeout=30).json()
    assert [(s["by"], s["by_source"]) for s in sample["sign_offs"]] == [
        ("Dr Bob", "reviewer_key"),
        ("Dr Alice", "reviewer_key"),
    ]
    if AXE.exists():
        assert axe_violations(page) == []
