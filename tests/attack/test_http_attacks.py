"""Attacks on the HTTP layer, through the real app (`create_app(settings).test_client()`).

Forged session cookies, cross-origin cookie requests, hostile bodies and
malformed or oversized Authorization headers: every one must get a 4xx
application/problem+json answer and never a token, and (see conftest.py) no
log line may carry what the attacker sent. Forged *bearer tokens* are the
subject of test_bearer_attacks.py and are not repeated here.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import time_machine
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.errors import ConfigError
from tests.support.leak_guard import LeakGuard
from tests.support.product import product_cookie, product_cookie_stamped
from tests.support.service import (
    MESSENGER_SECRET,
    ORIGIN,
    SESSION_SECRET,
    ServiceFixture,
    make_service_with_profile,
)

TOKEN_URL = "/v1/messenger/token"
USER = {"user_id": "user-42", "_fresh": True}
T0 = 1_760_000_000  # when the product set the cookie, for the tests that move the clock
MAX_AGE = 31 * 24 * 3600  # the session method's default max_age


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service_with_profile(tmp_path)


@pytest.fixture
def client(service: ServiceFixture) -> FlaskClient:
    # No cookie jar: each test sends the exact Cookie header an attacker would.
    return create_app(service.settings).test_client(use_cookies=False)


Post = Callable[..., TestResponse]


@pytest.fixture
def post(client: FlaskClient, leak_guard: LeakGuard) -> Post:
    """POST to the token endpoint with raw headers; what is sent is watched in the logs."""

    def send(
        headers: dict[str, str] | None = None,
        cookie: str | None = None,
        app_client: FlaskClient | None = None,
        **kwargs: Any,
    ) -> TestResponse:
        headers = dict(headers or {})
        if cookie is not None:
            headers["Cookie"] = f"session={cookie}"
        sent_authorization = kwargs.get("environ_overrides", {}).get("HTTP_AUTHORIZATION")
        leak_guard.watch(cookie, headers.get("Authorization"), sent_authorization)
        before = leak_guard.saw("identity_service.access", "request")
        response = (app_client or client).post(TOKEN_URL, headers=headers, **kwargs)
        body = response.get_json(silent=True)
        if isinstance(body, dict) and isinstance(body.get("token"), str):
            leak_guard.watch(body["token"])
        # The guard is not vacuous: it did capture this request's access line.
        assert leak_guard.saw("identity_service.access", "request") == before + 1
        return response

    return send


def assert_refused(response: TestResponse, status: int, reason: str | None = None) -> None:
    """A 4xx problem+json that carries no token."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/problem+json"
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(text)
    assert body["status"] == status and body["title"] and body["detail"]
    assert "token" not in body
    assert "eyJ" not in text  # no JWT, no echoed credential or cookie
    assert "Traceback" not in text
    if reason is not None:
        assert body["reason"] == reason


def cookie_from(
    data: dict[str, Any],
    key: str = SESSION_SECRET,
    salt: str = "cookie-session",
    digest: str = "sha1",
) -> str:
    """A cookie made by Flask's own session machinery, with this key, salt and digest."""
    return product_cookie(data, key, salt, digest)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- the control: the same machinery mints for an honest request -------------------


def test_control_a_genuine_cookie_from_the_product_origin_is_accepted(post: Post) -> None:
    cookie = cookie_from(USER)
    response = post({"Origin": ORIGIN}, cookie=cookie)
    assert response.status_code == 200, response.get_data(as_text=True)
    token = response.get_json()["token"]
    assert jwt.decode(token, MESSENGER_SECRET, algorithms=["HS256"])["user_id"] == "user-42"


# -- forged session cookies ---------------------------------------------------------


def _tamper_payload(cookie: str) -> str:
    """The genuine timestamp and signature under another user's payload."""
    _, timestamp, signature = cookie.rsplit(".", 2)
    forged = b64(json.dumps({"user_id": "admin", "_fresh": True}).encode())
    return f"{forged}.{timestamp}.{signature}"


def _flip_signature(cookie: str) -> str:
    head, signature = cookie.rsplit(".", 1)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{flipped}"


def _unsigned(_: str) -> str:
    return b64(json.dumps({"user_id": "admin"}).encode())


def _strip_signature(cookie: str) -> str:
    return cookie.rsplit(".", 1)[0] + "."


