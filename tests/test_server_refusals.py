"""gunicorn's own refusals under `identity-service serve`, over raw sockets.

Requests gunicorn refuses before the app runs (an over-long request line, a
2 MB bearer header, a 100 KB cookie, CR or NUL in a header, conflicting
framing headers...) get the same answer as the app's errors: problem+json
with status, title, detail and type, `Cache-Control: no-store`, the security
headers and an `X-Request-ID`, and nothing of the bad input echoed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from identity_service.http.paths import TOKEN_PATH
from tests.support.leak_guard import LeakGuard
from tests.support.raw_http import assert_problem, request
from tests.support.served import Server, serving
from tests.support.service import ServiceFixture, make_service

MARKER = "leaked-input-marker-7f3a"  # in every bad input; never in an answer or a log line


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServiceFixture]]:
    root = tmp_path_factory.mktemp("refusals")
    service = make_service(root)
    with serving(root / "service.toml", root, workers=1, threads=2) as server:
        yield server, service


def post(*headers: str, target: str = TOKEN_PATH, body: str = "") -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("latin-1")


BIG_BEARER = "Authorization: Bearer eyJ" + "A" * (2 * 1024 * 1024) + f".{MARKER}.x"
CASES = {
    "2 MB bearer header": (post(BIG_BEARER), 431, "request-header-fields-too-large"),
    "100 KB cookie": (
        post(f"Cookie: session={MARKER}{'c' * 100_000}"),
        431,
        "request-header-fields-too-large",
    ),
    "too many headers": (
        post(*(f"X-{i}: {MARKER}" for i in range(150))),
        431,
        "request-header-fields-too-large",
    ),
    "over-long request line": (
        post(target=f"{TOKEN_PATH}?q={MARKER}{'a' * 10_000}"),
        414,
        "request-uri-too-long",
    ),
    "request line without a version": (
        f"POST {TOKEN_PATH}?access_token={MARKER}\r\n\r\n".encode(),
        400,
        "bad-request",
    ),
    "request line with a bad version": (
        f"POST {TOKEN_PATH} HTTP/{MARKER}\r\nHost: x\r\n\r\n".encode(),
        400,
        "bad-request",
    ),
    "bad method": (f"P{MARKER}@ / HTTP/1.1\r\nHost: x\r\n\r\n".encode(), 400, "bad-request"),
    "CR in a header value": (post(f"X-A: {MARKER}\rinjected"), 400, "bad-request"),
    "NUL in a header value": (post(f"X-A: {MARKER}\x00"), 400, "bad-request"),
    "NUL in the bearer header": (post(f"Authorization: Bearer {MARKER}\x00"), 400, "bad-request"),
    "space in a header name": (post(f"Bad {MARKER}: x"), 400, "bad-request"),
    "header line without a colon": (post(f"Authorization Bearer {MARKER}"), 400, "bad-request"),
    "obsolete folding": (post(f"X-A: {MARKER}", f" folded-{MARKER}"), 400, "bad-request"),
    "Content-Length and Transfer-Encoding": (
        post("Content-Length: 2", "Transfer-Encoding: chunked", body="{}"),
        400,
        "bad-request",
    ),
    "two Content-Lengths": (
        post("Content-Length: 2", "Content-Length: 3", body="{}"),
        400,
        "bad-request",
    ),
    "Content-Length not a number": (post(f"Content-Length: {MARKER}"), 400, "bad-request"),
    "Content-Length with a sign": (post("Content-Length: +2", body="{}"), 400, "bad-request"),
    "Content-Length negative": (post("Content-Length: -1"), 400, "bad-request"),
    "unknown transfer coding": (
        post("Transfer-Encoding: gzip", body="{}"),
        400,
        "bad-request",
    ),
    "chunked not last": (
        post("Transfer-Encoding: chunked, gzip", body="0\r\n\r\n"),
        400,
        "bad-request",
    ),
    "two Host headers": (post(f"Host: {MARKER}"), 400, "bad-request"),
    "unsupported Expect": (post(f"Expect: {MARKER}"), 417, "expectation-failed"),
}


@pytest.mark.parametrize(("raw", "status", "slug"), CASES.values(), ids=CASES.keys())
def test_gunicorns_refusals_are_problems_with_the_security_headers(
    served: tuple[Server, ServiceFixture],
    leak_guard: LeakGuard,
    raw: bytes,
    status: int,
    slug: str,
) -> None:
    server, _ = served
    leak_guard.watch(MARKER)
    [response] = request(server.port, raw)
    problem = assert_problem(response, status, slug)
    assert set(problem) == {"type", "title", "status", "detail", "request_id"}
    assert re.fullmatch(r"[0-9a-f]{16}", problem["request_id"])
    assert response.headers["connection"] == "close"
    assert MARKER.encode() not in response.body
    assert "eyJ" not in response.body.decode()
    # Logged once, by status and kind, with the request id the client saw.
    server.wait_for_lines(rf"Invalid request .*{status}.*{problem['request_id']}")


def test_hsts_is_on_gunicorns_refusals_when_configured(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("refusals-hsts")
    make_service(root, extra="")
    config = root / "service.toml"
    config.write_text(config.read_text().replace("[service]\n", "[service]\nhsts = true\n", 1))
    with serving(config, root, workers=1, threads=1) as server:
        [response] = request(server.port, b"GET /healthz\r\n\r\n")
        assert_problem(response, 400, "bad-request")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        [healthy] = request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert healthy.status == 200
        # The same security headers on the app's answers and on gunicorn's.
        shared = {k: v for k, v in healthy.headers.items() if k not in {"content-type"}}
        for name in ("strict-transport-security", "x-frame-options", "content-security-policy"):
            assert response.headers[name] == shared[name]


def test_an_unread_malformed_body_gets_one_answer_then_the_connection_closes(
    served: tuple[Server, ServiceFixture],
) -> None:
    # /healthz never reads the body; gunicorn drains it to keep the connection
    # and meets the bad chunk only then, after the 200 went out. No second
    # response may follow the first on the connection.
    server, _ = served
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    )
    responses = request(server.port, raw, half_close=False)
    assert [r.status for r in responses] == [200]
    assert responses[0].json() == {"status": "ok"}


def test_bytes_beyond_a_content_length_are_the_next_request_and_refused_as_such(
    served: tuple[Server, ServiceFixture],
) -> None:
    # A Content-Length shorter than what follows: the rest is read as the next
    # request on the connection, and garbage there gets the same problem+json.
    server, _ = served
    raw = (
        b"POST /v1/messenger/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}" + f"garbage {MARKER}\r\n\r\n".encode()
    )
    first, second = request(server.port, raw, half_close=False)
    assert first.status == 401  # the complete first request: no credential
    assert_problem(second, 400, "bad-request")
    assert MARKER.encode() not in second.body
