"""One bounded HTTP GET of the IdP's JWKS: connect, read and total deadlines, a size cap.

A socket timeout bounds each read, not the download: a server that sends a
byte just before every timeout (a "trickle") could hold a plain urllib fetch,
and the thread running it, for as long as it likes. Here every socket
operation gets the smaller of its own timeout and what is left of the total
deadline, so the whole fetch (TLS handshake, status line, headers, body) ends
by `total` seconds, whatever the server does. Name resolution is the
exception: `getaddrinfo` cannot be interrupted, and is bounded by the
system resolver's own timeout (resolv.conf). Through an `https_proxy`, the
proxy's answer to CONNECT is read before the deadline applies, with the
connect timeout on each read.

Redirects are not followed: the JWKS URL is configured exactly, and a
redirect must not move trust to another URL.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any

MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """How long one fetch may take (to connect, between two reads, in all) and how big it may be."""

    connect: float
    read: float
    total: float
    max_bytes: int = MAX_JWKS_BYTES


Fetch = Callable[[str, FetchLimits], bytes]


def fetch_url(url: str, limits: FetchLimits) -> bytes:
    """GET `url` (no redirects) within `limits`; OSError, TimeoutError or ValueError otherwise."""
    deadline = time.monotonic() + limits.total
    opener = urllib.request.build_opener(
        _NoRedirects,
        _DeadlineHTTPHandler(limits, deadline),
        _DeadlineHTTPSHandler(limits, deadline),
    )
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked by the key source)
        url, headers={"Accept": "application/jwk-set+json, application/json"}
    )
    with opener.open(request, timeout=min(limits.connect, limits.total)) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
            raise ValueError(f"response larger than {limits.max_bytes} bytes")
        body: bytes = response.read(limits.max_bytes + 1)
    if len(body) > limits.max_bytes:
        raise ValueError(f"response larger than {limits.max_bytes} bytes")
    return body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The JWKS URL is configured exactly; a redirect must not move trust to another URL."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None  # urllib then raises HTTPError for the 3xx


class _DeadlineSocket:
    """A connected socket whose every read and write ends by one shared deadline.

    http.client only needs `sendall`, `makefile` and `close` of the socket it
    reads a response from; each read through `makefile` re-arms the timeout.
    As with `socket.makefile`, the socket really closes once it and the files
    made from it are all closed (urllib closes the connection's reference
    before the response is read).
    """

    def __init__(self, sock: socket.socket, read_timeout: float, deadline: float) -> None:
        self._sock = sock
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._references = 1

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the JWKS fetch exceeded its total deadline")
        self._sock.settimeout(min(self._read_timeout, left))

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        # http.client asks for "rb" only: it reads responses through the file.
        self._references += 1
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        self._references -= 1
        if self._references == 0:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    """The raw stream http.client reads the response from, one bounded recv at a time."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.close()
        super().close()


def _bounded(sock: Any, limits: FetchLimits, deadline: float) -> _DeadlineSocket:
    if time.monotonic() >= deadline:  # connecting (and a TLS handshake) used it all
        sock.close()
        raise TimeoutError("the JWKS fetch exceeded its total deadline")
    return _DeadlineSocket(sock, limits.read, deadline)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    limits: FetchLimits
    deadline: float

    def connect(self) -> None:
        super().connect()  # TCP connect, bounded by the connect timeout
        self.sock = _bounded(self.sock, self.limits, self.deadline)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    limits: FetchLimits
    deadline: float

    def connect(self) -> None:
        super().connect()  # TCP connect and TLS handshake, each bounded by the connect timeout
        self.sock = _bounded(self.sock, self.limits, self.deadline)


def _connection_class(
    base: type[http.client.HTTPConnection], limits: FetchLimits, deadline: float
) -> type[http.client.HTTPConnection]:
    # urllib builds the connection itself (proxies and tunnels included), so
    # the limits travel on a per-fetch subclass rather than as arguments.
    return type(base.__name__, (base,), {"limits": limits, "deadline": deadline})


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, limits: FetchLimits, deadline: float) -> None:
        super().__init__()
        self._connection = _connection_class(_DeadlineHTTPConnection, limits, deadline)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, limits: FetchLimits, deadline: float) -> None:
        super().__init__(context=_TLS)
        self._connection = _connection_class(_DeadlineHTTPSConnection, limits, deadline)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=_TLS)


# Certificate and host name checked against the system's CA store, as urllib does by default.
_TLS = ssl.create_default_context()