def _future_timestamp(cookie: str) -> str:
    # Re-dating a cookie breaks its signature: the timestamp is signed too.
    payload, _, signature = cookie.rsplit(".", 2)
    return f"{payload}.{b64((T0 + 10**6).to_bytes(4, 'big'))}.{signature}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(_tamper_payload, "bad_signature", id="payload swapped, signature kept"),
        pytest.param(_flip_signature, "bad_signature", id="signature altered"),
        pytest.param(_strip_signature, "malformed", id="signature stripped"),
        pytest.param(_unsigned, "malformed", id="unsigned json"),
        pytest.param(_future_timestamp, "bad_signature", id="timestamp altered"),
        pytest.param(lambda c: c + "A" * 9000, "malformed", id="oversized cookie"),
        pytest.param(lambda c: c.replace(".", "..", 1), "malformed", id="extra separator"),
    ],
)
def test_tampered_session_cookie_is_refused(
    post: Post, make: Callable[[str], str], reason: str
) -> None:
    forged = make(cookie_from(USER))
    assert_refused(post({"Origin": ORIGIN}, cookie=forged), 401, reason)


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(lambda: cookie_from(USER, key="another-product-" + "k" * 32), id="other key"),
        pytest.param(lambda: cookie_from(USER, key=MESSENGER_SECRET), id="messenger secret as key"),
        pytest.param(lambda: cookie_from(USER, salt="other-salt"), id="other salt"),
        pytest.param(lambda: cookie_from(USER, salt=""), id="no salt"),
        pytest.param(lambda: cookie_from(USER, digest="sha256"), id="other digest"),
    ],
)
def test_cookie_signed_for_another_app_is_refused(post: Post, cookie: Callable[[], str]) -> None:
    assert_refused(post({"Origin": ORIGIN}, cookie=cookie()), 401, "bad_signature")


def test_logged_out_session_has_no_user(post: Post) -> None:
    cookie = cookie_from({"_fresh": False, "csrf_token": "x" * 20})
    assert_refused(post({"Origin": ORIGIN}, cookie=cookie), 401, "missing_claim")


@pytest.mark.parametrize(
    ("offset", "status"),
    [(MAX_AGE, 200), (MAX_AGE + 1, 401), (-1, 401)],
    ids=["at max_age", "one second too old", "dated in the future"],
)
def test_session_age_is_checked_against_the_app_clock(
    service: ServiceFixture, post: Post, offset: int, status: int
) -> None:
    with time_machine.travel(T0, tick=False):
        cookie = cookie_from(USER)
    app = create_app(service.settings, clock=lambda: float(T0 + offset))
    response = post(
        {"Origin": ORIGIN}, cookie=cookie, app_client=app.test_client(use_cookies=False)
    )
    if status == 200:
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        assert_refused(response, 401, "expired")


@pytest.mark.parametrize("timestamp", [253402300800, 2**63, 2**64 - 1])
def test_a_signed_cookie_dated_past_year_9999_is_401_not_500(post: Post, timestamp: int) -> None:
    cookie = product_cookie_stamped(USER, SESSION_SECRET, timestamp)
    assert_refused(post({"Origin": ORIGIN}, cookie=cookie), 401, "expired")


