"""The browser tests' shared fixtures: Debian's Chromium under Playwright, and a review server."""

import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
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


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    yield context
    context.close()


# Chromium logs every HTTP 4xx answer to a fetch as a console error. The page asks for some on
# purpose and handles them (401: the sign-in prompt; 403 and 409: a refusal in words; 404: a
# withdrawal of an upload the server never recorded), so those lines are no script error.
HANDLED_ANSWER = re.compile(
    r"^Failed to load resource: the server responded with a status of 4\d\d"
)


def console_errors_of(page) -> list[str]:
    """Script errors and Content-Security-Policy violations, as they happen."""
    errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not HANDLED_ANSWER.match(m.text)
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def page(context):
    page = context.new_page()
    console_errors = console_errors_of(page)
    # Leaving a session that was not exported asks first; the tests that reload accept.
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    # Script errors and Content-Security-Policy violations both land here.
    assert console_errors == []


@pytest.fixture(scope="module")
def review_model_store(tmp_path_factory) -> Path:
    """The two test models; the default's card holds an out-of-fold evaluation, so samples
    scored with it get a corrected share of blast-like cells."""
    from app.core.manifest import Evaluation, load_manifest, write_manifest
    from app.core.model_registry import record_model
    from tests.conftest import write_mean_brightness_model

    store = tmp_path_factory.mktemp("module-store")
    model_dir = write_mean_brightness_model(store / "brightness")
    write_mean_brightness_model(store / "brightness-64", input_size=64)
    evaluation = Evaluation(
        protocol="out-of-fold predictions of a test cross-validation, at the served threshold",
        metrics={"threshold": 0.5, "confusion_matrix": [[750, 250], [200, 800]]},
    )
    card = load_manifest(model_dir)
    write_manifest(card.model_copy(update={"evaluations": [evaluation]}), model_dir)
    record_model(store, store / "brightness-64")
    record_model(store, model_dir, default=True)
    return store


@pytest.fixture(scope="module")
def review_server(module_server_launcher, review_model_store) -> str:
    """Torch-free test models; up to 64 files at once, as the default settings."""
    return module_server_launcher(
        LEUKOLENS_MODEL_STORE=str(review_model_store), LEUKOLENS_MAX_BATCH_FILES="64"
    )
