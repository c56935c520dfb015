"""A real browser for the tests: Debian's Chromium driven by Playwright for
Python. Chromium comes from apt (devstack.machine: once per machine, under
its lock), never from Playwright's own downloads, and runs kept off the
network. A pytest plugin (tests/conftest.py): the `browser` fixture, and
`browser_pages`, which saves a screenshot of each of a test's pages to
.test-artifacts/ when the test fails."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from devstack import machine

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / ".test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Command -> Debian package.
PACKAGES = {"chromium": "chromium"}
# Headless, and nothing of its own on the network: no QUIC, no first-run
# pages, no background fetches, component updates or sync. (Playwright
# gives each launch a new, empty user data directory.)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_REPORTS = pytest.StashKey[dict]()


def launch(playwright: Playwright) -> Browser:
    """Chromium, installed first if this machine lacks it."""
    machine.ensure_packages(PACKAGES)
    if shutil.which("chromium") != CHROMIUM:
        raise RuntimeError(f"expected Debian's chromium at {CHROMIUM}, found {shutil.which('chromium')}")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for a module. Not longer: while Playwright's sync API is
    open, its event loop runs in this thread, and asyncio.run (which other
    modules' fixtures call) refuses to start another."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keeps each phase's report on the item, for browser_pages to see a failure."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def artifact_path(nodeid: str, suffix: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])
    return ARTIFACTS / "console" / f"{name}{suffix}"


@pytest.fixture
def browser_pages(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """Factory: browser_pages(**context_options) is a page in a new context
    (its own storage). Each is closed after the test; if the test failed,
    a full-page screenshot of each is saved first."""
    contexts: list[BrowserContext] = []

    def new_page(**options) -> Page:
        context = browser.new_context(**options)
        contexts.append(context)
        return context.new_page()

    yield new_page
    reports = request.node.stash.get(_REPORTS, {})
    failed = any(report.failed for report in reports.values())
    for i, context in enumerate(contexts):
        for j, page in enumerate(context.pages):
            if failed:
                path = artifact_path(request.node.nodeid, f"-{i}-{j}.png")
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    page.screenshot(path=path, full_page=True)
                    print(f"screenshot of the failed test's page: {path}")
                except Exception as error:  # a crashed page: the failure itself says more
                    print(f"no screenshot of {page.url}: {error}")
        context.close()
