"""Grade a loaded configuration for security: findings by severity, each with a stable id.

`load_settings` refuses configurations that cannot work; this report looks at
ones that work but are weaker than they could be (long token lifetimes, plain
http origins, development secrets, rate limits that do not hold across
workers...), and reminds the operator of what only the Intercom side can
enforce. Each finding names the key path to change and says why. The report is
plain data: `check-config --security` renders it as text or JSON, and any
`high` finding makes that command exit non-zero.

No Flask here, and no clock: the same settings always give the same report.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from identity_service.auth.algorithms import KEY_TYPES
from identity_service.errors import SecretUnavailableError
from identity_service.intercom import MESSENGER_SECURITY_SETTINGS
from identity_service.secrets import SecretSource
from identity_service.settings import (
    MOBILE_PLATFORMS,
    PLATFORMS,
    BearerAuthSettings,
    ProfileSettings,
    ServiceSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
    platform_path,
)

Severity = Literal["high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
REPORT_FORMAT = 1

# Token lifetimes: a leaked Messenger token impersonates its user until it expires.
LIFETIME_LOW = 3600  # above one hour: low
LIFETIME_MEDIUM = 4 * 3600  # above four hours: medium
# Bearer leeway: every expired IdP token is accepted this much longer.
LEEWAY_LOW = 60
LEEWAY_MEDIUM = 120
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Finding:
    """One observation: a stable `id` per check, where to change it, and why."""

    id: str
    severity: Severity
    path: str
    reason: str


@dataclass(frozen=True)
class SecurityReport:
    """Every finding for one configuration, in a stable order (severity, id, path)."""

    source: str
    findings: tuple[Finding, ...]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    @property
    def passed(self) -> bool:
        """No high finding: the command's exit status is 0."""
        return self.counts["high"] == 0

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "total": len(self.findings), "passed": self.passed}

    def to_json(self) -> str:
        document = {
            "format": REPORT_FORMAT,
            "source": self.source,
            "summary": self.summary(),
            "findings": [asdict(f) for f in self.findings],
        }
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)

    def to_text(self) -> str:
        lines = [f"security report for {self.source}"]
        for finding in self.findings:
            lines.append(f"{finding.severity.upper():<7} {finding.id}  {finding.path}")
            lines.append(f"        {finding.reason}")
        counts = self.counts
        verdict = "PASS" if self.passed else "FAIL: fix every high finding"
        tally = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
        lines.append(f"summary: {tally} -> {verdict}")
        return "\n".join(lines)


def assess(settings: Settings, workers: int = 2) -> SecurityReport:
    """Grade `settings` as they would run under `workers` processes (`serve --workers`)."""
    found = [
        *_service(settings.service, workers, _has_session(settings)),
        *(f for ws in settings.workspaces.values() for f in _workspace(ws)),
        *_load_warnings(settings),
    ]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(found, key=lambda f: (rank[f.severity], f.id, _natural(f.path)))
    return SecurityReport(settings.source, tuple(ordered))


# -- service-wide -----------------------------------------------------------------


def _service(service: ServiceSettings, workers: int, cookies: bool) -> Iterator[Finding]:
    for index, origin in enumerate(service.cors_origins):
        path = f"service.cors_origins[{index}]"
        if origin == "*" and cookies:
            yield Finding(
                "cors-wildcard",
                "high",
                path,
                '"*" with cookie authentication lets any website mint tokens for its logged-in '
                "visitors; list the product's exact origins",
            )
        elif origin == "*":
            yield Finding(
                "cors-wildcard",
                "medium",
                path,
                "any website may call the token endpoint from its visitors' browsers (with a "
                "bearer token only); list the product's exact origins",
            )
        elif urlsplit(origin).scheme == "http":
            yield _http_origin("cors-http-origin", path, origin, remote="medium")
    if service.proxy_hops > 0 and not service.hsts:
        yield Finding(
            "hsts-off-behind-proxy",
            "medium",
            "service.hsts",
            f"proxy_hops = {service.proxy_hops} says a proxy terminates TLS in front of the "
            "service, but no Strict-Transport-Security header is sent: a first visit over "
            "http can be downgraded; set hsts = true once every client uses https",
        )
    yield from _rate_limit(service, workers)


