"""The real PostgreSQL server for tests: required in CI, loudly skipped elsewhere.

Tests marked `@pytest.mark.postgres` call `require_postgres()` first. With
CI=true an unreachable server fails the test (a CI run that silently skipped
the database tests would prove nothing); on a laptop it skips with the reason
and the command that starts the server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def admin_engine(url: str = POSTGRES_URL) -> Engine:
    """An unpooled engine for test setup, independent of the code under test."""
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})


def require_postgres(url: str = POSTGRES_URL) -> None:
    """Fail (CI=true) or skip (elsewhere) unless PostgreSQL at `url` answers."""
    engine = admin_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = (
            f"PostgreSQL at {url} is unreachable ({type(exc.__cause__ or exc).__name__}); "
            f"start it with `{START_HINT}`"
        )
        if in_ci():
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(f"NOT TESTED AGAINST POSTGRESQL: {reason}")
    finally:
        engine.dispose()


@contextmanager
def scratch_table(
    columns: str, rows: Sequence[dict[str, Any]], url: str = POSTGRES_URL
) -> Iterator[str]:
    """A uniquely named table holding `rows`, dropped afterwards; yields its name.

    Unique per use, so parallel or interrupted runs never see each other's data.
    """
    name = f"profile_test_{uuid.uuid4().hex[:16]}"
    engine = admin_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE TABLE {name} ({columns})"))
            if rows:
                keys = list(rows[0])
                insert = (
                    f"INSERT INTO {name} ({', '.join(keys)}) "  # noqa: S608 - test-owned names
                    f"VALUES ({', '.join(':' + k for k in keys)})"
                )
                connection.execute(text(insert), list(rows))
        yield name
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def table_exists(name: str, url: str = POSTGRES_URL) -> bool:
    engine = admin_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT to_regclass(:name)"), {"name": name})
            return found.scalar() is not None
    finally:
        engine.dispose()


def terminate_backend(pid: int, url: str = POSTGRES_URL) -> None:
    """Kill one server connection, as a restart or an idle timeout would."""
    engine = admin_engine(url)
    try:
        with engine.connect() as connection:
            # With a timeout, PostgreSQL (14+) waits until the backend has exited:
            # without it the next query could race the dying connection and see
            # it half-closed rather than gone.
            gone = connection.execute(
                text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
            ).scalar_one()
            assert gone, f"backend {pid} still running after 10 s"
    finally:
        engine.dispose()
