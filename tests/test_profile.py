"""Profile rows from real SQLite and PostgreSQL databases, and how facts are gathered."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, make_url

from identity_service.breaker import CircuitBreaker
from identity_service.errors import ProfileUnavailableError
from identity_service.profile import (
    MISMATCH_WARNING,
    NO_ROW_WARNING,
    SqlProfileSource,
    fetch_profile,
    gather_facts,
)
from identity_service.settings import AttributeSpec, OnUnavailable, ProfileSettings
from tests.support.postgres import (
    POSTGRES_URL,
    require_postgres,
    scratch_table,
    table_exists,
    terminate_backend,
)
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

ROWS = [
    {"user_id": "u1", "email": "ada@example.com", "plan": "pro", "seats": 3},
    {"user_id": "u2", "email": "grace@example.com", "plan": None, "seats": 0},
    {"user_id": "o'brien", "email": "ob@example.com", "plan": "free", "seats": 1},
]
INJECTIONS = [
    "u1' OR '1'='1",
    "' OR 1=1 --",
    "u1'; DROP TABLE {table}; --",
    "u1\\'; SELECT 1; --",
]
# Nothing listens on port 1; the password must never reach an error message.
UNREACHABLE = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/test"

SourceFactory = Callable[..., SqlProfileSource]


@pytest.fixture
def make_source() -> Iterator[SourceFactory]:
    """Build sources and close every one afterwards (no pooled connection leaks)."""
    made: list[SqlProfileSource] = []

    def make(url: str, query: str, **options: Any) -> SqlProfileSource:
        options.setdefault("id_column", "user_id")
        source = SqlProfileSource(ProfileSettings(url=url, query=query, **options))
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "profiles.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE profiles (user_id TEXT PRIMARY KEY, email TEXT, plan TEXT, seats INT)"
        )
        db.executemany("INSERT INTO profiles VALUES (:user_id, :email, :plan, :seats)", ROWS)
    db.close()
    return f"sqlite:///{path}"


@pytest.fixture
def pg_table() -> Iterator[str]:
    require_postgres()
    columns = "user_id text PRIMARY KEY, email text, plan text, seats integer"
    with scratch_table(columns, ROWS) as name:
        yield name


def _query(table: str) -> str:
    return f"SELECT user_id, email, plan, seats FROM {table} WHERE user_id = :user_id"  # noqa: S608


def _count(url: str, table: str) -> int:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    db.close()
    return int(count)


# --- SQLite -----------------------------------------------------------------


def test_sqlite_row_found(make_source: SourceFactory, sqlite_url: str) -> None:
    source = make_source(sqlite_url, _query("profiles"))
    assert source.fetch("u1") == ROWS[0]
    assert source.fetch("u2") == ROWS[1]  # NULL column comes back as None, not dropped


def test_sqlite_no_row(make_source: SourceFactory, sqlite_url: str) -> None:
    assert make_source(sqlite_url, _query("profiles")).fetch("nobody") is None


def test_sqlite_first_row_of_many(make_source: SourceFactory, sqlite_url: str) -> None:
    query = "SELECT email FROM profiles WHERE user_id <> :user_id ORDER BY email DESC"
    assert make_source(sqlite_url, query).fetch("u1") == {"email": "ob@example.com"}


def test_sqlite_quote_in_user_id_is_data(make_source: SourceFactory, sqlite_url: str) -> None:
    assert make_source(sqlite_url, _query("profiles")).fetch("o'brien") == ROWS[2]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_sqlite_injection_is_inert(
    make_source: SourceFactory, sqlite_url: str, attack: str
) -> None:
    source = make_source(sqlite_url, _query("profiles"))
    assert source.fetch(attack.format(table="profiles")) is None
    assert _count(sqlite_url, "profiles") == len(ROWS)


def test_sqlite_query_error_is_unavailable(make_source: SourceFactory, sqlite_url: str) -> None:
    source = make_source(sqlite_url, _query("no_such_table"))
    with pytest.raises(ProfileUnavailableError) as caught:
        source.fetch("u1")
    assert caught.value.status == 503
    assert "query failed" in caught.value.detail
    assert "u1" not in caught.value.detail  # the statement and its parameters stay in the log


def test_sqlite_ready(make_source: SourceFactory, sqlite_url: str) -> None:
    assert make_source(sqlite_url, _query("profiles")).ready() is True


def test_sqlite_gets_pool_and_busy_timeout(make_source: SourceFactory, sqlite_url: str) -> None:
    source = make_source(sqlite_url, _query("profiles"), pool_size=3, timeout=1.5)
    assert source._engine.pool.size() == 3  # type: ignore[attr-defined]
    assert source._engine.pool.timeout() == 1.5  # type: ignore[attr-defined]


def test_a_pooled_sqlite_connection_holds_no_transaction_between_lookups(
    make_source: SourceFactory, sqlite_url: str
) -> None:
    # Lookups run in autocommit, so the pool skips its reset ROLLBACK on return:
    # a connection back in the pool must hold no read transaction, or a writer
    # of the profile database would wait on the service.
    source = make_source(sqlite_url, _query("profiles"), pool_size=1)
    assert source.fetch("u1") == ROWS[0]
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
    try:
        writer.execute("BEGIN EXCLUSIVE")  # "database is locked" at once if a read is open
        writer.rollback()
    finally:
        writer.close()
    assert source.fetch("u1") == ROWS[0]


def test_sqlite_lock_wait_is_bounded(make_source: SourceFactory, sqlite_url: str) -> None:
    # Another writer holds an exclusive lock: the read gives up after `timeout`.
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        source = make_source(sqlite_url, _query("profiles"), timeout=0.3, on_unavailable="fail")
        started = time.monotonic()
        with pytest.raises(ProfileUnavailableError, match="query failed"):
            source.fetch("u1")
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 3
    finally:
        locker.rollback()
        locker.close()
    assert source.fetch("u1") == ROWS[0]


def test_unsupported_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        SqlProfileSource(
            ProfileSettings(url="mysql://u@localhost/db", query=_query("t"), id_column="user_id")
        )


# --- unreachable database and the on_unavailable policy --------------------------


def test_unreachable_raises_without_password(make_source: SourceFactory) -> None:
    source = make_source(UNREACHABLE, _query("profiles"), on_unavailable="fail")
    started = time.monotonic()
    with pytest.raises(ProfileUnavailableError) as caught:
        source.fetch("u1")
    assert time.monotonic() - started < 5
    assert caught.value.detail == "profile database: unreachable (OperationalError)"
    assert "127.0.0.1" not in str(caught.value)  # where the database is stays in the log
    assert "s3cret-pw" not in caught.value.detail
    assert "s3cret-pw" not in str(caught.value)
    assert caught.value.__cause__ is None  # translated, not chained to the driver's error


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://app:s3cret-pw@127.0.0.1:1/app",
        "postgresql+psycopg://app@127.0.0.1:1/app?password=s3cret-pw",
        "postgresql+psycopg://app@127.0.0.1:1/app?passfile=/s3cret-pw&sslmode=disable",
    ],
)
def test_no_password_form_reaches_clients_or_logs(
    make_source: SourceFactory, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(url, _query("profiles"), on_unavailable="omit")
    _, warnings, _ = fetch_profile(source, "u1")
    assert warnings and "s3cret-pw" not in warnings[0] and "127.0.0.1" not in warnings[0]
    assert "s3cret-pw" not in source.description
    assert "s3cret-pw" not in caplog.text
    assert "127.0.0.1:1" in caplog.text  # operators still learn which database failed


def test_unreachable_is_not_ready(make_source: SourceFactory) -> None:
    assert make_source(UNREACHABLE, _query("profiles")).ready() is False


def test_fetch_profile_omit_returns_warning(make_source: SourceFactory) -> None:
    source = make_source(UNREACHABLE, _query("profiles"), on_unavailable="omit")
    row, warnings, outcome = fetch_profile(source, "u1")
    assert row is None
    assert outcome == "unavailable"
    assert len(warnings) == 1
    assert warnings[0].startswith("profile source unavailable: ")
    assert "unreachable" in warnings[0]
    assert "s3cret-pw" not in warnings[0]


def test_fetch_profile_fail_raises(make_source: SourceFactory) -> None:
    source = make_source(UNREACHABLE, _query("profiles"), on_unavailable="fail")
    with pytest.raises(ProfileUnavailableError):
        fetch_profile(source, "u1")


@pytest.mark.parametrize("policy", ["omit", "fail"])
def test_fetch_profile_when_reachable(
    make_source: SourceFactory, sqlite_url: str, policy: OnUnavailable
) -> None:
    source = make_source(sqlite_url, _query("profiles"), on_unavailable=policy)
    assert fetch_profile(source, "u1") == (ROWS[0], (), "found")
    assert fetch_profile(source, "nobody") == (None, (NO_ROW_WARNING,), "no_row")


def test_fetch_profile_without_source() -> None:
    assert fetch_profile(None, "u1") == (None, (), "none")


@pytest.mark.parametrize(
    ("query", "user_id"),
    [
        pytest.param("SELECT 'u2' AS user_id, email FROM profiles", "u1", id="another-users-id"),
        pytest.param("SELECT NULL AS user_id, email FROM profiles", "u1", id="null-id"),
        pytest.param(
            "SELECT email FROM profiles WHERE user_id = :user_id", "u1", id="no-id-column"
        ),
        pytest.param("SELECT 1 AS user_id, email FROM profiles", "1.0", id="integer-id-1"),
        pytest.param("SELECT 'U1' AS user_id, email FROM profiles", "u1", id="case"),
    ],
)
def test_a_row_that_is_not_the_users_is_ignored(
    make_source: SourceFactory,
    sqlite_url: str,
    query: str,
    user_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if ":user_id" not in query:
        query += " WHERE :user_id IS NOT NULL"
    source = make_source(sqlite_url, query)
    assert source.fetch(user_id) is not None  # the database did return a row ...
    assert fetch_profile(source, user_id) == (None, (MISMATCH_WARNING,), "mismatch")  # ... unused
    assert "profile row ignored" in caplog.text
    assert "example.com" not in caplog.text  # no value of the row is logged


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_integer_id_column_matches_only_its_own_spelling(
    make_source: SourceFactory, tmp_path: Path, backend: str
) -> None:
    rows = [{"user_id": 1, "email": "one@example.com", "plan": "pro", "seats": 1}]
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            path = tmp_path / "int.db"
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE t (user_id INTEGER, email TEXT, plan TEXT, seats INT)")
                db.execute("INSERT INTO t VALUES (1, 'one@example.com', 'pro', 1)")
            db.close()
            url, table = f"sqlite:///{path}", "t"
        else:
            require_postgres()
            url = POSTGRES_URL
            columns = "user_id integer, email text, plan text, seats integer"
            table = stack.enter_context(scratch_table(columns, rows))
        source = make_source(url, _query(table))
        assert fetch_profile(source, "1") == (rows[0], (), "found")
        for spelling in ("01", " 1", "1 ", "+1"):
            assert source.fetch(spelling) == rows[0]  # the database's own comparison ...
            row, _, outcome = fetch_profile(source, spelling)  # ... is not trusted
            assert (row, outcome) == (None, "mismatch")


# --- PostgreSQL ---------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_row_found_and_missing(make_source: SourceFactory, pg_table: str) -> None:
    source = make_source(POSTGRES_URL, _query(pg_table))
    assert source.fetch("u1") == ROWS[0]
    assert source.fetch("u2") == ROWS[1]
    assert source.fetch("o'brien") == ROWS[2]
    assert source.fetch("nobody") is None
    assert source.ready() is True


@pytest.mark.postgres
@pytest.mark.parametrize("attack", INJECTIONS)
def test_postgres_injection_is_inert(
    make_source: SourceFactory, pg_table: str, attack: str
) -> None:
    source = make_source(POSTGRES_URL, _query(pg_table))
    assert source.fetch(attack.format(table=pg_table)) is None
    assert table_exists(pg_table)
    assert source.fetch("u1") == ROWS[0]


@pytest.mark.postgres
def test_postgres_session_gets_statement_timeout(make_source: SourceFactory) -> None:
    require_postgres()
    query = (
        "SELECT current_setting('statement_timeout') AS statement_timeout, "
        "CAST(:user_id AS text) AS user_id"
    )
    source = make_source(POSTGRES_URL, query, timeout=0.75)
    assert source.fetch("u1") == {"statement_timeout": "750ms", "user_id": "u1"}


@pytest.mark.postgres
def test_postgres_slow_query_is_cut_off(make_source: SourceFactory, pg_table: str) -> None:
    # Only "slow" sleeps, so the same source shows it still works afterwards.
    query = (
        f"SELECT t.* FROM {pg_table} t, "  # noqa: S608
        "LATERAL (SELECT pg_sleep(CASE WHEN CAST(:user_id AS text) = 'u1' THEN 10 ELSE 0 END)) s "
        "WHERE t.user_id = :user_id"
    )
    source = make_source(POSTGRES_URL, query, timeout=0.5, on_unavailable="fail")
    started = time.monotonic()
    with pytest.raises(ProfileUnavailableError) as caught:
        source.fetch("u1")
    assert time.monotonic() - started < 3
    assert "timed out after 0.5s" in caught.value.detail
    assert source.fetch("u2") == ROWS[1]

    omitting = make_source(POSTGRES_URL, query, timeout=0.5, on_unavailable="omit")
    row, warnings, _ = fetch_profile(omitting, "u1")
    assert row is None
    assert "timed out" in warnings[0]


@pytest.mark.postgres
def test_postgres_dropped_connection_is_replaced(make_source: SourceFactory) -> None:
    require_postgres()
    query = "SELECT pg_backend_pid() AS pid, CAST(:user_id AS text) AS user_id"
    source = make_source(POSTGRES_URL, query, pool_size=1)
    first = source.fetch("u1")
    assert first is not None
    terminate_backend(first["pid"])
    second = source.fetch("u1")  # pool_pre_ping notices and reconnects
    assert second is not None
    assert second["pid"] != first["pid"]


@pytest.mark.postgres
def test_a_restarted_server_costs_one_retry_whatever_the_pool_holds(
    make_source: SourceFactory,
) -> None:
    # Every pooled connection dies at once (a server restart): the first one to
    # fail must take the others with it, or the one retry meets another dead one.
    require_postgres()
    query = "SELECT pg_backend_pid() AS pid, CAST(:user_id AS text) AS user_id"
    source = make_source(POSTGRES_URL, query, pool_size=3, on_unavailable="fail")
    held = [source._engine.raw_connection() for _ in range(3)]
    pids = []
    for connection in held:
        cursor = connection.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        pids.append(cursor.fetchone()[0])
        cursor.close()
    for connection in held:
        connection.close()  # back in the pool, idle
    for pid in pids:
        terminate_backend(pid)
    row = source.fetch("u1")
    assert row is not None and row["pid"] not in pids


# --- gather_facts ---------------------------------------------------------------

CLAIMS: dict[str, Any] = {
    "sub": "u1",
    "email": "claim@example.com",
    "https://pete.example/plan": "enterprise",
    "https://pete": {"example/tier": "split"},  # reachable only by wrongly splitting a URI
    "app_metadata": {"plan": "pro", "seats": 0, "beta": False, "nested": {"deep": [1, 2]}},
    "org.name": "Literal Org",
    "org": {"name": "Nested Org", "size": 12},
    "blank": "",
}
ROW: dict[str, Any] = {"email": "row@example.com", "plan": None, "seats": 7}
ABSENT = object()


def _spec(claim: str | None = None, profile: str | None = None) -> AttributeSpec:
    return AttributeSpec(name="value", type="string", claim=claim, profile=profile)


@pytest.mark.parametrize(
    ("spec", "row", "expected"),
    [
        pytest.param(_spec(claim="https://pete.example/plan"), None, "enterprise", id="uri-claim"),
        pytest.param(_spec(claim="https://pete.example/tier"), None, ABSENT, id="uri-never-split"),
        pytest.param(_spec(claim="app_metadata.plan"), None, "pro", id="dotted-path"),
        pytest.param(_spec(claim="app_metadata.nested.deep"), None, [1, 2], id="deep-path"),
        pytest.param(_spec(claim="org.name"), None, "Literal Org", id="literal-dotted-key-first"),
        pytest.param(_spec(claim="org.size"), None, 12, id="dotted-when-no-literal"),
        pytest.param(_spec(claim="app_metadata.seats"), None, 0, id="falsy-zero-kept"),
        pytest.param(_spec(claim="app_metadata.beta"), None, False, id="falsy-false-kept"),
        pytest.param(_spec(claim="blank"), None, "", id="empty-string-kept"),
        pytest.param(_spec(claim="email.domain"), None, ABSENT, id="path-through-a-string"),
        pytest.param(_spec(claim="app_metadata.missing"), None, ABSENT, id="missing-leaf"),
        pytest.param(_spec(claim="nowhere"), None, ABSENT, id="missing-claim"),
        pytest.param(_spec(claim="app_metadata..plan"), None, ABSENT, id="empty-segment"),
        pytest.param(_spec("email", "email"), ROW, "row@example.com", id="row-wins"),
        pytest.param(_spec("app_metadata.plan", "plan"), ROW, None, id="row-null-wins"),
        pytest.param(_spec("org.size", "seats"), ROW, 7, id="row-wins-over-path"),
        pytest.param(_spec("email", "no_column"), ROW, "claim@example.com", id="no-column"),
        pytest.param(_spec("email", "email"), None, "claim@example.com", id="no-row"),
        pytest.param(_spec(profile="email"), None, ABSENT, id="profile-only-no-row"),
        pytest.param(_spec(profile="seats"), ROW, 7, id="profile-only"),
    ],
)
def test_gather_facts(spec: AttributeSpec, row: dict[str, Any] | None, expected: Any) -> None:
    facts = gather_facts(CLAIMS, row, [spec])
    if expected is ABSENT:
        assert facts == {}
    else:
        assert facts == {"value": expected}
        assert type(facts["value"]) is type(expected)


def test_gather_facts_only_whitelisted_and_untouched() -> None:
    nested = CLAIMS["app_metadata"]["nested"]
    specs = [
        AttributeSpec(name="email", type="string", claim="email", profile="email"),
        AttributeSpec(name="plan_name", type="string", claim="https://pete.example/plan"),
        AttributeSpec(name="raw", type="string", claim="app_metadata.nested"),
    ]
    facts = gather_facts(CLAIMS, ROW, specs)
    assert facts == {"email": "row@example.com", "plan_name": "enterprise", "raw": nested}
    assert facts["raw"] is nested  # passed through: validation is attributes.py's job
    assert "sub" not in facts
    assert "seats" not in facts


# --- a hung or dropped PostgreSQL, through a proxy the test controls ------------------

DEADLINE_SLACK = 1.0  # scheduling on a busy 2-core machine; the bound itself is timeout + 0.25 s


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    require_postgres()
    target = make_url(POSTGRES_URL)
    with tcp_proxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy


def _through(proxy: TcpProxy) -> str:
    return make_url(POSTGRES_URL).set(port=proxy.port).render_as_string(hide_password=False)


def _bounded(call: Callable[[], Any], proxy: TcpProxy, limit: float = 8) -> tuple[Any, float]:
    """Run `call` in a thread; (its result or exception, seconds). A hang past `limit` fails."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.monotonic() - started
    if thread.is_alive():
        proxy.resume()  # let the stuck call go before failing
        thread.join(10)
        pytest.fail(f"still waiting on the silent database after {limit:g} s")
    return outcome[0], elapsed


