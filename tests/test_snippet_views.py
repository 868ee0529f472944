"""The messenger blueprint over HTTP: the script, its module flavour, and config.json."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from identity_service import create_app
from identity_service.config import load_settings
from identity_service.frontend.script import (
    MODULE_FOOTER,
    messenger_integrity,
    messenger_module,
    sri_sha384,
)
from tests.support.service import (
    MESSENGER_SECRET,
    SESSION_SECRET,
    STATIC_JS,
    ServiceFixture,
    make_service,
)


def json_of(response: TestResponse) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict)
    return body


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service(tmp_path)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messenger/messenger.js", STATIC_JS.read_bytes()),
        ("/v1/messenger/messenger.mjs", STATIC_JS.read_bytes() + MODULE_FOOTER),
    ],
)
def test_script_is_served_cacheable_with_a_strong_etag(
    client: FlaskClient, path: str, body: bytes
) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.data == body
    assert response.headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert response.cache_control.public is True
    assert response.cache_control.max_age == 3600
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_matching_etag_gets_304_without_a_body(client: FlaskClient) -> None:
    etag = client.get("/v1/messenger/messenger.js").headers["ETag"]

    response = client.get("/v1/messenger/messenger.js", headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    # Several validators, one of them current, also revalidates.
    listed = client.get("/v1/messenger/messenger.js", headers={"If-None-Match": f'"old", {etag}'})
    assert listed.status_code == 304


def test_other_etag_gets_the_full_script(client: FlaskClient) -> None:
    response = client.get("/v1/messenger/messenger.js", headers={"If-None-Match": '"stale"'})
    assert response.status_code == 200
    assert response.data == STATIC_JS.read_bytes()


def test_cross_origin_request_gets_the_wildcard_not_credentials(client: FlaskClient) -> None:
    # The script is public: the product's page may load it with integrity from any origin.
    response = client.get(
        "/v1/messenger/messenger.js", headers={"Origin": "https://elsewhere.example"}
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_config_json_has_public_settings_only(client: FlaskClient) -> None:
    response = client.get("/v1/messenger/config.json", base_url="https://id.pete.example")

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.cache_control.public is True
    assert json_of(response) == {
        "workspace": "main",
        "app_id": "abc123",
        "api_base": "https://api-iam.eu.intercom.io",
        "token_url": "/v1/messenger/token",
        "protected_keys": ["user_id", "email", "user_hash", "plan", "teammates", "last_order_at"],
        "widget_url": "https://widget.intercom.io/widget/{app_id}",
        # Relative to the service's origin: never built from the request's Host.
        "script_url": "/v1/messenger/messenger.js",
        "module_url": "/v1/messenger/messenger.mjs",
        "integrity": messenger_integrity(),
        "module_integrity": sri_sha384(messenger_module()),
    }
    text = response.get_data(as_text=True)
    for secret in (MESSENGER_SECRET, SESSION_SECRET, "messenger.secret", "session.secret"):
        assert secret not in text


@pytest.mark.parametrize(
    "headers",
    [{"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}],
    ids=["host", "x-forwarded-host"],
)
def test_config_json_cannot_be_cached_pointing_at_a_host_from_the_request(
    service: ServiceFixture, headers: dict[str, str]
) -> None:
    # Behind a trusted proxy too, where X-Forwarded-Host becomes the request's host.
    settings = replace(service.settings, service=replace(service.settings.service, proxy_hops=1))
    client = create_app(settings).test_client()

    response = client.get("/v1/messenger/config.json", headers=headers)

    assert response.status_code == 200
    body = json_of(response)
    cacheable = response.cache_control.public or not (
        response.cache_control.private or response.cache_control.no_store
    )
    assert not (cacheable and "evil.example" in response.get_data(as_text=True))
    assert "evil.example" not in response.get_data(as_text=True)
    for key, path in (
        ("token_url", "/v1/messenger/token"),
        ("script_url", "/v1/messenger/messenger.js"),
        ("module_url", "/v1/messenger/messenger.mjs"),
    ):
        assert body[key] == path


def test_config_json_by_workspace(service: ServiceFixture) -> None:
    # A second workspace, added to the service's own (valid) configuration.
    text = (service.root / "service.toml").read_text()
    extra = '[workspaces.us]\napp_id = "us0app"\nregion = "us"\nsecret_file = "messenger.secret"\n'
    path = service.root / "two.toml"
    path.write_text(f'default_workspace = "main"\n{text}\n{extra}')
    settings = load_settings(path, {"IDENTITY_SERVICE_INSTANCE": str(service.root / "instance")})
    client = create_app(settings).test_client()

    us = json_of(client.get("/v1/messenger/config.json?workspace=us"))
    assert (us["workspace"], us["app_id"], us["api_base"]) == (
        "us",
        "us0app",
        "https://api-iam.intercom.io",
    )
    assert us["protected_keys"] == ["user_id", "email", "user_hash"]
    main = json_of(client.get("/v1/messenger/config.json"))
    assert main["workspace"] == "main"


def test_config_json_unknown_workspace_is_a_problem(client: FlaskClient) -> None:
    response = client.get("/v1/messenger/config.json?workspace=nope")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json_of(response)["title"] == "Unknown workspace"


@pytest.mark.parametrize(
    "asked",
    [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl",  # a credential pasted by mistake
        "<script>alert(1)</script>",
        "main\n",
        "x" * 65,
    ],
)
def test_an_unknown_workspace_that_is_no_workspace_key_is_not_echoed(
    client: FlaskClient, asked: str
) -> None:
    # A caller's text that cannot even be a workspace key is never quoted back: the
    # problem says only that no such workspace is configured.
    response = client.get("/v1/messenger/config.json", query_string={"workspace": asked})
    assert response.status_code == 404
    assert asked not in response.get_data(as_text=True)
    assert asked.strip() not in response.get_data(as_text=True)
    assert "no workspace by that name is configured" in json_of(response)["detail"]


def test_an_unknown_workspace_key_is_named(client: FlaskClient) -> None:
    response = client.get("/v1/messenger/config.json?workspace=nope")
    assert json_of(response)["detail"] == "no workspace named 'nope' is configured"
