"""A guard around every test: no log record may carry a credential, a token or a secret.

The autouse `leak_guard` fixture captures every log record emitted while a test
runs (from any logger, at every level, including the service's own loggers
when production logging has turned their propagation off), renders each one as
the production JSON formatter would, and fails the test if a line contains:

- `eyJ...` followed by a dot: the first segment of every JWT/JWS (base64url
  of `{"`), so no IdP token, forged token, Messenger token or Flask session
  cookie slips through. `eyJ` alone is not enough: a random jti contains it
  now and then (about one audit line in 13,000), which failed a CI run;
- a configured secret of the shared test service (Messenger secret, session key);
- anything a test registered with `leak_guard.watch(...)`: the credential or
  cookie it sent, the token it was given.

The same rules hold for the lines of every `identity-service serve` subprocess
a test runs (`tests/support/served.py`): the app's JSON lines and gunicorn's
own (master and workers, any level), which never pass through this process's
logging. Those lines must also carry no query string (`/path?name=...`). Each
line is checked once, by the guard of the test during which it was read; the
lines of a server that outlives a test are read again at the next test's end.

A failure names the logger (or the server's line number) and the kind of
leak, never the leaked value.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from identity_service.observability.logs import JsonFormatter
from tests.support.served import UNCHECKED
from tests.support.service import MESSENGER_SECRET, SESSION_SECRET

# A base64url segment starting as JSON `{"` does, then a dot: a JWT, a JWS or a signed cookie.
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.")
# A path with a query string, as a request line or a URI quotes it.
QUERY_SHAPE = re.compile(r"/[^\s\"'?]*\?[^\s\"']*=")
MIN_WATCHED_CHARS = 12  # shorter strings ("a b", "Basic") would match innocent text


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # A record reaching both the service logger and the root is kept once.
        if not any(r is record for r in self.records):
            self.records.append(record)


class LeakGuard:
    """Every log record of the running test, and the values none of them may contain."""

    def __init__(self) -> None:
        self.collector = _Collector()
        self.watched: list[str] = [MESSENGER_SECRET, SESSION_SECRET]
        self.formatter = JsonFormatter()

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.collector.records

    def watch(self, *values: str | bytes | None) -> None:
        """Values no log line may contain (credentials sent, cookies, tokens received)."""
        for value in values:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if text and len(text) >= MIN_WATCHED_CHARS:
                self.watched.append(text)

    def lines(self) -> list[tuple[logging.LogRecord, str]]:
        rendered = []
        for record in self.records:
            line = self.formatter.format(record)
            # The raw message and arguments too: another formatter might show them unescaped.
            raw = f"{record.msg} {record.args!r} {getattr(record, 'fields', '')!r}"
            rendered.append((record, f"{line}\n{raw}"))
        return rendered

    def leaks(self) -> list[str]:
        """One description per leaking record: logger and what leaked, never the value."""
        found = []
        for record, line in self.lines():
            kinds = []
            if JWT_SHAPE.search(line):
                kinds.append("a JWT or signed cookie (eyJ...)")
            kinds.extend(
                f"watched value #{i} ({len(v)} chars)"
                for i, v in enumerate(self.watched)
                if v in line
            )
            if kinds:
                found.append(f"{record.name} {record.levelname}: {', '.join(kinds)}")
        return found

    def line_leaks(self, source: str, lines: list[str]) -> list[str]:
        """One description per leaking line of a server's log: where and what, never the value."""
        found = []
        for number, line in enumerate(lines, 1):
            kinds = []
            if JWT_SHAPE.search(line):
                kinds.append("a JWT or signed cookie (eyJ...)")
            if QUERY_SHAPE.search(line):
                kinds.append("a query string")
            kinds.extend(
                f"watched value #{i} ({len(v)} chars)"
                for i, v in enumerate(self.watched)
                if v in line
            )
            if kinds:
                found.append(f"{source}, line {number} of this read: {', '.join(kinds)}")
        return found

    def server_leaks(self) -> list[str]:
        """Leaks in the lines the served subprocesses wrote since the last read."""
        found = []
        for server in list(UNCHECKED):
            done = server.finished  # before reading: a line written after is read next time
            pid = server.process.pid
            found.extend(self.line_leaks(f"serve (pid {pid})", server.unchecked_lines()))
            if done:
                UNCHECKED.remove(server)
        return found

    def forget(self) -> None:
        """Drop the records and server lines so far (for a test that leaks on purpose)."""
        self.collector.records.clear()
        for server in UNCHECKED:
            server.unchecked_lines()

    def saw(self, logger: str, message: str | None = None) -> int:
        """How many captured records came from `logger` (with `message`, when given)."""
        return sum(
            1
            for r in self.records
            if r.name == logger and (message is None or r.getMessage() == message)
        )


@pytest.fixture(autouse=True)
def leak_guard() -> Iterator[LeakGuard]:
    """Autouse for the whole suite (registered in tests/conftest.py)."""
    guard = LeakGuard()
    targets = [logging.getLogger(), logging.getLogger("identity_service")]
    levels = [t.level for t in targets]
    for target in targets:
        target.addHandler(guard.collector)
        target.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        for target, level in zip(targets, levels, strict=True):
            target.removeHandler(guard.collector)
            target.setLevel(level)
    leaks = guard.leaks() + guard.server_leaks()
    if leaks:
        pytest.fail("log records leak credentials:\n  " + "\n  ".join(leaks), pytrace=False)
