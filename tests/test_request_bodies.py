"""Token request bodies through the real server (gunicorn): the body cap holds for chunked bodies.

gunicorn de-chunks a body sent without Content-Length and vouches for its end
(`wsgi.input_terminated`); werkzeug's stream then stops at the cap without
refusing what lies beyond it, so the endpoint checks for more itself.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from identity_service.http.paths import TOKEN_PATH
from tests.support.served import Server, serving
from tests.support.service import MAX_BODY_BYTES, ServiceFixture, make_service, padded_body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ServiceFixture]]:
    root = tmp_path_factory.mktemp("bodies")
    service = make_service(root)
    with serving(root / "service.toml", root, workers=1, threads=2) as server:
        yield server, service


def post_chunked(server: Server, token: str, body: bytes) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        # An iterable body and no Content-Length: http.client sends it chunked.
        chunks = iter([body[i : i + 100] for i in range(0, len(body), 100)])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", TOKEN_PATH, body=chunks, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [MAX_BODY_BYTES - 1, MAX_BODY_BYTES])
def test_a_chunked_body_up_to_the_cap_is_read(
    served: tuple[Server, ServiceFixture], size: int
) -> None:
    server, service = served
    body = padded_body(size)
    assert len(body) == size
    status, answer = post_chunked(server, service.idp_token(), body)
    assert status == 200, answer
    assert answer["user_id"] == "user-42"


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 10 * MAX_BODY_BYTES])
def test_a_chunked_body_over_the_cap_is_refused_not_cut(
    served: tuple[Server, ServiceFixture], size: int
) -> None:
    # Cut at the cap, these bodies would still be valid JSON (the padding is spaces).
    server, service = served
    status, answer = post_chunked(server, service.idp_token(), padded_body(size))
    assert status == 413, answer
    assert answer["status"] == 413


def post_sized(server: Server, token: str, body: bytes) -> tuple[int, str, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        # A bytes body: http.client sends it with its Content-Length.
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request("POST", TOKEN_PATH, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [len(b'{"workspace": "main"}'), MAX_BODY_BYTES])
def test_a_body_with_its_length_up_to_the_cap_is_read(
    served: tuple[Server, ServiceFixture], size: int
) -> None:
    # gunicorn vouches for the end of the stream: the endpoint reads the body
    # itself, not through werkzeug's stream.
    server, service = served
    status, _, answer = post_sized(server, service.idp_token(), padded_body(size))
    assert status == 200, answer
    assert answer["user_id"] == "user-42"


def test_a_content_length_over_the_cap_is_a_413_problem(
    served: tuple[Server, ServiceFixture],
) -> None:
    server, service = served
    status, content_type, answer = post_sized(
        server, service.idp_token(), padded_body(MAX_BODY_BYTES + 1)
    )
    assert status == 413, answer
    assert content_type == "application/problem+json"
    assert answer["status"] == 413
