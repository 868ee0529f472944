"""Where attribute values come from: the verified identity's claims and a SQL profile row.

`SqlProfileSource` runs the workspace's parameterised query through SQLAlchemy
Core; `fetch_profile` applies the `on_unavailable` policy; `gather_facts` picks
each whitelisted attribute's raw value. Nothing here validates values: that is
`attributes.py`'s job, on everything gathered here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError

from identity_service.errors import ProfileUnavailableError
from identity_service.settings import AttributeSpec, OnUnavailable, ProfileSettings

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
    """Profile rows from a SQL database: one pooled engine, one bound-parameter query."""

    def __init__(self, settings: ProfileSettings) -> None:
        self.settings = settings
        url = make_url(settings.url)
        # For the operators' log only: no password, and no query string either,
        # because libpq also takes `?password=...` there.
        self.description = url.set(password=None, query={}).render_as_string(hide_password=True)
        # text() with :user_id bound by the driver: the user id is data, never SQL.
        self._query = text(settings.query)
        self._engine = create_engine(url, **_engine_options(url, settings))

    @property
    def on_unavailable(self) -> OnUnavailable:
        return self.settings.on_unavailable

    @property
    def id_column(self) -> str:
        return self.settings.id_column

    def fetch(self, user_id: str) -> dict[str, Any] | None:
        """The first row the query returns for `user_id`, or None when it returns none."""
        with self._connect() as connection:
            try:
                row = connection.execute(self._query, {"user_id": user_id}).mappings().first()
            except DataError as exc:
                # A data exception (SQLSTATE class 22): the database could not take
                # this value as the id column's type ("abc" for an integer, a
                # character its encoding lacks). No row can hold such an id: it is
                # the user's input, not an outage, so the answer is "no row".
                log.info("profile query took the user id as no row: %s", _summary(exc))
                return None
            except SQLAlchemyError as exc:
                raise self._unavailable("query failed", exc) from None
        return None if row is None else dict(row)

    def ready(self) -> bool:
        """Whether the database answers `SELECT 1` now (for readiness probes)."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1")).scalar_one()
        except SQLAlchemyError as exc:
            log.warning("profile database %s not ready: %s", self.description, _summary(exc))
            return False
        return True

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def _connect(self) -> Connection:
        try:
            return self._engine.connect()
        except SQLAlchemyError as exc:
            raise self._unavailable("unreachable", exc) from None

    def _unavailable(self, what: str, exc: SQLAlchemyError) -> ProfileUnavailableError:
        # Where the database is, and the driver's message (which may quote the
        # statement or the user id), go to the operators' log only. The detail
        # reaches end users (a 503, or a warning in a 200 under `omit`): it
        # names only the kind of failure.
        log.warning("profile database %s %s: %s", self.description, what, _summary(exc))
        kind = type(exc.orig).__name__ if isinstance(exc, DBAPIError) else type(exc).__name__
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == QUERY_CANCELED:
            what = f"query timed out after {self.settings.timeout:g}s"
        return ProfileUnavailableError(f"profile database: {what} ({kind})")


def _engine_options(url: URL, settings: ProfileSettings) -> dict[str, Any]:
    """Pool and timeout options for the backends we support (each spelled out)."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {
            "pool_pre_ping": True,  # a connection the server dropped is replaced, not failed
            "pool_size": settings.pool_size,
            "pool_timeout": settings.timeout,  # waiting for a free connection counts too
            "connect_args": {
                "connect_timeout": max(MIN_CONNECT_TIMEOUT, math.ceil(settings.timeout)),
                # Enforced by the server: a slow query is cancelled there, not abandoned.
                "options": f"-c statement_timeout={max(1, round(settings.timeout * 1000))}",
            },
        }
    if backend == "sqlite":
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            # SQLite has no statement timeout; this bounds waiting on a locked database.
            "connect_args": {"timeout": settings.timeout},
        }
        if url.database not in (None, "", ":memory:"):
            # In-memory databases use a per-thread pool that takes no size.
            options |= {"pool_size": settings.pool_size, "pool_timeout": settings.timeout}
        return options
    raise ValueError(
        f"profile url: {backend!r} is not supported; use postgresql+psycopg:// or sqlite:///"
    )


def _summary(exc: SQLAlchemyError) -> str:
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
