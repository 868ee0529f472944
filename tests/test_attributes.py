"""AttributePolicy: only whitelisted attributes, each valid by Intercom's value rules."""

from __future__ import annotations

import inspect
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import fields

from identity_service.attributes import CHECKS, AttributePolicy
from identity_service.errors import AttributeProblem, InvalidAttributesError
from identity_service.intercom import AttributeType
from identity_service.settings import AttributeSpec, OnInvalid

NAMES: dict[AttributeType, str] = {
    "string": "plan",
    "integer": "teammates",
    "number": "score",
    "boolean": "is_admin",
    "date": "last_order_at",
}
TYPES: list[AttributeType] = list(NAMES)
SPECS = tuple(AttributeSpec(name, type_, profile=name) for type_, name in NAMES.items())

# 2024-05-01T10:00:00Z, and midnight UTC of the same day.
MAY_1_10H = 1_714_557_600
MAY_1_MIDNIGHT = 1_714_521_600
EMOJI = "\N{GRINNING FACE}"


def policy(on_invalid: OnInvalid = "drop", specs: tuple[AttributeSpec, ...] = SPECS) -> Any:
    return AttributePolicy(specs, on_invalid)


def clean_one(type_: AttributeType, value: Any) -> tuple[dict[str, Any], list[AttributeProblem]]:
    result = policy().clean({NAMES[type_]: value})
    return dict(result.values), list(result.dropped)


VALID: list[tuple[AttributeType, Any, Any]] = [
    # strings: at most 255 characters (code points), not bytes
    ("string", "pro", "pro"),
    ("string", "a" * 255, "a" * 255),
    ("string", EMOJI * 255, EMOJI * 255),  # 1020 UTF-8 bytes, 255 characters
    ("string", "\u00e9" * 255, "\u00e9" * 255),
    ("string", "https://example.com/account/42", "https://example.com/account/42"),
    # integers: finite, within +/- 2**53, never a boolean
    ("integer", 0, 0),
    ("integer", -7, -7),
    ("integer", 2**53, 2**53),
    ("integer", -(2**53), -(2**53)),
    ("integer", 3.0, 3),  # an integral float from a database column becomes an int
    # numbers
    ("number", 1.5, 1.5),
    ("number", 0, 0),
    ("number", -2.25, -2.25),
    ("number", 2**53, 2**53),
    ("number", 1e300, 1e300),
    # booleans
    ("boolean", True, True),
    ("boolean", False, False),
    # dates: Unix seconds
    ("date", 1_700_000_000, 1_700_000_000),
    ("date", 0, 0),
    ("date", 99_999_999_999, 99_999_999_999),  # the last value that is not milliseconds
    ("date", 1_700_000_000.75, 1_700_000_000),
    ("date", "2024-05-01T12:00:00+02:00", MAY_1_10H),
    ("date", "2024-05-01T10:00:00Z", MAY_1_10H),
    ("date", "2024-05-01T10:00:00.999Z", MAY_1_10H),
    ("date", "2024-05-01T10:00:00", MAY_1_10H),  # naive ISO string: UTC
    ("date", " 2024-05-01T10:00:00Z ", MAY_1_10H),
    ("date", "2024-05-01", MAY_1_MIDNIGHT),
    ("date", datetime(2024, 5, 1, 10, 0), MAY_1_10H),  # naive datetime: UTC
    ("date", datetime(2024, 5, 1, 10, 0, tzinfo=UTC), MAY_1_10H),
    ("date", datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), MAY_1_10H),
    ("date", datetime(2024, 5, 1, 6, 0, tzinfo=ZoneInfo("America/New_York")), MAY_1_10H),
    ("date", datetime(2024, 5, 1, 19, 0, tzinfo=ZoneInfo("Asia/Tokyo")), MAY_1_10H),
    ("date", date(2024, 5, 1), MAY_1_MIDNIGHT),
    # null means "unknown" and "" clears a value, for every type
    *[(t, None, None) for t in TYPES],
    *[(t, "", "") for t in TYPES],
]


@pytest.mark.parametrize(("type_", "value", "expected"), VALID)
def test_valid_values_pass_with_their_native_type(
    type_: AttributeType, value: Any, expected: Any
) -> None:
    values, dropped = clean_one(type_, value)
    assert dropped == []
    assert values == {NAMES[type_]: expected}
    assert type(values[NAMES[type_]]) is type(expected)


