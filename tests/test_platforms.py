"""Messenger tokens for web, iOS and Android from one endpoint, each signed with its own secret.

One workspace serves all three platforms (issue 15): the token request names
its platform, the token is signed with that platform's secret and verifies
with no other (checked with PyJWT and joserfc), mobile platforms take the
IdP's bearer token only, and a platform without a secret is not served.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import OctKey
from werkzeug.test import TestResponse

from identity_service import create_app, service_state
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.observability import JsonFormatter
from identity_service.settings import PLATFORMS
from tests.support.service import MESSENGER_SECRET, ORIGIN, ServiceFixture, make_service

TOKEN_URL = "/v1/messenger/token"
SECRETS = {
    "web": MESSENGER_SECRET,
    "ios": "i" * 40 + "-ios-enabled-secret-key",
    "android": "a" * 40 + "-android-enabled-secret-key",
}
PLATFORM_TABLES = """
[workspaces.main.platforms.ios]
secret_file = "ios.secret"

[workspaces.main.platforms.android]
secret_file = "android.secret"
"""


def write_secret(root: Path, name: str, value: str) -> Path:
    path = root / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    """The shared test service (bearer + session, web secret) plus iOS and Android secrets."""
    write_secret(tmp_path, "ios.secret", SECRETS["ios"])
    write_secret(tmp_path, "android.secret", SECRETS["android"])
    return make_service(tmp_path, extra=PLATFORM_TABLES)


@pytest.fixture
def app(service: ServiceFixture) -> Flask:
    now = time.time() + 5  # a little ahead: credentials made in the test are not in its future
    return create_app(service.settings, clock=lambda: now)


def bearer(service: ServiceFixture) -> dict[str, str]:
    return service.bearer_headers()


def ask(client: FlaskClient, body: dict[str, Any] | None, **kwargs: Any) -> Any:
    return client.post(TOKEN_URL, json=body, **kwargs)


# -- one endpoint, three secrets ----------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_token_verifies_only_with_its_own_secret(
    client: FlaskClient, service: ServiceFixture, platform: str
) -> None:
    response = ask(client, {"workspace": "main", "platform": platform}, headers=bearer(service))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["platform"] == platform
    token = body["token"]
    claims = jwt.decode(token, SECRETS[platform], algorithms=["HS256"], leeway=60)
    assert claims["user_id"] == "user-42"
    independent = jose_jwt.decode(token, OctKey.import_key(SECRETS[platform]))
    assert independent.header == {"alg": "HS256", "typ": "JWT"}
    assert independent.claims == claims
    for other in PLATFORMS:
        if other == platform:
            continue
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, SECRETS[other], algorithms=["HS256"], leeway=60)
        with pytest.raises(BadSignatureError):
            jose_jwt.decode(token, OctKey.import_key(SECRETS[other]))


def test_a_request_without_a_platform_is_for_the_web(
    client: FlaskClient, service: ServiceFixture
) -> None:
    for body in (None, {"workspace": "main"}):
        response = ask(client, body, headers=bearer(service))
        assert response.status_code == 200
        assert response.get_json()["platform"] == "web"
        jwt.decode(response.get_json()["token"], SECRETS["web"], algorithms=["HS256"], leeway=60)


# -- credentials: mobile apps send the IdP's bearer token ---------------------------------


@pytest.mark.parametrize("platform", ["ios", "android"])
def test_a_session_cookie_is_refused_for_a_mobile_platform(
    app: Flask, service: ServiceFixture, platform: str
) -> None:
    client = app.test_client(use_cookies=False)
    cookie = service.session_cookie({"user_id": "user-42", "_fresh": True})
    headers = {"Origin": ORIGIN, "Cookie": f"session={cookie}"}
    web = client.post(TOKEN_URL, json={"platform": "web"}, headers=headers)
    assert web.status_code == 200  # the same cookie is good for the browser's token
    refused = client.post(TOKEN_URL, json={"platform": platform}, headers=headers)
    assert refused.status_code == 401
    problem = refused.get_json()
    assert problem["reason"] == "browser_credential"
    assert "browser credential" in problem["detail"] and "Bearer" in problem["detail"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    # The bearer token is accepted alongside the cookie: the Authorization header decides.
    both = client.post(
        TOKEN_URL, json={"platform": platform}, headers={**headers, **bearer(service)}
    )
    assert both.status_code == 200 and both.get_json()["platform"] == platform


# Review: every other spelling of a mobile platform is a 422, never a token for the cookie.
COOKIE_BODIES = {
    "upper case": b'{"platform": "IOS"}',
    "leading space": b'{"platform": " ios"}',
    "trailing NUL": b'{"platform": "ios\\u0000"}',
    "dotless i": b'{"platform": "\\u0131os"}',
    "fullwidth": '{"platform": "\uff49\uff4f\uff53"}'.encode(),
    "lone surrogate": b'{"platform": "\\ud800"}',
    "a list": b'{"platform": ["ios"]}',
    "a number": b'{"platform": 1}',
    "null": b'{"platform": null}',
    "an object": b'{"platform": {"ios": true}}',
    "key in another case": b'{"Platform": "ios"}',
}


def _post_with_cookie(app: Flask, service: ServiceFixture, raw: bytes) -> TestResponse:
    """A browser's token request: a valid session cookie from a listed origin, body `raw`."""
    cookie = service.session_cookie({"user_id": "user-42", "_fresh": True})
    headers = {"Origin": ORIGIN, "Cookie": f"session={cookie}", "Content-Type": "application/json"}
    return app.test_client(use_cookies=False).post(TOKEN_URL, data=raw, headers=headers)


