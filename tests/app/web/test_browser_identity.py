"""Who did what, in a real browser: every tab keeps its own sample and reviewer, a decision counts
only once the server stored it, and a keyed server is signed in to from the page. Debian's
Chromium driven by Playwright, offline; axe-core on every new state; screenshots of the
pending decision, the sign-in prompt and the read-only reviewer name in artifacts/browser/."""

import csv
import io
import json
from pathlib import Path

import httpx
import pytest

from tests.app.web.conftest import console_errors_of
from tests.app.web.test_browser_sample_record import open_sample, reload
from tests.app.web.test_browser_ui import (
    AXE,
    analyse,
    axe_violations,
    fixture_cells,
    gallery_rows,
    shot,
    wait_for_run_end,
    wait_for_stored,
)

pytestmark = pytest.mark.browser

SHARED = "lab-shared-key"
KEYS = {"Dr Alice": "alice-own-key", "Dr Bob": "bob-own-key"}
SETTING_WORDS = ("LEUKOLENS", "reviewer_keys", "X-API-Key", "'reviewer'")


@pytest.fixture(scope="module")
def keyed_server(module_server_launcher, review_model_store) -> str:
    """Reviewers' own keys beside the lab's shared one."""
    return module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(review_model_store),
        LEUKOLENS_MAX_BATCH_FILES="64",
        LEUKOLENS_API_KEY=SHARED,
        LEUKOLENS_REVIEWER_KEYS=json.dumps(KEYS),
    )


@pytest.fixture
def fresh_page(browser):
    """A page in a browser of its own (no tab, key or cache before it)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors = console_errors_of(page)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert errors == []


def no_serious_violation(page) -> None:
    if AXE.exists():
        assert axe_violations(page) == []


def sign_in(page, key: str) -> None:
    dialog = page.locator("#sign-in-dialog")
    dialog.wait_for()
    page.fill("#api-key", key)
    page.click("#sign-in-submit")


def start_without_a_name(page, files, sample_id: str) -> None:
    """Where the server names the reviewer, nobody types one."""
    page.fill("#sample-id", sample_id)
    page.set_input_files("#file-input", [str(p) for p in files])
    page.click("#analyse-button")
    wait_for_run_end(page)


def server_decisions(base: str, sample_id: str, key: str | None = None) -> list[dict]:
    headers = {"X-API-Key": key} if key else {}
    answer = httpx.get(f"{base}/api/v1/samples/{sample_id}", headers=headers, timeout=30)
    return answer.json()["decisions"]


def stored_browser_data(page) -> str:
    """Everything this origin keeps beyond the tab: localStorage and IndexedDB, as text."""
    return page.evaluate(
        """async () => {
          const db = await new Promise((resolve, reject) => {
            const open = indexedDB.open("leukolens", 1);
            open.onsuccess = () => resolve(open.result);
            open.onerror = () => reject(open.error);
          });
          const all = await new Promise((resolve) => {
            const request = db.transaction("session").objectStore("session").getAll();
            request.onsuccess = () => resolve(request.result);
          });
          return JSON.stringify({ local: { ...localStorage }, indexed: all });
        }"""
    )


def test_two_tabs_keep_their_own_sample_and_reviewer_through_a_reload(
    context, review_server, cnmc_root
):
    """Tab 1 worked on sample C as Tech One, tab 2 on D as Tech Two; after both reloaded, tab
    1 showed D and Tech Two, and its next decision went to D under Tech Two's name."""
    cells = fixture_cells(cnmc_root)
    work = {"TABS-C": ("Tech One", cells[:4]), "TABS-D": ("Tech Two", cells[4:8])}
    tabs = {}
    errors = []
    for sample_id, (reviewer, part) in work.items():
        tab = context.new_page()
        errors.append(console_errors_of(tab))
        tab.on("dialog", lambda dialog: dialog.accept())
        tab.goto(review_server)
        tab.locator("body[data-restored=true]").wait_for(state="attached")
        analyse(tab, part, sample_id=sample_id, reviewer=reviewer)
        tab.locator("#gallery .thumb").first.click()
        tab.keyboard.press("a")
        wait_for_stored(tab, 1)
        tabs[sample_id] = tab
    for tab in tabs.values():
        reload(tab)
    for sample_id, tab in tabs.items():
        reviewer, part = work[sample_id]
        assert tab.locator("#sample-title").inner_text() == sample_id
        assert tab.input_value("#reviewer") == reviewer
        # the tab's own sample, reopened, shows its file names and thumbnails
        assert sorted(r["filename"] for r in gallery_rows(tab)) == sorted(p.name for p in part)
        assert tab.locator("#gallery .thumb img").count() == len(part)
        tab.locator("#gallery .thumb").nth(1).click()
        tab.keyboard.press("n")
        wait_for_stored(tab, 2)
    for sample_id, (reviewer, _) in work.items():
        decisions = server_decisions(review_server, sample_id)
        assert [d["reviewer"] for d in decisions] == [reviewer, reviewer]
    # the other tab's sample, opened here, has its file names: this browser analysed it
    first = tabs["TABS-C"]
    open_sample(first, "TABS-D")
    names = sorted(r["filename"] for r in gallery_rows(first))
    assert names == sorted(p.name for p in work["TABS-D"][1])
    assert first.input_value("#reviewer") == "Tech One"  # never the other tab's reviewer
    no_serious_violation(first)
    assert errors == [[], []]


