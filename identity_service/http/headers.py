"""The headers every response of the service gets: the security headers, HSTS when on, a CSP.

A WSGI layer of its own (not a job of the request observer): it sees every
response, error pages, CORS preflights and the token endpoint included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from identity_service.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HSTS = "max-age=63072000; includeSubDomains"
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
# Views that need a policy of their own (the snippet's pages) set it; others get this.
DEFAULT_CSP = ("Content-Security-Policy", "frame-ancestors 'none'")


def forced_headers(settings: Settings) -> list[tuple[str, str]]:
    """The headers that replace any a view set: the security headers, and HSTS when on."""
    return [
        *SECURITY_HEADERS,
        *([("Strict-Transport-Security", HSTS)] if settings.service.hsts else []),
    ]


class ResponseHeaders:
    """WSGI middleware: `forced` headers replace a view's own, `defaults` fill in absent ones."""

    def __init__(
        self,
        app: WSGIApplication,
        forced: Sequence[tuple[str, str]],
        defaults: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.forced = list(forced)
        self.forced_names = frozenset(name.lower() for name, _ in forced)
        self.defaults = [(name.lower(), (name, value)) for name, value in defaults]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            if present & self.forced_names:
                headers[:] = [h for h in headers if h[0].lower() not in self.forced_names]
            headers.extend(self.forced)
            headers.extend(header for name, header in self.defaults if name not in present)
            return start_response(status, headers, exc_info)

        return self.app(environ, with_headers)
