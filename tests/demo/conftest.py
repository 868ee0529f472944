"""Fixtures for the demo's tests: the real `identity-service demo` process, and Chromium.

The demo is started exactly as a newcomer starts it (the console script, as a
subprocess) with its instance folder in a tmp dir, so nothing touches ./instance.
Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM); outside CI a missing
Chromium skips the browser test with a loud reason, with CI=true it fails it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from identity_service.config import CONFIG_ENV, INSTANCE_ENV
from tests.support.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.support.processes import free_port, stop

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
# Variables that would point the demo somewhere else than the bundled example.
FOREIGN_ENV = (CONFIG_ENV, "INTERCOM_APP_ID", "INTERCOM_MESSENGER_SECRET", "INTERCOM_REGION")
STARTUP_TIMEOUT = 30.0


def cli_path() -> Path:
    """The installed `identity-service` console script of this interpreter's environment."""
    path = Path(sys.executable).with_name("identity-service")
    if not path.exists():
        pytest.fail(f"no console script at {path}: run `pip install -e .` (make does)")
    return path


@dataclass
class DemoServer:
    """One running `identity-service demo` process."""

    process: subprocess.Popen[bytes]
    url: str  # with the trailing slash
    instance: Path
    log: Path
    stopped: bool = field(default=False)

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def stop(self) -> int:
        if not self.stopped:
            self.stopped = True
            stop(self.process)
        code: int = self.process.returncode
        return code


def start_demo(instance: Path, *args: str) -> DemoServer:
    """Start the demo on a free port, instance folder `instance`; wait until it answers."""
    instance.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env[INSTANCE_ENV] = str(instance)
    log = instance.parent / f"demo-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(cli_path()), "demo", "--port", str(port), *args],
            cwd=instance.parent,  # nothing may land in the repository's ./instance
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = DemoServer(process, f"http://127.0.0.1:{port}/", instance, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(server.url + "healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"the demo did not answer in time:\n{server.output()}")
        time.sleep(0.1)


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[DemoServer]:
    """`identity-service demo --reset` on a free port, instance folder in tmp_path."""
    server = start_demo(tmp_path / "instance", "--reset")
    yield server
    server.stop()


# -- Chromium ----------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Keep each phase's report on the item, so the page fixture knows the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"demo_report_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Generator[Browser, None, None]:
    executable = chromium_or_skip("DEMO BROWSER TEST")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@dataclass
class Watched:
    """A page and what it said on the console."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def watched(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Watched]:
    """A fresh context and page; on failure its screenshot and console go to test-artifacts/."""
    context: BrowserContext = browser.new_context(
        viewport={"width": 1280, "height": 900}, device_scale_factor=1
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    watched = Watched(page)
    page.on("console", lambda message: watched.console.append((message.type, message.text)))
    page.on("pageerror", lambda error: watched.console.append(("pageerror", str(error))))
    yield watched
    failed = any(
        getattr(getattr(request.node, f"demo_report_{phase}", None), "failed", False)
        for phase in ("setup", "call")
    )
    if failed:
        ARTIFACTS.mkdir(exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        except Exception as exc:  # a broken page must not hide the real failure
            watched.console.append(("artifact", f"no screenshot: {exc}"))
        lines = [f"{kind}: {text}" for kind, text in watched.console]
        if "demo_server" in request.fixturenames:
            server: DemoServer = request.getfixturevalue("demo_server")
            lines += ["", "demo output:", server.output()]
        (ARTIFACTS / f"{stem}.txt").write_text("\n".join(lines), "utf-8")
    context.close()
