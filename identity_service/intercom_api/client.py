"""A small client for Intercom's Data Attributes API: bounded in time, clear when it fails.

Built on httpcore (httpx's own HTTP engine) rather than Intercom's generated SDK
(python-intercom): the SDK sleeps up to 60 s per retry with `time.sleep` (no
injectable clock, no overall bound), reads its token from $INTERCOM_API_KEY by
default, parses answers without validating them, and brings pydantic and ~40
API resources for three calls. Nor on httpx itself: its timeouts bound each
socket operation, not a request (encode/httpx#1450), and its transport takes no
network backend. httpcore's `NetworkBackend` interface lets every connect, read
and write here get the smaller of its own timeout and what is left of the
request's deadline, so a request ends by `timeout` seconds even against a
server that trickles bytes. Name resolution is the exception (getaddrinfo
cannot be interrupted; the system resolver's timeout bounds it).

Retries are bounded: a 429 waits until Intercom's X-RateLimit-Reset when that
is at most `max_retry_wait` away; a 5xx or a timeout backs off (0.5 s,
doubling) and is retried only for requests that are safe to repeat (GET, and
the PUT that sets messenger_writable). A POST that timed out may have been
applied, so it is reported as unknown, never retried blindly.

The token goes only into the Authorization header. Error messages quote
Intercom's own error code and message (scrubbed of the token all the same),
never a request header.
"""

from __future__ import annotations

import json
import re
import time
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore

from identity_service.errors import (
    IntercomApiError,
    IntercomOutcomeUnknownError,
    IntercomUnreachableError,
)
from identity_service.intercom import REST_API_VERSION
from identity_service.intercom_api.models import DataAttribute, parse_list
from identity_service.settings import IntercomApiSettings

MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # a workspace's attribute list is a few hundred KiB
# What a token may hold: printable ASCII, no space (a bearer token is a header's token68).
_TOKEN_CHARS = re.compile(rb"[\x21-\x7e]+")
FIRST_BACKOFF = 0.5  # seconds before the first retry after a 5xx or a timeout
USER_AGENT = "identity-service (intercom check/sync)"


