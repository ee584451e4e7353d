"""The page takes the server's sample-id rule (LEUKOLENS_SAMPLE_ID_PATTERN) as it was served,
never a copy of its own: a server started with another pattern makes the page accept and refuse
accordingly, before a byte is sent; a pattern JavaScript cannot read leaves it to the server."""

import pytest

from tests.app.web.test_browser_ui import fixture_cells

pytestmark = pytest.mark.browser
STRICT = r"S\d{2}-\d{5}"
PYTHON_ONLY = r"(?P<lab>S)\d{2}-\d{5}"  # a named group in Python's spelling: no JavaScript
DEFAULT_WORDS = "letters, digits, dots, dashes or underscores, up to 64"


@pytest.fixture(scope="module")
def servers(module_server_launcher, module_model_store) -> dict[str, str]:
    """The same models behind three rules: the default, a strict lab's and a Python-only one."""
    start = lambda **rule: module_server_launcher(  # noqa: E731
        LEUKOLENS_MODEL_STORE=str(module_model_store), **rule
    )
    return {
        "default": start(),
        "strict": start(LEUKOLENS_SAMPLE_ID_PATTERN=STRICT),
        "python_only": start(LEUKOLENS_SAMPLE_ID_PATTERN=PYTHON_ONLY),
    }


def open_page(page, base: str) -> list[str]:
    """The page, ready; the batch uploads it sends from now on."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/predict/batch" in r.url else None)
    page.goto(base)
    page.wait_for_selector("body[data-restored='true']", state="attached")
    return sent


def try_to_analyse(page, cell, sample_id: str) -> None:
    page.fill("#sample-id", sample_id)
    page.fill("#reviewer", "A. Tech")
    page.set_input_files("#file-input", [str(cell)])
    page.click("#analyse-button")


def wait_for_done(page) -> str:
    status = page.locator("#status").filter(has_text="Done")
    status.wait_for(timeout=60_000)
    return status.inner_text()


@pytest.mark.parametrize(
    ("server", "refused", "accepted", "words"),
    [
        ("default", "S24 12345", "LAB-R", DEFAULT_WORDS),
        ("strict", "LAB-R", "S24-12345", f"matching {STRICT}"),
    ],
)
def test_the_page_accepts_and_refuses_by_the_servers_pattern(
    page, servers, cnmc_root, server, refused, accepted, words
):
    cell = fixture_cells(cnmc_root)[0]
    sent = open_page(page, servers[server])
    try_to_analyse(page, cell, refused)
    alert = page.locator("#alert")
    alert.wait_for(state="visible")
    assert (
        alert.inner_text()
        == f"The sample id must be a lab number ({words}), never a patient's name."
    )
    assert sent == []  # refused before a byte was sent
    try_to_analyse(page, cell, accepted)
    assert "Done: 1 image analysed" in wait_for_done(page)
    assert len(sent) == 1
    assert page.locator("#sample-title").inner_text() == accepted
    # The field says the same rule in the same words.
    assert (
        page.locator("#sample-hint").inner_text()
        == f"A lab number ({words}), never a patient's name."
    )


def test_a_new_sample_gets_a_clock_id_only_where_the_lab_takes_one(page, servers):
    open_page(page, servers["default"])
    assert page.input_value("#sample-id").startswith("S-")
    open_page(page, servers["strict"])
    assert page.input_value("#sample-id") == ""  # S-20250101-1200 is no lab number there
    page.click("#new-sample")
    assert page.input_value("#sample-id") == ""


def test_a_pattern_javascript_cannot_read_is_left_to_the_server(page, servers, cnmc_root):
    cell = fixture_cells(cnmc_root)[0]
    sent = open_page(page, servers["python_only"])
    try_to_analyse(page, cell, "LAB-R")
    alert = page.locator("#alert")
    alert.wait_for(state="visible")
    assert "refused by the lab's pattern" in alert.inner_text()
    assert len(sent) == 1  # the page sent it: the server judged
    try_to_analyse(page, cell, "S24-12345")
    assert "Done: 1 image analysed" in wait_for_done(page)
