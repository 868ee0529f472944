"""`identity-service demo` as a process: startup banner, first-run seeding, --reset."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

from identity_service.demo.database import DEMO_PASSWORD, DEMO_USERS
from tests.demo.conftest import start_demo

ADA = DEMO_USERS[0]


def plan_of(db: Path, user_id: str) -> str | None:
    with sqlite3.connect(db) as connection:
        row = connection.execute("SELECT plan FROM users WHERE id = ?", (user_id,)).fetchone()
    return None if row is None else str(row[0])


def test_first_run_seeds_and_says_loudly_that_its_secrets_are_demo_secrets(
    tmp_path: Path,
) -> None:
    instance = tmp_path / "instance"
    server = start_demo(instance)
    try:
        with urllib.request.urlopen(server.url + "readyz", timeout=5) as response:
            ready = json.load(response)
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
