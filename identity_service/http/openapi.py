"""The OpenAPI 3.1 document, generated from the marshmallow schemas the API really uses."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from identity_service.http.paths import TOKEN_PATH
from identity_service.http.schemas import (
    HealthSchema,
    ProblemSchema,
    TokenRequestSchema,
    TokenResponseSchema,
)

PROBLEM = {"application/problem+json": {"schema": "Problem"}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": PROBLEM}


def build_openapi(version: str) -> dict[str, Any]:
    """The API description served at /openapi.json."""
    spec = APISpec(
        title="identity_service",
        version=version,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Signed Intercom Messenger tokens for logged-in users."},
    )
    spec.components.schema("TokenRequest", schema=TokenRequestSchema)
    spec.components.schema("TokenResponse", schema=TokenResponseSchema)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("Health", schema=HealthSchema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "session", {"type": "apiKey", "in": "cookie", "name": "session"}
    )
    spec.path(
        path=TOKEN_PATH,
        operations={
            "post": {
                "summary": "Mint a Messenger token for the logged-in user",
                "description": (
                    "For the web Messenger (platform web, the default) or Intercom's iOS and "
                    "Android SDKs (platform ios / android, from native, React Native and "
                    "Flutter apps). Each platform's token is signed with that platform's "
                    "secret. Mobile platforms authenticate with the identity provider's bearer "
                    "token only: the session cookie is a browser credential and is refused for "
                    "them (401, reason browser_credential)."
                ),
                "security": [{"bearer": []}, {"session": []}],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": "TokenRequest"}},
                },
                "responses": {
                    "200": {
                        "description": "A signed Messenger JWT (never cached: no-store).",
                        "content": {"application/json": {"schema": "TokenResponse"}},
                    },
                    "400": _problem("Malformed JSON."),
                    "401": _problem(
                        "Missing or invalid credentials, or a session cookie for a mobile platform."
                    ),
                    "403": _problem("Cookie request from an origin that is not allowed."),
                    "404": _problem(
                        "Unknown workspace, or a platform the workspace does not serve "
                        "(platform-not-served)."
                    ),
                    "413": _problem("Body too large."),
                    "415": _problem("Body is not application/json."),
                    "422": _problem(
                        "Body or user attributes invalid (an unknown platform lists the valid "
                        "ones)."
                    ),
                    "429": _problem("Rate limited."),
                    "500": _problem("Unexpected failure."),
                    "503": _problem("Profile source or identity provider unavailable."),
                },
            }
        },
    )
    health = {"description": "OK", "content": {"application/json": {"schema": "Health"}}}
    spec.path(
        path="/healthz", operations={"get": {"summary": "Liveness", "responses": {"200": health}}}
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "summary": "Readiness: keys, secrets and profile database reachable",
                "responses": {"200": health, "503": _problem("Not ready.")},
            }
        },
    )
    return spec.to_dict()
