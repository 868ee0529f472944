"""Everything a running app holds: settings, authenticators, issuer, metrics, clock.

Built once by the app factory from frozen settings; views reach it through
`current_runtime()`. Keeping it in one object makes the wiring explicit and
lets tests build an app on any settings and any clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from identity_service.auth import Authenticator
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.auth.session import SessionAuthenticator
from identity_service.issuer import TokenIssuer
from identity_service.observability import Metrics
from identity_service.profile import SqlProfileSource
from identity_service.ratelimit import RateLimiter
from identity_service.settings import BearerAuthSettings, Settings, WorkspaceSettings

EXTENSION = "identity_service"


@dataclass(frozen=True)
class Runtime:
    """The live objects behind one app."""

    settings: Settings
    authenticators: Mapping[str, Sequence[Authenticator]]
    profiles: Mapping[str, SqlProfileSource]
    issuer: TokenIssuer
    metrics: Metrics
    limiter: RateLimiter
    clock: Callable[[], float]

    @classmethod
    def build(
        cls,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Runtime:
        """Build every live object; `clock` stamps tokens, `monotonic` times key caches,
        profile deadlines and the profile circuit breaker."""
        profiles = {
            key: SqlProfileSource(ws.profile, clock=monotonic)
            for key, ws in settings.workspaces.items()
            if ws.profile is not None
        }
        metrics = Metrics.create()
        return cls(
            settings=settings,
            authenticators={
                k: build_authenticators(ws, monotonic) for k, ws in settings.workspaces.items()
            },
            profiles=profiles,
            issuer=TokenIssuer(settings, profiles),
            metrics=metrics,
            limiter=RateLimiter(
                settings.service.rate_limit,
                on_storage_error=metrics.rate_limit_storage_errors.inc,
            ),
            clock=clock,
        )


def build_authenticators(
    workspace: WorkspaceSettings, monotonic: Callable[[], float] = time.monotonic
) -> tuple[Authenticator, ...]:
    """One authenticator per configured method, in the configured order."""
    built: list[Authenticator] = []
    for method in workspace.auth:
        if isinstance(method, BearerAuthSettings):
            built.append(BearerAuthenticator(method, clock=monotonic))
        else:
            built.append(SessionAuthenticator(method))
    return tuple(built)