# -- cross-origin cookie requests -----------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": "https://evil.example"}, id="other origin"),
        pytest.param({"Origin": ORIGIN + ".evil.example"}, id="product origin as prefix"),
        pytest.param({"Origin": "https://evil.example/" + ORIGIN}, id="product origin as suffix"),
        pytest.param({"Origin": ORIGIN.replace("https", "http")}, id="http downgrade"),
        pytest.param({"Origin": ORIGIN + ":443"}, id="explicit port"),
        pytest.param({"Origin": ORIGIN.upper()}, id="case changed"),
        pytest.param({"Origin": "null"}, id="null origin"),
        pytest.param({"Origin": f"{ORIGIN}, https://evil.example"}, id="two origins"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="no origin, cross-site"),
        pytest.param({"Sec-Fetch-Site": "same-site"}, id="no origin, same-site"),
        pytest.param({"Sec-Fetch-Site": "none"}, id="no origin, typed url"),
        pytest.param({}, id="neither header"),
        pytest.param(
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
            id="origin wins over fetch-site",
        ),
    ],
)
def test_cross_origin_cookie_request_is_forbidden(post: Post, headers: dict[str, str]) -> None:
    response = post(headers, cookie=cookie_from(USER))
    assert_refused(response, 403)
    # The attacker's page may not even read the refusal: CORS names no origin but
    # the exactly listed one, and none of these is it.
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        ORIGIN.upper(),
        ORIGIN.replace("app", "APP"),
        ORIGIN.replace("https", "HTTPS"),
        ORIGIN + ":443",
    ],
)
def test_cors_grants_only_the_exact_listed_origin(
    client: FlaskClient, valid_bearer: dict[str, str], origin: str
) -> None:
    # Origins are compared exactly, as documented: browsers serialise them in
    # lowercase without a default port, so any other spelling is not a browser
    # on the listed origin.
    preflight = client.options(
        TOKEN_URL,
        headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"},
    )  # fmt: skip
    token = client.post(TOKEN_URL, headers={**valid_bearer, "Origin": origin})
    assert token.status_code == 200
    for response in (preflight, token):
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
    exact = client.post(TOKEN_URL, headers={**valid_bearer, "Origin": ORIGIN})
    assert exact.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_preflight_from_another_origin_gets_no_cors_grant(client: FlaskClient) -> None:
    response = client.options(
        TOKEN_URL,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_a_broken_bearer_token_never_falls_through_to_a_valid_cookie(post: Post) -> None:
    headers = {"Origin": ORIGIN, "Authorization": "Bearer not.a.token"}
    assert_refused(post(headers, cookie=cookie_from(USER)), 401, "malformed")


# -- hostile bodies ------------------------------------------------------------------------


@pytest.fixture
def valid_bearer(service: ServiceFixture) -> dict[str, str]:
    """A genuine credential: the body alone must decide these refusals."""
    return {"Authorization": f"Bearer {service.idp_token()}"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"json": {"workspace": "main", "pad": "x" * 2000}}, id="large json"),
        pytest.param({"data": b"{" + b" " * 5000 + b"}", "content_type": "application/json"},
                     id="whitespace json"),
        pytest.param({"data": b"x" * (1024 * 1024), "content_type": "text/plain"}, id="1 MB text"),
    ],
)  # fmt: skip
def test_oversized_body_is_413(post: Post, valid_bearer: dict[str, str], body: Any) -> None:
    assert_refused(post(valid_bearer, **body), 413)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/xml", "application/jsonp"],
)  # fmt: skip
def test_wrong_content_type_is_415(
    post: Post, valid_bearer: dict[str, str], content_type: str
) -> None:
    response = post(valid_bearer, data=b'{"workspace": "main"}', content_type=content_type)
    assert_refused(response, 415)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b'{"workspace": ', 400),
        (b"[]", 422),
        (b'"main"', 422),
        (b'{"workspace": "main", "user_id": "admin"}', 422),
        (b'{"workspace": "other"}', 404),
        (b'{"workspace": "main", "attributes": {"plan": "enterprise"}}', 422),
        (b'{"workspace": {"$ne": null}}', 422),
        # The key must match exactly: a `$` anchor would let a trailing newline through.
        (b'{"workspace": "main\\n"}', 422),
        (b'{"workspace": "\\nmain"}', 422),
        (b'{"workspace": "main\\r\\n"}', 422),
        (b'{"workspace": "main\\u0000"}', 422),
    ],
)
def test_malformed_json_bodies(
    post: Post, valid_bearer: dict[str, str], data: bytes, status: int
) -> None:
    response = post(valid_bearer, data=data, content_type="application/json")
    assert_refused(response, status)


# -- malformed Authorization headers ------------------------------------------------------


def test_two_megabyte_bearer_token_is_401_not_500(post: Post, service: ServiceFixture) -> None:
    genuine = service.idp_token()
    header, _, signature = genuine.rpartition(".")
    huge = f"{header}{'A' * (2 * 1024 * 1024)}.{signature}"
    assert_refused(post({"Authorization": f"Bearer {huge}"}), 401, "too_large")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer", "malformed"),
        ("Bearer ", "malformed"),
        ("Bearer    ", "malformed"),
        ("Bearer a b", "malformed"),
        ("Bearer a.b", "malformed"),
        ("Bearer ...", "malformed"),
        ("Bearer eyJ.eyJ.sig extra", "malformed"),
        ("Bearer=eyJhbGciOiJub25lIn0.e30.", "unsupported_scheme"),
        ("Basic dXNlcjpwYXNzd29yZA==", "unsupported_scheme"),
        ("Digest username=admin", "unsupported_scheme"),
        ("Token abc.def.ghi", "unsupported_scheme"),
        ("", "missing_credentials"),
    ],
)
def test_malformed_authorization_header(post: Post, authorization: str, reason: str) -> None:
    assert_refused(post({"Authorization": authorization}), 401, reason)