INVALID: list[tuple[AttributeType, Any, str]] = [
    ("string", "a" * 256, "is 256 characters; Intercom keeps at most 255"),
    ("string", EMOJI * 256, "is 256 characters"),
    ("string", 5, "must be a string, got int"),
    ("string", True, "must be a string, got bool"),
    ("string", 1.5, "must be a string, got float"),
    ("string", b"bytes", "must be a string, got bytes"),
    ("string", "lone \ud800 surrogate", "lone surrogate"),
    ("integer", True, "must be an integer, got bool"),
    ("integer", False, "must be an integer, got bool"),
    ("integer", 1.5, "must be an integer, got float"),
    ("integer", "5", "must be an integer, got str"),
    ("integer", math.nan, "must be an integer, got float"),
    ("integer", math.inf, "must be an integer, got float"),
    ("integer", -math.inf, "must be an integer, got float"),
    ("integer", 2**53 + 1, "outside +/- 2**53"),
    ("integer", -(2**53) - 1, "outside +/- 2**53"),
    ("integer", 2.0**60, "must be an integer"),
    ("number", True, "must be a number, got bool"),
    ("number", False, "must be a number, got bool"),
    ("number", "1.5", "must be a number, got str"),
    ("number", math.nan, "must be a finite number"),
    ("number", math.inf, "must be a finite number"),
    ("number", -math.inf, "must be a finite number"),
    ("number", 2**53 + 1, "outside +/- 2**53"),
    ("boolean", 1, "must be true or false, got int"),
    ("boolean", 0, "must be true or false, got int"),
    ("boolean", 1.0, "must be true or false, got float"),
    ("boolean", "true", "must be true or false, got str"),
    ("boolean", "yes", "must be true or false, got str"),
    ("date", 1e15, "looks like milliseconds"),
    ("date", 1_700_000_000_000, "looks like milliseconds"),
    ("date", 1_700_000_000_000.0, "looks like milliseconds"),
    ("date", 100_000_000_000, "looks like milliseconds"),
    ("date", True, "got bool"),
    ("date", "yesterday", "is not an ISO-8601 date"),
    ("date", "1700000000", "is not an ISO-8601 date"),
    ("date", -1, "is before 1970"),
    ("date", "1969-12-31T23:59:59Z", "is before 1970"),
    ("date", math.nan, "must be a finite number of seconds"),
    ("date", math.inf, "must be a finite number of seconds"),
    ("date", datetime(9999, 1, 1, tzinfo=UTC), "is after the year 5138"),
    # objects and arrays, for every type
    *[(t, {"nested": 1}, "an object (Intercom takes no nested data)") for t in TYPES],
    *[(t, [1, 2], "an array (Intercom takes no arrays)") for t in TYPES],
    *[(t, (), "an array") for t in TYPES],
]


@pytest.mark.parametrize(("type_", "value", "fragment"), INVALID)
def test_invalid_values_are_dropped_with_a_reason(
    type_: AttributeType, value: Any, fragment: str
) -> None:
    values, dropped = clean_one(type_, value)
    assert values == {}
    assert len(dropped) == 1
    assert dropped[0].name == NAMES[type_]
    assert fragment in dropped[0].reason
    if isinstance(value, str) and len(value) > 4:
        assert value not in dropped[0].reason


def test_a_real_date_far_in_the_future_is_not_called_milliseconds() -> None:
    _, dropped = clean_one("date", "9999-12-31T23:59:59Z")
    assert "milliseconds" not in dropped[0].reason


# -- drop and reject ----------------------------------------------------------------

SENSITIVE = "SENSITIVE-VALUE-do-not-log"
MIXED = {
    "plan": SENSITIVE * 20,  # too long
    "teammates": 4,
    "score": SENSITIVE,  # not a number
    "is_admin": False,
    "last_order_at": SENSITIVE,  # not a date
}


def test_drop_leaves_invalid_attributes_out_with_warnings_that_never_show_the_value() -> None:
    result = policy("drop").clean(MIXED)
    assert dict(result.values) == {"teammates": 4, "is_admin": False}
    assert [p.name for p in result.dropped] == ["last_order_at", "plan", "score"]
    assert len(result.warnings) == 3
    for warning, name in zip(result.warnings, ["last_order_at", "plan", "score"], strict=True):
        assert warning.startswith(f"attribute {name!r} dropped: ")
        assert SENSITIVE not in warning