def _rate_limit(service: ServiceSettings, workers: int) -> Iterator[Finding]:
    limits = service.rate_limit
    if not limits.enabled:
        yield Finding(
            "rate-limit-disabled",
            "medium",
            "service.rate_limit.enabled",
            "rate limiting is off: nothing bounds token minting per user, nor the "
            "signature-verification work an anonymous client can cause",
        )
        return
    for scope, value, what in (
        ("per_client", limits.per_client, "signature-verification work per client address"),
        ("per_user", limits.per_user, "how many tokens one user can mint"),
    ):
        if not value:
            yield Finding(
                "rate-limit-scope-off",
                "medium",
                f"service.rate_limit.{scope}",
                f"empty, so this scope is not limited: nothing bounds {what}",
            )
    memory = limits.storage_url.startswith("memory://")
    if memory and workers > 1:
        yield Finding(
            "rate-limit-memory-workers",
            "medium",
            "service.rate_limit.storage_url",
            f"memory:// counts in each process: with {workers} workers a client gets up to "
            f"{workers}x the configured limits; use redis:// shared by every worker and host",
        )
    if not memory and limits.on_storage_error == "open":
        yield Finding(
            "rate-limit-fails-open",
            "info",
            "service.rate_limit.on_storage_error",
            "when the rate-limit storage is unreachable requests are let through unlimited "
            '(availability first); choose "closed" to refuse them instead',
        )


def _load_warnings(settings: Settings) -> Iterator[Finding]:
    # The loader's warnings ("<key path>: <message>") belong in the same report.
    for warning in settings.warnings:
        path, _, message = warning.partition(": ")
        yield Finding("config-warning", "info", path, message or path)


def _has_session(settings: Settings) -> bool:
    return any(
        isinstance(method, SessionAuthSettings)
        for ws in settings.workspaces.values()
        for method in ws.auth
    )


# -- per workspace ----------------------------------------------------------------


def _workspace(ws: WorkspaceSettings) -> Iterator[Finding]:
    base = f"workspaces.{ws.key}"
    for platform, source in ws.own_secrets.items():
        what = "the Messenger secret" if platform == "web" else f"the {platform} Messenger secret"
        yield from _secret(source, f"{platform_path(ws.key, platform)}.secret", what)
    yield from _platforms(ws)
    lifetime = ws.token_lifetime
    if lifetime > LIFETIME_LOW:
        yield Finding(
            "token-lifetime-long",
            "medium" if lifetime > LIFETIME_MEDIUM else "low",
            f"{base}.token_lifetime",
            f"{lifetime} s: a leaked Messenger token impersonates its user in the Messenger "
            f"that long; the browser script refreshes tokens, so {LIFETIME_LOW} s or less "
            "costs nothing",
        )
    yield Finding(
        "intercom-enforce-security",
        "info",
        base,
        f'in Intercom app {ws.app_id}, {MESSENGER_SECURITY_SETTINGS}: "Enforce messenger '
        'security" must be on, or unsigned updates are still accepted (this service cannot '
        "check it)",
    )
    for index, spec in enumerate(ws.attributes):
        if spec.is_standard:
            continue
        yield Finding(
            "cda-prevent-updates",
            "info",
            f"{base}.attributes[{index}]",
            f'"{spec.name}" is signed, but only Intercom can stop the browser from changing '
            f'it: turn on "Prevent updates via the Messenger" for this attribute (this '
            "service cannot check it)",
        )
    for index, method in enumerate(ws.auth):
        path = f"{base}.auth[{index}]"
        if isinstance(method, BearerAuthSettings):
            yield from _bearer(method, path)
        else:
            yield from _session(method, path)
    if ws.profile is not None:
        yield from _profile(ws.profile, f"{base}.profile")


