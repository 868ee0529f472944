"""Which logged-in user is this? One module per way of recognising them.

Authenticators see a `RequestView` (plain data, no Flask) and either return an
`Identity` or raise. One credential decides each request, and a credential
that fails verification is refused (401) and never falls through to another
method, so an attacker cannot pick the weakest one by sending a broken token
alongside a cookie:

- an `Authorization` header that holds anything but spaces and tabs decides:
  the sender chose it, while the browser attaches cookies to every request. A scheme
  other than Bearer, or a bearer token for a workspace without a bearer
  method, is refused as such;
- otherwise the first session method whose cookie is present decides;
- otherwise the session cookie of another workspace's method is refused as
  not accepted here, and no credential at all as missing.

The session cookie is a browser's credential: a token asked for a mobile
platform (`ios`, `android`) must come with the IdP's bearer token, and a
request that a cookie would decide is refused (`browser_credential`), even
where the workspace accepts cookies for its web Messenger.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from identity_service.errors import AuthenticationError
from identity_service.settings import DEFAULT_PLATFORM, Platform
from identity_service.user_ids import user_id_problem

Method = Literal["bearer", "session"]
# Where a session cookie may decide a request: only a browser holds the product's cookie.
COOKIE_PLATFORMS: frozenset[Platform] = frozenset({"web"})


@dataclass(frozen=True)
class Identity:
    """A verified logged-in user: their id, how we know, and the verified facts."""

    user_id: str
    method: Method
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestView:
    """What an authenticator may see of an HTTP request."""

    authorization: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    origin: str | None = None
    sec_fetch_site: str | None = None
    host_origin: str | None = None  # this service's own scheme://host[:port]


class Authenticator(Protocol):
    """One way of recognising a logged-in user."""

    method: Method

    def applies(self, request: RequestView) -> bool:
        """Whether the request carries this method's credential at all."""
        ...

    def authenticate(self, request: RequestView, now: float) -> Identity:
        """Verify the credential; raise AuthenticationError (401) or ForbiddenOriginError (403)."""
        ...


# Which credential a request carries, for refusals, metrics and audit events.
HTTP_WHITESPACE = " \t"  # RFC 9110 OWS: all a header value may start or end with
Presented = Literal["bearer", "session", "other", "none"]


def presented(
    request: RequestView,
    authenticators: Sequence[Authenticator],
    session_cookies: Collection[str] = (),
) -> tuple[Presented, Authenticator | None]:
    """The credential that decides `request`, and the authenticator that verifies it (if any).

    `session_cookies` are the cookie names of every session method the service
    has, so that one sent to a workspace without it is recognised as a credential.
    """
    authorization = request.authorization
    # Empty as HTTP means it: spaces and tabs only. str.strip() would also take a lone
    # no-break space (0xA0) or NEL (0x85), which servers hand over, for no header.
    if authorization is not None and authorization.strip(HTTP_WHITESPACE):
        if authorization.partition(" ")[0].lower() != "bearer":  # RFC 7235: case-insensitive
            return "other", None
        bearer = next((a for a in authenticators if a.method == "bearer"), None)
        return "bearer", bearer
    for authenticator in authenticators:
        if authenticator.method == "session" and authenticator.applies(request):
            return "session", authenticator
    if any(request.cookies.get(name) for name in session_cookies):
        return "session", None
    return "none", None


def authenticate(
    request: RequestView,
    authenticators: Sequence[Authenticator],
    now: float,
    session_cookies: Collection[str] = (),
    user_id_pattern: re.Pattern[str] | None = None,
    platform: Platform = DEFAULT_PLATFORM,
) -> Identity:
    """The identity behind `request`, from the one credential that decides it (see above),
    for a token to be used on `platform`.

    Whatever the method, the user id must be one (`user_ids.user_id_problem`,
    and the workspace's `user_id_pattern`): a credential naming anything else
    is refused here (401 `invalid_claim`), the same on every backend, before
    a profile query could misread it as a database outage.
    """
    kind, authenticator = presented(request, authenticators, session_cookies)
    accepted: set[str] = {a.method for a in authenticators}
    if platform not in COOKIE_PLATFORMS:
        if kind == "session":
            raise AuthenticationError(
                "browser_credential",
                f"the session cookie is a browser credential and is refused for {platform} "
                "tokens: send Authorization: Bearer <the user's access token from the identity "
                "provider>",
                methods=("bearer",),
            )
        if "bearer" not in accepted:
            raise AuthenticationError(
                "method_not_accepted",
                f"{platform} tokens need the identity provider's bearer token, and this "
                "workspace has no bearer method: its operator adds one ([[auth]] method = "
                '"bearer")',
                methods=(),
            )
        accepted = {"bearer"}
    if authenticator is None:
        raise _unusable(kind, accepted)
    identity = authenticator.authenticate(request, now)
    if problem := user_id_problem(identity.user_id, user_id_pattern):
        raise AuthenticationError("invalid_claim", problem, methods=(authenticator.method,))
    return identity


# What to send instead, by the methods a workspace accepts.
_ASK = {
    frozenset({"bearer", "session"}): "send a bearer token or the session cookie",
    frozenset({"bearer"}): "send a bearer token",
    frozenset({"session"}): "send the session cookie",
    frozenset(): "this workspace has no authentication method configured",
}


def _unusable(kind: Presented, accepted: set[str]) -> AuthenticationError:
    """The refusal of a request whose credential no method of this workspace verifies."""
    methods = sorted(accepted)
    if kind == "other":
        # The header itself is never quoted: a credential may sit in any scheme.
        if "bearer" in accepted:
            ask = "send Authorization: Bearer <token>"
        else:
            ask = "this workspace accepts only the session cookie; send no Authorization header"
        return AuthenticationError(
            "unsupported_scheme",
            f"the Authorization header does not use the Bearer scheme: {ask}",
            methods=methods,
        )
    if kind == "bearer":
        ask = (
            "send the session cookie, without an Authorization header"
            if "session" in accepted
            else _ASK[frozenset(accepted)]
        )
        return AuthenticationError(
            "method_not_accepted",
            f"this workspace does not accept bearer tokens: {ask}",
            methods=methods,
        )
    if kind == "session":
        # Another workspace's session cookie (a browser sends every cookie it has).
        return AuthenticationError(
            "method_not_accepted",
            f"this workspace does not accept the session cookie sent: {_ASK[frozenset(accepted)]}",
            methods=methods,
        )
    return AuthenticationError(
        "missing_credentials", f"no credentials: {_ASK[frozenset(accepted)]}", methods=methods
    )
