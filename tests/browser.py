"""Opens a local HTML page in headless Chromium (Playwright driving Debian's `/usr/bin/chromium`, which
`make browser` installs; Playwright's own browser download is never used) and says what rendered."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Root in a container needs --no-sandbox; the rest keep a headless run from reaching for the network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# A plotly chart that rendered: its div got plotly's class and an SVG drawn into it.
COUNT_CHARTS = ("() => [...document.querySelectorAll('.js-plotly-plot')]"
                ".filter(d => d.querySelector('svg.main-svg')).length")
TWO_FRAMES = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


def render_in_chromium(html_path: Path, screenshot: Path | None = None) -> dict:
    """Loads `html_path`; returns {"errors": page errors and console errors, "charts": plotly charts drawn,
    "title": the page's title}, with a full-page screenshot at `screenshot` if given. Skips the calling
    test when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: `make browser` installs it (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright is not installed: `make setup` installs it (pip install -e '.[test]')")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
            page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
            page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
            page.evaluate(TWO_FRAMES)  # plotly draws in the page's scripts; let the last layout settle
            charts = page.evaluate(COUNT_CHARTS)
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
            return {"errors": errors, "charts": charts, "title": page.title()}
        finally:
            browser.close()
