"""The first hour, as a newcomer lives it: clone, `make run`, then the docs' curl examples.

The repository is cloned (`git clone` of this checkout's HEAD: commit first)
into a temporary folder. The README's quick start runs there as written,
`make run`, with `PORT=<a free port>`, in the background. Then the curl
examples of docs/frontend.md ("Try it locally against make run") run as
copied with bash, only their port changed: the bearer one (the demo's
development identity provider) and the cookie one (Pete's login form). The
demo is stopped by its pid.

One shortcut, to keep the test to seconds: the clone does not install a fresh
`.venv` (about 30 s of pip on this machine, and the package index is local
only). Its `.venv` holds a stamp newer than pyproject.toml, so `make` skips
the install, and a `bin/identity-service` that runs this checkout's
interpreter with the CLONE's sources first on PYTHONPATH. That the clone's
code ran, not this checkout's, is checked: the demo's files appear in the
clone's own instance folder (the default rule, nothing is set).
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest

from identity_service.config import CONFIG_ENV, INSTANCE_ENV
from identity_service.demo import idp
from identity_service.demo.database import DEMO_USERS
from tests.demo.conftest import FOREIGN_ENV, STARTUP_TIMEOUT
from tests.support.processes import children, free_port, stop_make

ROOT = Path(__file__).resolve().parents[1]
ADA = DEMO_USERS[0]
DOCUMENTED_PORT = "8000"


def frontend_example(checkout: Path, name: str) -> str:
    """The shell block under `<!-- first-hour: NAME -->` in the checkout's docs/frontend.md."""
    text = (checkout / "docs" / "frontend.md").read_text("utf-8")
    found = re.search(rf"<!-- first-hour: {name} -->\n```sh\n(.*?)^```", text, re.S | re.M)
    assert found is not None, f"docs/frontend.md has no {name!r} example"
    return found.group(1)


def quick_start(checkout: Path) -> list[str]:
    """The README's quick start commands (tests/test_docs.py pins them to make run, make test)."""
    readme = (checkout / "README.md").read_text("utf-8")
    block = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("first-hour") / "identity_service"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True, timeout=120,
    )  # fmt: skip
    # The documented .venv, borrowed (see the module docstring).
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(Path(sys.executable))
    script = bin_dir / "identity-service"
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{clone}" exec "{Path(sys.executable).with_name("identity-service")}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    stamp = clone / ".venv" / ".installed"
    stamp.touch()
    later = (clone / "pyproject.toml").stat().st_mtime + 1
    os.utime(stamp, (later, later))
    return clone


@dataclass
class MakeRun:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def demo_pid(self) -> int:
        """The demo: make's one child (the recipe is a single command, so make execs it)."""
        pids = children(self.process)
        assert len(pids) == 1, pids
        return pids[0]


@pytest.fixture(scope="module")
def make_run(checkout: Path) -> Iterator[MakeRun]:
    assert quick_start(checkout)[0] == "make run"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in (*FOREIGN_ENV, INSTANCE_ENV)}
    log = checkout.parent / "make-run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=checkout, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = MakeRun(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, running.output()
            try:
                with urllib.request.urlopen(running.url + "/healthz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, running.output()
                time.sleep(0.1)
        yield running
    finally:
        stop_make(process)


def run_example(checkout: Path, name: str, url: str) -> dict[str, object]:
    script = frontend_example(checkout, name)
    assert f"127.0.0.1:{DOCUMENTED_PORT}" in script
    script = script.replace(f"127.0.0.1:{DOCUMENTED_PORT}", url.removeprefix("http://"))
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} example failed:\n{script}\n{done.stderr}"
    answer: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize(("example", "method"), [("bearer", "bearer"), ("cookie", "session")])
def test_the_frontend_curl_example_works_against_make_run_in_a_fresh_clone(
    checkout: Path, make_run: MakeRun, example: str, method: str
) -> None:
    answer = run_example(checkout, example, make_run.url)
    assert answer["user_id"] == ADA.id
    claims = jwt.decode(str(answer["token"]), options={"verify_signature": False})
    assert claims["user_id"] == ADA.id and claims["plan"] == ADA.plan
    assert f'"method":"{method}"' in make_run.output()  # the audit event says how


def test_the_clones_own_code_ran_with_its_own_instance_folder(
    checkout: Path, make_run: MakeRun
) -> None:
    run_example(checkout, "bearer", make_run.url)
    instance = checkout / "instance"
    assert (instance / "demo.db").is_file()
    assert stat.S_IMODE((instance / idp.KEY_FILE).stat().st_mode) == 0o600
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=checkout, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""  # .venv/ and the instance folder are ignored


def without_the_command_on_path() -> dict[str, str]:
    """The environment of a newcomer's shell: `.venv/bin` is not activated."""
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    kept = [f for f in folders if not (Path(f) / "identity-service").exists()]
    return {**os.environ, "PATH": os.pathsep.join(kept)}


def test_every_command_the_demo_prints_runs_as_copied_from_the_checkout(
    checkout: Path, make_run: MakeRun
) -> None:
    # `make run` does not put identity-service on PATH: a command the banner
    # names must be one the reader can type as shown, from the checkout.
    printed = re.findall(r"`((?:\S*/)?identity-service demo-token [^`]*)`", make_run.output())
    assert printed, make_run.output()
    for command in printed:
        done = subprocess.run(
            ["sh", "-c", command.replace("--email ...", f"--email {ADA.email}")],
            cwd=checkout, env=without_the_command_on_path(),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}: {done.stderr}"
        assert done.stdout.count(".") == 2  # a JWT


def test_the_demo_stops_by_its_pid(checkout: Path, make_run: MakeRun) -> None:
    os.kill(make_run.demo_pid(), signal.SIGTERM)
    assert make_run.process.wait(timeout=20) == 0, make_run.output()