@pytest.mark.postgres
@pytest.mark.parametrize("policy", ["fail", "omit"])
def test_a_silent_database_costs_a_lookup_no_more_than_its_deadline(
    make_source: SourceFactory, pg_proxy: TcpProxy, pg_table: str, policy: OnUnavailable
) -> None:
    source = make_source(
        _through(pg_proxy), _query(pg_table), timeout=0.3, on_unavailable=policy,
        breaker_cooldown=0.1,
    )  # fmt: skip
    assert source.fetch("u1") == ROWS[0]  # a pooled connection is open through the proxy
    pg_proxy.silence()  # the connection stays open; nothing comes back
    outcome, elapsed = _bounded(lambda: fetch_profile(source, "u1"), pg_proxy)
    assert elapsed < 0.3 + 0.25 + DEADLINE_SLACK
    if policy == "fail":
        assert isinstance(outcome, ProfileUnavailableError)
        assert outcome.detail == "profile database: no answer within 0.55s (client deadline)"
    else:
        assert outcome[0] is None and outcome[2] == "unavailable"
        assert "no answer within 0.55s" in outcome[1][0]
    pg_proxy.resume()
    # No answer at all is an outage: the breaker skips the database for its cooldown.
    with pytest.raises(ProfileUnavailableError, match="skipped"):
        source.fetch("u2")
    time.sleep(0.1)
    assert source.fetch("u2") == ROWS[1]  # the probe: a new connection, the network is back


