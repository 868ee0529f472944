"""The attribute policy: only whitelisted attributes, each valid by Intercom's rules.

`AttributePolicy.clean(raw)` turns a user's raw facts into the attributes that
may be signed. Anything not whitelisted is ignored (never copied). Values are
checked by marshmallow fields built from the whitelist, one per attribute;
under `drop` an invalid attribute is left out with a warning, under `reject`
minting fails listing every invalid attribute. Messages name the attribute and the reason,
never the value, because values are user data and end up in logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from marshmallow import ValidationError, fields

from identity_service.errors import AttributeProblem, AttributeRule, InvalidAttributesError
from identity_service.settings import AttributeSpec, OnInvalid
from identity_service.text import is_unicode_text

MAX_STRING_CHARS = 255
MAX_SAFE_INTEGER = 2**53  # beyond this a JavaScript number loses precision
# A Unix time in seconds reaches 1e11 only in the year 5138; anything at or above
# is almost certainly milliseconds (Date.now() in JavaScript), a common mistake.
MILLISECONDS_THRESHOLD = 100_000_000_000

AttributeValue = str | int | float | bool | None


class _IntercomField(fields.Field[Any]):
    """Base field: "" passes for every type, because Intercom reads it as "clear this value"."""

    def deserialize(
        self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any
    ) -> Any:
        if value is None and self.allow_none:
            return None  # null is how Intercom shows "Unknown"
        if isinstance(value, str) and value == "":
            return ""
        # Straight to the type's rules: these fields have no validators and are
        # never given a missing value, so marshmallow's wrapper around
        # `_deserialize` would add only its cost, on the token hot path.
        # tests/test_attributes.py holds this to marshmallow's own path.
        return self._deserialize(value, attr, data, **kwargs)

    def refuse(self, rule: AttributeRule, **kwargs: Any) -> _RuleError:
        """The error for a value that breaks `rule`: the field's message for it, and the rule."""
        return _RuleError(self.make_error(rule, **kwargs).messages, rule)


class _RuleError(ValidationError):
    """A value broke one of Intercom's rules; `rule` is the metric label naming it.

    Never leaves this module: `AttributePolicy.clean` turns it into an AttributeProblem.
    """

    def __init__(self, messages: Any, rule: AttributeRule) -> None:
        super().__init__(messages)
        self.rule: AttributeRule = rule