def test_reject_lists_every_invalid_attribute_and_never_the_value() -> None:
    with pytest.raises(InvalidAttributesError) as caught:
        policy("reject").clean(MIXED)
    error = caught.value
    assert [p.name for p in error.problems] == ["last_order_at", "plan", "score"]
    assert error.detail.startswith("3 invalid attribute(s): last_order_at: ")
    assert SENSITIVE not in str(error)
    assert error.status == 422


def test_reject_passes_when_everything_is_valid() -> None:
    raw = {"plan": "pro", "teammates": 4, "score": 0.5, "is_admin": True, "last_order_at": 0}
    result = policy("reject").clean(raw)
    assert dict(result.values) == raw
    assert result.dropped == ()


@pytest.mark.parametrize("on_invalid", ["drop", "reject"])
def test_attributes_not_whitelisted_are_ignored_never_copied(on_invalid: OnInvalid) -> None:
    raw = {
        "plan": "pro",
        "user_id": "someone-else",
        "password": {"nested": True},
        "is_admin_override": True,
        "Plan": "case differs",
    }
    result = policy(on_invalid).clean(raw)
    assert dict(result.values) == {"plan": "pro"}
    assert result.dropped == ()


def test_absent_attributes_stay_absent_rather_than_becoming_null() -> None:
    assert dict(policy().clean({}).values) == {}
    assert dict(policy().clean({"teammates": 2}).values) == {"teammates": 2}


def test_values_follow_the_whitelist_order_whatever_the_input_order() -> None:
    raw = {"last_order_at": 0, "is_admin": True, "score": 1.0, "teammates": 1, "plan": "x"}
    assert list(policy().clean(raw).values) == list(NAMES.values())


def test_any_mapping_is_accepted() -> None:
    result = policy().clean(MappingProxyType({"plan": "pro"}))
    assert dict(result.values) == {"plan": "pro"}


@pytest.mark.parametrize(
    "names",
    [
        ("Plan Name", "plan-tier", "Café"),
        ("f1", "f0", "x"),  # names that look like the schema's internal field names
    ],
)
def test_any_legal_name_works_as_a_schema_key(names: tuple[str, str, str]) -> None:
    specs = tuple(AttributeSpec(n, "string", profile="p") for n in names)
    raw = {n: f"value of {n}" for n in names}
    result = AttributePolicy(specs, "reject").clean(raw)
    assert dict(result.values) == raw


# -- property: whatever comes in, what comes out is signable JSON --------------------

_DAY = timedelta(hours=23, minutes=59)
json_ish = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.none() | st.builds(timezone, st.timedeltas(-_DAY, _DAY))),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={name: json_ish for name in NAMES.values()}))
def test_drop_never_raises_and_yields_only_signable_json_scalars(raw: dict[str, Any]) -> None:
    result = policy("drop").clean(raw)
    assert set(result.values) | {p.name for p in result.dropped} == set(raw)
    for name, value in result.values.items():
        assert value is None or isinstance(value, str | int | float | bool)
        if isinstance(value, str):
            assert len(value) <= 255
        if isinstance(value, int) and not isinstance(value, bool):
            assert abs(value) <= 2**53
        if name in {"last_order_at"} and value not in (None, ""):
            assert isinstance(value, int)
            assert 0 <= value < 100_000_000_000
    json.dumps(dict(result.values), allow_nan=False, ensure_ascii=False).encode("utf-8")


# Lone surrogates (json.loads gives them for "\\ud800"), which st.text() never draws.
any_text = st.lists(st.characters() | st.characters(categories=["Cs"])).map("".join)


@settings(deadline=None)
@given(st.one_of(any_text, st.text(max_size=300)))
def test_every_string_that_passes_can_be_signed_as_utf8(text: str) -> None:
    result = policy("drop").clean({"plan": text})
    if result.values:
        assert len(result.values["plan"]) <= 255
        json.dumps(dict(result.values), ensure_ascii=False).encode("utf-8")
    else:
        assert [p.name for p in result.dropped] == ["plan"]


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("integer", Decimal("7"), 7),
        ("integer", Decimal("7.00"), 7),
        ("number", Decimal("1.5"), 1.5),
        ("number", Decimal("12"), 12),
    ],
)
def test_sql_numeric_decimals_become_json_numbers(
    type_: AttributeType, value: Decimal, expected: object
) -> None:
    policy = AttributePolicy((AttributeSpec("amount", type_, claim="amount"),), "reject")
    cleaned = policy.clean({"amount": value}).values["amount"]
    assert cleaned == expected and type(cleaned) is type(expected)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("integer", Decimal("7.5")),
        ("number", Decimal("NaN")),
        ("number", Decimal("sNaN")),  # float() raises on it: it was a 500
        ("integer", Decimal("sNaN")),
        ("number", Decimal("Infinity")),
    ],
)
def test_non_integral_or_non_finite_decimals_are_refused(
    type_: AttributeType, value: Decimal
) -> None:
    policy = AttributePolicy((AttributeSpec("amount", type_, claim="amount"),), "drop")
    assert policy.clean({"amount": value}).dropped[0].name == "amount"


