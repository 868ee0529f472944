"""The token request's validator answers as the marshmallow schema /openapi.json documents.

The endpoint checks bodies with `load_body(body, TOKEN_REQUEST_FIELDS)` (a table of small
checks: `Schema.load` was a tenth of a token request's instructions); the
OpenAPI document describes them with `TokenRequestSchema`. Every body here,
and every body hypothesis makes up, gets the same values or the same
problems, message for message, from both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from identity_service import create_app
from identity_service.http.schemas import (
    TOKEN_REQUEST_FIELDS,
    WORKSPACE_KEY_PATTERN,
    RequestField,
    TokenRequestSchema,
    load_body,
    one_of,
)
from identity_service.settings import PLATFORMS
from tests.support.service import make_service

TOKEN_URL = "/v1/messenger/token"


def schema_answer(schema: Schema, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    try:
        return schema.load(body), {}
    except ValidationError as exc:
        assert isinstance(exc.messages, dict)
        return {}, {k: "; ".join(v) for k, v in exc.messages.items()}


def validator_answer(
    body: dict[str, Any], table: Mapping[str, RequestField] = TOKEN_REQUEST_FIELDS
) -> tuple[dict[str, Any], dict[str, str]]:
    values, problems = load_body(body, table)
    return ({} if problems else values), problems


BODIES: list[dict[str, Any]] = [
    {},
    {"workspace": None},
    {"workspace": "main"},
    {"workspace": "a" * 64},
    {"workspace": "a" * 65},
    {"workspace": ""},
    {"workspace": "a b"},
    {"workspace": "main\n"},
    {"workspace": "\nmain"},
    {"workspace": "mäin"},
    {"workspace": 7},
    {"workspace": 7.5},
    {"workspace": True},
    {"workspace": []},
    {"workspace": ["main"]},
    {"workspace": {"key": "main"}},
    {"user_id": "admin"},
    {"workspace": "main", "user_id": "admin"},
    {"zz": 1, "workspace": [], "aa": 2},
    {"Workspace": "main"},
    {"platform": "ios"},
    {"platform": "android", "workspace": "main"},
    {"platform": None},
    {"platform": "tv"},
    {"platform": "IOS"},
    {"platform": 1},
    {"platform": "tv", "workspace": 3, "x": 1},
]


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_the_validator_answers_as_the_documented_schema(body: dict[str, Any]) -> None:
    assert validator_answer(body) == schema_answer(TokenRequestSchema(), body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
NAMES = st.sampled_from(sorted(TOKEN_REQUEST_FIELDS)) | st.text(max_size=10)
VALUES = JSON | st.from_regex(rf"\A{WORKSPACE_KEY_PATTERN}\Z") | st.sampled_from(PLATFORMS)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(NAMES, VALUES, max_size=4))
def test_any_body_gets_the_schemas_answer(body: dict[str, Any]) -> None:
    assert validator_answer(body) == schema_answer(TokenRequestSchema(), body)


def test_the_documented_schema_has_the_validators_fields() -> None:
    documented = TokenRequestSchema().fields
    assert set(documented) == set(TOKEN_REQUEST_FIELDS)
    for name, field in TOKEN_REQUEST_FIELDS.items():
        assert documented[name].load_default == field.default


class WithAnEnum(Schema):
    """A body with an optional enum field that has a default (the shape of a `platform`)."""

    class Meta:
        unknown = RAISE

    workspace = TokenRequestSchema().fields["workspace"]
    platform = fields.String(load_default="web", validate=validate.OneOf(["web", "ios"]))


@pytest.mark.parametrize(
    "body",
    [{}, {"platform": "ios"}, {"platform": "tv"}, {"platform": None}, {"platform": 1},
     {"platform": "tv", "workspace": 3, "x": 1}],
    ids=repr,
)  # fmt: skip
def test_an_enum_field_with_a_default_is_one_line(body: dict[str, Any]) -> None:
    table = {**TOKEN_REQUEST_FIELDS, "platform": RequestField(one_of(("web", "ios")), "web")}
    assert validator_answer(body, table) == schema_answer(WithAnEnum(), body)


def test_the_endpoint_lists_every_problem_of_the_body(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    client = create_app(service.settings).test_client()
    response = client.post(
        TOKEN_URL,
        data=b'{"zz": 1, "workspace": [], "aa": 2}',  # in this order (json= sorts keys)
        headers={
            "Authorization": f"Bearer {service.idp_token()}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json(force=True)
    assert problem["detail"] == (
        "the request body is invalid: workspace: Not a valid string.; "
        "zz: Unknown field.; aa: Unknown field."
    )
    assert problem["errors"] == [
        {"name": "workspace", "reason": "Not a valid string."},
        {"name": "zz", "reason": "Unknown field."},
        {"name": "aa", "reason": "Unknown field."},
    ]
