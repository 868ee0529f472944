"""The settings the service runs on: frozen dataclasses, and the configuration's one schema.

Each field is a TOML key: its type and default are the key's, and its metadata
(`schema.rule`) its limits and checks. `config.py` walks these fields to read
and validate the file, and the documentation's key tables are tested against
them, so a key, its default and its limits are written here and nowhere else.
Nothing here reads files or the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from re import Pattern
from typing import Literal

from identity_service import schema
from identity_service.errors import PlatformNotServedError, UnknownWorkspaceError
from identity_service.intercom import ALWAYS_PROTECTED, STANDARD_ATTRIBUTES, AttributeType
from identity_service.schema import NOT_A_KEY, rule
from identity_service.secrets import SecretSource

OnInvalid = Literal["drop", "reject"]
OnUnavailable = Literal["fail", "omit"]
OnStorageError = Literal["open", "closed"]
SessionDigest = Literal["sha1", "sha256", "sha384", "sha512"]
# Where a Messenger token is used: the web Messenger, or Intercom's iOS and Android SDKs
# (React Native and Flutter apps run on those two). Intercom's Messenger Security page
# shows secret keys enabled per platform ("an iOS enabled secret key"), so each platform
# signs with its own secret; `web` is the workspace's own secret_* keys (as before).
Platform = Literal["web", "ios", "android"]
PLATFORMS: tuple[Platform, ...] = ("web", "ios", "android")
DEFAULT_PLATFORM: Platform = "web"
MOBILE_PLATFORMS: tuple[Platform, ...] = ("ios", "android")
# Where a secret comes from: exactly one of these keys (never the secret itself).
SECRET_KEYS = ("secret_env", "secret_file", "secret_dev")
MIN_LIFETIME, MAX_LIFETIME = 60, 24 * 3600

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
    type: AttributeType = "string"
    description: str = ""
    claim: str | None = None  # dotted path or full URI claim of the verified IdP token
    profile: str | None = None  # column of the profile row

    @property
    def is_standard(self) -> bool:
        return self.name in STANDARD_ATTRIBUTES


@dataclass(frozen=True)
class BearerAuthSettings:
    """Verify a bearer JWT from the product's identity provider."""

    issuer: str = field(metadata=rule(check=schema.non_empty))
    audience: tuple[str, ...]
    algorithms: tuple[str, ...]
    jwks_url: str | None = field(default=None, metadata=rule(check=schema.https_url))
    key_file: Path | None = None  # a PEM or JWK(S) file, relative to the configuration file
    leeway: int = field(default=30, metadata=rule(0, 300, "seconds"))
    user_id_claim: str = field(default="sub", metadata=rule(check=schema.non_empty))
    # The connect and read timeouts are capped by jwks_timeout, and a retry by
    # jwks_retry_max, where they apply: setting one key alone stays valid.
    # The total deadline of one JWKS fetch.
    jwks_timeout: float = field(default=3.0, metadata=rule(0.1, 10, "seconds"))
    jwks_connect_timeout: float = field(default=1.0, metadata=rule(0.05, 10, "seconds"))
    # The longest silence between two reads.
    jwks_read_timeout: float = field(default=1.0, metadata=rule(0.05, 10, "seconds"))
    # After a successful fetch, none sooner than this.
    jwks_refetch_interval: float = field(default=30.0, metadata=rule(1, 3600, "seconds"))
    jwks_cache_ttl: float = field(default=600.0, metadata=rule(1, 86400, "seconds"))
    # Keep using cached keys this long while the IdP is down.
    jwks_max_stale: float = field(default=86400.0, metadata=rule(0, 7 * 86400, "seconds"))
    # After a failed fetch; doubles per failure, with jitter.
    jwks_retry_initial: float = field(default=0.5, metadata=rule(0.05, 60, "seconds"))
    jwks_retry_max: float = field(default=5.0, metadata=rule(0.05, 300, "seconds"))
    max_token_bytes: int = field(default=8192, metadata=rule(512, 65536, "bytes"))
    method: Literal["bearer"] = "bearer"