def _platforms(ws: WorkspaceSettings) -> Iterator[Finding]:
    """Which platforms a workspace serves, and with which secrets."""
    served = ws.secrets
    mobile = [p for p in served if p in MOBILE_PLATFORMS]
    if not mobile:
        return  # a browser-only workspace, as every workspace was before platforms
    for platform in PLATFORMS:
        if platform not in served:
            yield Finding(
                "platform-not-served",
                "info",
                platform_path(ws.key, platform),
                f"{platform} is not served (no secret of its own, no same_secret_as): its "
                "token requests get 404 platform-not-served; add it if the product has such "
                "an app",
            )
    for platform in served:
        owner = ws.shared_with(platform)
        if owner is not None:
            yield Finding(
                "platform-secret-shared",
                "info",
                f"{platform_path(ws.key, platform)}.same_secret_as",
                f"{platform} tokens are signed with the {owner} secret, as configured: right "
                f"when that Intercom key is enabled for both; rotating it rotates both",
            )
    own = list(ws.own_secrets.items())
    for index, (later, source) in enumerate(own):
        for earlier, other in own[:index]:
            if _same_value(source, other):
                yield Finding(
                    "platform-secret-equal",
                    "medium",
                    f"{platform_path(ws.key, later)}.secret_{source.kind}",
                    f"holds the same value as the {earlier} secret, configured separately: if "
                    "one Intercom key is enabled for both, say so with "
                    f'same_secret_as = "{earlier}" (one place to rotate); otherwise one of them '
                    "is the other platform's key",
                )
    yield Finding(
        "mobile-enforce-rollout",
        "info",
        f"workspaces.{ws.key}",
        f"serves {' and '.join(mobile)}: ship app versions that call setUserJwt before turning "
        'on "Enforce messenger security"; Intercom warns that enforcing breaks app versions '
        "that send no JWT",
    )


def _same_value(one: SecretSource, other: SecretSource) -> bool:
    # Compared, never shown. Values were read when the configuration was loaded.
    try:
        first, second = one.current(), other.current()
    except SecretUnavailableError:
        return False
    return first is not None and second is not None and hmac.compare_digest(first, second)


def _bearer(method: BearerAuthSettings, path: str) -> Iterator[Finding]:
    if method.leeway > LEEWAY_LOW:
        yield Finding(
            "bearer-leeway-large",
            "medium" if method.leeway > LEEWAY_MEDIUM else "low",
            f"{path}.leeway",
            f"{method.leeway} s: every expired IdP token is still accepted that long; "
            f"clock skew between synchronised servers needs {LEEWAY_LOW} s at most",
        )
    # A symmetric algorithm is not graded here: the loader refuses it and so does the
    # bearer authenticator, for settings built in code, so no report could ever show it.
    families = sorted({KEY_TYPES[a] for a in method.algorithms if a in KEY_TYPES})
    if len(families) > 1:
        yield Finding(
            "bearer-algorithms-mixed",
            "medium",
            f"{path}.algorithms",
            f"algorithms for several key types ({', '.join(families)}): an IdP signs with one; "
            "every extra family is verification code an attacker can aim at; list only the "
            "IdP's algorithm (e.g. RS256)",
        )
    if method.jwks_url is not None and urlsplit(method.jwks_url).scheme == "http":
        yield Finding(
            "jwks-http",
            "medium",
            f"{path}.jwks_url",
            "the IdP's signing keys are fetched over plain http: whoever can alter that "
            "traffic can substitute keys and sign any token; use https (http is for local "
            "tests only)",
        )


