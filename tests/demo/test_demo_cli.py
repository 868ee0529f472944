"""`identity-service demo` as a process: startup banner, first-run seeding, --reset."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.demo import idp
from identity_service.demo.cli import banner, command_as_run
from identity_service.demo.database import DEMO_PASSWORD, DEMO_USERS
from tests.demo.conftest import FOREIGN_ENV, REPO, STARTUP_TIMEOUT, DemoServer, start_demo
from tests.support.processes import free_port, stop_make

ADA = DEMO_USERS[0]


def plan_of(db: Path, user_id: str) -> str | None:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT plan FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else str(row[0])


def ready_checks(url: str, timeout: float = STARTUP_TIMEOUT) -> dict[str, object]:
    """/readyz's body once it says ready: it never waits for the demo IdP's first key fetch."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as refused:
            if refused.code != 503 or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_first_run_seeds_and_says_loudly_that_its_secrets_are_demo_secrets(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    server = start_demo(instance)
    try:
        ready = ready_checks(server.url + "readyz")
    finally:
        assert server.stop() == 0  # SIGTERM is a clean stop
    output = server.output()
    assert ready["checks"]["default.profile"] == "ok"
    assert plan_of(instance / "demo.db", ADA.id) == ADA.plan
    assert "(created now;" in output
    assert "DEMO SECRET, generated:" in output
    assert "THESE ARE DEMO SECRETS" in output
    assert f"open {server.url}" in output
    assert DEMO_PASSWORD in output and ADA.email in output
    for name in ("dev-workspaces-default.secret", "dev-workspaces-default-auth-0.secret"):
        secret = (instance / name).read_text().strip()
        assert (instance / name).stat().st_mode & 0o777 == 0o600
        assert secret not in output  # where the secrets are, never what they are


def test_reset_recreates_the_database_and_without_it_the_data_is_kept(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    db = instance / "demo.db"
    start_demo(instance).stop()
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE users SET plan = 'enterprise' WHERE id = ?", (ADA.id,))

    kept = start_demo(instance)
    kept.stop()
    assert plan_of(db, ADA.id) == "enterprise"
    assert "(kept;" in kept.output()

    reset = start_demo(instance, "--reset")
    reset.stop()
    assert plan_of(db, ADA.id) == ADA.plan
    assert "(created now;" in reset.output()


def _make_run(instance: Path, *variables: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env[INSTANCE_ENV] = str(instance)
    env["HOST"], env["PORT"] = "example.invalid", "1"  # exported by some shells: ignored
    return subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO), "run", *variables],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_make_run_takes_the_port_and_host_to_listen_on(tmp_path: Path) -> None:
    port = free_port()
    process = _make_run(tmp_path / "instance", f"PORT={port}", "HOST=127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "make run PORT=... did not answer"
                time.sleep(0.1)
    finally:
        output = _stop(process)
    assert f"open http://127.0.0.1:{port}/" in output


def _stop(process: subprocess.Popen[str]) -> str:
    stop_make(process)
    out, _ = process.communicate(timeout=10)
    return out


def test_a_busy_port_names_the_port_and_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _make_run(tmp_path / "instance", f"PORT={port}")
        try:
            output, _ = process.communicate(timeout=STARTUP_TIMEOUT)
        finally:
            if process.poll() is None:  # it listened somewhere else: stop it, then fail
                output = _stop(process)
    assert process.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert f"make run PORT={port + 1}" in output
    assert "--port" in output
    assert "Either identify and stop that program" not in output  # werkzeug's generic text


def test_listening_beyond_loopback_warns_that_others_can_get_bearer_tokens_too(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, {INSTANCE_ENV: str(tmp_path / "instance")})
    settings, with_idp = idp.with_demo_idp(settings, "http://127.0.0.1:8000")
    db_file = tmp_path / "instance" / "demo.db"
    shown = "\n".join(
        banner("http://0.0.0.0:8000/", settings, db_file, True, False, "0.0.0.0", with_idp)  # noqa: S104
    )
    assert "WARNING: listening on 0.0.0.0" in shown
    assert "bearer token from the development identity provider" in shown
    local = "\n".join(
        banner("http://127.0.0.1:8000/", settings, db_file, True, False, "127.0.0.1", with_idp)
    )
    assert "WARNING: listening" not in local


def test_the_demo_names_its_command_as_the_reader_can_type_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make run` runs .venv/bin/identity-service, which is not on PATH: the banner's
    # `demo-token` line and the busy-port hint must say that path, not a bare name.
    script = tmp_path / "venv-bin" / "identity-service"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    assert command_as_run(str(script)) == str(script)
    monkeypatch.setenv("PATH", str(script.parent))
    assert command_as_run(str(script)) == "identity-service"
    assert command_as_run("/usr/bin/pytest") == "identity-service"  # an in-process runner


def test_every_secret_file_the_banner_names_exists_once_it_is_printed(
    demo_server: DemoServer,
) -> None:
    # The banner says "DEMO SECRET, generated: <file>", and check-config's checklist
    # tells an admin what to put in that file: it must be there before any token.
    named = re.findall(r"DEMO SECRET, generated: (\S+)", demo_server.output())
    assert len(named) == 2, demo_server.output()  # the Messenger secret and the session key
    for path in named:
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600, path