@pytest.mark.postgres
def test_readiness_does_not_hang_on_a_silent_database(
    make_source: SourceFactory, pg_proxy: TcpProxy, pg_table: str
) -> None:
    source = make_source(_through(pg_proxy), _query(pg_table), timeout=0.3)
    assert source.ready() is True
    pg_proxy.silence()
    ready, elapsed = _bounded(source.ready, pg_proxy)
    assert ready is False
    assert elapsed < 0.3 + 0.25 + DEADLINE_SLACK


@pytest.mark.postgres
def test_a_connection_dropped_after_the_query_is_not_an_error(
    make_source: SourceFactory, pg_table: str
) -> None:
    # The server goes away between the answer and the end of the lookup (where
    # the implicit ROLLBACK used to run, outside the error handling: a 500).
    source = make_source(POSTGRES_URL, _query(pg_table), pool_size=1, on_unavailable="fail")

    # The pool's `reset` event: the connection is on its way back, after the
    # answer, just before its reset ROLLBACK.
    def kill_after_the_answer(dbapi_connection: Any, *_: Any) -> None:
        terminate_backend(dbapi_connection.info.backend_pid)

    event.listen(source._engine, "reset", kill_after_the_answer)
    try:
        outcome = fetch_profile(source, "u1")
    finally:
        event.remove(source._engine, "reset", kill_after_the_answer)
    assert outcome == (ROWS[0], (), "found")
    assert source.fetch("u2") == ROWS[1]  # the dead connection is replaced


