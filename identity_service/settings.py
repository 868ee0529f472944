"""The settings the service runs on: frozen dataclasses, built once by `config.load_settings`.

Nothing here reads files or the environment; `config.py` does that and
validates, so these types are plain data every module can share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from re import Pattern
from typing import Literal

from identity_service.errors import PlatformNotServedError, UnknownWorkspaceError
from identity_service.secrets import SecretSource

AttributeType = Literal["string", "integer", "number", "boolean", "date"]
OnInvalid = Literal["drop", "reject"]
OnUnavailable = Literal["fail", "omit"]
OnStorageError = Literal["open", "closed"]
# Where a Messenger token is used: the web Messenger, or Intercom's iOS and Android SDKs
# (React Native and Flutter apps run on those two). Intercom's Messenger Security page
# shows secret keys enabled per platform ("an iOS enabled secret key"), so each platform
# signs with its own secret; `web` is the workspace's own secret_* keys (as before).
Platform = Literal["web", "ios", "android"]
PLATFORMS: tuple[Platform, ...] = ("web", "ios", "android")
DEFAULT_PLATFORM: Platform = "web"
MOBILE_PLATFORMS: tuple[Platform, ...] = ("ios", "android")

REGIONS: Mapping[str, str] = {
    "us": "https://api-iam.intercom.io",
    "eu": "https://api-iam.eu.intercom.io",
    "au": "https://api-iam.au.intercom.io",
}
WIDGET_URL = "https://widget.intercom.io/widget/{app_id}"
# Where an Intercom admin finds the Messenger API secret and "Enforce messenger security"
# (Intercom's own link: app.intercom.com/a/apps/_/settings/channels/messenger/security).
MESSENGER_SECURITY_SETTINGS = "Settings > Channels > Messenger > Security"

# The issuer of the demo's development identity provider (demo/idp.py). Written here so
# the loader can refuse it in a configuration file without importing the demo package.
DEMO_IDP_ISSUER = "urn:identity-service:demo-idp"

# What a workspace key may be, matched in full (re.fullmatch): the configuration's
# table names and the token request's "workspace" field.
WORKSPACE_KEY_PATTERN = r"[A-Za-z0-9_-]{1,64}"


@dataclass(frozen=True)
class AttributeSpec:
    """One whitelisted attribute: its Intercom name, type and where its value comes from."""

    name: str
    type: AttributeType
    description: str = ""
    claim: str | None = None  # dotted path or full URI claim of the verified IdP token
    profile: str | None = None  # column of the profile row

    @property
    def is_standard(self) -> bool:
        return self.name in STANDARD_ATTRIBUTES


# Standard Intercom user attributes we may sign; every other name is a CDA.
STANDARD_ATTRIBUTES: Mapping[str, AttributeType] = {
    "email": "string",
    "name": "string",
    "phone": "string",
    "created_at": "date",
}


@dataclass(frozen=True)
class BearerAuthSettings:
    """Verify a bearer JWT from the product's identity provider."""

    issuer: str
    audience: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_url: str | None = None
    key_file: Path | None = None
    leeway: int = 30
    user_id_claim: str = "sub"
    jwks_timeout: float = 3.0  # the total deadline of one JWKS fetch
    jwks_connect_timeout: float = 1.0
    jwks_read_timeout: float = 1.0  # the longest silence between two reads
    jwks_refetch_interval: float = 30.0  # after a successful fetch, none sooner than this
    jwks_cache_ttl: float = 600.0
    jwks_max_stale: float = 86400.0  # keep using cached keys this long while the IdP is down
    jwks_retry_initial: float = 0.5  # after a failed fetch; doubles per failure, with jitter
    jwks_retry_max: float = 5.0
    max_token_bytes: int = 8192
    method: Literal["bearer"] = "bearer"


