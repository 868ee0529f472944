"""One exception tree for the whole service, and the closed sets of refusal reasons.

Each class knows what its HTTP answer carries: status, title, the problem
type's slug, its headers (`WWW-Authenticate`, `Retry-After`) and its extra
problem members (`reason`, `errors`), so that `http/problems.py` turns any of
them into problem+json without knowing the kinds, and the domain modules never
import Flask. Leaves carry their data as attributes (as pyjwt does), and no
message ever contains a secret, a token or an attribute value.

A refusal's reason is a fixed label sent to the client, counted in metrics
and written in audit events, so each set of them is a `Literal` type here:
mypy refuses a reason outside it, and tests/test_errors.py holds the lists in
docs/ and /openapi.json equal to these sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

AuthReason = Literal[
    "missing_credentials",
    "unsupported_scheme",
    "method_not_accepted",
    "malformed",
    "too_large",
    "forbidden_header",
    "algorithm",
    "unknown_key",
    "bad_signature",
    "missing_claim",
    "invalid_claim",
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "browser_credential",
]
"""Why a credential was refused (401)."""

OriginReason = Literal["origin", "fetch_site"]
"""Why a cookie request was refused for where it came from (403)."""

AttributeRule = Literal[
    "type", "length", "unicode", "range", "finite", "iso", "millis", "negative", "future"
]
"""The Intercom rule an attribute value broke (identity_attributes_dropped_total's `reason`)."""

RateLimitScope = Literal["client", "user"]
"""What a rate limit counts: requests per client address, or tokens per user."""

AUTH_REASONS: frozenset[str] = frozenset(get_args(AuthReason))
ORIGIN_REASONS: frozenset[str] = frozenset(get_args(OriginReason))
REFUSAL_REASONS: frozenset[str] = AUTH_REASONS | ORIGIN_REASONS  # a problem's `reason`
ATTRIBUTE_RULES: frozenset[str] = frozenset(get_args(AttributeRule))

# The realm of the Bearer challenge (RFC 6750 §3).
REALM = "identity_service"


class IdentityServiceError(Exception):
    """Root of every error this package raises on purpose."""

    status: int = 500
    title: str = "Internal error"
    slug: str = "internal-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def public_detail(self) -> str:
        """The detail an HTTP client is told; `detail` is for logs and the command line."""
        return self.detail

    @property
    def headers(self) -> Mapping[str, str]:
        """HTTP headers the answer carries besides the problem's own."""
        return {}

    @property
    def members(self) -> Mapping[str, Any]:
        """Problem members beyond type, title, status, detail and request_id (RFC 9457 §3.2)."""
        return {}


@dataclass(frozen=True)
class ConfigProblem:
    """One problem found in a configuration file: where, what, and the fix."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(IdentityServiceError):
    """The configuration cannot be used; lists every problem found, not only the first."""

    title = "Configuration error"
    slug = "configuration-error"

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} configuration {noun}:\n{lines}")


@dataclass(frozen=True)
class AttributeProblem:
    """Why one attribute was refused: its name and a reason, never its value."""

    name: str
    reason: str
    # The rule that failed, a metric label; None for a field of the request body, not counted.
    kind: AttributeRule | None = None

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


class InvalidAttributesError(IdentityServiceError):
    """Minting refused under `on_invalid = "reject"`: lists every invalid attribute."""

    status = 422
    title = "Invalid user attributes"
    slug = "invalid-attributes"

    def __init__(self, problems: Sequence[AttributeProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} invalid attribute(s): {listed}")

    @property
    def members(self) -> Mapping[str, Any]:
        return {"errors": listed_problems(self.problems)}


class InvalidUserIdError(IdentityServiceError):
    """The user id is missing, empty or of a type Intercom cannot take."""

    status = 422
    title = "Invalid user id"
    slug = "invalid-user-id"


class UnknownWorkspaceError(IdentityServiceError):
    """The request names a workspace that is not configured."""

    status = 404
    title = "Unknown workspace"
    slug = "unknown-workspace"


class PlatformNotServedError(IdentityServiceError):
    """The request names a platform its workspace has no Messenger secret for (404)."""

    status = 404
    title = "Platform not served"
    slug = "platform-not-served"

    def __init__(self, detail: str, platform: str, served: Sequence[str]) -> None:
        super().__init__(detail)
        self.platform = platform
        self.served = tuple(served)

    @property
    def members(self) -> Mapping[str, Any]:
        return {"platforms": list(self.served)}  # what the workspace does serve


class SecretUnavailableError(IdentityServiceError):
    """A configured secret cannot be read or is too weak; its value is never shown."""

    status = 503
    title = "Secret unavailable"
    slug = "secret-unavailable"


class AuthenticationError(IdentityServiceError):
    """The request's credential is missing or fails verification (401).

    `reason` is a short fixed label for metrics and audit events (for example
    `expired`, `bad_signature`, `unknown_key`); `detail` is safe to show the
    client and never echoes the credential.
    """

    status = 401
    title = "Authentication required"
    slug = "unauthenticated"

    def __init__(
        self, reason: AuthReason, detail: str, methods: Sequence[str] = ("bearer",)
    ) -> None:
        super().__init__(detail)
        self.reason: AuthReason = reason
        self.methods = tuple(methods)

    @property
    def headers(self) -> Mapping[str, str]:
        # One challenge for all methods: a cookie method has no standard scheme, so
        # only Bearer is advertised, with RFC 6750's error codes.
        code = "invalid_request" if self.reason == "missing_credentials" else "invalid_token"
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="{code}"'}

    @property
    def members(self) -> Mapping[str, Any]:
        return {"reason": self.reason}


class ForbiddenOriginError(IdentityServiceError):
    """A cookie-authenticated request from an origin that is not allowed (403)."""

    status = 403
    title = "Origin not allowed"
    slug = "forbidden-origin"

    def __init__(self, detail: str, reason: OriginReason = "origin") -> None:
        super().__init__(detail)
        self.reason: OriginReason = reason

    @property
    def members(self) -> Mapping[str, Any]:
        return {"reason": self.reason}


class RateLimitedError(IdentityServiceError):
    """Too many token requests (429); `retry_after` is whole seconds."""

    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after: int, scope: RateLimitScope) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.scope: RateLimitScope = scope

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ProfileUnavailableError(IdentityServiceError):
    """The profile database cannot be reached and the policy is `fail` (503)."""

    status = 503
    title = "Profile source unavailable"
    slug = "profile-unavailable"


class KeySourceUnavailableError(IdentityServiceError):
    """The identity provider's keys cannot be fetched and none are cached (503)."""

    status = 503
    title = "Identity provider keys unavailable"
    slug = "idp-keys-unavailable"


class InvalidRequestError(IdentityServiceError):
    """The request body does not match the API schema (422); lists every bad field."""

    status = 422
    title = "Invalid request"
    slug = "invalid-request"

    def __init__(self, problems: Sequence[AttributeProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(f"the request body is invalid: {listed}")

    @property
    def members(self) -> Mapping[str, Any]:
        return {"errors": listed_problems(self.problems)}


class UnsafeSnippetError(IdentityServiceError, ValueError):
    """A value cannot be written into the page safely (bad nonce, URL or setting).

    A bug in the host's code or configuration, hence a 500; still a ValueError,
    which is what a template helper given a bad argument raises. The message
    (which quotes the refused value) is for the host's log, traceback and the
    command line; a client that meets one in a response learns only that the
    page failed.
    """

    @property
    def public_detail(self) -> str:
        return "the page could not be rendered safely; the server log says why"


class IntercomApiError(IdentityServiceError):
    """A call to Intercom's REST API failed (`intercom check` / `sync`); `detail` says why
    and what to do. Only the commands meet it, never a request (a 500 if one did)."""

    def __init__(self, detail: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.http_status = status  # Intercom's HTTP status, when it answered
        self.code = code  # Intercom's error code (errors[0].code), when it sent one


class IntercomUnreachableError(IntercomApiError):
    """No answer from Intercom: connection refused, name not resolved, TLS or deadline."""


class IntercomOutcomeUnknownError(IntercomApiError):
    """A change was sent to Intercom and no answer came: it may or may not be applied."""


class IntercomResponseError(IntercomApiError):
    """Intercom answered, but not with the documented shape."""


def listed_problems(problems: Sequence[AttributeProblem]) -> list[dict[str, str]]:
    """The `errors` member: each field's name and reason, never its value."""
    return [{"name": p.name, "reason": p.reason} for p in problems]
