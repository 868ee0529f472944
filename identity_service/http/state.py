"""What an app's IdentityService holds, under its one `app.extensions` key, and the accessor.

Free of Flask: the Jinja helper reads it from any app object that has
`extensions` (Flask's own extension pattern keeps per-app state there, never
on the extension object, so one extension object can serve several apps).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from identity_service.issuer import TokenIssuer
from identity_service.runtime import Runtime
from identity_service.settings import Settings

# The app's one entry in `app.extensions`, as Flask's extension guide names it: the
# extension's name.
EXTENSION = "identity_service"


class HasExtensions(Protocol):
    """An app that keeps extension state (a Flask app, or `current_app`)."""

    extensions: dict[str, Any]


@dataclass(frozen=True)
class ServiceState:
    """Everything one app's IdentityService holds."""

    runtime: Runtime
    # The headers every response of the service gets (security headers, HSTS when
    # on, the default CSP), for answers the server writes itself.
    response_headers: Sequence[tuple[str, str]]
    # Set when the app's server starts to drain (SIGTERM): readiness is over.
    draining: threading.Event = field(default_factory=threading.Event)

    @property
    def settings(self) -> Settings:
        """The settings the app was built on."""
        return self.runtime.settings

    @property
    def issuer(self) -> TokenIssuer:
        """Mints Messenger tokens with the app's settings and profile sources."""
        return self.runtime.issuer


def service_state(app: HasExtensions) -> ServiceState:
    """The IdentityService state of `app`; a RuntimeError naming the fix if it has none."""
    state = app.extensions.get(EXTENSION)
    if not isinstance(state, ServiceState):
        raise RuntimeError(
            "this Flask app has no IdentityService: call IdentityService(app, settings), "
            "or init_app(app) on one, before using it"
        )
    return state
