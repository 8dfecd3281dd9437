"""A real headless browser for the grader's HTML pages: Debian's chromium driven by playwright.

Never ``playwright install`` (no browser download): the system's ``/usr/bin/chromium``, which
``make test`` installs (apt-get, as root). Missing, a test using it skips, except in CI
(``CI=true``), where it fails.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# Every image's natural width, the page's text, and the elements whose content is cut (overflow hidden).
PROBE = """() => ({
  images: [...document.images].map(i => i.complete ? i.naturalWidth : 0),
  text: document.body.innerText,
  clipped: [...document.querySelectorAll('*')].filter(e => {
    const s = getComputedStyle(e);
    const hides = ['hidden', 'clip'].includes(s.overflowX) || ['hidden', 'clip'].includes(s.overflowY);
    return hides && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1);
  }).map(e => e.tagName + '.' + e.className),
})"""


def need_chromium() -> None:
    """Skip without chromium and playwright, saying why; in CI fail instead."""
    problem = None if Path(CHROMIUM).exists() else f"{CHROMIUM} missing (apt-get install -y chromium; make test does it as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = problem or "the playwright package is missing (pip install -r requirements-dev.txt)"
    if problem:
        (pytest.fail if os.environ.get("CI", "").lower() == "true" else pytest.skip)(problem)


def open_page(path: Path) -> dict:
    """Open ``path`` from disk in headless chromium; what the probe saw once the page loaded."""
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            return page.evaluate(PROBE)
        finally:
            browser.close()
