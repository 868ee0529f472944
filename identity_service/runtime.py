"""Everything a running app holds: settings, authenticators, issuer, metrics, clock.

Built once per app by `IdentityService.init_app` from frozen settings and kept
in the app's `http.state.ServiceState`; the token endpoint holds it, Flask views
reach it through `service_state(current_app)`. Keeping it in one
object makes the wiring explicit and lets tests build an app on any settings
and any clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from identity_service.auth import Authenticator
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.auth.jwks import KeySource, StaticKeySource
from identity_service.auth.session import SessionAuthenticator
from identity_service.issuer import TokenIssuer
from identity_service.observability.metrics import Metrics
from identity_service.profile import SqlProfileSource
from identity_service.ratelimit import RateLimiter
from identity_service.settings import (
    BearerAuthSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
)


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
    # Every session method's cookie name, in any workspace: a credential even
    # where a workspace does not accept it (auth.presented).
    session_cookies: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        key_files: KeyFiles | None = None,
    ) -> Runtime:
        """Build every live object; `clock` stamps tokens and places rate-limit hits in their
        windows, `monotonic` times key caches, profile deadlines and both circuit breakers.

        `key_files` are `key_file` key sources loaded already (by `load_key_files`),
        used instead of reading those files again.
        """
        profiles = {
            key: SqlProfileSource(ws.profile, clock=monotonic)
            for key, ws in settings.workspaces.items()
            if ws.profile is not None
        }
        metrics = Metrics.create()
        return cls(
            settings=settings,
            authenticators={
                k: build_authenticators(ws, monotonic, key_files)
                for k, ws in settings.workspaces.items()
            },
            profiles=profiles,
            issuer=TokenIssuer(settings, profiles),
            metrics=metrics,
            limiter=RateLimiter(
                settings.service.rate_limit,
                on_storage_error=metrics.rate_limit_storage_errors.inc,
                on_storage_skipped=metrics.rate_limit_storage_skipped.inc,
                clock=clock,
                monotonic=monotonic,
            ),
            clock=clock,
            session_cookies=frozenset(
                method.cookie_name
                for ws in settings.workspaces.values()
                for method in ws.auth
                if isinstance(method, SessionAuthSettings)
            ),
        )


def build_authenticators(
    workspace: WorkspaceSettings,
    monotonic: Callable[[], float] = time.monotonic,
    key_files: KeyFiles | None = None,
) -> tuple[Authenticator, ...]:
    """One authenticator per configured method, in the configured order."""
    built: list[Authenticator] = []
    for method in workspace.auth:
        if isinstance(method, BearerAuthSettings):
            keys = key_files.get(method) if key_files is not None else None
            built.append(BearerAuthenticator(method, clock=monotonic, keys=keys))
        else:
            built.append(SessionAuthenticator(method))
    return tuple(built)


# Each bearer method's `key_file` source, loaded once.
KeyFiles = Mapping[BearerAuthSettings, KeySource]


def load_key_files(settings: Settings) -> dict[BearerAuthSettings, KeySource]:
    """Load every bearer `key_file` now (ConfigError naming the file if one is unusable).

    `identity-service serve` does this in the master, so that a worker
    replacing a dead one needs no key file on disk: one deleted or broken
    since then cannot keep it from booting.
    """
    return {
        method: StaticKeySource(method.key_file, method.algorithms)
        for workspace in settings.workspaces.values()
        for method in workspace.auth
        if isinstance(method, BearerAuthSettings) and method.key_file is not None
    }
