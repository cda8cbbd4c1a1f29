"""A live dashboard server (uvicorn in a thread, real HTTP and WebSocket on loopback) over the
bundled book, and Debian's Chromium driven headless by Playwright (no browser download).

Screenshots land in test-artifacts/dashboard/ (gitignored), one per page and width."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from crossmargin.adapters.files import load_book
from crossmargin.dashboard.app import KeyHolder, create_app, issue_keys
from crossmargin.dashboard.standalone import BookVenue
from crossmargin.dashboard.web import COOKIE
from crossmargin.engine.ports import PriceHistorySource

ROOT = Path(__file__).resolve().parents[2]
DESK = ROOT / "examples" / "desk.yaml"
BACKTEST_BOOK = ROOT / "examples" / "backtest.yaml"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}  # a current phone's CSS viewport
PAGE_TIMEOUT_MS = 120_000
expect.set_options(timeout=30_000)  # assertions on rendered pages (not the live-update ones)


@dataclass
class LiveServer:
    url: str
    venue: BookVenue
    keys: dict[str, KeyHolder]
    server: uvicorn.Server
    thread: threading.Thread

    def key(self, role: str, account: str | None = None) -> str:
        return next(k for k, h in self.keys.items() if h.role == role and h.account == account)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(*, history: PriceHistorySource | None = None) -> LiveServer:
    loaded = load_book(DESK)
    venue = BookVenue(loaded, history=history)
    keys = issue_keys(loaded.book.account_ids)
    app = create_app(venue, keys, backtest_book=load_book(BACKTEST_BOOK))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets")
    )
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.02)
    return LiveServer(url=f"http://127.0.0.1:{port}", venue=venue, keys=keys, server=server, thread=thread)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """One server per module for tests that only read; a test that moves prices takes its own."""
    live = start_server()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API holds an asyncio loop on this thread
    while it runs, so a session-wide browser broke later tests that call asyncio.run."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} missing (CI=true: .ci/run installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """`new_page(viewport)`: a page in a fresh context (its own cookies) per call. Script errors
    on any page fail the test after it ran."""
    contexts = []
    problems: list[str] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport)
        # Generous waits for pages: the machine is shared and a first request may compile numba
        # kernels. The live-update checks pass their own one-second timeout explicitly.
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.set_default_navigation_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        return page

    yield make
    for context in contexts:
        context.close()
    assert problems == []


def login(page: Page, server: LiveServer, key: str) -> None:
    page.goto(f"{server.url}/dashboard/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def use_key(page: Page, server: LiveServer, key: str) -> None:
    """The login form's effect (the key in the dashboard's cookie) without rendering a page."""
    page.context.add_cookies([{"name": COOKIE, "value": key, "url": f"{server.url}/dashboard/"}])


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
