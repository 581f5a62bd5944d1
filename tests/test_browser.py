"""The run page in a real browser: the timeline is drawn, model replies stay text.

Uses Debian's ``chromium`` through Playwright; skipped, with the reason, where
either is missing. ``.ci/run`` installs Chromium, so CI runs it.
"""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from datasette_fixtures import METADATA_PATH, run_consortiums

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM} "
            "(apt-get install chromium to run the browser test)."
        )
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed."
    )
    return playwright.sync_playwright


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    path = tmp_path / "evaluations.db"
    runs = run_consortiums(path)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(path)]
        + ["-m", str(METADATA_PATH), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield base, runs
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Datasette exited: {process.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"{base}/-/versions.json", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("Datasette did not start within 30 seconds.")


def test_run_page_draws_the_timeline_and_runs_no_model_script(sync_playwright, server):
    base, runs = server
    dialogs: list[str] = []
    foreign_requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.on(
                "dialog",
                lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()),
            )
            page.on(
                "request",
                lambda request: (
                    None
                    if request.url.startswith(base)
                    else foreign_requests.append(request.url)
                ),
            )
            page.goto(f"{base}/evaluations/-/consortium/runs/{runs['hostile']}")

            timeline = page.locator("svg#consortium-timeline")
            assert timeline.is_visible()
            box = timeline.bounding_box()
            assert box["width"] > 300 and box["height"] > 50
            bars = page.locator("svg#consortium-timeline rect")
            assert bars.count() == 3  # two members and the arbiter
            assert all(bars.nth(i).bounding_box()["width"] >= 1 for i in range(3))

            assert page.evaluate("typeof window.__consortium_pwned") == "undefined"
            assert page.locator("pre.member-response img").count() == 0
            replies = page.locator("pre.member-response").all_inner_texts()
            assert any("<script>window.__consortium_pwned" in text for text in replies)
            assert (
                "<script>alert(1)</script>" in page.locator("#run-prompt").inner_text()
            )
        finally:
            browser.close()
    assert dialogs == []
    assert foreign_requests == []