@dataclass(frozen=True)
class SessionAuthSettings:
    """Verify the product's own Flask-compatible signed session cookie."""

    secret: SecretSource
    fallback_secrets: tuple[SecretSource, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    cookie_name: str = "session"
    salt: str = "cookie-session"
    digest: str = "sha1"
    max_age: int = 31 * 24 * 3600  # Flask's PERMANENT_SESSION_LIFETIME
    user_id_key: str = "user_id"
    method: Literal["session"] = "session"


AuthSettings = BearerAuthSettings | SessionAuthSettings


DEADLINE_GRACE = 0.25  # seconds the client deadline leaves the server's statement_timeout
BREAKER_FAILURES = 3  # failed profile lookups in a row that open the circuit breaker


@dataclass(frozen=True)
class ProfileSettings:
    """Where profile rows come from: a parameterised SQL query run through SQLAlchemy Core."""

    url: str
    query: str
    # The column of the query's row that holds the user's own id. A row is used
    # only when this value, as text, equals the token's user id exactly: the
    # database may have compared :user_id in another type ("01" = 1).
    id_column: str
    timeout: float = 2.0
    on_unavailable: OnUnavailable = "omit"
    pool_size: int = 5
    breaker_cooldown: float = 5.0  # seconds the database is skipped after repeated failures

    @property
    def deadline(self) -> float:
        """The client-side bound on one lookup, once it has its connection (seconds).

        A little over `timeout`, which is also the server's statement_timeout:
        a slow query is cancelled by the server first (its connection stays
        usable), and the client cuts the connection only when nothing answers.
        """
        return round(self.timeout + DEADLINE_GRACE, 3)


@dataclass(frozen=True)
class IntercomApiSettings:
    """Access to the workspace's Intercom REST API, for `intercom check` and `intercom sync`.

    Optional: without it nothing reaches Intercom's REST API. The token only
    ever goes into the Authorization header of requests to `rest_base`.
    """

    token: SecretSource
    rest_base: str  # the region's REST host (intercom_api/rules.py), or the configured one
    timeout: float = 10.0  # seconds one request may take in all (connect, send, answer)
    connect_timeout: float = 3.0
    retries: int = 3  # further attempts after a 429, a 5xx or a timeout (idempotent calls)
    max_retry_wait: float = 30.0  # longest wait before one retry (a later rate-limit reset fails)


@dataclass(frozen=True)
class WorkspaceSettings:
    """One Intercom app (workspace) we mint Messenger tokens for."""

    key: str
    app_id: str
    api_base: str
    # The web Messenger secret (the workspace's own secret_* keys); None when the
    # workspace serves no browser. Mobile platforms' secrets are in platform_secrets.
    secret: SecretSource | None
    region: str | None = None
    token_lifetime: int = 3600
    on_invalid: OnInvalid = "drop"
    attributes: tuple[AttributeSpec, ...] = ()
    auth: tuple[AuthSettings, ...] = ()
    profile: ProfileSettings | None = None
    user_id_pattern: Pattern[str] | None = None  # every user id must fully match it
    intercom_api: IntercomApiSettings | None = None
    # ios / android -> its secret. One SecretSource object under two platforms is a
    # secret shared on purpose (`same_secret_as`); equal values in two sources are not.
    platform_secrets: Mapping[Platform, SecretSource] = field(default_factory=dict)

    @cached_property  # on the token path; the fields never change (frozen)
    def secrets(self) -> dict[Platform, SecretSource]:
        """Every platform this workspace serves, with the secret its tokens are signed with."""
        every = {"web": self.secret, **self.platform_secrets}
        return {p: s for p in PLATFORMS if (s := every.get(p)) is not None}

    def secret_for(self, platform: Platform) -> SecretSource:
        """The secret tokens for `platform` are signed with; PlatformNotServedError if none."""
        source = self.secrets.get(platform)
        if source is None:
            served = ", ".join(self.secrets) or "none"
            raise PlatformNotServedError(
                f"workspace {self.key!r} does not serve {platform}: it has no {platform} "
                f"Messenger secret configured (it serves: {served})",
                platform=platform,
                served=tuple(self.secrets),
            )
        return source

    def shared_with(self, platform: Platform) -> Platform | None:
        """The platform whose table holds the secret `platform` names in same_secret_as."""
        secrets = self.secrets
        mine = secrets.get(platform)
        owner = next(p for p, s in secrets.items() if s is mine) if mine is not None else None
        return None if owner in (None, platform) else owner

    @property
    def own_secrets(self) -> dict[Platform, SecretSource]:
        """The platforms whose secret is configured in their own table (no same_secret_as)."""
        return {p: s for p, s in self.secrets.items() if self.shared_with(p) is None}

    def describe_secret(self, platform: Platform) -> str:
        """Where `platform`'s secret comes from, for people (never what it is)."""
        source = self.secret_for(platform)
        owner = self.shared_with(platform)
        if owner is not None:
            return f"{source.describe()}: {owner}'s secret (same_secret_as)"
        return source.describe()

    @property
    def custom_attributes(self) -> tuple[AttributeSpec, ...]:
        return tuple(a for a in self.attributes if not a.is_standard)

    @property
    def protected_keys(self) -> tuple[str, ...]:
        """Keys the browser must never set in clear: identity plus every signed attribute."""
        names = ["user_id", "email", "user_hash", *(a.name for a in self.attributes)]
        return tuple(dict.fromkeys(names))


def platform_path(workspace: str, platform: Platform) -> str:
    """The configuration table holding `platform`'s secret keys (secret_env, secret_file...)."""
    if platform == "web":
        return f"workspaces.{workspace}"
    return f"workspaces.{workspace}.platforms.{platform}"


@dataclass(frozen=True)
class RateLimitSettings:
    """Limits in the `limits` notation ("30/minute"); empty disables that scope."""

    per_client: str = "120/minute"
    per_user: str = "30/minute"
    storage_url: str = "memory://"
    on_storage_error: OnStorageError = "open"
    enabled: bool = True
    storage_timeout: float = 0.25  # seconds: Redis connect and each command's reply
    storage_retry_interval: float = 5.0  # seconds a worker skips Redis after a failure


@dataclass(frozen=True)
class ServiceSettings:
    """Deployment-wide HTTP settings."""

    cors_origins: tuple[str, ...] = ()
    hsts: bool = False
    max_body_bytes: int = 4096
    proxy_hops: int = 0
    instance_path: Path = Path("instance")
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, loaded and validated once."""

    source: str
    service: ServiceSettings
    workspaces: Mapping[str, WorkspaceSettings]
    default_workspace: str
    warnings: tuple[str, ...] = field(default=())

    def workspace(self, key: str | None) -> WorkspaceSettings:
        """The named workspace, or the default one when `key` is None."""
        chosen = self.default_workspace if key is None else key
        try:
            return self.workspaces[chosen]
        except KeyError:
            # Named back only when it has a workspace key's form: any other text is the
            # caller's (a pasted credential, markup) and is never quoted in a response.
            if re.fullmatch(WORKSPACE_KEY_PATTERN, chosen) is None:
                raise UnknownWorkspaceError("no workspace by that name is configured") from None
            raise UnknownWorkspaceError(f"no workspace named {chosen!r} is configured") from None
