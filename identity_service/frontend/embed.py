"""The embed, generated: the `startMessenger(...)` options and the two script tags.

No Flask here (only Jinja's `markupsafe` for the return type of the tag
helper), so the CLI, the Jinja helper and any product's own templates share
one implementation. Everything written into a page is public: the
workspace's app id, region, the *names* of protected keys and the Messenger
JWT, never a user id, an email or an attribute in clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from markupsafe import Markup

from identity_service.errors import UnsafeSnippetError
from identity_service.frontend.escaping import (
    check_nonce,
    check_script_url,
    html_attribute,
    inline_json,
)
from identity_service.frontend.public_config import MessengerConfig
from identity_service.frontend.script import messenger_integrity
from identity_service.http.paths import SCRIPT_PATH
from identity_service.intercom import OWNED_KEYS
from identity_service.tokens import MintedToken

OnFailure = Literal["none", "anonymous"]
ON_FAILURE: tuple[OnFailure, ...] = ("none", "anonymous")


def messenger_options(
    config: MessengerConfig,
    *,
    token: MintedToken | None = None,
    settings: Mapping[str, Any] | None = None,
    on_failure: OnFailure = "none",
) -> dict[str, Any]:
    """The argument of `startMessenger(...)` for this workspace.

    `settings` are the host's own, non-protected Messenger settings (alignment,
    hide_default_launcher, ...). A protected or owned key there is a bug in the
    host's code, so it is refused here, loudly, rather than stripped in the browser.
    """
    if on_failure not in ON_FAILURE:
        raise UnsafeSnippetError(f"on_failure must be one of {ON_FAILURE}, got {on_failure!r}")
    host = dict(settings or {})
    refused = sorted(k for k in host if k in config.protected_keys or k in OWNED_KEYS)
    if refused:
        raise UnsafeSnippetError(
            f"Messenger settings must not set {', '.join(refused)}: identity and signed "
            "attributes come only from the token, app_id/api_base from the workspace"
        )
    options: dict[str, Any] = {
        "tokenUrl": config.token_url,
        "workspace": config.workspace,
        "appId": config.app_id,
        "apiBase": config.api_base,
        "protectedKeys": list(config.protected_keys),
        "widgetUrl": config.widget_url,
        "onFailure": on_failure,
    }
    if host:
        options["settings"] = host
    if token is not None:
        if token.app_id != config.app_id:
            raise UnsafeSnippetError(
                f"token was minted for app {token.app_id!r}, not {config.app_id!r}"
            )
        # Only what booting needs: user_id stays inside the signed token.
        options["token"] = {
            "token": token.token,
            "expires_at": token.expires_at,
            "app_id": token.app_id,
            "api_base": token.api_base,
            "attributes": list(token.attributes),
        }
    return options


def inline_script(options: Mapping[str, Any]) -> str:
    """The text of the inline `<script>` that starts the Messenger with `options`."""
    return f"IdentityServiceMessenger.startMessenger({inline_json(options)});"


def _nonce_attr(nonce: str | None) -> str:
    return f' nonce="{check_nonce(nonce)}"' if nonce is not None else ""


def loader_tag(
    script_url: str = SCRIPT_PATH, *, integrity: str | None = None, nonce: str | None = None
) -> str:
    """The `<script src>` tag that loads messenger.js, pinned by Subresource Integrity.

    A plain synchronous script, so the global exists when the inline script
    after it runs; `crossorigin="anonymous"` is what lets the browser check
    `integrity` on a script from another origin.
    """
    integrity = integrity or messenger_integrity()
    return (
        f'<script src="{html_attribute(check_script_url(script_url))}" '
        f'integrity="{html_attribute(integrity)}" '
        f'crossorigin="anonymous"{_nonce_attr(nonce)}></script>'
    )


def embed_html(
    options: Mapping[str, Any],
    *,
    script_url: str = SCRIPT_PATH,
    integrity: str | None = None,
    nonce: str | None = None,
) -> str:
    """Two script tags: messenger.js (pinned by SRI) and the inline call that starts it."""
    loader = loader_tag(script_url, integrity=integrity, nonce=nonce)
    return f"{loader}\n<script{_nonce_attr(nonce)}>{inline_script(options)}</script>"


def render_messenger_tag(
    token: MintedToken,
    config: MessengerConfig,
    *,
    nonce: str | None = None,
    script_url: str = SCRIPT_PATH,
    settings: Mapping[str, Any] | None = None,
    on_failure: OnFailure = "none",
) -> Markup:
    """The embed for a server-rendered page that already holds a freshly minted token.

    The first boot needs no round trip to the token endpoint; refreshes go to
    `config.token_url`. The page embedding this must not be cached by shared
    caches (it carries the user's Messenger token).
    """
    options = messenger_options(config, token=token, settings=settings, on_failure=on_failure)
    return Markup(embed_html(options, script_url=script_url, nonce=nonce))  # noqa: S704 (escaped above)
