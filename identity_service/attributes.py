"""The attribute policy: only whitelisted attributes, each valid by Intercom's rules.

`AttributePolicy.clean(raw)` turns a user's raw facts into the attributes that
may be signed. Anything not whitelisted is ignored (never copied). Each value
is checked by the plain function of its type in `CHECKS`; under `drop` an
invalid attribute is left out with a warning, under `reject` minting fails
listing every invalid attribute. Messages name the attribute and the reason,
never the value, because values are user data and end up in logs.

The checks were marshmallow fields whose `deserialize` skipped marshmallow's
own, so a `validate=` given to one was silently ignored; going through
marshmallow's path instead doubled the cost of `clean` on the token hot path
(42k -> 86k instructions for six attributes; these functions: 32k). A plain
function of the value has no option to ignore: every rule is in its body.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from identity_service.errors import AttributeProblem, AttributeRule, InvalidAttributesError
from identity_service.intercom import MAX_STRING_CHARS, AttributeType
from identity_service.settings import AttributeSpec, OnInvalid
from identity_service.text import is_unicode_text

MAX_SAFE_INTEGER = 2**53  # beyond this a JavaScript number loses precision
# A Unix time in seconds reaches 1e11 only in the year 5138; anything at or above
# is almost certainly milliseconds (Date.now() in JavaScript), a common mistake.
MILLISECONDS_THRESHOLD = 100_000_000_000

AttributeValue = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a value cannot be signed: `kind` is the rule (a metric label), `reason` says it."""

    kind: AttributeRule
    reason: str


_OUT_OF_RANGE = "is outside +/- 2**53, which JavaScript cannot represent exactly"


def check_string(value: Any) -> str | Refusal:
    """A string of at most 255 characters (code points, not bytes) that UTF-8 can encode."""
    if not isinstance(value, str):
        return Refusal("type", f"must be a string, got {_kind(value)}")
    if len(value) > MAX_STRING_CHARS:
        reason = f"is {len(value)} characters; Intercom keeps at most {MAX_STRING_CHARS}"
        return Refusal("length", reason)
    if not is_unicode_text(value):
        # json.loads accepts "\ud800"; it would pass here and crash the UTF-8 signing step.
        return Refusal("unicode", "is not valid Unicode text (it contains a lone surrogate)")
    return value


def check_integer(value: Any) -> int | Refusal:
    """An integer (an integral float or SQL NUMERIC too) within +/- 2**53."""
    value = _from_decimal(value)
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return Refusal("type", f"must be an integer, got {_kind(value)}")
    if abs(value) > MAX_SAFE_INTEGER:
        return Refusal("range", _OUT_OF_RANGE)
    return value


def check_number(value: Any) -> float | int | Refusal:
    """A finite number; an integer within +/- 2**53."""
    value = _from_decimal(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Refusal("type", f"must be a number, got {_kind(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return Refusal("finite", "must be a finite number (NaN and Infinity are not JSON)")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        return Refusal("range", _OUT_OF_RANGE)
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


def check_boolean(value: Any) -> bool | Refusal:
    """true or false, nothing that merely looks like one."""
    if not isinstance(value, bool):  # "yes", 1 and "true" are data bugs, not booleans
        return Refusal("type", f"must be true or false, got {_kind(value)}")
    return value


def check_date(value: Any) -> int | Refusal:
    """Unix seconds, from a number, a datetime, a date or an ISO-8601 string."""
    if isinstance(value, bool):
        return _refuse_date_type(value)
    if isinstance(value, datetime):
        return _seconds(_datetime_seconds(value), parsed=True)
    if isinstance(value, date):
        midnight = datetime(value.year, value.month, value.day)
        return _seconds(_datetime_seconds(midnight), parsed=True)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00", 1))
        except ValueError:
            return Refusal("iso", "is not an ISO-8601 date or datetime")
        return _seconds(_datetime_seconds(parsed), parsed=True)
    if isinstance(value, float):
        if not math.isfinite(value):
            return Refusal("finite", "must be a finite number of seconds")
        return _seconds(int(value))
    if isinstance(value, int):
        return _seconds(value)
    return _refuse_date_type(value)


def _refuse_date_type(value: Any) -> Refusal:
    return Refusal(
        "type",
        f"must be a date: Unix seconds, a datetime or an ISO-8601 string, got {_kind(value)}",
    )


def _seconds(seconds: int, *, parsed: bool = False) -> int | Refusal:
    if seconds >= MILLISECONDS_THRESHOLD:
        # Only a bare number can be milliseconds; a real date this far out is just wrong.
        if parsed:
            return Refusal("future", "is after the year 5138; check the date")
        return Refusal(
            "millis", "looks like milliseconds; Intercom dates are Unix seconds (divide by 1000)"
        )
    if seconds < 0:
        return Refusal("negative", "is before 1970; Intercom dates are positive Unix seconds")
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


Check = Callable[[Any], AttributeValue | Refusal]
# One plain function per type: the only place a type's rules are written.
CHECKS: Mapping[AttributeType, Check] = {
    "string": check_string,
    "integer": check_integer,
    "number": check_number,
    "boolean": check_boolean,
    "date": check_date,
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
    """A workspace's whitelist, compiled once into one check per attribute."""

    def __init__(self, specs: tuple[AttributeSpec, ...], on_invalid: OnInvalid) -> None:
        self.specs = specs
        self.on_invalid = on_invalid
        self.names = frozenset(s.name for s in specs)
        self._checks = tuple((s.name, CHECKS[s.type]) for s in specs)

    def clean(self, raw: Mapping[str, Any]) -> CleanAttributes:
        """Validate the whitelisted subset of `raw`; drop or reject what is invalid."""
        values: dict[str, AttributeValue] = {}
        problems: list[AttributeProblem] = []
        for name, check in self._checks:
            if name not in raw:
                continue
            value = raw[name]
            # null is how Intercom shows "Unknown", and "" means "clear this value": both
            # pass for every type.
            if value is None or (isinstance(value, str) and value == ""):
                values[name] = value
                continue
            checked = check(value)
            if isinstance(checked, Refusal):
                problems.append(AttributeProblem(name, checked.reason, checked.kind))
            else:
                values[name] = checked
        problems.sort(key=lambda p: p.name)
        if problems and self.on_invalid == "reject":
            raise InvalidAttributesError(problems)
        return CleanAttributes(values=values, dropped=tuple(problems))