@pytest.mark.parametrize("raw", COOKIE_BODIES.values(), ids=COOKIE_BODIES.keys())
def test_no_spelling_of_a_platform_gets_a_cookie_anything_but_a_422(
    app: Flask, service: ServiceFixture, raw: bytes
) -> None:
    response = _post_with_cookie(app, service, raw)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"platform": "ios", "platform": "web"}',
        b'{"platform": "web", "platform": "ios"}',
        b'{"workspace": "main", "platform": "web", "platform": "web"}',
    ],
)
def test_a_body_naming_a_member_twice_is_refused(
    app: Flask, service: ServiceFixture, raw: bytes
) -> None:
    # Review: with the stdlib parser the last duplicate won, so a front proxy or
    # gateway reading the first one saw another platform than the one signed for.
    response = _post_with_cookie(app, service, raw)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"] == [
        {"name": "platform", "reason": "appears more than once"}
    ]


def test_a_mobile_request_without_credentials_is_asked_for_a_bearer_token(
    client: FlaskClient,
) -> None:
    response = ask(client, {"platform": "ios"})
    assert response.status_code == 401
    assert response.get_json()["reason"] == "missing_credentials"
    assert response.get_json()["detail"] == "no credentials: send a bearer token"


def test_a_mobile_platform_of_a_workspace_without_bearer_auth_is_refused_clearly(
    tmp_path: Path, service: ServiceFixture
) -> None:
    config = tmp_path / "cookie-only.toml"
    config.write_text(
        '[workspaces.web]\napp_id = "abc123"\nsecret_file = "messenger.secret"\n'
        '[workspaces.web.platforms.ios]\nsecret_file = "ios.secret"\n'
        '[[workspaces.web.auth]]\nmethod = "session"\nsecret_file = "session.secret"\n'
        f'allowed_origins = ["{ORIGIN}"]\n'
    )
    settings = load_settings(config, {INSTANCE_ENV: str(tmp_path / "instance")})
    assert any("serves ios but has no bearer [[auth]] method" in w for w in settings.warnings)
    client = create_app(settings).test_client()
    response = client.post(TOKEN_URL, json={"platform": "ios"}, headers=bearer(service))
    assert response.status_code == 401
    assert response.get_json()["reason"] == "method_not_accepted"
    assert "this workspace has no bearer method" in response.get_json()["detail"]


# -- what is not served -------------------------------------------------------------------


