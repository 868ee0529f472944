"""Marshmallow schemas of the HTTP API: they validate requests and feed the OpenAPI document."""

from __future__ import annotations

from typing import Any

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


class TokenRequestSchema(Schema):
    """Body of POST /v1/messenger/token (optional: an empty body means the default workspace)."""

    class Meta:
        unknown = RAISE  # a typo in a field name is an error, not silently ignored

    workspace = fields.String(
        load_default=None,
        validate=FullMatch(f"^{WORKSPACE_KEY_PATTERN}$"),
        metadata={"description": "Workspace key from the configuration; default when absent."},
    )
    platform = fields.String(
        load_default=DEFAULT_PLATFORM,
        validate=validate.OneOf(PLATFORMS, error="must be one of: {choices}"),
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
