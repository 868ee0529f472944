"""No line `identity-service serve` writes carries a query string or a credential.

gunicorn's own lines included: a malformed request line quoting a bearer token
in its query string, a header line with a credential and no colon, an
over-long URI. The serve subprocess's stderr is also read by the log leak
guard (tests/support/leak_guard.py) at the end of every test; the tests here
say exactly what must hold and prove the guard sees those lines.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from gunicorn.config import Config

from identity_service.errors import ConfigError, ConfigProblem
from identity_service.http.paths import TOKEN_PATH
from identity_service.http.server_logging import SafeLogger, redact
from tests.support.leak_guard import LeakGuard
from tests.support.raw_http import request
from tests.support.served import UNCHECKED, Server, serving
from tests.support.service import ServiceFixture, make_service

QUERY_MARKER = "query-marker-5b1d9e"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServiceFixture]]:
    root = tmp_path_factory.mktemp("server-logs")
    service = make_service(root)
    with serving(root / "service.toml", root, workers=1, threads=2) as server:
        yield server, service


def malformed_requests(jwt: str) -> dict[str, bytes]:
    query = f"?access_token={jwt}&other={QUERY_MARKER}"
    return {
        "request line without a version": f"POST {TOKEN_PATH}{query}\r\n\r\n".encode(),
        "request line with a bad version": f"POST {TOKEN_PATH}{query} HTTP/9\r\n\r\n".encode(),
        "bad method": f"P@ST {TOKEN_PATH}{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        "over-long request line": f"GET /{'a' * 5000}{query} HTTP/1.1\r\n\r\n".encode(),
        "header without a colon": (
            f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {jwt}\r\n\r\n"
        ).encode(),
        "header name with a space": (
            f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nBearer {jwt}: x\r\n\r\n"
        ).encode(),
        "credential as a chunk size": (
            f"POST {TOKEN_PATH}{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{jwt}\r\n{{}}\r\n0\r\n\r\n"
        ).encode(),
        "valid request with a query string": (
            f"POST {TOKEN_PATH}{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ).encode(),
    }


@pytest.mark.parametrize("case", list(malformed_requests("x")), ids=list(malformed_requests("x")))
def test_no_server_line_quotes_a_query_string_or_a_credential(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard, case: str
) -> None:
    server, service = served
    jwt = service.idp_token()
    leak_guard.watch(jwt, QUERY_MARKER)
    before = len(server.lines)
    [response] = request(server.port, malformed_requests(jwt)[case])
    assert response.status < 500
    rid = response.headers["x-request-id"]
    # Each request is logged (by gunicorn's refusal line or the app's access
    # line), so the lines checked below are this request's.
    server.wait_for_lines(rid)
    written = "\n".join(server.lines[before:])
    assert jwt not in written and "eyJ" not in written
    assert QUERY_MARKER not in written and "access_token" not in written


def test_the_guard_reads_the_servers_lines(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard
) -> None:
    server, _ = served
    leak_guard.forget()
    assert leak_guard.server_leaks() == []
    # What gunicorn 27 wrote for a malformed request line before SafeLogger and
    # the worker's handle_error: the guard must take it for a leak.
    lines = [
        "[2026-12-01 21:39:20 +0000] [1] [WARNING] Invalid request from ip=127.0.0.1: "
        "Invalid HTTP request line: 'POST /v1/messenger/token?access_token=eyJabc.def.ghi'",
        f"Error handling request /healthz?n={QUERY_MARKER}",
        '{"level":"info","message":"request","path":"/healthz"}',
    ]
    leak_guard.watch(QUERY_MARKER)
    leaks = leak_guard.line_leaks("serve", lines)
    assert len(leaks) == 2
    assert "a JWT" in leaks[0] and "a query string" in leaks[0]
    assert "a query string" in leaks[1] and "watched value" in leaks[1]
    assert all("eyJabc" not in leak and QUERY_MARKER not in leak for leak in leaks)
    assert server in UNCHECKED  # and the guard reads its lines at every test's end


# -- SafeLogger itself, through gunicorn's own Logger writing to a file ------------------


@pytest.fixture
def gunicorn_log(tmp_path: Path) -> Iterator[tuple[SafeLogger, Path]]:
    path = tmp_path / "error.log"
    cfg = Config()
    cfg.set("errorlog", str(path))
    cfg.set("loglevel", "debug")
    log = SafeLogger(cfg)
    try:
        yield log, path
    finally:
        for handler in list(log.error_log.handlers):
            log.error_log.removeHandler(handler)
            handler.close()
        log.error_log.filters.clear()


def test_safe_logger_withholds_query_strings_credentials_and_exception_messages(
    gunicorn_log: tuple[SafeLogger, Path],
) -> None:
    log, path = gunicorn_log
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl"
    try:
        raise ValueError(f"parsing 'POST /x?access_token={jwt}'")
    except ValueError as error:
        log.exception("Error handling request %s %s", "POST", f"/x?access_token={jwt}")
        log.debug("Ignored premature client disconnection. %s", error)
    log.warning("Authorization: Bearer opaque-credential-123 and Basic dXNlcjpwYXNz")
    written = path.read_text()
    assert jwt not in written and "eyJ" not in written and "access_token" not in written
    assert "opaque-credential-123" not in written and "dXNlcjpwYXNz" not in written
    assert "Error handling request POST /x?<query withheld>" in written
    # The exception's type and stack stay: an operator can find the code.
    assert "builtins.ValueError" in written and "test_server_logs.py" in written
    assert "Bearer <credential withheld>" in written


def test_safe_logger_keeps_the_message_of_the_services_own_errors(
    gunicorn_log: tuple[SafeLogger, Path],
) -> None:
    # A startup failure in a worker must still name the file, the key and the fix.
    log, path = gunicorn_log
    error = ConfigError("/etc/service.toml", [ConfigProblem("service.hsts", "must be a boolean")])
    try:
        raise error
    except ConfigError:
        log.exception("Exception in worker process")
    written = path.read_text()
    assert "/etc/service.toml" in written and "service.hsts: must be a boolean" in written


def test_safe_logger_installs_one_filter_however_often_gunicorn_sets_it_up(
    gunicorn_log: tuple[SafeLogger, Path],
) -> None:
    log, _ = gunicorn_log
    log.setup(log.cfg)  # what gunicorn does on every reload (SIGHUP)
    assert len(log.error_log.filters) == 1
    assert logging.getLogger("gunicorn.error") is log.error_log


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /a?b=c HTTP/1.1", "GET /a?<query withheld> HTTP/1.1"),
        ("'POST /x?t=eyJa.b.c'", "'POST /x?<query withheld>'"),
        ("token eyJhbGc.eyJzdWI.sig here", "token <jwt withheld> here"),
        ("bearer abc.def", "bearer <credential withheld>"),
        ("Booting worker with pid: 123", "Booting worker with pid: 123"),
        ("Listening at: http://127.0.0.1:8000 (7)", "Listening at: http://127.0.0.1:8000 (7)"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_jwt_shaped_request_id_is_replaced_and_never_logged(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard
) -> None:
    server, _ = served
    # Short enough (under 128 characters) for the old rule, which took it as is.
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLXZhbHVl"
    leak_guard.watch(jwt)
    raw = (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {jwt}\r\nConnection: close\r\n\r\n"
    ).encode()
    [response] = request(server.port, raw)
    assert response.status == 401
    rid = response.headers["x-request-id"]
    assert rid != jwt and response.json()["request_id"] == rid
    server.wait_for_lines(rf'"request_id":"{rid}"')
    assert jwt not in server.log()
