"""Debian's Chromium for the real-browser tests (Playwright drives it; its own download never).

Outside CI a missing Chromium skips the browser tests with a loud reason; with
CI=true it fails them, because CI installs Chromium and must run them.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.ci_guard import IN_CI

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling Google's
# hosts, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip(what: str = "BROWSER TESTS") -> str:
    """The Chromium executable, or skip (fail under CI=true) saying how to install it."""
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM) or CHROMIUM
    if os.access(path, os.X_OK):
        return path
    reason = (
        f"{what} NOT RUN: no Chromium at {path}. Install it with "
        "`apt-get install -y chromium` (or set $CHROMIUM)."
    )
    if IN_CI:
        pytest.fail(reason + " CI=true requires them to run.", pytrace=False)
    pytest.skip(reason)