def _session(method: SessionAuthSettings, path: str) -> Iterator[Finding]:
    yield from _secret(method.secret, f"{path}.secret", "the product's session key")
    kinds: dict[str, int] = {}
    for source in method.fallback_secrets:
        index = kinds.get(source.kind, 0)
        kinds[source.kind] = index + 1
        # The loader lists fallback_secret_envs, then fallback_secret_files.
        key = f"{path}.fallback_secret_{'envs' if source.kind == 'env' else 'files'}[{index}]"
        yield from _secret(source, key, "a previous session key", prefixed=False)
        yield Finding(
            "session-fallback-key",
            "info",
            key,
            "cookies signed with this previous key are still accepted; remove it once every "
            f"session signed with it has expired (max_age = {method.max_age} s)",
        )
    if not method.allowed_origins:
        yield Finding(
            "session-same-origin-only",
            "info",
            f"{path}.allowed_origins",
            "empty: cookie requests are accepted only when the browser states "
            "Sec-Fetch-Site: same-origin; a product page on another origin gets 403",
        )
    for index, origin in enumerate(method.allowed_origins):
        if urlsplit(origin).scheme == "http":
            yield _http_origin(
                "session-origin-http", f"{path}.allowed_origins[{index}]", origin, remote="high"
            )


def _profile(profile: ProfileSettings, path: str) -> Iterator[Finding]:
    url = make_url(profile.url)
    if url.password or {"password", "passfile"} & set(url.query):
        yield Finding(
            "profile-url-password",
            "high",
            f"{path}.url",
            "the database password is written in the configuration file; use a "
            "password-less login (peer/cert), or libpq's PGPASSFILE / PGPASSWORD",
        )
    if profile.on_unavailable == "omit":
        yield Finding(
            "profile-on-unavailable",
            "low",
            f"{path}.on_unavailable",
            '"omit": while the database is down, tokens carry no profile attributes and '
            "Intercom keeps the last signed values, so targeting may use stale facts; "
            'choose "fail" (503) if an attribute gates anything that matters',
        )
    else:
        yield Finding(
            "profile-on-unavailable",
            "info",
            f"{path}.on_unavailable",
            '"fail": while the database is down the token endpoint answers 503 and the '
            "Messenger cannot start for logged-in users",
        )


# -- shared checks ----------------------------------------------------------------


def _secret(
    source: SecretSource, path: str, what: str, *, prefixed: bool = True
) -> Iterator[Finding]:
    """Where a secret comes from; `path` is `...secret` and gets `_env`/`_file`/`_dev` added."""
    key = f"{path}_{source.kind}" if prefixed else path
    if source.kind == "dev":
        yield Finding(
            "secret-dev",
            "high",
            key,
            f"{what} is a generated development secret that protects nothing; configure "
            "secret_file (or secret_env) with a real one",
        )
    elif source.kind == "env":
        yield Finding(
            "secret-env",
            "low",
            key,
            f"{what} comes from ${source.reference}: environment variables reach child "
            "processes, /proc/<pid>/environ and crash reports, and rotating one needs a "
            "restart; prefer secret_file (re-read when it changes)",
        )
    else:
        try:
            mode = os.stat(source.reference).st_mode
        except OSError:
            return  # it was readable at load time; readiness reports it if it vanished
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            yield Finding(
                "secret-file-permissions",
                "medium",
                key,
                f"{what} file is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
                "chmod 600 it, owned by the service's user",
            )


def _http_origin(check: str, path: str, origin: str, remote: Severity) -> Finding:
    if _is_loopback(urlsplit(origin).hostname or ""):
        return Finding(
            check,
            "low",
            path,
            f"{origin} is plain http on this machine: fine for development, never in production",
        )
    return Finding(
        check,
        remote,
        path,
        f"{origin} is plain http: anyone on the network path can inject script into that "
        "origin and have it fetch tokens for the visitor; use https",
    )


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _natural(path: str) -> tuple[tuple[int, str], ...]:
    # attributes[2] before attributes[10]: numbers compare as numbers.
    return tuple(
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", path)
    )