def test_an_unknown_platform_is_a_422_listing_the_valid_ones(
    client: FlaskClient, service: ServiceFixture
) -> None:
    response = ask(client, {"platform": "ipad"}, headers=bearer(service))
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["errors"] == [
        {"name": "platform", "reason": "must be one of: web, ios, android"}
    ]
    assert "ipad" not in json.dumps(problem)  # the caller's text is not echoed


def test_a_platform_the_workspace_does_not_serve_is_a_404_before_any_credential(
    tmp_path: Path, service: ServiceFixture
) -> None:
    config = tmp_path / "ios-only.toml"
    bearer_table = (
        service.root.joinpath("service.toml").read_text().split("[[workspaces.main.auth]]")
    )
    config.write_text(
        '[workspaces.app]\napp_id = "abc123"\n'
        '[workspaces.app.platforms.ios]\nsecret_file = "ios.secret"\n'
        "[[workspaces.app.auth]]" + bearer_table[1]
    )
    settings = load_settings(config, {INSTANCE_ENV: str(tmp_path / "instance")})
    client = create_app(settings).test_client()
    assert (
        client.post(TOKEN_URL, json={"platform": "ios"}, headers=bearer(service)).status_code == 200
    )
    for platform in ("web", "android"):
        for headers in (bearer(service), {}):
            response = client.post(TOKEN_URL, json={"platform": platform}, headers=headers)
            assert response.status_code == 404
            problem = response.get_json()
            assert problem["type"].endswith("/platform-not-served")
            assert problem["detail"] == (
                f"workspace 'app' does not serve {platform}: it has no {platform} Messenger "
                "secret configured (it serves: ios)"
            )


# -- observability: the platform on every record ------------------------------------------


