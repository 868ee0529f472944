"""The Jinja helper: `render_messenger_tag(user, ...)` in a product's own templates.

It mints through the service's issuer and writes the embed; no Flask import,
only the two things a Flask (or any Jinja-hosting) app has: `extensions`
and `jinja_env`. `IdentityService.init_app` registers it on every app it sets up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from markupsafe import Markup

from identity_service.auth import Identity
from identity_service.frontend.embed import OnFailure, render_messenger_tag
from identity_service.frontend.public_config import MessengerConfig
from identity_service.http.paths import SCRIPT_PATH, TOKEN_PATH
from identity_service.http.state import HasExtensions, service_state
from identity_service.intercom import WIDGET_URL
from identity_service.settings import Settings
from identity_service.tokens import MintedToken


class Issuer(Protocol):
    """Mints a Messenger token for a verified identity (the lead's `TokenIssuer`)."""

    def issue(self, identity: Identity, workspace: str | None, now: int) -> MintedToken:
        """Mint a token for `identity` in the named (or default) workspace."""
        ...


class _JinjaApp(HasExtensions, Protocol):
    @property
    def jinja_env(self) -> Any: ...


def register_jinja(
    app: _JinjaApp,
    issuer: Issuer | None = None,
    *,
    service_settings: Settings | None = None,
    token_url: str = TOKEN_PATH,
    script_url: str = SCRIPT_PATH,
    widget_url: str = WIDGET_URL,
    clock: Callable[[], float] = time.time,
) -> None:
    """Make `render_messenger_tag(user, nonce=..., workspace=..., settings=...)` a Jinja global.

    It mints a token for `user` (an `Identity` the host has already verified)
    through `issuer`, or through the app's IdentityService state (`service_state`)
    at render time when none is given, so registration order does not matter.
    """

    def render(
        user: Identity,
        nonce: str | None = None,
        workspace: str | None = None,
        settings: Mapping[str, Any] | None = None,
        on_failure: OnFailure = "none",
    ) -> Markup:
        if not isinstance(user, Identity):
            # A plain id or a dict would be signed as-is; only a verified identity may be.
            raise TypeError("render_messenger_tag needs an Identity from an authenticator")
        active: Issuer = issuer or service_state(app).issuer
        known: Settings = service_settings or service_state(app).settings
        chosen = known.workspace(workspace)
        minted = active.issue(user, chosen.key, int(clock()))
        config = MessengerConfig.for_workspace(chosen, token_url, widget_url)
        return render_messenger_tag(
            minted,
            config,
            nonce=nonce,
            script_url=script_url,
            settings=settings,
            on_failure=on_failure,
        )

    app.jinja_env.globals["render_messenger_tag"] = render