def test_a_refused_decision_is_pending_never_counted_or_printed_then_stored_after_sign_in(
    fresh_page, keyed_server, cnmc_root
):
    page = fresh_page
    page.goto(keyed_server)
    prompt = page.locator("#sign-in-dialog")
    prompt.wait_for()
    assert "needs a key" in page.locator("#sign-in-reason").inner_text()
    shot(page, "sign-in-prompt.png")
    no_serious_violation(page)  # the prompt open
    sign_in(page, SHARED)
    prompt.wait_for(state="hidden")
    assert page.locator("#reviewer").get_attribute("readonly") is not None
    assert "shared key records no decisions" in page.locator("#reviewer-hint").inner_text()
    start_without_a_name(page, fixture_cells(cnmc_root)[:3], "PEND-1")
    first = page.locator("#gallery .thumb").first
    first.click()
    page.keyboard.press("a")  # the shared key cannot decide: 403
    page.locator("#gallery .thumb[data-decision=refused]").wait_for()
    counts = page.locator("#sample-counts")
    assert (counts.get_attribute("data-stored"), counts.get_attribute("data-pending")) == ("0", "1")
    assert "Reviewed (stored on the server)0 of 3" in counts.inner_text().replace("\n", "")
    assert "✓" not in page.locator("#gallery").inner_text()
    first.click()
    note = page.locator("#detail .decision-pending")
    assert "The lab's shared key cannot record decisions" in note.inner_text()
    assert "not counted" in note.inner_text()
    assert page.locator("#detail .decision-state").inner_text() == "No decision stored yet."
    visible = page.locator("body").inner_text()
    assert not [word for word in SETTING_WORDS if word in visible]
    shot(page.locator("#workstation"), "pending-decision.png")
    no_serious_violation(page)  # a refused decision shown
    # neither the lab CSV nor the printed report holds it
    with page.expect_download() as download:
        page.click("#csv-button")
    records = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["decision"] for r in records[:-1]] == ["", "", ""]
    assert "Reviewed (stored on the server): 0 of 3" in records[-1]["note"]
    page.evaluate("() => { window.print = () => {}; }")
    page.click("#print-button")
    assert "ALL confirmed" not in page.locator("#report").inner_text()
    assert server_decisions(keyed_server, "PEND-1", SHARED) == []
    # sign in with Alice's own key from the cell: the decision goes again and is stored
    note.locator(".pending-sign-in").click()
    sign_in(page, KEYS["Dr Alice"])
    wait_for_stored(page, 1)
    assert counts.get_attribute("data-pending") == "0"
    assert page.input_value("#reviewer") == "Dr Alice"
    assert page.locator("#reviewer").get_attribute("readonly") is not None
    shot(page.locator("#upload-panel"), "read-only-reviewer.png")
    no_serious_violation(page)  # signed in, the name read-only
    (stored,) = server_decisions(keyed_server, "PEND-1", SHARED)
    assert (stored["decision"], stored["reviewer"], stored["reviewer_source"]) == (
        "ALL",
        "Dr Alice",
        "reviewer_key",
    )


