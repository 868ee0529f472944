"""How a settings field is written in the TOML file: its keys, limits and value rule.

The settings dataclasses (settings.py) are the configuration's one schema:
each field's type and default are the key's, and its `metadata` (built with
`rule`) adds what a type cannot say: bounds, a check of the value, other TOML
names. The loader (config.py) walks these fields, and the documentation's key
tables are tested against them, so adding a key is one field in settings.py.

Nothing here reads files or the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_type_hints
from urllib.parse import urlsplit

Check = Callable[[Any], "str | None"]  # the problem with a value, or None when it is good

_METADATA = "config"


@dataclass(frozen=True)
class Rule:
    """What the loader checks about one key beyond its type."""

    low: float | None = None  # inclusive bounds of a number
    high: float | None = None
    unit: str = ""  # "seconds", "bytes": for messages
    check: Check | None = None  # a rule on the whole value
    each: Check | None = None  # a rule on each item of a list, reported at its index
    missing: str | None = None  # the message for a required key that is absent
    keys: tuple[str, ...] | None = None  # the TOML keys, when not the field's own name
    min_bytes: int = 0  # a secret's fewest bytes

    def problem(self, value: Any) -> str | None:
        """What is wrong with a value of the right type, or None."""
        if self.low is not None and self.high is not None and not self.low <= value <= self.high:
            return (
                f"must be between {number(self.low)} and {number(self.high)} {self.unit}, "
                f"got {number(value)}"
            ).replace("  ", " ")
        return self.check(value) if self.check is not None else None


def rule(
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
    *,
    check: Check | None = None,
    each: Check | None = None,
    missing: str | None = None,
    keys: tuple[str, ...] | None = None,
    min_bytes: int = 0,
) -> Mapping[str, Rule]:
    """`metadata` for a settings field: `field(default=30, metadata=rule(0, 300, "seconds"))`."""
    return {_METADATA: Rule(low, high, unit, check, each, missing, keys, min_bytes)}


# `metadata` for a field the file never sets (the loader fills it in: a workspace's key).
NOT_A_KEY: Mapping[str, None] = {_METADATA: None}


def field_rule(field: dataclasses.Field[Any]) -> Rule:
    """The field's rule (an empty one when it has none)."""
    return field.metadata.get(_METADATA) or Rule()


def is_key(field: dataclasses.Field[Any]) -> bool:
    return not (_METADATA in field.metadata and field.metadata[_METADATA] is None)


def toml_keys(cls: type) -> tuple[str, ...]:
    """Every key a TOML table of `cls` may hold, in the order of its fields."""
    keys: list[str] = []
    for field in dataclasses.fields(cls):
        if is_key(field):
            keys.extend(field_rule(field).keys or (field.name,))
    return tuple(keys)


def tables(root: type) -> list[type]:
    """`root` and every settings class its keys hold (a table, a list of tables), each once.

    A field whose rule renames its TOML keys (`secret_env`...) is a leaf: its
    type (SecretSource) is what the loader makes of them, not a table.
    """
    found = [root]
    for cls in found:
        hints = get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if is_key(field) and field_rule(field).keys is None:
                found.extend(t for t in _classes(hints[field.name]) if t not in found)
    return found


def _classes(kind: Any) -> list[type]:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return [kind]
    return [c for arg in get_args(kind) for c in _classes(arg)]


def default(field: dataclasses.Field[Any]) -> Any:
    """The field's default, or dataclasses.MISSING when the key is required."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def number(value: float) -> str:
    """A number as the documentation writes it: 86400, 0.25 (never 8.64e+04)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# -- value rules ------------------------------------------------------------------------


def non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def app_id(value: str) -> str | None:
    if not value or not value.isascii() or not value.isalnum():
        return "must be your Intercom app id (letters and digits, e.g. 'ql8el0gn')"
    return None


def https_url(value: str) -> str | None:
    parts = urlsplit(value)
    local = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        return "must be an https:// URL (plain http is allowed only for 127.0.0.1 / localhost)"
    if not parts.hostname:
        return "has no host: write https://host[:port][/path]"
    if "@" in parts.netloc:
        # A credential in a URL is printed wherever the URL is named (errors, the
        # check's report, a browser's page for api_base). Never quoted back here.
        return "must hold no user info (user:password@); put credentials where secrets go"
    return None


def rest_base(value: str) -> str | None:
    """Intercom's REST host: request paths are appended to it, so no query or fragment."""
    if problem := https_url(value):
        return problem
    parts = urlsplit(value)
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return "must have no query or fragment: request paths are appended to it"
    return None


def rate_limit(value: str) -> str | None:
    if not value:
        return None  # empty: this scope is not limited
    # Imported here: the `limits` library is needed only to check and enforce a limit.
    from identity_service.ratelimit import parse_limit

    try:
        parse_limit(value)
    except ValueError as exc:
        return f'{exc}; write one, e.g. "30/minute" or "5 per second"'
    return None


def storage_url(value: str) -> str | None:
    if value.startswith(("memory://", "redis://", "rediss://")):
        return None
    return "must be memory:// (one process) or redis://host:port/db (shared by every instance)"


# The databases a profile source supports (profile.py has each one's pool and timeouts).
PROFILE_BACKENDS = ("postgresql", "sqlite")


def profile_backend(url: str) -> str | None:
    """The problem with the profile URL's kind of database, or None (postgresql+psycopg: ok)."""
    backend = url.partition("://")[0].partition("+")[0] if "://" in url else url
    if backend in PROFILE_BACKENDS:
        return None
    return f"profile url: {backend!r} is not supported; use postgresql+psycopg:// or sqlite:///"


def cors_origin(origin: str) -> str | None:
    """An exact origin, or "*" (which the loader refuses next to cookie authentication)."""
    return None if origin == "*" else exact_origin(origin)


def exact_origin(origin: str) -> str | None:
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"{origin!r} is not an origin; write scheme://host[:port]"
    if parts.path or parts.query or parts.fragment or origin.endswith("/"):
        return f"{origin!r} has a path; an origin is only scheme://host[:port]"
    # Compared exactly with the Origin header, which browsers serialise in
    # lowercase and without the scheme's default port: any other spelling
    # would never match a browser, so it is refused rather than left dead.
    canonical = f"{parts.scheme}://{parts.netloc.lower()}"
    if not _ORIGIN.fullmatch(canonical):
        # Origins are compared exactly. flask-cors would compile an entry with
        # *, ?, [ or ( as an unanchored regex that also matches attacker hosts.
        return f"{origin!r}: list each origin exactly (no wildcards, user info or patterns)"
    try:
        port = parts.port
    except ValueError:
        return f"{origin!r}: the port must be a number from 1 to 65535"
    if port == _DEFAULT_PORTS[parts.scheme]:
        canonical = canonical.rpartition(":")[0]
    if origin != canonical:
        return f"{origin!r}: write {canonical!r}, exactly as browsers send the Origin header"
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(
    r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
