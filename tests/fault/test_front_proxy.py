"""Slow clients against the real `identity-service serve` behind the shipped nginx config.

gunicorn's gthread workers give a connection to a thread as soon as it is
accepted, and the thread waits for the request however slowly it comes, so a
handful of slow or silent clients hold every thread (issue 12 item 4). The
recommended deployment puts Debian's nginx, configured by
`deploy/nginx/identity-service.conf`, in front: it reads each request whole
(head within client_header_timeout, body up to client_max_body_size) before
the service sees it. These tests run that file as shipped, rendered by
tests/support/nginx.py with free ports (and, where a test waits for a timeout,
a 1 s timeout), in front of the real server (tests/support/served.py).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import ClassVar

import pytest

from identity_service.http.middleware import REQUEST_ID_PATTERN
from identity_service.settings import ServiceSettings
from tests.support.nginx import SHIPPED, fronting, nginx_binary, render, set_directive
from tests.support.processes import free_port
from tests.support.served import Server, serving
from tests.support.service import MAX_BODY_BYTES, ServiceFixture, make_service

TOKEN_PATH = "/v1/messenger/token"
HEAD = f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
MARKER = "zq7-echo-probe"  # sent in hostile input; must never come back
SLOW_EACH = 16  # slow connections of each kind: 48 in all, against 2 x 4 threads
REQUEST_BOUND = 2.0  # seconds a normal request may take while the attack runs

needs_nginx = pytest.mark.skipif(
    nginx_binary() is None, reason="Debian's nginx is not installed (apt-get install nginx)"
)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceFixture, Server]]:
    """The real server (2 workers x 4 threads, as issue 12 measured) trusting one proxy."""
    root = tmp_path_factory.mktemp("front-proxy")
    service = make_service(root, proxy_hops=1)
    with serving(root / "service.toml", root, workers=2, threads=4) as server:
        server.wait_for_lines(r"Booting worker", count=2)
        yield service, server


def token_request(port: int, service: ServiceFixture, **headers: str) -> tuple[int, float]:
    """POST a token request on a new connection: (status, seconds it took)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST", TOKEN_PATH, body=b"", headers={**service.bearer_headers(), **headers}
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


