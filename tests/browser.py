"""Headless Chromium (the Debian ``chromium`` package) driven through Playwright's Python API, for the web UI tests.

No browser is downloaded: ``playwright install`` is never run, the system's
Chromium is launched with a fresh profile. Each :class:`Watched` page records
console errors and failed requests so a test can assert a page loaded cleanly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = os.environ.get("SUSTAIN_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 1000}
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"


def chromium_path() -> str:
    """The Chromium binary, or a test failure that says how to install it (never a silent skip)."""
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: the web UI tests drive the Debian browser. Install it with "
            "'apt-get update && apt-get install -y chromium' (make test does), or point SUSTAIN_CHROMIUM at one.",
            pytrace=False,
        )
    return path


@contextmanager
def chromium(profile: Path) -> Iterator[BrowserContext]:
    """A persistent Chromium context on a fresh profile directory, closed afterwards."""
    executable = chromium_path()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=ARGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


@dataclass
class Watched:
    """A page plus what went wrong on it: console errors, uncaught exceptions and failed requests."""

    page: Page
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, context: BrowserContext) -> Watched:
        watched = cls(context.new_page())
        watched.page.on("console", watched._console)
        watched.page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
        watched.page.on("requestfailed", watched._request_failed)
        return watched

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location.get('url', '?')}")

    def _request_failed(self, request: Request) -> None:
        self.failed.append(f"{request.method} {request.url}: {request.failure}")

    def goto(self, url: str, *, state: str = "ready") -> None:
        """Open ``url`` and wait until the app has rendered (``body[data-state]``)."""
        self.page.goto(url)
        self.wait_state(state)

    def wait_state(self, state: str = "ready", loads: int | None = None) -> None:
        selector = f'body[data-state="{state}"]'
        if loads is not None:
            selector += f'[data-loads="{loads}"]'
        self.page.wait_for_selector(selector, state="attached")

    def assert_clean(self) -> None:
        assert not self.errors, f"console errors on {self.page.url}: {self.errors}"
        assert not self.failed, f"failed requests on {self.page.url}: {self.failed}"

    def traces(self, element_id: str) -> list[dict[str, Any]]:
        """The plotly traces drawn in ``element_id`` (the numbers plotted, read back from the page)."""
        data = self.page.evaluate(
            "id => { const el = document.getElementById(id); return el && el.data ? el.data : null; }", element_id
        )
        assert data is not None, f"#{element_id} holds no plotly chart"
        return list(data)

    def screenshot(self, *paths: Path) -> None:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(path), full_page=True)

    def close(self) -> None:
        self.page.close()
