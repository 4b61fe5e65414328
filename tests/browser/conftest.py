"""Pages checked in a real browser: Debian's headless Chromium driven by playwright.

A page of ours must open with no network, log no console error, and draw every figure. The
``open_page`` fixture loads a URL in a fresh browser context and returns a :class:`PageCheck` with
what a test asserts on: console errors and uncaught exceptions, every request the page made, how
many figures it has and which of them came out blank, and a full-page screenshot.

Run them (they are marked ``browser``)::

    .venv/bin/pytest -m browser tests/browser

Regenerate the screenshots kept under ``docs/screenshots/`` by naming that folder::

    YARDSTICK_SCREENSHOTS=docs/screenshots .venv/bin/pytest -m browser tests/browser

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it), not a browser playwright
downloads. Without it the tests are skipped locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, ConsoleMessage, Request, sync_playwright

#: Without the background-networking flags Chromium calls Google's hosts on its own, and those
#: requests would look like the page's.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: A figure is blank when fewer than this share of its pixels differ from its most common colour.
MIN_INK = 0.01

#: Top-level SVG elements only: an ``<svg>`` nested in another is part of the same figure.
FIGURE_SELECTOR = "svg:not(svg svg)"


def chromium_path() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@dataclass
class PageCheck:
    """What one page load showed: the browser's view of the page, for tests to assert on."""

    url: str
    title: str
    text: str
    html: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    figures: int = 0
    blank_figures: list[int] = field(default_factory=list)
    screenshot: Path | None = None
    links: list[str] = field(default_factory=list)

    @property
    def other_requests(self) -> list[str]:
        """Every request except the page itself: a self-contained page makes none."""
        return [url for url in self.requests if url != self.url]


def ink_share(png: bytes) -> float:
    """Share of pixels that differ from the image's most common colour (its background)."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    if len(pixels) == 0:
        return 0.0
    _, counts = np.unique(pixels, axis=0, return_counts=True)
    return float(1.0 - counts.max() / len(pixels))


# Per module, not per session: playwright's sync API keeps an asyncio loop running in this thread
# while it is open, and the async tests collected after tests/browser could not start theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: install Debian's chromium (.ci/run does)")
        pytest.skip("chromium not found (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


OpenPage = Callable[..., PageCheck]


@pytest.fixture
def open_page(browser: Browser, tmp_path: Path) -> Iterator[OpenPage]:
    """``open_page(url, "name.png", width=1024, headers=None) -> PageCheck``, one fresh context each."""
    contexts = []

    def load(
        url: str, screenshot_name: str, *, width: int = 1024, headers: dict[str, str] | None = None
    ) -> PageCheck:
        context = browser.new_context(viewport={"width": width, "height": 800}, extra_http_headers=headers)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type != "error":
                return
            source = message.location.get("url", "")
            if urlsplit(source).path == "/favicon.ico":
                # The browser's own probe: page.on("request") never sees it, so say what it is.
                errors.append(
                    f'{message.text}: the browser fetched {source}; declare <link rel="icon" href="data:,">'
                )
            else:
                errors.append(message.text)

        def on_request(request: Request) -> None:
            requests.append(request.url)

        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on("request", on_request)
        response = page.goto(url, wait_until="load")
        assert response is not None, f"no response for {url}"
        assert response.ok, f"{url} answered {response.status}: {response.text()[:500]}"

        shot = tmp_path / screenshot_name
        page.screenshot(path=str(shot), full_page=True)
        keep = os.environ.get("YARDSTICK_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, Path(keep) / screenshot_name)

        svgs = page.locator(FIGURE_SELECTOR).all()
        blank = [i for i, svg in enumerate(svgs) if ink_share(svg.screenshot()) < MIN_INK]
        links = [href for a in page.locator("a[href]").all() if (href := a.get_attribute("href")) is not None]
        return PageCheck(
            url=url,
            title=page.title(),
            text=page.inner_text("body"),
            html=page.content(),
            console_errors=errors,
            requests=requests,
            figures=len(svgs),
            blank_figures=blank,
            screenshot=shot,
            links=links,
        )

    yield load
    for context in contexts:
        context.close()