@dataclass(frozen=True)
class SessionAuthSettings:
    """Verify the product's own Flask-compatible signed session cookie."""

    secret: SecretSource = field(metadata=rule(keys=SECRET_KEYS, min_bytes=16))
    fallback_secrets: tuple[SecretSource, ...] = field(
        default=(),
        metadata=rule(keys=("fallback_secret_envs", "fallback_secret_files"), min_bytes=16),
    )
    allowed_origins: tuple[str, ...] = field(default=(), metadata=rule(each=schema.exact_origin))
    cookie_name: str = field(default="session", metadata=rule(check=schema.non_empty))
    salt: str = "cookie-session"
    digest: SessionDigest = "sha1"
    # Flask's PERMANENT_SESSION_LIFETIME.
    max_age: int = field(default=31 * 24 * 3600, metadata=rule(60, 400 * 86400, "seconds"))
    user_id_key: str = field(default="user_id", metadata=rule(check=schema.non_empty))
    method: Literal["session"] = "session"


AuthSettings = BearerAuthSettings | SessionAuthSettings


DEADLINE_GRACE = 0.25  # seconds the client deadline leaves the server's statement_timeout
BREAKER_FAILURES = 3  # failed profile lookups in a row that open the circuit breaker


@dataclass(frozen=True)
class ProfileSettings:
    """Where profile rows come from: a parameterised SQL query run through SQLAlchemy Core."""

    url: str = field(metadata=rule(check=schema.non_empty))
    query: str = field(metadata=rule(check=schema.non_empty))
    # The column of the query's row that holds the user's own id. A row is used
    # only when this value, as text, equals the token's user id exactly: the
    # database may have compared :user_id in another type ("01" = 1), so without
    # it no row could be checked: refuse, do not guess.
    id_column: str = field(
        metadata=rule(
            check=schema.non_empty,
            missing="is required: name the query's column holding the user's own id, e.g. "
            'id_column = "id" with query = "SELECT id, plan FROM users WHERE id = :user_id"',
        )
    )
    timeout: float = field(default=2.0, metadata=rule(0.1, 30, "seconds"))
    on_unavailable: OnUnavailable = "omit"
    pool_size: int = field(default=5, metadata=rule(1, 50, "connections"))
    # Seconds the database is skipped after repeated failures.
    breaker_cooldown: float = field(default=5.0, metadata=rule(0, 300, "seconds"))

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

    # Never a development secret: Intercom would not know it. Access tokens are ~60 characters.
    token: SecretSource = field(metadata=rule(keys=("secret_env", "secret_file"), min_bytes=20))
    # The region's REST host (intercom.REST_API_BASES), or the configured one.
    rest_base: str = field(metadata=rule(check=schema.rest_base))
    # Seconds one request may take in all (connect, send, answer).
    timeout: float = field(default=10.0, metadata=rule(0.5, 60, "seconds"))
    connect_timeout: float = field(default=3.0, metadata=rule(0.1, 30, "seconds"))
    # Further attempts after a 429, a 5xx or a timeout (idempotent calls).
    retries: int = field(default=3, metadata=rule(0, 10, "retries"))
    # Longest wait before one retry (a later rate-limit reset fails).
    max_retry_wait: float = field(default=30.0, metadata=rule(0, 300, "seconds"))


MESSENGER_SECRET_BYTES = 32  # the fewest bytes of any Messenger secret, whatever the platform


@dataclass(frozen=True)
class PlatformSettings:
    """One mobile platform's Messenger secret (`[workspaces.<key>.platforms.ios]`).

    Its own secret, or another platform's, named (`same_secret_as`): one secret
    serving several platforms is always written down, never implied.
    """

    secret: SecretSource | None = field(
        default=None, metadata=rule(keys=SECRET_KEYS, min_bytes=MESSENGER_SECRET_BYTES)
    )
    same_secret_as: Platform | None = None


@dataclass(frozen=True)
class PlatformsSettings:
    """The mobile platforms a workspace serves (`[workspaces.<key>.platforms]`); web is not here."""

    ios: PlatformSettings | None = None
    android: PlatformSettings | None = None


