"""What the browser tests share: Debian's Chromium driven by Playwright (a module's
browser, a page per test that fails on JavaScript errors and leaves a screenshot in
``test-artifacts/`` when its test fails), the tour screenshots and small API reads.
tests/conftest.py offers the fixtures; Playwright is imported by them, so a checkout
without it skips only the browser tests."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialing Google's hosts, which this
# network refuses; the sandbox needs user namespaces that containers (and root) lack.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
TOUR = os.environ.get("DEEPSYNTH_SCREENSHOTS")
SECONDS = 1000  # Playwright timeouts are in milliseconds


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium)")
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30 * SECONDS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


# The tour's widths: a phone, a laptop (NAME.png, the README's) and a wide screen.
TOUR_SIZES = ((1280, 900, ""), (390, 844, "-390"), (1920, 1080, "-1920"))


def settle(page) -> None:
    """Two animation frames: resize observers (the charts) have redrawn at the new width."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def tour(page, name: str) -> None:
    """With DEEPSYNTH_SCREENSHOTS=DIR, NAME.png, NAME-390.png and NAME-1920.png into DIR;
    the page's own viewport is put back afterwards."""
    if not TOUR:
        return
    Path(TOUR).mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    page.mouse.move(0, 0)  # no tooltip of wherever the pointer was left
    for width, height, suffix in TOUR_SIZES:
        page.set_viewport_size({"width": width, "height": height})
        settle(page)
        page.screenshot(path=str(Path(TOUR) / f"{name}{suffix}.png"), full_page=False)
    page.set_viewport_size(before)
    settle(page)


def api_get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=30) as response:
        return json.loads(response.read())


def job_status(base: str, job_id: str) -> str:
    return api_get(base, f"/api/jobs/{job_id}")["status"]


def wait_status(base: str, job_id: str, wanted: str = "completed", timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (status := job_status(base, job_id)) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} is {status}, not {wanted}"
        time.sleep(0.5)
