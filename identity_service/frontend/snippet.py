"""The browser side, generated: embed HTML, SRI, safe inline JSON, CSP nonce and hash.

No Flask here (only Jinja's `markupsafe` for the return type of the tag
helpers), so the CLI, the blueprint and any product's own templates share one
implementation. Everything this module writes into a page is public: the
workspace's app id, region, the *names* of protected keys and the Messenger
JWT, never a user id, an email or an attribute in clear.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from markupsafe import Markup

from identity_service.auth import Identity
from identity_service.errors import UnsafeSnippetError
from identity_service.settings import (
    MESSENGER_SECURITY_SETTINGS,
    MOBILE_PLATFORMS,
    WIDGET_URL,
    Settings,
    WorkspaceSettings,
)
from identity_service.tokens import MintedToken

SCRIPT_NAME = "messenger.js"
MODULE_NAME = "messenger.mjs"
SCRIPT_PATH = "/v1/messenger/messenger.js"
MODULE_PATH = "/v1/messenger/messenger.mjs"
CONFIG_PATH = "/v1/messenger/config.json"
TOKEN_PATH = "/v1/messenger/token"  # the lead's api.TOKEN_PATH; repeated to keep this Flask-free
SETTINGS_EXTENSION = "identity_service.settings"
ISSUER_EXTENSION = "identity_service.issuer"

# Keys the browser must never set in clear whatever the workspace signs:
# identity (user_id, email) and the legacy HMAC, which has no expiry.
ALWAYS_PROTECTED = ("user_id", "email", "user_hash")
# Keys messenger.js itself sets from the token endpoint's answer; a host page
# passing them would boot a different app or replay a stale token.
OWNED_KEYS = ("app_id", "api_base", "intercom_user_jwt")

OnFailure = Literal["none", "anonymous"]
ON_FAILURE: tuple[OnFailure, ...] = ("none", "anonymous")

# The ES-module flavour is messenger.js plus these exports, so one source file
# serves both ways and an `integrity` on the module covers all of its code
# (a module that imported messenger.js would leave that import unpinned).
MODULE_FOOTER = b"""
const api = globalThis.IdentityServiceMessenger;
export const startMessenger = api.startMessenger;
export const installGuard = api.installGuard;
export default api;
"""

# A nonce goes into a double-quoted attribute unescaped only because it can
# hold nothing but base64 / base64url characters (the rule intercom-rails uses).
_NONCE = re.compile(r"[A-Za-z0-9+/_-]{8,256}={0,2}")
# In <script> text, "<" could close the element or open "<!--"; ">" and "&"
# matter in XHTML and attribute reuse; U+2028/U+2029 end a line in older
# JavaScript engines. Escaped as \u003c-style sequences they mean the same JSON value.
_INLINE_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_INLINE_PATTERN = re.compile("[<>&\u2028\u2029]")
# In a script or widget URL: "\\" (a "/" to browsers), C0/C1 controls, DEL, space.
_URL_UNSAFE = re.compile(r"[\\\x00-\x20\x7f-\x9f]")

# Intercom's names for attribute types in Settings > Data > People.
INTERCOM_TYPE_LABELS: Mapping[str, str] = {
    "string": "Text",
    "integer": "Number",
    "number": "Decimal number",
    "boolean": "True or false",
    "date": "Date",
}


class Issuer(Protocol):
    """Mints a Messenger token for a verified identity (the lead's `TokenIssuer`)."""

    def issue(self, identity: Identity, workspace: str | None, now: int) -> MintedToken:
        """Mint a token for `identity` in the named (or default) workspace."""
        ...


# -- the static file and its hashes ---------------------------------------------------


@cache
def messenger_js() -> bytes:
    """The classic-script flavour of messenger.js, as shipped in the package."""
    return resources.files("identity_service.frontend").joinpath("static", SCRIPT_NAME).read_bytes()


@cache
def messenger_module() -> bytes:
    """The ES-module flavour: messenger.js plus named and default exports."""
    return messenger_js() + MODULE_FOOTER


def sri_sha384(data: bytes) -> str:
    """Subresource Integrity value (`sha384-<base64>`) of `data`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def messenger_integrity() -> str:
    """The `integrity` attribute for the shipped messenger.js."""
    return sri_sha384(messenger_js())


def csp_hash_source(script: str) -> str:
    """The CSP source (`'sha256-<base64>'`, quotes included) allowing this inline script text."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# -- escaping ---------------------------------------------------------------------------


def inline_json(value: Any) -> str:
    """JSON that is safe as the text of an HTML `<script>` element.

    ASCII-only output (`ensure_ascii`), so the value survives whatever charset
    the host page declares and its CSP hash is unambiguous; then every
    character that HTML's script parsing treats specially is \\u-escaped.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return _INLINE_PATTERN.sub(lambda m: _INLINE_ESCAPES[m.group()], text)


def check_nonce(nonce: str) -> str:
    """Return `nonce` if it is base64/base64url text of sensible length; refuse anything else."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise UnsafeSnippetError(
            "CSP nonce refused: it must be 8-256 base64 or base64url characters "
            "(generate one with secrets.token_urlsafe(16))"
        )
    return nonce