def test_a_long_sqlite_query_is_interrupted_at_the_deadline(
    make_source: SourceFactory, sqlite_url: str
) -> None:
    # SQLite can block too: a statement that runs for a long time holds the caller.
    query = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT :user_id AS user_id, count(*) AS n FROM (SELECT x FROM c LIMIT 1000000000)"
    )
    source = make_source(sqlite_url, query, timeout=0.3, on_unavailable="fail")
    started = time.monotonic()
    with pytest.raises(ProfileUnavailableError, match=r"no answer within 0\.55s"):
        source.fetch("u1")
    assert time.monotonic() - started < 0.55 + DEADLINE_SLACK
    fast = make_source(sqlite_url, _query("profiles"), timeout=0.3)
    assert fast.fetch("u1") == ROWS[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_database_is_skipped_for_the_cooldown_then_probed() -> None:
    clock = FakeClock()
    settings = ProfileSettings(
        url=UNREACHABLE, query=_query("t"), id_column="user_id", on_unavailable="fail",
        breaker_cooldown=5,
    )  # fmt: skip
    source = SqlProfileSource(settings, clock=clock)
    try:
        # No connection at all is an outage: the breaker opens at the first one
        # (failed queries take BREAKER_FAILURES in a row).
        with pytest.raises(ProfileUnavailableError, match="unreachable"):
            source.fetch("u1")
        started = time.monotonic()
        with pytest.raises(ProfileUnavailableError, match="skipped after repeated failures"):
            source.fetch("u1")
        assert time.monotonic() - started < 0.05  # no connection attempt at all
        assert source.ready() is False
        clock.now += 5
        with pytest.raises(ProfileUnavailableError, match="unreachable"):
            source.fetch("u1")  # the probe goes to the database, fails, and reopens
        with pytest.raises(ProfileUnavailableError, match="skipped"):
            source.fetch("u1")
    finally:
        source.close()


def test_the_breaker_closes_after_a_successful_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(5, clock, failures=2)
    breaker.failed()
    assert breaker.allow()  # one failure is not a pattern
    breaker.failed()
    assert not breaker.allow()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # one probe at a time
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()
    assert not breaker.is_open


def test_a_breaker_with_no_cooldown_never_opens() -> None:
    breaker = CircuitBreaker(0, FakeClock())
    for _ in range(5):
        breaker.failed()
    assert breaker.allow()
