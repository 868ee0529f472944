"""The real npm packages product pages use, installed from the npm registry and bundled.

`@intercom/messenger-js-sdk` and `react-use-intercom` (with React and esbuild) are
pinned in tests/browser/npm/package.json and its lock file. The first test that needs
them runs `npm ci` into build/browser-npm/<hash of the lock>/ (git-ignored), so a clean
clone, CI included, installs them in the test setup, and later runs reuse that folder
until the lock changes. Bundles are built with that esbuild, from entry files in
tests/browser/npm/, into the same folder.

Outside CI, a machine without npm skips these tests with a loud reason; with CI=true
they fail instead, because CI must run them.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from identity_service.frontend.script import messenger_module
from tests.ci_guard import IN_CI

HERE = Path(__file__).parent / "npm"
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ("package.json", "package-lock.json")
INSTALL_TIMEOUT_S = 300  # a cold install is about 10 s here; a slow registry gets time


def npm_or_skip() -> str:
    npm = shutil.which("npm")
    if npm:
        return npm
    reason = "NPM PACKAGE TESTS NOT RUN: no npm on PATH. Install it with `apt-get install -y npm`."
    if IN_CI:
        pytest.fail(reason + " CI=true requires them to run.", pytrace=False)
    pytest.skip(reason)


def install() -> Path:
    """The folder holding node_modules for the pinned packages, installed once per lock."""
    npm = npm_or_skip()
    digest = hashlib.sha256(b"".join((HERE / name).read_bytes() for name in MANIFESTS))
    folder = ROOT / "build" / "browser-npm" / digest.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / ".installed"
    with open(folder / ".lock", "w") as lock:  # two test processes never install at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            for name in MANIFESTS:
                shutil.copyfile(HERE / name, folder / name)
            # --ignore-scripts: no package's install script runs (esbuild needs none: its
            # binary comes in the @esbuild/<platform> package the registry serves).
            done = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                pytest.fail(f"npm ci failed in {folder}:\n{done.stdout}\n{done.stderr}")
            stamp.touch()
    return folder


def bundle(entry: str) -> bytes:
    """tests/browser/npm/`entry` and its imports as one ES module (strict, as bundlers emit).

    `./messenger.mjs` resolves to the module the service serves, vendored as the
    embedding guide tells a product to do.
    """
    folder = install()
    (folder / "messenger.mjs").write_bytes(messenger_module())
    shutil.copyfile(HERE / entry, folder / entry)
    out = folder / (Path(entry).stem + ".bundle.js")
    done = subprocess.run(
        [
            str(folder / "node_modules" / ".bin" / "esbuild"), entry, "--bundle",
            "--format=esm", "--jsx=automatic", "--define:process.env.NODE_ENV=\"production\"",
            f"--outfile={out.name}", "--log-level=error",
        ],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"esbuild failed on {entry}:\n{done.stdout}\n{done.stderr}")
    return out.read_bytes()