def check_script_url(url: str) -> str:
    """Allow only http(s) URLs and absolute paths as a script source (never javascript: etc.).

    Browsers read a backslash as "/" in http(s) URLs and drop tabs and newlines,
    so "/\\evil.example/m.js" or "/\t/evil.example/m.js" would load from
    evil.example while looking like a path here: any backslash, control
    character or whitespace is refused, as is a protocol-relative "//host".
    """
    if not isinstance(url, str) or _URL_UNSAFE.search(url) or any(c.isspace() for c in url):
        raise UnsafeSnippetError(
            "script URL must not contain backslashes, whitespace or control characters, "
            f"got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"} and parts.netloc:
        return url
    if not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//"):
        return url
    raise UnsafeSnippetError(f"script URL must be https://..., http://... or /path, got {url!r}")


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


# -- public configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class MessengerConfig:
    """What the browser needs to know about one workspace; public, never secret."""

    workspace: str
    app_id: str
    api_base: str
    token_url: str
    protected_keys: tuple[str, ...]
    widget_url: str = WIDGET_URL

    @classmethod
    def for_workspace(
        cls, workspace: WorkspaceSettings, token_url: str, widget_url: str = WIDGET_URL
    ) -> MessengerConfig:
        """The public view of `workspace`, with its token endpoint at `token_url`."""
        return cls(
            workspace=workspace.key,
            app_id=workspace.app_id,
            api_base=workspace.api_base,
            token_url=token_url,
            protected_keys=tuple(dict.fromkeys((*ALWAYS_PROTECTED, *workspace.protected_keys))),
            widget_url=check_script_url(widget_url),
        )

    def as_json(self) -> dict[str, Any]:
        """The document served as config.json."""
        return {
            "workspace": self.workspace,
            "app_id": self.app_id,
            "api_base": self.api_base,
            "token_url": self.token_url,
            "protected_keys": list(self.protected_keys),
            "widget_url": self.widget_url,
        }


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
        f'<script src="{_attr(check_script_url(script_url))}" integrity="{_attr(integrity)}" '
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


class _JinjaApp(Protocol):
    extensions: dict[str, Any]

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
    through `issuer`, or through `app.extensions["identity_service.issuer"]` at
    render time when none is given, so registration order does not matter.
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
        active: Issuer = issuer or app.extensions[ISSUER_EXTENSION]
        known: Settings = service_settings or app.extensions[SETTINGS_EXTENSION]
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


# -- the Intercom side ----------------------------------------------------------------------


def admin_checklist(workspace: WorkspaceSettings) -> str:
    """What an Intercom admin must switch on so the signed attributes are really protected."""
    custom = workspace.custom_attributes
    standard = [a.name for a in workspace.attributes if a.is_standard]
    lines = [
        f"Intercom admin checklist for workspace {workspace.key!r} "
        f"(app_id {workspace.app_id}, {workspace.api_base}):",
    ]
    if custom:
        width = max(len(a.name) for a in custom)
        lines.append(
            "  [ ] 1. Settings > Data > People > Create attribute, for each custom data\n"
            "         attribute (exact names: case sensitive, cannot be renamed later):"
        )
        lines += [f"           {a.name:<{width}}  {INTERCOM_TYPE_LABELS[a.type]}" for a in custom]
        lines.append(
            '  [ ] 2. For each of them turn on "Prevent updates via the Messenger"; without it '
            "page code can still overwrite the signed value."
        )
    else:
        lines.append("  [-] 1-2. No custom data attributes are signed: nothing to create or lock.")
    lines.append(
        f"  [ ] 3. {MESSENGER_SECURITY_SETTINGS}: put the secret key enabled for each "
        "platform where identity_service reads it (it signs that platform's tokens with it):"
    )
    width = max(len(p) for p in workspace.secrets)
    lines += [
        f"           {platform + ':':<{width + 1}}  {workspace.describe_secret(platform)}"
        for platform in workspace.secrets
    ]
    mobile = [p for p in workspace.secrets if p in MOBILE_PLATFORMS]
    rollout = (
        f" For {' and '.join(mobile)}: only once app versions that send the JWT are out; "
        "enforcing breaks older app versions (docs/mobile.md, safe rollout)."
        if mobile
        else ""
    )
    lines.append(f'  [ ] 4. Then turn on "Enforce messenger security".{rollout}')
    if standard:
        lines.append(
            f"  Standard attributes signed in the token (no CDA needed; Intercom cannot lock "
            f"them, messenger.js strips them from page code): {', '.join(standard)}"
        )
    return "\n".join(lines)
