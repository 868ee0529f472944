"""Fixtures for the real-browser tests: Chromium via Playwright, live servers, artifacts.

Chromium is Debian's (/usr/bin/chromium; override with $CHROMIUM). Playwright's
own browser download is never used. Outside CI a missing Chromium skips these
tests with a loud reason; with CI=true it fails them, because CI must run them.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.browser.harness import Browsing, Stack, build_stack
from tests.support.browser import CHROMIUM_ARGS, chromium_or_skip

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Remember each phase's report on the item, so fixtures can tell a failed test.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


# Package scope, not session: only one sync Playwright may run in a process at a
# time, so ours must be closed before browser tests elsewhere start their own.
@pytest.fixture(scope="package")
def playwright() -> Generator[Playwright, None, None]:
    chromium_or_skip()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Generator[Browser, None, None]:
    browser = playwright.chromium.launch(
        executable_path=chromium_or_skip(), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Generator[Stack, None, None]:
    stack = build_stack(tmp_path_factory.mktemp("browser-stack"))
    yield stack
    stack.identity.stop()
    stack.product.stop()


@pytest.fixture
def context(browser: Browser) -> Generator[BrowserContext, None, None]:
    # A fresh context per test: no cookie or storage leaks from one test into another.
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def browsing(
    context: BrowserContext, request: pytest.FixtureRequest
) -> Generator[Browsing, None, None]:
    browsing = Browsing(context.new_page())
    browsing.attach()
    yield browsing
    failed = any(
        getattr(getattr(request.node, f"report_{phase}", None), "failed", False)
        for phase in ("setup", "call")
    )
    if failed:
        _save_artifacts(request.node.nodeid, browsing)


def _save_artifacts(nodeid: str, browsing: Browsing) -> None:
    """A screenshot, the console and the widget's calls of a failed test, in test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)
    try:
        browsing.page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        calls = browsing.calls()
    except Exception as exc:  # a broken page must not hide the real failure
        calls = [{"error": f"page unavailable: {exc}"}]
    lines = [f"{kind}: {text}" for kind, text in browsing.console]
    lines += ["", "widget calls:", *map(str, calls), "", f"dialogs: {browsing.dialogs}"]
    (ARTIFACTS / f"{stem}.txt").write_text("\n".join(lines), "utf-8")
