"""Request bodies the server cannot de-frame, over raw sockets against `identity-service serve`.

A malformed chunked body (a bad chunk size, a chunk longer than its size, a
bare LF, a bad or forbidden trailer, a chunked body cut short) and a body
shorter than its Content-Length are the client's fault: each gets a 400
problem+json with the security headers and a request id, is logged as one
access line without a stack, and never mints a token. A body nobody reads
(a GET with a broken chunked body) gets the route's answer and nothing after
it: the connection closes, and no second response is written behind the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from gunicorn.http.errors import InvalidChunkSize
from werkzeug.test import Client

from identity_service import create_app
from identity_service.http.paths import TOKEN_PATH
from tests.support.flask_view import flask_view
from tests.support.leak_guard import LeakGuard
from tests.support.raw_http import assert_problem, parse_responses, request
from tests.support.served import Server, serving
from tests.support.service import ServiceFixture, make_service


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServiceFixture]]:
    root = tmp_path_factory.mktemp("framing")
    service = make_service(root)
    with serving(root / "service.toml", root, workers=1, threads=2) as server:
        yield server, service


def chunked_post(token: str, body: bytes, path: str = TOKEN_PATH) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


BODY = b'{"workspace":"main"}'  # 20 bytes, 0x14
MALFORMED_CHUNKED = {
    "size is not hex": b"zz\r\n" + BODY + b"\r\n0\r\n\r\n",
    "size with a sign": b"+14\r\n" + BODY + b"\r\n0\r\n\r\n",
    "size is empty": b"\r\n" + BODY + b"\r\n0\r\n\r\n",
    "chunk longer than its size": b"2\r\n" + BODY + b"\r\n0\r\n\r\n",
    "chunk shorter than its size": b"20\r\n" + BODY + b"\r\n0\r\n\r\n",
    "bare LF after the size": b"14\n" + BODY + b"\r\n0\r\n\r\n",
    "bare LF after the data": b"14\r\n" + BODY + b"\n0\r\n\r\n",
    "bad chunk extension": b"14;=x\r\n" + BODY + b"\r\n0\r\n\r\n",
    "bare CR in an extension": b"14;a\rb\r\n" + BODY + b"\r\n0\r\n\r\n",
    "trailer without a colon": b"14\r\n" + BODY + b"\r\n0\r\ngarbage\r\n\r\n",
    "forbidden trailer (Host)": b"14\r\n" + BODY + b"\r\n0\r\nHost: evil\r\n\r\n",
    "forbidden trailer (Authorization)": b"14\r\n"
    + BODY
    + b"\r\n0\r\nAuthorization: Bearer x\r\n\r\n",
    "trailer with a bare LF": b"14\r\n" + BODY + b"\r\n0\r\nX-A: b\n\r\n",
    "cut short in a chunk": b"14\r\n" + BODY[:5],
    "cut short before the last chunk": b"14\r\n" + BODY + b"\r\n",
    "cut short in the trailers": b"14\r\n" + BODY + b"\r\n0\r\n",
}


def assert_logged_without_a_stack(server: Server, request_id: str, status: int) -> None:
    [access] = server.wait_for_lines(rf'"request_id":"{request_id}"')
    assert json.loads(access)["status"] == status
    log = server.log()
    assert "Traceback" not in log and '"stack"' not in log and "unhandled error" not in log


@pytest.mark.parametrize("body", MALFORMED_CHUNKED.values(), ids=MALFORMED_CHUNKED.keys())
def test_a_malformed_chunked_body_is_a_400_problem(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard, body: bytes
) -> None:
    server, service = served
    token = service.idp_token()
    leak_guard.watch(token)
    [response] = request(server.port, chunked_post(token, body))
    problem = assert_problem(response, 400, "bad-request")
    assert "token" not in problem
    assert_logged_without_a_stack(server, problem["request_id"], 400)


def test_the_issues_example_is_a_400_without_credentials(
    served: tuple[Server, ServiceFixture],
) -> None:
    server, _ = served
    raw = (
        b"POST /v1/messenger/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    [response] = request(server.port, raw)
    problem = assert_problem(response, 400, "bad-request")
    assert_logged_without_a_stack(server, problem["request_id"], 400)


@pytest.mark.parametrize("declared", [len(BODY) + 1, 1000])
def test_a_body_shorter_than_its_content_length_is_a_400(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard, declared: int
) -> None:
    # The client ends its side after fewer bytes than it declared: the body
    # is cut short, and must not be taken for a complete request.
    server, service = served
    token = service.idp_token()
    leak_guard.watch(token)
    raw = (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode() + BODY
    [response] = request(server.port, raw)
    problem = assert_problem(response, 400, "bad-request")
    assert_logged_without_a_stack(server, problem["request_id"], 400)


def test_a_body_of_exactly_its_content_length_still_mints(
    served: tuple[Server, ServiceFixture], leak_guard: LeakGuard
) -> None:
    server, service = served
    token = service.idp_token()
    leak_guard.watch(token)
    raw = (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(BODY)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + BODY
    [response] = request(server.port, raw)
    assert response.status == 200, response.body
    leak_guard.watch(response.json()["token"])


def test_the_connection_closes_after_a_framing_error(
    served: tuple[Server, ServiceFixture],
) -> None:
    # Where the next request starts is unknown after a bad chunk: bytes
    # behind it are never served as a request of their own.
    server, _ = served
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (
        (
            f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + b"2\r\n"
        + BODY
        + b"\r\n0\r\n\r\n"
        + smuggled
    )
    responses = request(server.port, raw, half_close=False)
    assert [r.status for r in responses] == [400]
    assert re.fullmatch(r"[0-9a-f]{16}", responses[0].headers["x-request-id"])


def test_parse_responses_sees_a_second_response() -> None:
    # The helper the tests above rely on to notice a response written behind another.
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    second = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
    assert [r.status for r in parse_responses(first + second)] == [200, 400]


class _FailingInput:
    """A server's input stream that meets a malformed chunk (gunicorn's own error)."""

    def read(self, size: int = -1) -> bytes:
        raise InvalidChunkSize(b"zz")

    readline = read


@pytest.mark.parametrize("way_in", ["token endpoint", "Flask view"])
def test_both_ways_into_the_token_route_answer_a_framing_error_with_400(
    tmp_path: Path, way_in: str
) -> None:
    # gunicorn only ever raises these under `serve` (the tests above); this
    # holds the endpoint, and Flask's error handlers (the Flask view it
    # replaced, tests/support/flask_view.py), to the same answer.
    service = make_service(tmp_path)
    app = create_app(service.settings)
    wsgi = app if way_in == "token endpoint" else flask_view(app)
    response = Client(wsgi).post(
        TOKEN_PATH,
        headers={**service.bearer_headers(), "Content-Type": "application/json"},
        environ_overrides={"wsgi.input": _FailingInput(), "wsgi.input_terminated": True},
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/bad-request")
