"""The upload page in a real browser: Debian's Chromium driven by Playwright, offline."""

import os
import shutil
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        yield page
        context.close()
        browser.close()
    # Script errors and Content-Security-Policy violations both land here.
    assert console_errors == []


def test_upload_one_real_cell_and_see_the_result(page, start_server, cnmc_root):
    base = start_server()  # the bundled model store, as the README's serve command
    external_requests = []
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith(base) or r.url.startswith("data:")
            else external_requests.append(r.url)
        ),
    )
    page.goto(base)
    assert "not a diagnosis" in page.locator(".notice").inner_text()
    cell = cnmc_root / "training_data/fold_1/all/UID_16_11_1_all.png"
    page.set_input_files("#file-input", str(cell))
    page.click("#analyse-button")
    card = page.locator("#detail .result-card")
    card.wait_for(timeout=30_000)
    assert card.locator(".result-file").inner_text() == cell.name
    assert card.locator(".badge").inner_text().split()[0] in {"ALL", "HEM"}
    assert "Probability of ALL" in card.locator(".probability-text").inner_text()
    for view in ("original", "enhanced", "cropped"):
        image = card.locator(f".view-{view}")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    # The Grad-CAM share is shown, with a plain caution when the map lies mostly off the cell.
    share = card.locator(".heat-share")
    answer = httpx.post(
        f"{base}/api/v1/predict?explain=true", files={"file": (cell.name, cell.read_bytes())}
    ).json()["explanation"]
    assert f"{answer['heat_in_cell'] * 100:.1f}% of the heat on the cell" in share.inner_text()
    off_cell = answer["on_cell"] is False
    assert ("lies around the cell" in share.inner_text()) == off_cell
    assert ("off-cell" in (share.get_attribute("class") or "")) == off_cell
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-result.png"), full_page=True)
    assert external_requests == []


def test_many_images_give_a_sortable_table_and_a_csv(page, start_server, cnmc_root, tmp_path):
    base = start_server()
    cells = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:5]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    page.goto(base)
    page.set_input_files("#file-input", [str(p) for p in cells] + [str(broken)])
    page.click("#analyse-button")
    rows = page.locator("#results-table tbody tr")
    rows.first.wait_for(timeout=30_000)
    assert rows.count() == 6
    assert "error" in page.locator("#results-table tbody tr.is-error").inner_text()
    page.click("button[data-sort=probability]")
    page.click("button[data-sort=probability]")  # descending
    shown = [row.locator("td").nth(3).inner_text() for row in rows.all()]
    probabilities = [float(text.rstrip("%")) for text in shown if text.endswith("%")]
    assert probabilities == sorted(probabilities, reverse=True)
    with page.expect_download() as download:
        page.click("#csv-button")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("filename,status,label,probability_all")
    assert len(csv_text.splitlines()) == 7
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "batch-results.png"), full_page=True)


def test_model_page_in_the_browser(page, start_server):
    base = start_server()
    page.goto(base)
    page.click("nav >> text=Model:")
    assert page.locator("h1").inner_text().startswith("Model card:")
    assert "Intended use" in page.content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "model-card.png"), full_page=True)