@pytest.mark.parametrize(
    "credential",
    ["tökén.with.ümlauts", "eyJhbGciOi€.e30.c2ln", "\u202eeyJ.e30.sig", "😀.😀.😀"],
)
def test_non_ascii_bearer_credential(post: Post, credential: str) -> None:
    # A WSGI server hands header bytes over as latin-1 text; UTF-8 bytes arrive as mojibake.
    raw = ("Bearer " + credential).encode("utf-8").decode("latin-1")
    response = post(environ_overrides={"HTTP_AUTHORIZATION": raw})
    assert_refused(response, 401, "malformed")


def test_a_bearer_token_in_the_query_string_is_ignored_and_never_logged(
    client: FlaskClient, service: ServiceFixture, leak_guard: LeakGuard
) -> None:
    token = service.idp_token()
    leak_guard.watch(token)
    response = client.post(f"{TOKEN_URL}?access_token={token}")
    assert_refused(response, 401, "missing_credentials")
    assert leak_guard.saw("identity_service.access", "request") == 1


# -- startup refuses a weak Messenger secret ---------------------------------------------


WEAK = "weak-but-31-bytes-long-secret!!"
assert len(WEAK) == 31


def test_weak_messenger_secret_file_is_refused_at_load(service: ServiceFixture) -> None:
    (service.root / "messenger.secret").write_text(WEAK + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(service.root / "service.toml", {INSTANCE_ENV: str(service.root / "i")})
    (problem,) = caught.value.problems
    assert problem.path == "workspaces.main.secret_file"
    assert "31 bytes" in problem.message and "at least 32" in problem.message
    assert WEAK not in caught.value.detail


def test_weak_messenger_secret_env_is_refused_at_load(service: ServiceFixture) -> None:
    config = service.root / "service.toml"
    text = config.read_text().replace(
        'secret_file = "messenger.secret"', 'secret_env = "WEAK_MESSENGER_SECRET"', 1
    )
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {"WEAK_MESSENGER_SECRET": WEAK, INSTANCE_ENV: str(service.root)})
    assert [p.path for p in caught.value.problems] == ["workspaces.main.secret_env"]
    assert WEAK not in caught.value.detail


def test_serve_refuses_to_start_with_a_weak_messenger_secret(service: ServiceFixture) -> None:
    (service.root / "messenger.secret").write_text(WEAK)
    command = [str(Path(sys.executable).parent / "identity-service"), "serve",
               "--config", str(service.root / "service.toml"), "--bind", "127.0.0.1:0"]  # fmt: skip
    # If it started anyway it would serve forever: the timeout turns that into a failure.
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2, result.stderr
    assert "workspaces.main.secret_file" in result.stderr
    assert "at least 32" in result.stderr
    assert WEAK not in result.stderr + result.stdout
    assert "Booting worker" not in result.stderr  # gunicorn never started


# -- the guard itself --------------------------------------------------------------------


def test_the_log_guard_catches_a_leak(leak_guard: LeakGuard, service: ServiceFixture) -> None:
    token = service.idp_token()
    cookie = cookie_from(USER)
    leak_guard.watch(cookie)
    log = logging.getLogger("identity_service.http.api")
    log.debug("oops %s", token)
    log.info("session", extra={"fields": {"cookie": cookie}})
    log.warning("secret is %s", MESSENGER_SECRET[::-1][::-1])
    leaks = leak_guard.leaks()
    assert len(leaks) == 3
    assert all(token not in leak and cookie not in leak for leak in leaks)  # never the value
    assert "watched value #0" in leaks[2]  # the configured Messenger secret
    leak_guard.forget()  # leaked on purpose; the teardown check must pass


def test_the_log_guard_takes_a_jti_that_happens_to_contain_eyj_for_what_it_is(
    leak_guard: LeakGuard,
) -> None:
    # token_urlsafe(16) spells "eyJ" somewhere about once in 13,000 jtis.
    logging.getLogger("identity_service.audit").info(
        "mint", extra={"fields": {"jti": "Qw3eyJx9_-Tz0aB1cD2eF3", "exp": 1}}
    )
    assert leak_guard.leaks() == []