@contextmanager
def slow_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` each of: a head cut off mid-header, one byte, a head with half its body."""
    starts = [
        HEAD.encode() + b"X-Padd",  # slowloris: the head, not finished
        b"P",  # one byte, then nothing
        (HEAD + f"Content-Length: {MAX_BODY_BYTES // 2}\r\n\r\n").encode() + b"{",  # slow body
    ]
    with ExitStack() as stack:
        sockets = []
        for start in starts:
            for _ in range(count):
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
                sock.sendall(start)
                sockets.append(sock)
        yield sockets


def still_open(sock: socket.socket) -> bool:
    """True when the server has neither answered nor closed this connection."""
    sock.setblocking(False)
    try:
        return not sock.recv(1)  # b"" is a close; data is an answer
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed `sock` (at most `limit`), and what it sent first."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def access_lines(server: Server) -> list[dict[str, object]]:
    lines = [json.loads(x) for x in server.lines if x.startswith("{")]
    return [x for x in lines if x.get("message") == "request"]


def test_the_shipped_body_cap_is_the_services_default() -> None:
    text = SHIPPED.read_text()
    cap = re.search(r"^\s*client_max_body_size\s+(\d+);", text, re.M)
    assert cap, "client_max_body_size must be a plain byte count, like max_body_bytes"
    assert int(cap.group(1)) == ServiceSettings().max_body_bytes
    set_directive(text, "proxy_request_buffering", "on")  # present exactly once


@needs_nginx
@pytest.mark.fault
def test_slow_clients_do_not_stall_requests_behind_nginx(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    service, server = proxied
    with (
        fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy,
        slow_connections(proxy.port, SLOW_EACH) as attackers,
        ThreadPoolExecutor(4) as pool,
    ):
        time.sleep(0.3)  # the attack is in place: nginx has accepted and read every byte
        tokens = list(pool.map(lambda _: token_request(proxy.port, service), range(24)))
        health = list(pool.map(lambda _: get(proxy.port, "/healthz"), range(8)))
        assert all(still_open(sock) for sock in attackers), "nginx gave up on the attack early"
    assert [status for status, _ in tokens + health] == [200] * 32
    slowest = max(took for _, took in tokens + health)
    assert slowest < REQUEST_BOUND, f"a request took {slowest:.2f} s during the attack"


@needs_nginx
@pytest.mark.fault
def test_header_and_body_timeouts_close_slow_connections_before_the_service_sees_them(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """With 1 s timeouts: a silent client, a slowloris and a stalled body are each cut off."""
    _, server = proxied
    before = len(access_lines(server))
    timeouts = {"client_header_timeout": "1s", "client_body_timeout": "1s"}
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES, timeouts) as proxy:
        silent = socket.create_connection(("127.0.0.1", proxy.port))
        silent.sendall(b"P")
        body = socket.create_connection(("127.0.0.1", proxy.port))
        body.sendall((HEAD + "Content-Length: 100\r\n\r\n{").encode())
        with silent, body:
            took, sent = closed_after(silent, 5)
            assert 0.8 < took < 2.5 and sent == b""
            took, sent = closed_after(body, 5)
            assert took < 2.5 and sent == b""
        # The header timeout bounds the whole head, not the gap between bytes.
        with socket.create_connection(("127.0.0.1", proxy.port)) as loris:
            loris.settimeout(5)
            started = time.monotonic()
            for byte in HEAD.encode() + b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":
                try:
                    loris.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.05)
            took, sent = closed_after(loris, 5)
            assert time.monotonic() - started < 2.5 and sent == b""
    assert access_lines(server)[before:] == [], "a cut-off request reached the service"


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send `request` as is; nginx's answer (head and Content-Length bytes of body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        # Not until close: after a 413 nginx lingers, waiting for the body it refused.
        while not complete(answer):
            chunk = sock.recv(65536)
            assert chunk, f"nginx closed the connection after {answer!r}"
            answer += chunk
        return answer


def complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(found and length and len(body) >= int(length.group(1)))


def parse(answer: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_problem(answer: bytes, status: int) -> None:
    assert MARKER.encode() not in answer, "nginx echoed the request's input"
    code, headers, body = parse(answer)
    assert code == status
    assert headers["content-type"] == "application/problem+json"
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == "frame-ancestors 'none'"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    assert body["status"] == status and body["request_id"] == headers["x-request-id"]
    assert str(body["type"]).startswith("https://identity-service.dev/problems/")
    assert set(body) == {"type", "title", "status", "detail", "request_id"}


HOSTILE = f"X-Request-ID: <{MARKER}>\r\nX-Note: {MARKER}\r\n"
REFUSED = {
    "bad request line": (f"GET /{MARKER} \x00HTTP/1.1\r\n\r\n", 400),
    "URI too long": (f"GET /v1/{MARKER}{'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header too large": (
        f"GET /v1/x HTTP/1.1\r\nHost: x\r\nX-Big: {MARKER}{'b' * 17_000}\r\n\r\n",
        431,
    ),
    "body over max_body_bytes": (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{HOSTILE}"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n",
        413,
    ),
    "chunked body over max_body_bytes": (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{HOSTILE}Transfer-Encoding: chunked\r\n\r\n"
        f"{MAX_BODY_BYTES + 1:x}\r\n{'a' * (MAX_BODY_BYTES + 1)}\r\n0\r\n\r\n",
        413,
    ),
    # Two framings at once is how requests are smuggled past a proxy: refused outright.
    "Content-Length and Transfer-Encoding": (
        f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{HOSTILE}Content-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "outside the public routes": (
        f"GET /metrics?{MARKER} HTTP/1.1\r\nHost: x\r\n{HOSTILE}\r\n",
        404,
    ),
    "bad host": (f"GET /v1/x HTTP/1.1\r\nHost: {MARKER}/\\\r\n\r\n", 400),
}


@needs_nginx
@pytest.mark.fault
@pytest.mark.parametrize("case", REFUSED)
def test_nginx_refusals_are_problem_json_that_echo_nothing(
    case: str, proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    _, server = proxied
    request, status = REFUSED[case]
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy:
        assert_problem(raw_exchange(proxy.port, request.encode()), status)


@needs_nginx
@pytest.mark.fault
def test_upstream_down_or_hung_is_problem_json(tmp_path: Path) -> None:
    """502 when nothing listens upstream, 504 when it accepts and never answers."""
    request = f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: x\r\n{HOSTILE}Content-Length: 2\r\n\r\n{{}}"
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel accepts; nobody ever reads or answers
        with fronting(
            tmp_path / "hung", hung.getsockname()[1], MAX_BODY_BYTES, {"proxy_read_timeout": "1s"}
        ) as proxy:
            assert_problem(raw_exchange(proxy.port, request.encode()), 504)
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        with fronting(tmp_path / "down", reserved.getsockname()[1], MAX_BODY_BYTES) as proxy:
            assert_problem(raw_exchange(proxy.port, request.encode()), 502)


@needs_nginx
@pytest.mark.fault
def test_forwarded_headers_are_the_proxys_not_the_clients(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """With proxy_hops = 1 the service sees nginx's view of the client, never a spoofed one."""
    service, server = proxied
    traced = "3f1c2a9e-5b7d-4c1e-9a2b-7d6e5f4a3b2c"
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy:
        status, _ = token_request(
            proxy.port, service, **{"X-Forwarded-For": "203.0.113.9", "X-Request-ID": traced}
        )
    assert status == 200
    line = server.wait_for_lines(rf'"message":"request".*"request_id":"{traced}"')[0]
    assert json.loads(line)["client"] == "127.0.0.1"


class Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in upstream that keeps the headers nginx sent it (the service logs none)."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({name.lower(): value for name, value in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@needs_nginx
@pytest.mark.fault
def test_no_forwarding_header_of_the_clients_reaches_the_service(tmp_path: Path) -> None:
    """Only nginx's own forwarding headers go upstream: a client's X-Forwarded-Port,
    X-Forwarded-Prefix or Forwarded would be trusted by any ProxyFix or framework option
    that reads them, so they are removed, not passed through."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    spoofed = {
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Prefix": "/evil",
        "Forwarded": "for=203.0.113.9;proto=https;host=evil.example",
    }
    try:
        with fronting(tmp_path / "nginx", upstream.server_address[1], MAX_BODY_BYTES) as proxy:
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            connection.request("GET", "/healthz", headers=spoofed)
            assert connection.getresponse().status == 204
            connection.close()
    finally:
        upstream.shutdown()
        upstream.server_close()
    seen = Recorder.seen[-1]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == seen["host"] == f"127.0.0.1:{proxy.port}"
    assert not {"x-forwarded-port", "x-forwarded-prefix", "forwarded"} & seen.keys(), seen


@needs_nginx
@pytest.mark.fault
def test_a_request_id_the_service_would_refuse_is_replaced_by_nginx(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """A credential-shaped X-Request-ID never passes nginx: it sends its own $request_id."""
    service, server = proxied
    jwt_shaped = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLXNoYXBlZA"
    served = r'"message":"request".*"status":200'
    before = len([x for x in server.lines if re.search(served, x)])
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy:
        status, _ = token_request(proxy.port, service, **{"X-Request-ID": jwt_shaped})
    assert status == 200
    line = server.wait_for_lines(served, count=before + 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{32}", json.loads(line)["request_id"])
    assert jwt_shaped not in server.log()


def test_nginx_accepts_a_callers_request_id_by_the_services_own_rule() -> None:
    """The shipped map's regex is the service's REQUEST_ID_PATTERN, anchored: one rule."""
    conf = SHIPPED.read_text()
    found = re.search(r'map \$http_x_request_id \$identity_request_id \{\s*"~([^"]+)"', conf)
    assert found is not None
    assert found.group(1) == f"^(?:{REQUEST_ID_PATTERN})$"


@needs_nginx
@pytest.mark.fault
def test_a_chunked_body_reaches_the_service_whole(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """A chunked body under the cap goes through nginx to the service, which mints."""
    service, server = proxied
    body = b'{"workspace": "main"}'
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            headers = {**service.bearer_headers(), "Content-Type": "application/json"}
            # An iterable body and no Content-Length: http.client sends it chunked.
            connection.request("POST", TOKEN_PATH, body=iter([body[:7], body[7:]]), headers=headers)
            response = connection.getresponse()
            answer = json.loads(response.read())
        finally:
            connection.close()
    assert response.status == 200, answer
    assert answer["token"].count(".") == 2
    rid = response.getheader("X-Request-ID")
    line = server.wait_for_lines(rf'"message":"request".*"request_id":"{rid}"')[0]
    assert json.loads(line)["status"] == 200


def cookie_request(port: int, service: ServiceFixture, origin: str, **headers: str) -> int:
    """A session-cookie token request from `origin`, through nginx on `port`: its status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    cookie = service.session_cookie({"user_id": "user-42"})
    try:
        connection.request(
            "POST",
            TOKEN_PATH,
            body=b"",
            headers={"Cookie": f"session={cookie}", "Origin": origin, **headers},
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@needs_nginx
@pytest.mark.fault
def test_the_service_sees_the_origin_the_browser_used(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """The cookie origin check compares with nginx's scheme and the Host the browser sent.

    A page served by the proxy itself (on a non-default port here) is same-origin;
    a client's own X-Forwarded-Host or -Proto cannot make another origin pass.
    """
    service, server = proxied
    with fronting(tmp_path / "nginx", server.port, MAX_BODY_BYTES) as proxy:
        own = f"http://127.0.0.1:{proxy.port}"
        assert cookie_request(proxy.port, service, own) == 200
        spoofed = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
        assert cookie_request(proxy.port, service, "https://evil.example", **spoofed) == 403
        assert cookie_request(proxy.port, service, own, **spoofed) == 200


OPERATIONS = SHIPPED.parents[2] / "docs" / "operations.md"
_TRY_BLOCK = re.compile(r"<!-- try: nginx -->\n```sh\n(.*?)^```", re.M | re.S)


@needs_nginx
@pytest.mark.fault
def test_the_documented_local_trial_runs_as_copied(
    proxied: tuple[ServiceFixture, Server], tmp_path: Path
) -> None:
    """operations.md's try-it block, run by bash with only the two ports changed.

    The block runs in a folder laid out as the checkout, whose shipped file is
    rendered for free ports (the documented 8080 and 8000 may be taken here); its
    own nginx.conf, nginx command line and `kill` are the page's, as written.
    """
    _, server = proxied
    found = _TRY_BLOCK.search(OPERATIONS.read_text("utf-8"))
    assert found, "operations.md: no <!-- try: nginx --> block"
    port = free_port()
    checkout = tmp_path / "checkout"
    (checkout / "deploy" / "nginx").mkdir(parents=True)
    (checkout / "deploy" / "nginx" / SHIPPED.name).write_text(render(port, server.port, 4096))
    script = found.group(1).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=checkout, env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"status": "ok"}, done.stdout + done.stderr
    # The block's `kill` stops nginx: its pid file goes when the master exits.
    (folder,) = temp.iterdir()  # the block's $TRY
    deadline = time.monotonic() + 5
    while (folder / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (folder / "nginx.pid").exists(), "nginx still runs after the documented kill"