def test_audit_events_metrics_and_rate_limits_carry_the_platform(
    tmp_path: Path, service: ServiceFixture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    text = service.root.joinpath("service.toml").read_text()
    config = tmp_path / "limited.toml"
    config.write_text(text + '\n[service.rate_limit]\nper_user = "1/minute"\n')
    settings = load_settings(config, {INSTANCE_ENV: str(tmp_path / "instance")})
    app = create_app(settings)
    client = app.test_client(use_cookies=False)
    # One token per user and platform a minute: the iOS app's does not use the web's up.
    assert ask(client, {"platform": "web"}, headers=bearer(service)).status_code == 200
    assert ask(client, {"platform": "ios"}, headers=bearer(service)).status_code == 200
    assert ask(client, {"platform": "ios"}, headers=bearer(service)).status_code == 429
    cookie = service.session_cookie({"user_id": "user-42", "_fresh": True})
    ask(client, {"platform": "android"}, headers={"Origin": ORIGIN, "Cookie": f"session={cookie}"})
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    mints = [(x["platform"], x["workspace"]) for x in lines if x.get("event") == "mint"]
    assert mints == [("web", "main"), ("ios", "main")]
    failures = [x for x in lines if x.get("event") == "auth_failure"]
    assert [(x["platform"], x["method"], x["reason"]) for x in failures] == [
        ("android", "session", "browser_credential")
    ]
    registry = service_state(app).runtime.metrics.registry

    def sample(name: str, **labels: str) -> float | None:
        value: float | None = registry.get_sample_value(name, labels)
        return value

    assert sample("identity_tokens_minted_total", workspace="main", platform="ios") == 1
    assert sample("identity_tokens_minted_total", workspace="main", platform="web") == 1
    assert sample("identity_rate_limited_total", scope="user", platform="ios") == 1
    assert (
        sample(
            "identity_auth_failures_total",
            workspace="main",
            platform="android",
            method="session",
            reason="browser_credential",
        )
        == 1
    )


# -- rotation by file, per platform -------------------------------------------------------


def test_each_platform_secret_rotates_by_replacing_its_file(
    client: FlaskClient, service: ServiceFixture
) -> None:
    rotated = "r" * 40 + "-rotated-ios-secret"
    staged = write_secret(service.root, "ios.secret.new", rotated)
    os.replace(staged, service.root / "ios.secret")  # the atomic mv operations.md describes
    ios = ask(client, {"platform": "ios"}, headers=bearer(service)).get_json()
    jwt.decode(ios["token"], rotated, algorithms=["HS256"], leeway=60)
    web = ask(client, {"platform": "web"}, headers=bearer(service)).get_json()
    jwt.decode(web["token"], SECRETS["web"], algorithms=["HS256"], leeway=60)  # untouched
    # A bad replacement is refused: the last good iOS secret keeps signing.
    short = write_secret(service.root, "ios.secret.bad", "too-short")
    os.replace(short, service.root / "ios.secret")
    again = ask(client, {"platform": "ios"}, headers=bearer(service)).get_json()
    jwt.decode(again["token"], rotated, algorithms=["HS256"], leeway=60)
    ready = client.get("/readyz").get_json()
    assert ready["checks"]["main.ios.secret"] != "ok"
    assert ready["checks"]["main.secret"] == "ok"
    assert ready["checks"]["main.android.secret"] == "ok"


# -- configuration: explicit, backward compatible, errors naming key and fix ---------------


def test_a_single_secret_configuration_means_web_and_nothing_else(service: ServiceFixture) -> None:
    text = service.root.joinpath("service.toml").read_text().replace(PLATFORM_TABLES, "")
    path = service.root / "legacy.toml"
    path.write_text(text)
    settings = load_settings(path, {INSTANCE_ENV: str(service.root / "instance")})
    workspace = settings.workspace(None)
    assert list(workspace.secrets) == ["web"]
    assert workspace.secret is workspace.secrets["web"]
    assert workspace.secret_for("web").get() == SECRETS["web"].encode()


BASE = '[workspaces.app]\napp_id = "abc123"\n'
WEB = 'secret_file = "messenger.secret"\n'
CONFIG_ERRORS: list[tuple[str, str, str, str]] = [
    # (name, TOML after [workspaces.app], the key path, the message)
    ("no secret anywhere", "", "workspaces.app",
     "set exactly one of secret_env (an environment variable name), secret_file (a file path) "
     "or secret_dev = true (development only); found none. Secrets are never written in this "
     "file"),
    ("unknown platform", WEB + '[workspaces.app.platforms.ipad]\nsecret_file = "ios.secret"\n',
     "workspaces.app.platforms.ipad", "unknown key; allowed: ['android', 'ios']"),
    ("web under platforms", WEB + '[workspaces.app.platforms.web]\nsecret_file = "ios.secret"\n',
     "workspaces.app.platforms.web",
     "web's secret is the workspace's own secret_env / secret_file (as before platforms "
     "existed); platforms holds only ios and android"),
    ("platform without a secret", WEB + "[workspaces.app.platforms.ios]\n",
     "workspaces.app.platforms.ios",
     "set exactly one of secret_env (an environment variable name), secret_file (a file path) "
     "or secret_dev = true (development only); found none. Secrets are never written in this "
     "file"),
    ("platform not a table", WEB + '[workspaces.app.platforms]\nios = "ios.secret"\n',
     "workspaces.app.platforms.ios",
     "must be a table ([workspaces.app.platforms.ios]), got str"),
    ("two secrets", WEB + '[workspaces.app.platforms.ios]\nsecret_file = "ios.secret"\n'
     'secret_env = "IOS"\n', "workspaces.app.platforms.ios",
     "set exactly one of secret_env (an environment variable name), secret_file (a file path) "
     "or secret_dev = true (development only); found secret_env and secret_file. Secrets are "
     "never written in this file"),
    ("short secret", WEB + '[workspaces.app.platforms.ios]\nsecret_file = "short.secret"\n',
     "workspaces.app.platforms.ios.secret_file",
     "the secret from file {root}/short.secret is 9 bytes; at least 32 are required "
     "(generate one with `openssl rand -base64 48`)"),
    ("share and own", WEB + '[workspaces.app.platforms.ios]\nsame_secret_as = "web"\n'
     'secret_file = "ios.secret"\n', "workspaces.app.platforms.ios.same_secret_as",
     "set either same_secret_as or this platform's own secret_env / secret_file / secret_dev, "
     "not both"),
    ("share with itself", WEB + '[workspaces.app.platforms.ios]\nsame_secret_as = "ios"\n',
     "workspaces.app.platforms.ios.same_secret_as",
     "must name another platform whose secret this one shares: one of ['web', 'android']"),
    ("share an unserved web", '[workspaces.app.platforms.ios]\nsame_secret_as = "web"\n',
     "workspaces.app.platforms.ios.same_secret_as",
     "'web' has no secret in this workspace (no secret_env / secret_file of its own): "
     "configure it, or give this platform its own secret"),
    ("share a chain", WEB + '[workspaces.app.platforms.ios]\nsame_secret_as = "android"\n'
     '[workspaces.app.platforms.android]\nsame_secret_as = "web"\n',
     "workspaces.app.platforms.ios.same_secret_as",
     "'android' itself uses same_secret_as: name the platform that holds the secret ('web')"),
    ("typo in a key", WEB + '[workspaces.app.platforms.ios]\nsecret_fil = "ios.secret"\n',
     "workspaces.app.platforms.ios.secret_fil", "unknown key; did you mean 'secret_file'?"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "path", "message"),
    [case[1:] for case in CONFIG_ERRORS],
    ids=[case[0] for case in CONFIG_ERRORS],
)
def test_platform_configuration_errors_name_the_key_and_the_fix(
    service: ServiceFixture, toml: str, path: str, message: str
) -> None:
    from identity_service.errors import ConfigError

    write_secret(service.root, "short.secret", "too-short")
    config = service.root / "bad.toml"
    config.write_text(BASE + toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {INSTANCE_ENV: str(service.root / "instance")})
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert (path, message.format(root=service.root)) in problems
    assert not any(secret in str(caught.value) for secret in SECRETS.values())


def test_same_secret_as_shares_one_secret_on_purpose(service: ServiceFixture) -> None:
    config = service.root / "shared.toml"
    config.write_text(
        BASE + WEB + '[workspaces.app.platforms.ios]\nsecret_file = "ios.secret"\n'
        '[workspaces.app.platforms.android]\nsame_secret_as = "ios"\n'
    )
    workspace = load_settings(config, {INSTANCE_ENV: str(service.root / "instance")}).workspace(
        None
    )
    assert workspace.secrets["android"] is workspace.secrets["ios"]
    assert list(workspace.own_secrets) == ["web", "ios"]
    assert workspace.describe_secret("android") == (
        f"file {service.root}/ios.secret: ios's secret (same_secret_as)"
    )


# -- the security report, the command line and the admin checklist ------------------------


def graded(service: ServiceFixture, toml: str, **environ: str) -> set[tuple[str, str, str]]:
    from identity_service.security_report import assess

    config = service.root / "graded.toml"
    config.write_text(BASE + toml)
    settings = load_settings(config, {INSTANCE_ENV: str(service.root / "instance"), **environ})
    ids = {"platform-not-served", "platform-secret-shared", "platform-secret-equal",
           "mobile-enforce-rollout", "secret-dev", "secret-env"}  # fmt: skip
    return {(f.severity, f.id, f.path) for f in assess(settings).findings if f.id in ids}


IOS = '[workspaces.app.platforms.ios]\nsecret_file = "ios.secret"\n'
REPORTS: list[tuple[str, str, set[tuple[str, str, str]]]] = [
    ("web only: nothing new", WEB, set()),
    ("web and ios", WEB + IOS, {
        ("info", "platform-not-served", "workspaces.app.platforms.android"),
        ("info", "mobile-enforce-rollout", "workspaces.app"),
    }),
    ("ios only", IOS, {
        ("info", "platform-not-served", "workspaces.app"),
        ("info", "platform-not-served", "workspaces.app.platforms.android"),
        ("info", "mobile-enforce-rollout", "workspaces.app"),
    }),
    ("android shares ios's secret", WEB + IOS
     + '[workspaces.app.platforms.android]\nsame_secret_as = "ios"\n', {
        ("info", "platform-secret-shared", "workspaces.app.platforms.android.same_secret_as"),
        ("info", "mobile-enforce-rollout", "workspaces.app"),
    }),
    ("android holds a copy of the web secret", WEB + IOS
     + '[workspaces.app.platforms.android]\nsecret_env = "COPY"\n', {
        ("medium", "platform-secret-equal", "workspaces.app.platforms.android.secret_env"),
        ("low", "secret-env", "workspaces.app.platforms.android.secret_env"),
        ("info", "mobile-enforce-rollout", "workspaces.app"),
    }),
    ("a development ios secret", WEB + "[workspaces.app.platforms.ios]\nsecret_dev = true\n", {
        ("high", "secret-dev", "workspaces.app.platforms.ios.secret_dev"),
        ("info", "platform-not-served", "workspaces.app.platforms.android"),
        ("info", "mobile-enforce-rollout", "workspaces.app"),
    }),
]  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "expected"), [c[1:] for c in REPORTS], ids=[c[0] for c in REPORTS]
)
def test_the_security_report_grades_the_platforms(
    service: ServiceFixture, toml: str, expected: set[tuple[str, str, str]]
) -> None:
    assert graded(service, toml, COPY=SECRETS["web"]) == expected


