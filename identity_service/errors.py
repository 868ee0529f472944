"""One exception tree for the whole service.

Each class knows the HTTP status and title it maps to, so that `problems.py`
is the only place that turns an error into a response, and the domain modules
never import Flask. Leaves carry their data as attributes (as pyjwt does), and
no message ever contains a secret, a token or an attribute value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class IdentityServiceError(Exception):
    """Root of every error this package raises on purpose."""

    status: int = 500
    title: str = "Internal error"
    slug: str = "internal-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
    kind: str = "invalid"  # a fixed label (type, length, millis, ...) for metrics

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

    def __init__(self, reason: str, detail: str, methods: Sequence[str] = ("bearer",)) -> None:
        super().__init__(detail)
        self.reason = reason
        self.methods = tuple(methods)


class ForbiddenOriginError(IdentityServiceError):
    """A cookie-authenticated request from an origin that is not allowed (403)."""

    status = 403
    title = "Origin not allowed"
    slug = "forbidden-origin"

    def __init__(self, detail: str, reason: str = "origin") -> None:
        super().__init__(detail)
        self.reason = reason


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
