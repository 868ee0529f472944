"""The HTTP API's request validation, and the marshmallow schemas of its OpenAPI document.

The token request body is checked by `load_body` against
`TOKEN_REQUEST_FIELDS`, a table of small per-field checks: marshmallow's
`Schema.load` of a `{}` body cost about 100k instructions per token request
(`bench/instructions.py`), a tenth of the whole endpoint. `TokenRequestSchema`
documents the same body in /openapi.json, and a test holds the two to the
same answers, message for message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from identity_service.errors import REFUSAL_REASONS
from identity_service.settings import DEFAULT_PLATFORM, PLATFORMS, WORKSPACE_KEY_PATTERN


class FullMatch(validate.Regexp):
    """marshmallow's Regexp, matched against the whole value (`re.fullmatch`).

    Regexp uses `re.match`, where a `$` anchor also matches before a trailing
    newline ("main\\n"). The pattern keeps its `^...$` for the OpenAPI document,
    whose ECMA-262 patterns have no such exception.
    """

    def __call__(self, value: Any) -> Any:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self.error.format(input=value, regex=self.regex.pattern))
        return value


class RequestField(NamedTuple):
    """One field of a request body: the check of a present value, and the value when absent."""

    # The problem with a present, non-null value (marshmallow's message), or None.
    check: Callable[[Any], str | None]
    # When absent. A field whose default is None also takes an explicit null.
    default: Any = None


def string_matching(pattern: str) -> Callable[[Any], str | None]:
    """A string that matches `pattern` whole (marshmallow's String + FullMatch)."""
    regex = re.compile(pattern)

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return NOT_A_STRING
        return None if regex.fullmatch(value) else NO_MATCH

    return check


def one_of(
    choices: tuple[str, ...], error: str = "Must be one of: {choices}."
) -> Callable[[Any], str | None]:
    """A string among `choices` (marshmallow's String + OneOf, with its `error`)."""
    message = error.format(choices=", ".join(choices))

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return NOT_A_STRING
        return None if value in choices else message

    return check


# marshmallow's messages, so that /openapi.json's schema and the validator answer alike.
NOT_A_STRING = "Not a valid string."
NO_MATCH = "String does not match expected pattern."
NOT_NULL = "Field may not be null."
UNKNOWN = "Unknown field."
PLATFORM_ERROR = "must be one of: {choices}"

# The fields of POST /v1/messenger/token's body: one line each.
TOKEN_REQUEST_FIELDS: Mapping[str, RequestField] = {
    "workspace": RequestField(string_matching(WORKSPACE_KEY_PATTERN)),
    "platform": RequestField(one_of(PLATFORMS, PLATFORM_ERROR), DEFAULT_PLATFORM),
}


def defaults(table: Mapping[str, RequestField]) -> dict[str, Any]:
    """The body of no fields: each field's default."""
    return {name: field.default for name, field in table.items()}


def load_body(
    data: Mapping[str, Any], table: Mapping[str, RequestField]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A JSON object checked against `table`: (values, with defaults; problems by field).

    Problems name the table's fields first, then each unknown key (a typo in
    a field name is an error, not silently ignored), in the body's order.
    """
    values = defaults(table)
    problems: dict[str, str] = {}
    for name, field in table.items():
        if name not in data:
            continue
        value = data[name]
        if value is None:
            if field.default is not None:
                problems[name] = NOT_NULL
            continue
        problem = field.check(value)
        if problem is None:
            values[name] = value
        else:
            problems[name] = problem
    for key in data:
        if key not in table:
            problems[key] = UNKNOWN
    return values, problems


class TokenRequestSchema(Schema):
    """Body of POST /v1/messenger/token (optional: an empty body means the default workspace).

    The OpenAPI document's description of `TOKEN_REQUEST_FIELDS`: requests
    are checked by `load_body` with `TOKEN_REQUEST_FIELDS`, which a test holds to this schema.
    """

    class Meta:
        unknown = RAISE  # a typo in a field name is an error, not silently ignored

    workspace = fields.String(
        load_default=None,
        validate=FullMatch(f"^{WORKSPACE_KEY_PATTERN}$"),
        metadata={"description": "Workspace key from the configuration; default when absent."},
    )
    platform = fields.String(
        load_default=DEFAULT_PLATFORM,
        validate=validate.OneOf(PLATFORMS, error=PLATFORM_ERROR),
        metadata={
            "description": "Where the token is used: the web Messenger, or Intercom's iOS or "
            "Android SDK (React Native and Flutter apps run on these). Signed with that "
            "platform's secret. Mobile platforms authenticate with a bearer token only."
        },
    )


class TokenResponseSchema(Schema):
    """A minted Messenger token and what the Messenger needs to boot with it."""

    token = fields.String(required=True, metadata={"description": "The signed Messenger JWT."})
    platform = fields.String(
        required=True,
        validate=validate.OneOf(PLATFORMS),
        metadata={"description": "The platform whose secret signed the token."},
    )
    expires_at = fields.Integer(required=True, metadata={"description": "Unix seconds."})
    app_id = fields.String(required=True)
    api_base = fields.String(required=True)
    user_id = fields.String(required=True)
    attributes = fields.List(
        fields.String(), required=True, metadata={"description": "Names of the signed attributes."}
    )
    warnings = fields.List(fields.String(), required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String()
    reason = fields.String(
        validate=validate.OneOf(sorted(REFUSAL_REASONS)),
        metadata={"description": "Why a 401 or 403 refused the credential."},
    )
    errors = fields.List(fields.Dict())
    platforms = fields.List(
        fields.String(validate=validate.OneOf(PLATFORMS)),
        metadata={
            "description": "On platform-not-served (404): the platforms the workspace serves."
        },
    )


class HealthSchema(Schema):
    """Liveness / readiness report."""

    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())
