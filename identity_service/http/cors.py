"""CORS for the API (/v1/...): exact-origin grants, as a small WSGI layer.

The policy is `service.cors_origins`: an origin gets CORS headers only when it
is exactly one of them (browsers send origins in lowercase without a default
port, and the loader refuses any other spelling), or any origin with "*".
Credentials (cookies) only ever for explicitly listed origins: configuration
refuses "*" when cookie authentication is on. A request without Origin gets
no CORS headers at all, so the allowlist is never listed to anyone who asks.

The headers, their order and their values are those flask-cors gave this
service's options before (`tests/test_token_route.py` compares them with
flask-cors's own in every configuration), without a framework in the way:
the token endpoint is not a Flask view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from identity_service.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# Every path of the versioned API; the front end's files answer "*" on their own.
API_PREFIX = "/v1/"
METHODS = frozenset({"GET", "POST", "OPTIONS"})
ALLOW_HEADERS = frozenset({"authorization", "content-type", "x-request-id"})
EXPOSE_HEADERS = ("X-Request-ID", "Retry-After")
MAX_AGE = 600


@dataclass(frozen=True)
class CorsPolicy:
    """Which origins may read the API's responses, and whether with credentials."""

    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy | None:
        """The policy of `service.cors_origins`; None when empty (same-origin deployments)."""
        origins = settings.service.cors_origins
        if not origins:
            return None
        return cls(origins=frozenset(o for o in origins if o != "*"), any_origin="*" in origins)

    def headers(self, environ: WSGIEnvironment) -> list[tuple[str, str]]:
        """The CORS headers of the response to this request (none for an origin not granted)."""
        origin = environ.get("HTTP_ORIGIN")
        if not origin or not (self.any_origin or origin in self.origins):
            return []
        # The origin itself, never "*": with "*" configured the answer still
        # varies by origin (hence Vary), and stays cacheable per origin.
        headers = [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Expose-Headers", ", ".join(sorted(EXPOSE_HEADERS))),
        ]
        if not self.any_origin:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK") == "true":
            # Private Network Access: this service is not one a public page may reach.
            headers.append(("Access-Control-Allow-Private-Network", "false"))
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            headers.extend(_preflight(environ))
        headers.append(("Vary", "Origin"))
        return headers


def _preflight(environ: WSGIEnvironment) -> list[tuple[str, str]]:
    """A preflight's grant: only for a method the API has (else no grant beyond the origin)."""
    method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "").upper()
    if method not in METHODS:
        return []
    headers = []
    requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
    allowed = sorted(
        h for h in (h.strip() for h in requested.split(",")) if h.lower() in ALLOW_HEADERS
    )
    if allowed:
        headers.append(("Access-Control-Allow-Headers", ", ".join(allowed)))
    headers.append(("Access-Control-Max-Age", str(MAX_AGE)))
    headers.append(("Access-Control-Allow-Methods", ", ".join(sorted(METHODS))))
    return headers


class Cors:
    """WSGI middleware: the policy's headers on every response under /v1/, errors included."""

    def __init__(self, app: WSGIApplication, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_ORIGIN" not in environ or not environ.get("PATH_INFO", "").startswith(API_PREFIX):
            return self.app(environ, start_response)

        def with_cors(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # A response with a grant of its own keeps it alone (the Messenger's
            # script and config answer "*" to every origin): two values of
            # Access-Control-Allow-Origin make browsers refuse both.
            if not any(name.lower() == "access-control-allow-origin" for name, _ in headers):
                headers.extend(self.policy.headers(environ))
            return start_response(status, headers, exc_info)

        return self.app(environ, with_cors)
