"""Where attribute values come from: the verified identity's claims and a SQL profile row.

`SqlProfileSource` runs the workspace's parameterised query on a pooled
connection of a SQLAlchemy engine; `fetch_profile` applies the
`on_unavailable` policy; `gather_facts` picks each whitelisted attribute's raw
value. Nothing here validates values: that is
`attributes.py`'s job, on everything gathered here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import DBAPIModule
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from identity_service.breaker import CircuitBreaker
from identity_service.deadlines import Watchdog
from identity_service.errors import ProfileUnavailableError
from identity_service.schema import profile_backend
from identity_service.settings import (
    BREAKER_FAILURES,
    AttributeSpec,
    OnUnavailable,
    ProfileSettings,
)

log = logging.getLogger(__name__)

# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout.
QUERY_CANCELED = "57014"
# libpq rounds connect_timeout to whole seconds and treats anything below 2 as 2.
MIN_CONNECT_TIMEOUT = 2


# What the profile step found: nothing to look in ("none"), the user's own
# row, no row, a row that is not theirs (ignored), or no answer.
ProfileOutcome = Literal["none", "found", "no_row", "mismatch", "unavailable"]
NO_ROW_WARNING = "no profile row for this user: attributes come from the identity's claims alone"
MISMATCH_WARNING = "profile row ignored: its id is not this user's id"


class ProfileSource(Protocol):
    """Anything that can look up a user's profile row."""

    @property
    def on_unavailable(self) -> OnUnavailable: ...

    @property
    def id_column(self) -> str:
        """The row's column holding the user's own id."""
        ...

    def fetch(self, user_id: str) -> dict[str, Any] | None:
        """The user's row as a dict, None when there is none; raise ProfileUnavailableError."""
        ...


class ProfileLookup(NamedTuple):
    """The user's own profile row (or None), why it may be missing, and what happened."""

    row: dict[str, Any] | None
    warnings: tuple[str, ...]
    outcome: ProfileOutcome