@pytest.mark.parametrize(
    ("type_", "value", "kind"),
    [
        ("string", "x" * 256, "length"),
        ("string", 7, "type"),
        ("integer", True, "type"),
        ("integer", 2**53 + 1, "range"),
        ("number", math.nan, "finite"),
        ("date", 1_700_000_000_000, "millis"),
        ("date", "not a date", "iso"),
    ],
)
def test_each_dropped_attribute_carries_the_rule_that_failed(
    type_: AttributeType, value: object, kind: str
) -> None:
    policy = AttributePolicy(
        (AttributeSpec("x_at" if type_ == "date" else "x", type_, claim="c"),), "drop"
    )
    (problem,) = policy.clean({policy.specs[0].name: value}).dropped
    assert problem.kind == kind


# -- every type is checked by one plain function -------------------------------------

_ANY_VALUE = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="ascii"), min_size=250, max_size=260),
    st.just("\ud800"),
    st.integers(),
    st.integers(min_value=2**53 - 2, max_value=2**53 + 2),
    st.integers(min_value=-(2**53) - 2, max_value=-(2**53) + 2),
    st.integers(min_value=10**11 - 2, max_value=10**11 + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.decimals(allow_nan=True),
    st.datetimes(),
    st.dates(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
# What an accepted value of each type is, and the rules that may refuse one.
ACCEPTED_TYPES: dict[AttributeType, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "date": (int,),
}
RULES: dict[AttributeType, set[str]] = {
    "string": {"type", "length", "unicode"},
    "integer": {"type", "range"},
    "number": {"type", "finite", "range"},
    "boolean": {"type"},
    "date": {"type", "iso", "millis", "negative", "finite", "future"},
}


@pytest.mark.parametrize("type_", TYPES)
def test_each_type_is_checked_by_a_plain_function_with_nothing_to_ignore(
    type_: AttributeType,
) -> None:
    """The checks were marshmallow fields whose `deserialize` skipped marshmallow's own,
    so a `validate=` given to one was silently ignored. A function of the value alone
    has no option that could be ignored: every rule is in its body."""
    check = CHECKS[type_]
    assert inspect.isfunction(check)
    assert not isinstance(check, fields.Field)
    assert list(inspect.signature(check).parameters) == ["value"]


@pytest.mark.parametrize("type_", TYPES)
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_ANY_VALUE)
def test_every_value_is_signed_as_its_type_or_refused_by_one_of_its_rules(
    type_: AttributeType, value: Any
) -> None:
    """null and "" pass for every type; anything else passes as the type or names a rule."""
    values, dropped = clean_one(type_, value)
    if value is None or (isinstance(value, str) and value == ""):
        assert values == {NAMES[type_]: value} and not dropped
    elif dropped:
        (problem,) = dropped
        assert values == {} and problem.kind in RULES[type_]
    else:
        (accepted,) = values.values()
        assert isinstance(accepted, ACCEPTED_TYPES[type_])
        assert isinstance(accepted, bool) == (type_ == "boolean")


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("string", "pro"),
        ("integer", 3),
        ("number", 4.5),
        ("boolean", False),
        ("date", 1_700_000_000),
        ("string", None),
        ("date", ""),
    ],
)
def test_the_common_values_pass_unchanged(type_: AttributeType, value: Any) -> None:
    policy = AttributePolicy((AttributeSpec(NAMES[type_], type_),), "drop")
    assert policy.clean({NAMES[type_]: value}).values == {NAMES[type_]: value}


def test_a_drivers_float_subclass_becomes_a_plain_float() -> None:
    class DriverFloat(float):
        pass

    policy = AttributePolicy((AttributeSpec(NAMES["number"], "number"),), "drop")
    value = policy.clean({NAMES["number"]: DriverFloat(2.5)}).values[NAMES["number"]]
    assert value == 2.5 and type(value) is float