def test_mint_signs_with_the_named_platforms_secret_and_says_which(
    service: ServiceFixture,
) -> None:
    from click.testing import CliRunner

    from identity_service.cli.main import main

    config = str(service.root / "service.toml")
    for platform in PLATFORMS:
        result = CliRunner().invoke(
            main, ["mint", "--config", config, "--user-id", "u-1", "--platform", platform]
        )
        assert result.exit_code == 0, result.output
        token = result.stdout.splitlines()[0]
        jwt.decode(token, SECRETS[platform], algorithms=["HS256"])
        where = "workspaces.main" if platform == "web" else f"workspaces.main.platforms.{platform}"
        secret_file = "messenger.secret" if platform == "web" else f"{platform}.secret"
        assert result.stderr.splitlines()[0] == (
            f"signed for {platform} with {where} Messenger secret "
            f"(file {service.root / secret_file})"
        )
        assert SECRETS[platform] not in result.output
    unknown = CliRunner().invoke(
        main, ["mint", "--config", config, "--user-id", "u", "--platform", "ipad"]
    )
    assert (
        unknown.exit_code == 2 and "'ipad' is not one of 'web', 'ios', 'android'" in unknown.output
    )


def test_check_config_and_the_admin_checklist_name_each_platforms_secret(
    service: ServiceFixture,
) -> None:
    from click.testing import CliRunner

    from identity_service.cli.main import main

    result = CliRunner().invoke(
        main, ["check-config", "--config", str(service.root / "service.toml")]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    for platform, name in (("web", "messenger"), ("ios", "ios"), ("android", "android")):
        path = service.root / f"{name}.secret"
        assert f"  {platform + ' secret:':<17}file {path}" in out  # the summary
        assert re.search(rf"^\s+{platform}:\s+file {re.escape(str(path))}$", out, re.M)  # checklist
    assert "only once app versions that send the JWT are out" in out
    assert not any(secret in out for secret in SECRETS.values())


def test_a_platform_may_share_the_secret_of_one_listed_after_it(service: ServiceFixture) -> None:
    config = service.root / "shared-back.toml"
    config.write_text(
        BASE + WEB + '[workspaces.app.platforms.ios]\nsame_secret_as = "android"\n'
        '[workspaces.app.platforms.android]\nsecret_file = "android.secret"\n'
    )
    settings = load_settings(config, {INSTANCE_ENV: str(service.root / "instance")})
    workspace = settings.workspace(None)
    assert workspace.secrets["ios"] is workspace.secrets["android"]
    assert list(workspace.own_secrets) == ["web", "android"]
    assert workspace.describe_secret("ios").endswith("android's secret (same_secret_as)")
    assert workspace.secret_for("ios").get() == SECRETS["android"].encode()
    # Found with every other secret, once: resolved at start and refreshed before each fork.
    assert [s.key for s in settings.secrets()].count(
        "workspaces.app.platforms.android.secret_file"
    ) == 1