class SqlProfileSource:
    """Profile rows from a SQL database: one pooled engine, one bound-parameter query.

    The query is compiled once, for the engine's dialect, and each lookup runs
    it on a pooled DBAPI connection (`engine.raw_connection()`): SQLAlchemy's
    per-statement work (a `Connection`, the compiled-statement cache, an
    execution context, a `CursorResult`) was most of a lookup's instructions,
    which is an SQLite query's own work many times over (`bench/instructions.py`).
    The pool, its events and the dialect's disconnect detection stay SQLAlchemy's.

    Every lookup, and every readiness check, runs under one client-side
    deadline (`settings.deadline`, from the first pool checkout to the
    connection's return): a database that stops answering is cut off by the
    watchdog (`deadlines.py`), never waited on. Repeated failures open a
    circuit breaker, so a dead database is skipped instead of costing every
    request the deadline. Connections are autocommit and read-only: no
    pre-ping, BEGIN or ROLLBACK round trips, nothing to roll back, and a query
    that writes is refused.
    """

    def __init__(
        self, settings: ProfileSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        url = make_url(settings.url)
        # For the operators' log only: no password, and no query string either,
        # because libpq also takes `?password=...` there.
        self.description = url.set(password=None, query={}).render_as_string(hide_password=True)
        self._backend = url.get_backend_name()
        self._engine = create_engine(url, **_engine_options(url, settings))
        dialect = self._engine.dialect
        # text() with :user_id bound by the driver: the user id is data, never SQL.
        # Compiled for the driver's parameter style (`?` or `%(user_id)s`), once.
        compiled = text(settings.query).compile(dialect=dialect)
        self._sql = str(compiled)
        self._positions = compiled.positiontup  # the parameters' order, when positional
        # Any other parameter has no value: every lookup fails, as SQLAlchemy's execute would.
        self._unbound = sorted(set(compiled.params) - {"user_id"})
        self._dbapi_error: type[DBAPIModule.Error] = dialect.loaded_dbapi.Error
        self._data_error: type[Exception] = dialect.loaded_dbapi.DataError
        self._watchdog = Watchdog(settings.deadline, "profile-deadline", clock)
        self._breaker = CircuitBreaker(
            settings.breaker_cooldown,
            clock,
            failures=BREAKER_FAILURES,
            call_deadline=settings.deadline,
        )
        event.listen(self._engine, "do_connect", self._on_connect)
        event.listen(self._engine, "checkout", self._on_checkout)
        event.listen(self._engine, "checkin", self._on_checkin)

    @property
    def on_unavailable(self) -> OnUnavailable:
        return self.settings.on_unavailable

    @property
    def id_column(self) -> str:
        return self.settings.id_column

    def fetch(self, user_id: str) -> dict[str, Any] | None:
        """The first row the query returns for `user_id`, or None when it returns none."""
        if not self._breaker.allow():
            raise ProfileUnavailableError(
                "profile database: skipped after repeated failures "
                f"(tried again every {self.settings.breaker_cooldown:g}s)"
            )
        try:
            row = self._lookup(user_id)
        except _NoAnswerError as exc:
            self._failed(outage=True)
            raise exc.error from None
        except BaseException:  # whatever it was, it counts against the database
            self._failed()
            raise
        self._succeeded()
        return row

    def _failed(self, outage: bool = False) -> None:
        # An outage (no connection, or no answer within the deadline) opens the
        # breaker at once; failed queries only BREAKER_FAILURES in a row.
        if self._breaker.failed(outage):
            log.warning(
                "profile database %s %s; skipping it for %gs at a time until it answers",
                self.description,
                "does not answer" if outage else f"failed {BREAKER_FAILURES} times in a row",
                self.settings.breaker_cooldown,
            )

    def _succeeded(self) -> None:
        if (skipped := self._breaker.succeeded()) is not None:
            log.warning(
                "profile database %s answers again (%d lookups skipped)", self.description, skipped
            )

    def ready(self) -> bool:
        """Whether the database answers `SELECT 1` now, within the deadline (readiness probes)."""
        if not self._breaker.allow():
            return False
        with self._watchdog.guard() as deadline:
            try:
                with self._engine.connect() as connection:
                    connection.execute(text("SELECT 1")).scalar_one()
            except (SQLAlchemyError, self._dbapi_error, OSError) as exc:
                reason = self._deadline_text() if deadline.expired else _summary(exc)
                log.warning("profile database %s not ready: %s", self.description, reason)
                self._failed(outage=deadline.expired)
                return False
            except BaseException:
                self._failed()
                raise
        self._succeeded()
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def _lookup(self, user_id: str) -> dict[str, Any] | None:
        with self._watchdog.guard() as deadline:
            # A pooled connection the server has dropped fails on first use (there
            # is no pre-ping round trip); the pool then drops every connection as
            # old, and one more try on a new connection answers.
            for attempt in (1, 2):
                try:
                    return self._query_once(user_id)
                # OSError: the watchdog could not duplicate the socket (no descriptors left).
                except (
                    _ConnectError,
                    _StaleError,
                    SQLAlchemyError,
                    self._dbapi_error,
                    OSError,
                ) as exc:
                    if deadline.expired:
                        log.warning(
                            "profile database %s: %s", self.description, self._deadline_text()
                        )
                        raise _NoAnswerError(
                            ProfileUnavailableError(f"profile database: {self._deadline_text()}")
                        ) from None
                    if isinstance(exc, _ConnectError):
                        raise _NoAnswerError(self._unavailable(exc)) from None
                    if isinstance(exc, _StaleError):
                        if attempt == 1:
                            continue
                        raise self._unavailable(exc.error) from None
                    raise self._unavailable(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _query_once(self, user_id: str) -> dict[str, Any] | None:
        try:
            connection = self._engine.raw_connection()
        except (SQLAlchemyError, self._dbapi_error) as exc:
            raise _ConnectError(exc) from None
        # Returning the connection to the pool can fail too (a connection dropped
        # just after the answer, where its reset ROLLBACK runs): the pool logs
        # that and drops the connection, and the answer stands. Whatever else
        # fails here is the source's failure (`_lookup`), never the caller's 500.
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, self._parameters(user_id))
                row = cursor.fetchone()
                columns = [column[0] for column in cursor.description or ()]
            finally:
                cursor.close()
        except self._data_error as exc:
            # A data exception (SQLSTATE class 22): the database could not take
            # this value as the id column's type ("abc" for an integer, a
            # character its encoding lacks). No row can hold such an id: it is
            # the user's input, not an outage, so the answer is "no row".
            log.info("profile query took the user id as no row: %s", _summary(exc))
            row = None
        except self._dbapi_error as exc:
            if self._engine.dialect.is_disconnect(exc, connection, None):
                # The server dropped it (restart, idle timeout): so, most likely,
                # every pooled connection. SQLAlchemy's own execute would
                # invalidate the pool; here the connection and the idle pool go.
                connection.invalidate(exc)
                self._engine.dispose()
                raise _StaleError(exc) from None
            raise
        finally:
            connection.close()
        return None if row is None else dict(zip(columns, row, strict=True))

    def _parameters(self, user_id: str) -> dict[str, str] | list[str]:
        if self._unbound:
            detail = f"A value is required for bind parameter {self._unbound[0]!r}"
            raise StatementError(detail, self._sql, None, None)
        if self._positions is None:
            return {"user_id": user_id}
        return [user_id for _ in self._positions]  # every parameter is :user_id

    def _deadline_text(self) -> str:
        return f"no answer within {self.settings.deadline:g}s (client deadline)"

    def _on_connect(
        self, dialect: Any, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
    ) -> Any:
        # SQLAlchemy's do_connect hook: we open the connection ourselves so that
        # the deadline watches it from its first query (the dialect's set-up).
        connection = dialect.connect(*cargs, **cparams)
        if self._backend == "sqlite":
            # The SQLite twin of PostgreSQL's default_transaction_read_only.
            connection.execute("PRAGMA query_only = ON")
        self._watch(connection)
        return connection

    def _on_checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self._watch(dbapi_connection)

    def _on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        # Back in the pool, the connection may serve another lookup at once: this
        # lookup's deadline must no longer touch it.
        deadline = self._watchdog.current()
        if deadline is not None and dbapi_connection is not None:
            deadline.unwatch(id(dbapi_connection))

    def _watch(self, dbapi_connection: Any) -> None:
        deadline = self._watchdog.current()
        if deadline is None:
            return  # outside a lookup (dispose, tests' own use)
        if self._backend == "sqlite":
            # sqlite3's documented way to stop a running statement from another thread.
            deadline.watch(id(dbapi_connection), dbapi_connection.interrupt)
        else:
            deadline.watch_socket(id(dbapi_connection), dbapi_connection.fileno())

    def _unavailable(self, exc: Exception) -> ProfileUnavailableError:
        # Where the database is, and the driver's message (which may quote the
        # statement or the user id), go to the operators' log only. The detail
        # reaches end users (a 503, or a warning in a 200 under `omit`): it
        # names only the kind of failure.
        what = "query failed"
        if isinstance(exc, _ConnectError):
            what, exc = "unreachable", exc.error
        log.warning("profile database %s %s: %s", self.description, what, _summary(exc))
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        if getattr(cause, "sqlstate", None) == QUERY_CANCELED:
            what = f"query timed out after {self.settings.timeout:g}s"
        return ProfileUnavailableError(f"profile database: {what} ({type(cause).__name__})")


class _NoAnswerError(Exception):
    """The database did not answer at all (no connection, or the client deadline): an outage."""

    def __init__(self, error: ProfileUnavailableError) -> None:
        super().__init__(error.detail)
        self.error = error


class _ConnectError(Exception):
    """No connection could be had (pool wait or connect): 'unreachable', never retried."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _StaleError(Exception):
    """A pooled connection the server had dropped: tried once more on a new connection."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _engine_options(url: URL, settings: ProfileSettings) -> dict[str, Any]:
    """Pool and timeout options for the backends we support (each spelled out)."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {
            # Autocommit: one round trip per lookup, no BEGIN and no ROLLBACK to
            # wait on. A dropped connection is found on first use and retried once.
            "isolation_level": "AUTOCOMMIT",
            "pool_pre_ping": False,
            "pool_size": settings.pool_size,
            "pool_timeout": settings.timeout,  # waiting for a free connection counts too
            "connect_args": {
                "connect_timeout": max(MIN_CONNECT_TIMEOUT, math.ceil(settings.timeout)),
                # Enforced by the server: a slow query is cancelled there, not
                # abandoned; and no statement may write.
                "options": (
                    f"-c statement_timeout={max(1, round(settings.timeout * 1000))} "
                    "-c default_transaction_read_only=on"
                ),
            },
        }
    if backend == "sqlite":
        options: dict[str, Any] = {
            "isolation_level": "AUTOCOMMIT",
            "pool_pre_ping": False,
            # Autocommit and read-only: a returned connection holds no transaction,
            # so the pool's reset ROLLBACK on return would be work for nothing.
            "pool_reset_on_return": None,
            # SQLite has no statement timeout; this bounds waiting on a locked database.
            "connect_args": {"timeout": settings.timeout},
        }
        if url.database not in (None, "", ":memory:"):
            # In-memory databases use a per-thread pool that takes no size.
            options |= {"pool_size": settings.pool_size, "pool_timeout": settings.timeout}
        return options
    # The loader refuses other backends (schema.PROFILE_BACKENDS); settings built in code may not.
    raise ValueError(profile_backend(backend))


def _summary(exc: Exception) -> str:
    # The driver's own first line, without SQLAlchemy's [SQL: ...] and [parameters: ...].
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def fetch_profile(source: ProfileSource | None, user_id: str) -> ProfileLookup:
    """The user's own profile row under the source's `on_unavailable` policy.

    A row is used only when its `id_column`, as text (`str()`, as the token's
    user id is made), equals `user_id` exactly. The database compared
    `:user_id` with its id column in that column's type, so an INTEGER column
    finds user 1's row for "01", " 1" or "1e0"; such a row is never theirs and
    is ignored with a warning (outcome "mismatch"), whatever the query says.

    `fail` lets ProfileUnavailableError through (503); `omit` returns no row and
    a warning, so the token is minted from the identity's claims alone.
    """
    if source is None:
        return ProfileLookup(None, (), "none")
    try:
        row = source.fetch(user_id)
    except ProfileUnavailableError as exc:
        if source.on_unavailable == "fail":
            raise
        return ProfileLookup(None, (f"profile source unavailable: {exc.detail}",), "unavailable")
    if row is None:
        return ProfileLookup(None, (NO_ROW_WARNING,), "no_row")
    if not _owns(row, source.id_column, user_id):
        return ProfileLookup(None, (MISMATCH_WARNING,), "mismatch")
    return ProfileLookup(row, (), "found")


def _owns(row: Mapping[str, Any], id_column: str, user_id: str) -> bool:
    if id_column not in row:
        log.error(
            "profile row ignored: the query returns no column %r (profile.id_column); "
            "select the user's id column",
            id_column,
        )
        return False
    value = row[id_column]
    if value is not None and str(value) == user_id:
        return True
    # Which user asked is in the access line; the row's values stay out of the log.
    log.warning(
        "profile row ignored: its %r (%s) is not the user id the query was given",
        id_column,
        type(value).__name__,
    )
    return False


def gather_facts(
    identity_claims: Mapping[str, Any],
    row: Mapping[str, Any] | None,
    specs: Sequence[AttributeSpec],
) -> dict[str, Any]:
    """The raw value of each whitelisted attribute that has one, keyed by attribute name.

    Precedence: the profile row wins over the identity's claims, because the
    database is the record of the user and a token's claims may be stale for
    its lifetime. A column that is present wins even when NULL (None: Intercom's
    "unknown"); a column the query does not return falls back to the claim.

    A claim path is tried first as one literal key, so full URI claims
    (`https://pete.example/plan`) and keys that contain dots work; a path
    containing "://" is never split; otherwise `app_metadata.plan` walks nested
    objects. A value found nowhere is left out (not None). Values are passed
    through untouched.
    """
    facts: dict[str, Any] = {}
    for spec in specs:
        if row is not None and spec.profile is not None and spec.profile in row:
            facts[spec.name] = row[spec.profile]
        elif spec.claim is not None:
            found, value = _claim(identity_claims, spec.claim)
            if found:
                facts[spec.name] = value
    return facts


def _claim(claims: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    if path in claims:
        return True, claims[path]
    if "://" in path:
        return False, None
    current: Any = claims
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current
