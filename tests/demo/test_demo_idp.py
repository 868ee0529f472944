"""The demo's development identity provider: bearer auth tried locally, never outside the demo.

Against the real `identity-service demo` process: the service fetches the demo
IdP's JWKS over HTTP from the demo's own port, exactly as it fetches a real
IdP's, and verifies the bearer token with its ordinary bearer authenticator.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.demo import idp
from identity_service.demo.database import DEMO_PASSWORD, DEMO_USERS
from tests.demo.conftest import REPO, DemoServer, cli_path

ADA = DEMO_USERS[0]


def post(
    url: str,
    body: Any,
    headers: dict[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def idp_token(server: DemoServer, email: str = ADA.email, password: str = DEMO_PASSWORD) -> Any:
    return post(server.url + "demo/idp/token", {"email": email, "password": password})


def test_a_demo_users_bearer_token_gets_their_messenger_token(demo_server: DemoServer) -> None:
    status, answer = idp_token(demo_server)
    assert status == 200, answer
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == idp.TOKEN_LIFETIME
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["iss"] == idp.ISSUER and claims["aud"] == idp.AUDIENCE
    assert claims["sub"] == ADA.id

    status, minted = post(
        demo_server.url + "v1/messenger/token",
        {},
        {"Authorization": f"Bearer {answer['access_token']}"},
    )
    assert status == 200, minted
    assert minted["user_id"] == ADA.id
    messenger = jwt.decode(minted["token"], options={"verify_signature": False})
    assert messenger["plan"] == ADA.plan  # the profile row, as with the cookie


@pytest.mark.parametrize(
    ("email", "password"),
    [(ADA.email, "wrong"), ("nobody@pete.example", DEMO_PASSWORD), ("", "")],
    ids=["wrong password", "unknown email", "empty"],
)
def test_the_demo_idp_refuses_bad_credentials(
    demo_server: DemoServer, email: str, password: str
) -> None:
    status, answer = idp_token(demo_server, email, password)
    assert status == 401
    assert answer == {"error": "invalid_grant", "error_description": idp.REFUSED}


def test_the_demo_idp_refuses_a_body_that_is_not_email_and_password(
    demo_server: DemoServer,
) -> None:
    status, answer = post(demo_server.url + "demo/idp/token", ["ada"])
    assert status == 400 and answer["error"] == "invalid_request"


def test_a_failing_bearer_token_is_refused_even_with_a_valid_cookie_alongside(
    demo_server: DemoServer,
) -> None:
    browser = logged_in(demo_server)
    origin = {"Origin": demo_server.url.rstrip("/")}
    status, minted = post(demo_server.url + "v1/messenger/token", {}, origin, browser)
    assert status == 200, minted  # the cookie alone is good
    _, answer = idp_token(demo_server)
    head, payload, signature = answer["access_token"].split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    forged = f"{head}.{payload}.{flipped}"
    status, problem = post(
        demo_server.url + "v1/messenger/token",
        {},
        {**origin, "Authorization": f"Bearer {forged}"},
        browser,
    )
    assert status == 401 and problem["reason"] == "bad_signature"


def logged_in(server: DemoServer) -> urllib.request.OpenerDirector:
    """A cookie jar logged in to Pete as Ada, through the login form (CSRF token included)."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with browser.open(server.url, timeout=10) as page:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode())
    assert found is not None
    form = urllib.parse.urlencode(
        {"email": ADA.email, "password": DEMO_PASSWORD, "csrf_token": found.group(1)}
    ).encode()
    with browser.open(server.url + "login", data=form, timeout=10) as page:
        assert ADA.name in page.read().decode()
    return browser


def test_the_signing_key_is_generated_private_in_the_instance_folder(
    demo_server: DemoServer,
) -> None:
    key = demo_server.instance / idp.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with urllib.request.urlopen(demo_server.url + "demo/idp/jwks.json", timeout=10) as response:
        document = json.loads(response.read())
    assert [k["kid"] for k in document["keys"]] == [
        idp.key_id(idp.signing_key(demo_server.instance))
    ]
    assert all("d" not in k for k in document["keys"])  # the public half only
    # Never committed: the checkout's instance folder is ignored by git.
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", f"instance/{idp.KEY_FILE}"], check=False
    )
    assert ignored.returncode == 0


def test_demo_token_prints_a_token_the_running_demo_accepts(demo_server: DemoServer) -> None:
    env = {**os.environ, INSTANCE_ENV: str(demo_server.instance)}
    printed = subprocess.run(
        [str(cli_path()), "demo-token", "--email", ADA.email],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    status, minted = post(
        demo_server.url + "v1/messenger/token", {}, {"Authorization": f"Bearer {token}"}
    )
    assert status == 200 and minted["user_id"] == ADA.id
    assert "DEVELOPMENT ONLY" in printed.stderr


def test_demo_token_refuses_an_unknown_user(tmp_path: Path) -> None:
    env = {**os.environ, INSTANCE_ENV: str(tmp_path / "instance")}
    printed = subprocess.run(
        [str(cli_path()), "demo-token", "--email", "nobody@pete.example"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert printed.returncode == 2
    assert "no demo user nobody@pete.example" in printed.stderr


def test_the_service_alone_never_serves_nor_trusts_the_demo_idp(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    client = create_app(load_settings(None, {INSTANCE_ENV: str(instance)})).test_client()
    assert client.get("/demo/idp/jwks.json").status_code == 404
    assert client.post("/demo/idp/token", json={"email": ADA.email}).status_code == 404
    token = idp.issue(idp.signing_key(instance), ADA.id, ADA.email, ADA.name, now=0)
    refused = client.post(
        "/v1/messenger/token", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401


def rsa_key_pem() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "command", [["demo", "--port", "0"], ["demo-token", "--email", ADA.email]], ids=" ".join
)
@pytest.mark.parametrize("content", [b"not a key\n", rsa_key_pem()], ids=["garbage", "RSA key"])
def test_a_damaged_signing_key_is_a_clear_error_naming_the_file_and_the_fix(
    tmp_path: Path, command: list[str], content: bytes
) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / idp.KEY_FILE).write_bytes(content)
    env = {**os.environ, INSTANCE_ENV: str(instance)}
    done = subprocess.run(
        [str(cli_path()), *command], env=env, capture_output=True, text=True, timeout=60,
        check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stderr
    assert f"{instance / idp.KEY_FILE}" in done.stderr and "delete it" in done.stderr
    assert done.stdout == ""
