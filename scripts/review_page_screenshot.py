"""The README's screenshot of the review page, taken again after the page changes:

    .venv/bin/python scripts/review_page_screenshot.py [--out docs/images/review-page.png]

Serves the bundled models on a free loopback port with a throwaway data folder, analyses
eight fixture cells as sample LAB-2026-0042 in Debian's Chromium, stores one decision, and
saves the sample's part of the page (summary, gallery, selected cell) as a palette PNG small
enough for the README.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import FloatRect, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CELLS = ROOT / "tests/fixtures/cnmc/training_data/fold_1"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1440, "height": 900}
WIDTH = 1200  # pixels wide in the README


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("the server stopped before it was ready")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit("the server was not ready within 120 s")


def review_a_sample(page: Page, base: str) -> None:
    cells = sorted(CELLS.glob("all/*.png"))[:4] + sorted(CELLS.glob("hem/*.png"))[:4]
    page.goto(base)
    page.fill("#sample-id", "LAB-2026-0042")
    page.fill("#reviewer", "A. Tech")
    page.set_input_files("#file-input", [str(path) for path in cells])
    page.click("#analyse-button")
    page.locator("#cancel-button").wait_for(state="hidden", timeout=120_000)
    page.locator("#status").filter(has_text="Done").wait_for(timeout=120_000)
    page.locator("#gallery .thumb").first.click()
    page.keyboard.press("a")  # confirm ALL on the first cell: one stored decision
    page.locator("#sample-counts[data-stored='1']").wait_for(state="attached", timeout=30_000)
    page.keyboard.press("j")  # the next cell in the detail pane, still undecided


def sample_area(page: Page) -> FloatRect:
    """From the sample's heading to the foot of the gallery and the selected cell, in the
    page's coordinates (bounding boxes are the viewport's: scrolled to the top first)."""
    page.evaluate("window.scrollTo(0, 0)")
    top = page.locator("#summary-panel").bounding_box()
    panes = [page.locator(s).bounding_box() for s in (".gallery-panel", "#detail-section")]
    if top is None or None in panes:
        sys.exit("the sample's panels are not on the page")
    bottom = max(box["y"] + box["height"] for box in panes if box is not None)
    return {"x": 0, "y": top["y"] - 8, "width": VIEWPORT["width"], "height": bottom - top["y"] + 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/review-page.png")
    parser.add_argument("--colours", type=int, default=128, help="palette size of the PNG")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        environment = {**os.environ, "LEUKOLENS_DATA_DIR": data}
        command = [sys.executable, "-m", "app", "--port", str(port), "--log-level", "warning"]
        server = subprocess.Popen(command, cwd=ROOT, env=environment)
        try:
            wait_ready(base, server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"]
                )
                page = browser.new_page(viewport=VIEWPORT)
                review_a_sample(page, base)
                raw = Path(data) / "raw.png"
                page.screenshot(path=str(raw), full_page=True, clip=sample_area(page))
                browser.close()
            with Image.open(raw) as shot:
                height = round(shot.height * WIDTH / shot.width)
                scaled = shot.convert("RGB").resize((WIDTH, height), Image.Resampling.LANCZOS)
                small = scaled.quantize(colors=args.colours, dither=Image.Dither.NONE)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                small.save(args.out, optimize=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