@dataclass(frozen=True)
class WorkspaceSettings:
    """One Intercom app (workspace) we mint Messenger tokens for."""

    key: str = field(metadata=NOT_A_KEY)  # the table's name: [workspaces.<key>]
    app_id: str = field(metadata=rule(check=schema.app_id))
    api_base: str = field(metadata=rule(check=schema.https_url))  # else the region's
    # The web Messenger secret. Required unless `platforms` is set: a workspace for
    # mobile apps only leaves it out, and then serves no browser.
    secret: SecretSource | None = field(
        default=None, metadata=rule(keys=SECRET_KEYS, min_bytes=MESSENGER_SECRET_BYTES)
    )
    region: str | None = None  # a key of intercom.REGIONS, None with an api_base
    token_lifetime: int = field(default=3600, metadata=rule(MIN_LIFETIME, MAX_LIFETIME, "seconds"))
    on_invalid: OnInvalid = "drop"
    attributes: tuple[AttributeSpec, ...] = ()
    auth: tuple[AuthSettings, ...] = ()
    profile: ProfileSettings | None = None
    user_id_pattern: Pattern[str] | None = None  # every user id must fully match it
    intercom_api: IntercomApiSettings | None = None
    platforms: PlatformsSettings | None = None

    @cached_property  # on the token path; the fields never change (frozen)
    def secrets(self) -> dict[Platform, SecretSource]:
        """Every platform this workspace serves, with the secret its tokens are signed with.

        A platform with `same_secret_as` gets the very object of the platform it
        names (the loader has checked that one holds a secret of its own).
        """
        tables = self.platforms or PlatformsSettings()
        own: dict[Platform, SecretSource | None] = {
            "web": self.secret,
            "ios": tables.ios.secret if tables.ios else None,
            "android": tables.android.secret if tables.android else None,
        }
        served: dict[Platform, SecretSource] = {}
        for platform in PLATFORMS:
            share = self.shared_with(platform)
            source = own[share] if share is not None else own[platform]
            if source is not None:
                served[platform] = source
        return served

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
        """The platform `platform` names in same_secret_as (whose secret it signs with)."""
        table = getattr(self.platforms, platform, None) if platform != "web" else None
        return table.same_secret_as if isinstance(table, PlatformSettings) else None

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
        names = [*ALWAYS_PROTECTED, *(a.name for a in self.attributes)]
        return tuple(dict.fromkeys(names))


def platform_path(workspace: str, platform: Platform) -> str:
    """The configuration table holding `platform`'s secret keys (secret_env, secret_file...)."""
    if platform == "web":
        return f"workspaces.{workspace}"
    return f"workspaces.{workspace}.platforms.{platform}"


@dataclass(frozen=True)
class RateLimitSettings:
    """Limits in the `limits` notation ("30/minute"); empty disables that scope."""

    per_client: str = field(default="120/minute", metadata=rule(check=schema.rate_limit))
    per_user: str = field(default="30/minute", metadata=rule(check=schema.rate_limit))
    storage_url: str = field(default="memory://", metadata=rule(check=schema.storage_url))
    on_storage_error: OnStorageError = "open"
    enabled: bool = True
    # Seconds: Redis connect and each command's reply.
    storage_timeout: float = field(default=0.25, metadata=rule(0.01, 5, "seconds"))
    # Seconds a worker skips Redis after a failure.
    storage_retry_interval: float = field(default=5.0, metadata=rule(0.1, 300, "seconds"))


@dataclass(frozen=True)
class ServiceSettings:
    """Deployment-wide HTTP settings."""

    cors_origins: tuple[str, ...] = field(default=(), metadata=rule(each=schema.cors_origin))
    hsts: bool = False
    max_body_bytes: int = field(default=4096, metadata=rule(64, 1024 * 1024, "bytes"))
    proxy_hops: int = field(default=0, metadata=rule(0, 5, "proxies"))
    # The instance folder: $IDENTITY_SERVICE_INSTANCE, never the file.
    instance_path: Path = field(default=Path("instance"), metadata=NOT_A_KEY)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)


@dataclass(frozen=True)
class Settings:
    """Everything the service needs, loaded and validated once."""

    source: str = field(metadata=NOT_A_KEY)  # the file's name, for messages
    service: ServiceSettings
    workspaces: Mapping[str, WorkspaceSettings]
    default_workspace: str
    warnings: tuple[str, ...] = field(default=(), metadata=NOT_A_KEY)

    def secrets(self) -> Iterator[SecretSource]:
        """Every secret the settings name: Messenger secrets, session keys and their fallbacks.

        Found by type, in field order, so a secret field added to any settings
        class is resolved and refreshed with the others.
        """
        return _secrets_in(tuple(self.workspaces.values()))

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


def _secrets_in(value: object) -> Iterator[SecretSource]:
    if isinstance(value, SecretSource):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _secrets_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for spec in dataclasses.fields(value):
            yield from _secrets_in(getattr(value, spec.name))