@dataclass(frozen=True)
class Clock:
    """Time, injected: `monotonic` for deadlines, `wall` for X-RateLimit-Reset, `sleep`."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class IntercomClient:
    """GET, POST and PUT on /data_attributes for one workspace's token."""

    def __init__(self, settings: IntercomApiSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.backend = _DeadlineBackend(self.clock.monotonic)
        self.pool = httpcore.ConnectionPool(
            network_backend=self.backend, max_connections=1, retries=0
        )

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> IntercomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the three calls ----------------------------------------------------------

    def list_contact_attributes(self) -> list[DataAttribute]:
        """Every contact data attribute, archived ones included (the API does not paginate)."""
        document = self._call("GET", "/data_attributes?model=contact&include_archived=true")
        return parse_list(document)

    def create_contact_attribute(
        self, name: str, data_type: str, description: str
    ) -> DataAttribute:
        """POST /data_attributes with messenger_writable false; never retried after sending."""
        body = {
            "name": name,
            "model": "contact",
            "data_type": data_type,
            "description": description,
            "messenger_writable": False,
        }
        return DataAttribute.parse(self._call("POST", "/data_attributes", body, repeatable=False))

    def protect(self, attribute_id: str) -> DataAttribute:
        """PUT /data_attributes/{id} {"messenger_writable": false}: safe to repeat."""
        if not attribute_id.isdigit():  # Intercom's ids are numbers; never let one be a path
            raise IntercomApiError(f"Intercom sent the attribute id {attribute_id!r}, not a number")
        path = f"/data_attributes/{attribute_id}"
        return DataAttribute.parse(self._call("PUT", path, {"messenger_writable": False}))

    # -- one request, with its retries ----------------------------------------------

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, repeatable: bool = True
    ) -> Any:
        settings = self.settings
        attempt = 0
        while True:
            try:
                status, headers, payload = self._send(method, path, body)
            except httpcore.TimeoutException:
                problem: str = f"no answer within {settings.timeout:g} s"
                failure: type[IntercomApiError] = IntercomUnreachableError
            except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
                problem = f"cannot reach it ({type(exc).__name__}: {self._scrub(str(exc))})"
                failure = IntercomUnreachableError
            else:
                if 200 <= status < 300:
                    return self._json(payload, method, path)
                if status == 429:
                    wait = self._rate_limit_wait(headers)
                    if attempt < settings.retries and wait <= settings.max_retry_wait:
                        attempt += 1
                        self.clock.sleep(wait)
                        continue
                    raise IntercomApiError(self._rate_limited(headers), status, "rate_limited")
                if status < 500:
                    raise self._refusal(status, payload, method, path)
                problem = f"it answered {status} {self._error_text(payload)}".rstrip()
                failure = IntercomApiError
            if not repeatable and method != "GET":
                raise IntercomOutcomeUnknownError(
                    f"{method} {path} to Intercom ({settings.rest_base}): {problem}. It may "
                    "have been applied: run `identity-service intercom check` to see"
                )
            if attempt >= settings.retries:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise failure(f"Intercom ({settings.rest_base}): {problem} ({tries})")
            self.clock.sleep(min(FIRST_BACKOFF * 2**attempt, settings.max_retry_wait))
            attempt += 1

    def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> tuple[int, Mapping[str, str], bytes]:
        settings = self.settings
        headers = [
            ("Authorization", self._authorization()),
            ("Accept", "application/json"),
            ("Intercom-Version", REST_API_VERSION),
            ("User-Agent", USER_AGENT),
        ]
        content = b""
        if body is not None:
            content = json.dumps(body).encode()
            headers.append(("Content-Type", "application/json"))
        self.backend.deadline = self.clock.monotonic() + settings.timeout
        connect = min(settings.connect_timeout, settings.timeout)
        timeouts = {"connect": connect, "read": settings.timeout, "write": settings.timeout}
        with self.pool.stream(
            method,
            settings.rest_base + path,
            headers=headers,
            content=content,
            extensions={"timeout": {**timeouts, "pool": settings.timeout}},
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in typing.cast(Iterable[bytes], response.stream):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise httpcore.ReadError(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            answer = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
            return response.status, answer, b"".join(chunks)

    def _authorization(self) -> str:
        token = self.settings.token.get()
        # Checked before any request: the HTTP library refuses such a header with an
        # error that quotes its value escaped (which the scrubber cannot recognise),
        # or, for non-ASCII, with a TypeError. A token is printable ASCII.
        if not _TOKEN_CHARS.fullmatch(token):
            raise IntercomApiError(
                f"the access token from {self.settings.token.describe()} cannot be sent in a "
                "header: it holds a space, a line break, a control or a non-ASCII character "
                "(a newline kept from a file or a secret?). Write the token alone, on one line"
            )
        return f"Bearer {token.decode()}"

    # -- reading answers ------------------------------------------------------------

    def _json(self, payload: bytes, method: str, path: str) -> Any:
        try:
            return json.loads(payload)
        except ValueError:
            raise IntercomApiError(
                f"Intercom ({self.settings.rest_base}) answered {method} {path} with something "
                "that is not JSON: is rest_base Intercom's REST host?"
            ) from None

    def _rate_limit_wait(self, headers: Mapping[str, str]) -> float:
        reset = headers.get("x-ratelimit-reset", "")
        if reset.isdigit():
            # A Unix time in seconds; +1 because the window resets during that second.
            return max(0.0, int(reset) + 1 - self.clock.wall())
        return FIRST_BACKOFF

    def _rate_limited(self, headers: Mapping[str, str]) -> str:
        reset = headers.get("x-ratelimit-reset", "")
        when = ""
        if reset.isdigit():
            at = datetime.fromtimestamp(int(reset), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            when = f" until {at}"
        limit = headers.get("x-ratelimit-limit")
        quota = f" ({limit} requests per window)" if limit and limit.isdigit() else ""
        return (
            f"Intercom ({self.settings.rest_base}) is rate-limiting this app{quota}{when}, "
            f"longer than max_retry_wait ({self.settings.max_retry_wait:g} s) or "
            f"{self.settings.retries} retries allow; run the command again then (other "
            "integrations using the same app share its limit)"
        )

    def _refusal(self, status: int, payload: bytes, method: str, path: str) -> IntercomApiError:
        code, _ = self._error(payload)
        quoted = self._error_text(payload)
        where = f"Intercom ({self.settings.rest_base})"
        token = self.settings.token.describe()
        if status == 401:
            detail = (
                f"{where} refused the access token from {token} (401 {quoted}): it is "
                "invalid or revoked, or its app lacks the permission to read and write data "
                "attributes. Copy the app's access token again from Intercom's Developer Hub "
                "(your app > Authentication) and check the app's permissions there"
            )
        elif status == 403:
            detail = (
                f"{where} does not let this token {method} {path} (403 {quoted}): check the "
                "app's permissions (Developer Hub > your app > Authentication), the workspace's "
                "plan and its IP allowlist"
            )
        elif status == 404:
            detail = (
                f"{where} has no {path.partition('?')[0]} (404 {quoted}): check rest_base (the "
                "region's REST host, not the Messenger's api-iam host) and the workspace"
            )
        else:
            detail = f"{where} refused {method} {path} ({status} {quoted})"
        return IntercomApiError(detail, status, code)

    def _error(self, payload: bytes) -> tuple[str | None, str]:
        """Intercom's {"type": "error.list", "errors": [{"code", "message"}]}, first error."""
        try:
            document = json.loads(payload)
        except ValueError:
            return None, ""
        errors = document.get("errors") if isinstance(document, dict) else None
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return None, ""
        code = errors[0].get("code")
        message = errors[0].get("message")
        return (
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else "",
        )

    def _error_text(self, payload: bytes) -> str:
        code, message = self._error(payload)
        if code is None:
            return ""
        text = f"{code}: {message}" if message else code
        # Scrubbed whole, then cut: a cut first could split an echoed token and leave its start.
        return self._scrub(text)[:200]

    def _scrub(self, text: str) -> str:
        # Intercom does not echo tokens; a proxy or a stand-in might. Never print one.
        token = self.settings.token.current()
        return text.replace(token.decode(), "[token]") if token else text


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, with every operation capped by the current request's deadline."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self.inner = httpcore.SyncBackend()
        self.monotonic = monotonic
        self.deadline = float("inf")

    def remaining(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - self.monotonic()
        if left <= 0:
            raise error("the request's deadline has passed")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(
            host,
            port,
            self.remaining(timeout, httpcore.ConnectTimeout),
            local_address,
            socket_options,
        )
        return _DeadlineStream(stream, self)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for Intercom")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, backend: _DeadlineBackend) -> None:
        self.inner = inner
        self.backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.backend.remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.backend.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        limit = self.backend.remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self.inner.start_tls(ssl_context, server_hostname, limit), self.backend
        )

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)