def test_a_fresh_browser_on_a_keyed_server_asks_for_the_key_then_lists_and_decides(
    fresh_page, keyed_server, cnmc_root
):
    cells = fixture_cells(cnmc_root)[:3]
    made = httpx.post(
        f"{keyed_server}/api/v1/predict/batch?sample_id=FRESH-1",
        files=[("files", (p.name, p.read_bytes())) for p in cells],
        headers={"X-API-Key": KEYS["Dr Bob"]},
        timeout=60,
    )
    assert made.status_code == 200
    page = fresh_page
    page.goto(keyed_server)
    page.locator("#sign-in-dialog").wait_for()
    assert "Sign in to see" in page.locator("#open-sample").inner_text()
    sign_in(page, "not-a-key")
    page.locator("#sign-in-problem").filter(has_text="not accepted").wait_for()
    no_serious_violation(page)  # a wrong key said
    page.fill("#api-key", KEYS["Dr Alice"])
    page.click("#sign-in-submit")
    page.locator("#sign-in-dialog").wait_for(state="hidden")
    # the list comes with the key: no reload, no analysis first
    page.locator("#open-sample option[value='FRESH-1']").wait_for(state="attached")
    assert page.input_value("#reviewer") == "Dr Alice"
    open_sample(page, "FRESH-1")
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("n")
    wait_for_stored(page, 1)
    (stored,) = server_decisions(keyed_server, "FRESH-1", SHARED)
    assert (stored["reviewer"], stored["decision"]) == ("Dr Alice", "HEM")
    no_serious_violation(page)
    # a reload keeps the tab signed in; the key is in this tab's session alone
    reload(page)
    assert page.locator("#sign-in-dialog").is_hidden()
    assert page.input_value("#reviewer") == "Dr Alice"
    assert KEYS["Dr Alice"] not in stored_browser_data(page)


def test_the_one_session_of_an_earlier_release_becomes_caches_and_no_tab_takes_its_reviewer(
    fresh_page, review_server, cnmc_root
):
    cells = fixture_cells(cnmc_root)[:2]
    scored = httpx.post(
        f"{review_server}/api/v1/predict/batch?sample_id=LEGACY-1",
        files=[("files", (p.name, p.read_bytes())) for p in cells],
        timeout=60,
    ).json()["results"]
    shas = [result["prediction"]["image_sha256"] for result in scored]
    legacy = {
        "rows": [
            {
                "key": f"LEGACY-1:{sha}",
                "sampleId": "LEGACY-1",
                "sha256": sha,
                "status": "ok",
                "filename": f"kept-name-{n}.png",
                "attached": True,
                "thumb": None,
                "index": n,
                "requestId": scored[n]["prediction"]["request_id"],
                "decision": None,
                "time": "2026-01-01T00:00:00Z",
                "prediction": scored[n]["prediction"],
            }
            for n, sha in enumerate(shas)
        ],
        "currentSample": "LEGACY-1",
        "reviewer": "Someone From Before",
        "exported": True,
        "savedAt": "2026-01-01T00:00:00Z",
        "shares": {},
    }
    page = fresh_page
    page.goto(review_server)
    page.locator("body[data-restored=true]").wait_for(state="attached")
    page.evaluate(
        """(legacy) => new Promise((resolve, reject) => {
          const open = indexedDB.open("leukolens", 1);
          open.onsuccess = () => {
            const transaction = open.result.transaction("session", "readwrite");
            transaction.objectStore("session").put(legacy, "current");
            transaction.oncomplete = resolve;
            transaction.onerror = reject;
          };
        })""",
        legacy,
    )
    reload(page)
    assert page.input_value("#reviewer") == ""  # no tab adopts a reviewer it never had
    open_sample(page, "LEGACY-1")
    assert sorted(r["filename"] for r in gallery_rows(page)) == [
        "kept-name-0.png",
        "kept-name-1.png",
    ]
    assert "Someone From Before" not in stored_browser_data(page)