class _StrictString(_IntercomField):
    default_error_messages = {  # noqa: RUF012 (marshmallow's own convention)
        "type": "must be a string, got {kind}",
        "length": "is {length} characters; Intercom keeps at most 255",
        "unicode": "is not valid Unicode text (it contains a lone surrogate)",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.refuse("type", kind=_kind(value))
        if len(value) > MAX_STRING_CHARS:  # characters (code points), not bytes
            raise self.refuse("length", length=len(value))
        if not is_unicode_text(value):
            # json.loads accepts "\ud800"; it would pass here and crash the UTF-8 signing step.
            raise self.refuse("unicode")
        return value


class _StrictInteger(_IntercomField):
    default_error_messages = {  # noqa: RUF012
        "type": "must be an integer, got {kind}",
        "range": "is outside +/- 2**53, which JavaScript cannot represent exactly",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        value = _from_decimal(value)
        if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse("type", kind=_kind(value))
        if abs(value) > MAX_SAFE_INTEGER:
            raise self.refuse("range")
        return value


class _StrictNumber(_IntercomField):
    default_error_messages = {  # noqa: RUF012
        "type": "must be a number, got {kind}",
        "finite": "must be a finite number (NaN and Infinity are not JSON)",
        "range": "is outside +/- 2**53, which JavaScript cannot represent exactly",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float | int:
        value = _from_decimal(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.refuse("type", kind=_kind(value))
        if isinstance(value, float) and not math.isfinite(value):
            raise self.refuse("finite")
        if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
            raise self.refuse("range")
        # A driver's float subclass (numpy.float64...) becomes a plain float,
        # which every JSON encoder writes the same way.
        return float(value) if isinstance(value, float) else value


def _from_decimal(value: Any) -> Any:
    # SQL NUMERIC columns arrive as Decimal: an integral one is an int, any other a float
    # (JSON has one number type); NaN and Infinity fall through to the finiteness checks.
    if isinstance(value, Decimal):
        if value.is_nan():  # float() raises on a signalling NaN; both are refused as not finite
            return math.nan
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    return value


class _StrictBoolean(_IntercomField):
    default_error_messages = {"type": "must be true or false, got {kind}"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):  # "yes", 1 and "true" are data bugs, not booleans
            raise self.refuse("type", kind=_kind(value))
        return value


class _UnixSeconds(_IntercomField):
    default_error_messages = {  # noqa: RUF012
        "type": "must be a date: Unix seconds, a datetime or an ISO-8601 string, got {kind}",
        "iso": "is not an ISO-8601 date or datetime",
        "millis": "looks like milliseconds; Intercom dates are Unix seconds (divide by 1000)",
        "negative": "is before 1970; Intercom dates are positive Unix seconds",
        "finite": "must be a finite number of seconds",
        "future": "is after the year 5138; check the date",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.refuse("type", kind=_kind(value))
        if isinstance(value, datetime):
            return self._check(_datetime_seconds(value), parsed=True)
        if isinstance(value, date):
            midnight = datetime(value.year, value.month, value.day)
            return self._check(_datetime_seconds(midnight), parsed=True)
        if isinstance(value, str):
            text = value.strip()
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00", 1))
            except ValueError:
                raise self.refuse("iso") from None
            return self._check(_datetime_seconds(parsed), parsed=True)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self.refuse("finite")
            return self._check(int(value))
        if isinstance(value, int):
            return self._check(value)
        raise self.refuse("type", kind=_kind(value))

    def _check(self, seconds: int, *, parsed: bool = False) -> int:
        if seconds >= MILLISECONDS_THRESHOLD:
            # Only a bare number can be milliseconds; a real date this far out is just wrong.
            raise self.refuse("future" if parsed else "millis")
        if seconds < 0:
            raise self.refuse("negative")
        return seconds


def _datetime_seconds(value: datetime) -> int:
    # A naive datetime is taken as UTC: servers store UTC, and guessing the
    # machine's local zone would shift every date by hours.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(aware.timestamp())


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object (Intercom takes no nested data)"
    if isinstance(value, list | tuple | set):
        return "an array (Intercom takes no arrays)"
    return type(value).__name__


_FIELDS: Mapping[str, type[_IntercomField]] = {
    "string": _StrictString,
    "integer": _StrictInteger,
    "number": _StrictNumber,
    "boolean": _StrictBoolean,
    "date": _UnixSeconds,
}


@dataclass(frozen=True)
class CleanAttributes:
    """Attributes that may be signed, with warnings for the ones dropped."""

    values: Mapping[str, AttributeValue]
    dropped: tuple[AttributeProblem, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(f"attribute {p.name!r} dropped: {p.reason}" for p in self.dropped)


class AttributePolicy:
    """A workspace's whitelist, compiled once into one marshmallow field per attribute."""

    def __init__(self, specs: tuple[AttributeSpec, ...], on_invalid: OnInvalid) -> None:
        self.specs = specs
        self.on_invalid = on_invalid
        self.names = frozenset(s.name for s in specs)
        # allow_none: null is how Intercom shows "Unknown". The fields are called
        # one by one rather than through a Schema: the whitelist already decides
        # which keys count, and Schema.load's bookkeeping cost more than every
        # field's validation together on the token hot path.
        self._fields = tuple((s.name, _FIELDS[s.type](allow_none=True)) for s in specs)

    def clean(self, raw: Mapping[str, Any]) -> CleanAttributes:
        """Validate the whitelisted subset of `raw`; drop or reject what is invalid."""
        values: dict[str, AttributeValue] = {}
        problems: list[AttributeProblem] = []
        for name, field in self._fields:
            if name not in raw:
                continue
            try:
                values[name] = field.deserialize(raw[name])
            except _RuleError as exc:  # every refusal of these fields names its rule
                problems.append(AttributeProblem(name, "; ".join(_flatten(exc.messages)), exc.rule))
        problems.sort(key=lambda p: p.name)
        if problems and self.on_invalid == "reject":
            raise InvalidAttributesError(problems)
        return CleanAttributes(values=values, dropped=tuple(problems))


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, list):
        return [m for item in messages for m in _flatten(item)]
    if isinstance(messages, dict):
        return [m for item in messages.values() for m in _flatten(item)]
    return [str(messages)]
