"""Which logged-in user is this? One module per way of recognising them.

Authenticators see a `RequestView` (plain data, no Flask) and either return an
`Identity` or raise. They are tried in the configured order, and the first
whose credential is present decides: a credential that fails verification is
refused (401) and never falls through to another method, so an attacker cannot
pick the weakest one by sending a broken token alongside a cookie.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from identity_service.errors import AuthenticationError
from identity_service.user_ids import user_id_problem

Method = Literal["bearer", "session"]


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


def authenticate(
    request: RequestView,
    authenticators: Sequence[Authenticator],
    now: float,
    user_id_pattern: re.Pattern[str] | None = None,
) -> Identity:
    """The identity behind `request`, from the first authenticator whose credential is present.

    Whatever the method, the user id must be one (`user_ids.user_id_problem`,
    and the workspace's `user_id_pattern`): a credential naming anything else
    is refused here (401 `invalid_claim`), the same on every backend, before
    a profile query could misread it as a database outage.
    """
    for authenticator in authenticators:
        if authenticator.applies(request):
            identity = authenticator.authenticate(request, now)
            if problem := user_id_problem(identity.user_id, user_id_pattern):
                raise AuthenticationError("invalid_claim", problem, methods=(authenticator.method,))
            return identity
    methods = sorted({a.method for a in authenticators})
    raise AuthenticationError(
        "missing_credentials",
        "no credentials: send a bearer token or the session cookie",
        methods=methods,
    )
