"""Pete, the demo product, over real HTTP requests (werkzeug's test client, no browser).

The app under test is the real one-origin WSGI app `create_demo_app` builds on
the bundled configuration (dev secrets in a tmp instance folder), with the
database seeded by `database.prepare`: nothing is mocked.
"""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from werkzeug.test import Client, TestResponse

from identity_service.auth import RequestView
from identity_service.auth.session import SessionAuthenticator
from identity_service.cli.main import main
from identity_service.config import INSTANCE_ENV, bundled_config_text, load_settings
from identity_service.demo import database
from identity_service.demo.cli import choose_widget
from identity_service.demo.product import (
    CSRF_FAILED,
    LOGIN_FAILED,
    create_demo_app,
    session_auth,
)
from identity_service.errors import AuthenticationError
from identity_service.intercom import WIDGET_URL
from identity_service.settings import Settings
from tests.support.product import product_cookie

ORIGIN = "http://localhost"  # werkzeug's test client serves http://localhost
ADA = database.DEMO_USERS[0]
PASSWORD = database.DEMO_PASSWORD
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ERROR = re.compile(r'<p class="error" id="login-error" role="alert">([^<]*)</p>')


@dataclass
class Demo:
    settings: Settings
    db: Path
    client: Client

    def csrf(self) -> str:
        """Open the login page (which starts a session) and return its CSRF token."""
        found = _CSRF.search(self.client.get("/").get_data(as_text=True))
        assert found is not None
        return found.group(1)

    def login(self, email: str, password: str, csrf: str | None = None) -> TestResponse:
        form = {"email": email, "password": password}
        if csrf is not None:
            form["csrf_token"] = csrf
        return self.client.post("/login", data=form)

    def token_status(self) -> int:
        return self.client.post("/v1/messenger/token", headers={"Origin": ORIGIN}).status_code

    def cookie(self) -> str:
        cookie = self.client.get_cookie("session")
        assert cookie is not None
        return cookie.value


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database as `prepare` seeds it; tests get copies (argon2 is slow on purpose)."""
    db = tmp_path_factory.mktemp("seeded") / "demo.db"
    database.prepare(db)
    return db


def build(
    tmp_path: Path,
    seeded: Path,
    environ: dict[str, str] | None = None,
    config: Path | None = None,
) -> Demo:
    instance = tmp_path / "instance"
    settings = load_settings(config, {INSTANCE_ENV: str(instance)})
    settings, real = choose_widget(settings, None, environ or {})
    db = database.database_path(instance)
    db.parent.mkdir(parents=True, exist_ok=True)  # loading the configuration writes nothing
    shutil.copyfile(seeded, db)
    assert database.prepare(db) is False  # the copy is a complete demo database
    app = create_demo_app(settings, db, widget_url=WIDGET_URL if real else "/demo/widget.js")
    return Demo(settings, db, Client(app))


@pytest.fixture
def demo(tmp_path: Path, seeded: Path) -> Demo:
    return build(tmp_path, seeded)


def error_text(response: TestResponse) -> str:
    found = _ERROR.search(response.get_data(as_text=True))
    assert found is not None, response.get_data(as_text=True)
    return found.group(1)


def rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(r) for r in connection.execute("SELECT * FROM users ORDER BY id")]


# -- login --------------------------------------------------------------------------------


def test_the_right_password_logs_in_and_the_token_carries_the_profile(demo: Demo) -> None:
    response = demo.login(ADA.email, PASSWORD, demo.csrf())
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    page = demo.client.get("/")
    assert "Hello, Ada Lovelace" in page.get_data(as_text=True)
    assert "no-store" in page.headers["Cache-Control"]

    token = demo.client.post("/v1/messenger/token", headers={"Origin": ORIGIN})
    assert token.status_code == 200
    secret = demo.settings.workspace(None).secret.get()
    claims = jwt.decode(token.get_json()["token"], secret, algorithms=["HS256"])
    assert claims["user_id"] == ADA.id
    assert (claims["email"], claims["name"], claims["plan"], claims["teammates"]) == (
        ADA.email, ADA.name, ADA.plan, ADA.teammates,
    )  # fmt: skip


def test_an_unknown_email_and_a_wrong_password_get_the_same_answer(demo: Demo) -> None:
    csrf = demo.csrf()
    wrong_password = demo.login(ADA.email, "not-the-password", csrf)
    unknown_email = demo.login("nobody@pete.example", PASSWORD, csrf)

    assert wrong_password.status_code == unknown_email.status_code == 401
    assert error_text(wrong_password) == error_text(unknown_email) == LOGIN_FAILED
    # Apart from the email echoed back into the form, the pages are identical.
    assert wrong_password.get_data(as_text=True).replace(f'value="{ADA.email}"', "E") == (
        unknown_email.get_data(as_text=True).replace('value="nobody@pete.example"', "E")
    )
    assert demo.token_status() == 401  # neither attempt logged anyone in


@pytest.mark.parametrize(
    "csrf",
    [None, "", "forged-token-0123456789abcdefghijklmnopqrstu"],
    ids=["missing", "empty", "forged"],
)
def test_login_requires_the_sessions_csrf_token(demo: Demo, csrf: str | None) -> None:
    demo.csrf()  # the session has a token; the form does not echo it
    response = demo.login(ADA.email, PASSWORD, csrf)
    assert response.status_code == 400
    assert error_text(response) == CSRF_FAILED
    assert demo.token_status() == 401


def test_a_csrf_token_from_another_session_is_refused(
    demo: Demo, tmp_path: Path, seeded: Path
) -> None:
    stranger = build(tmp_path / "other", seeded)  # another browser (and another key) altogether
    victim_token = demo.csrf()
    stranger.csrf()
    assert stranger.login(ADA.email, PASSWORD, victim_token).status_code == 400
    # Same key, fresh session (a cross-site form would arrive without the victim's cookie).
    fresh = Demo(demo.settings, demo.db, Client(demo.client.application))
    assert fresh.login(ADA.email, PASSWORD, victim_token).status_code == 400
    assert fresh.token_status() == 401


def test_logout_requires_the_csrf_token_and_ends_the_session(demo: Demo) -> None:
    demo.login(ADA.email, PASSWORD, demo.csrf())
    assert demo.token_status() == 200

    refused = demo.client.post("/logout", data={})
    assert refused.status_code == 400
    assert demo.token_status() == 200  # still logged in

    csrf = _CSRF.search(demo.client.get("/").get_data(as_text=True))
    assert csrf is not None
    response = demo.client.post("/logout", data={"csrf_token": csrf.group(1)})
    assert response.status_code == 303
    assert demo.token_status() == 401


def test_logging_in_starts_a_new_session_with_a_new_csrf_token(demo: Demo) -> None:
    before = demo.csrf()
    demo.login(ADA.email, PASSWORD, before)
    after = _CSRF.search(demo.client.get("/").get_data(as_text=True))
    assert after is not None and after.group(1) != before


# -- the database -------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes_only(demo: Demo) -> None:
    stored = rows(demo.db)
    assert [row["email"] for row in stored] == [user.email for user in database.DEMO_USERS]
    hasher = PasswordHasher()
    for row in stored:
        assert row["password_hash"].startswith("$argon2id$")
        assert hasher.verify(row["password_hash"], PASSWORD)
    assert len({row["password_hash"] for row in stored}) == len(stored)  # salted
    assert PASSWORD.encode() not in demo.db.read_bytes()


def test_an_outdated_hash_is_upgraded_at_login(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    database.prepare(db, hasher=weak)
    before = rows(db)[0]["password_hash"]
    assert PasswordHasher().check_needs_rehash(before)

    assert database.authenticate(db, ADA.email, PASSWORD) is not None
    after = rows(db)[0]["password_hash"]
    assert after != before and not PasswordHasher().check_needs_rehash(after)
    assert PasswordHasher().verify(after, PASSWORD)


def test_the_email_is_matched_without_regard_to_case(demo: Demo) -> None:
    assert database.authenticate(demo.db, "  ADA@Pete.Example ", PASSWORD) is not None


def test_reset_recreates_the_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    assert database.prepare(db) is True
    seeded = rows(db)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE users SET plan = 'enterprise' WHERE id = ?", (ADA.id,))
        connection.execute("DELETE FROM users WHERE id = ?", (database.DEMO_USERS[2].id,))

    assert database.prepare(db) is False  # kept as it is without reset
    assert [r["plan"] for r in rows(db)] == ["enterprise", "team"]

    assert database.prepare(db, reset=True) is True
    again = rows(db)
    assert [{k: v for k, v in r.items() if k != "password_hash"} for r in again] == [
        {k: v for k, v in r.items() if k != "password_hash"} for r in seeded
    ]
    assert oct(db.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("content", [b"", b"not a database at all"], ids=["empty", "garbage"])
def test_a_file_without_the_users_table_is_seeded(tmp_path: Path, content: bytes) -> None:
    # The service's SQLite engine creates an empty file when it opens the path first.
    db = tmp_path / "demo.db"
    db.write_bytes(content)
    assert database.prepare(db) is True
    assert len(rows(db)) == len(database.DEMO_USERS)


# -- the cookie the service reads ---------------------------------------------------------


def test_the_demo_cookie_is_accepted_by_the_session_authenticator(demo: Demo) -> None:
    demo.login(ADA.email, PASSWORD, demo.csrf())
    cookie = demo.cookie()
    authenticator = SessionAuthenticator(session_auth(demo.settings.workspace(None)))

    view = RequestView(cookies={"session": cookie}, origin=ORIGIN, host_origin=ORIGIN)
    identity = authenticator.authenticate(view, time.time())
    assert identity.user_id == ADA.id
    assert identity.method == "session"

    # Verified, not merely parsed: one changed signature character is refused...
    payload, _, signature = cookie.rpartition(".")
    tampered = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    with pytest.raises(AuthenticationError):
        authenticator.authenticate(
            RequestView(cookies={"session": tampered}, origin=ORIGIN, host_origin=ORIGIN),
            time.time(),
        )
    # ...and so is a Flask session for the same user signed with any other key.
    forged = product_cookie({"user_id": ADA.id}, "another-product-key-0123456789")
    with pytest.raises(AuthenticationError):
        authenticator.authenticate(
            RequestView(cookies={"session": forged}, origin=ORIGIN, host_origin=ORIGIN),
            time.time(),
        )


def test_the_product_signs_with_whatever_the_service_is_configured_to_verify(
    tmp_path: Path, seeded: Path
) -> None:
    # Not Flask's defaults: had the product ignored any of these, the service would refuse.
    text = bundled_config_text().replace(
        'method = "session"\n',
        'method = "session"\ncookie_name = "pete"\nsalt = "pete-salt"\ndigest = "sha256"\n'
        'user_id_key = "uid"\n',
    )
    assert 'digest = "sha256"' in text
    config = tmp_path / "custom.toml"
    config.write_text(text)
    demo = build(tmp_path, seeded, config=config)

    demo.login(ADA.email, PASSWORD, demo.csrf())
    assert demo.client.get_cookie("session") is None
    cookie = demo.client.get_cookie("pete")
    assert cookie is not None
    assert demo.token_status() == 200
    identity = SessionAuthenticator(session_auth(demo.settings.workspace(None))).authenticate(
        RequestView(cookies={"pete": cookie.value}, origin=ORIGIN, host_origin=ORIGIN),
        time.time(),
    )
    assert identity.user_id == ADA.id


def test_the_login_page_alone_does_not_authenticate(demo: Demo) -> None:
    demo.csrf()  # a session cookie now exists, holding only the CSRF token
    response = demo.client.post("/v1/messenger/token", headers={"Origin": ORIGIN})
    assert response.status_code == 401


def test_pages_carry_a_strict_nonce_csp_matching_the_snippet(demo: Demo) -> None:
    demo.login(ADA.email, PASSWORD, demo.csrf())
    page = demo.client.get("/")
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    html = page.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert len(scripts) == 3  # messenger.js, startMessenger, the page's own script
    assert all(f'nonce="{nonce.group(1)}"' in tag for tag in scripts)
    assert 'src="/v1/messenger/messenger.js" integrity="sha384-' in html
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


# -- your own Intercom workspace ----------------------------------------------------------


def test_intercom_variables_point_the_demo_at_a_real_workspace(
    tmp_path: Path, seeded: Path
) -> None:
    secret = "real-intercom-messenger-secret-0123456789abcdef"
    environ = {
        "INTERCOM_APP_ID": "ab12cd34",
        "INTERCOM_MESSENGER_SECRET": secret,
        "INTERCOM_REGION": "eu",
    }
    demo = build(tmp_path, seeded, environ)
    demo.login(ADA.email, PASSWORD, demo.csrf())

    page = demo.client.get("/").get_data(as_text=True)
    assert '"widgetUrl":"https://widget.intercom.io/widget/{app_id}"' in page
    assert '"appId":"ab12cd34"' in page
    assert 'id="intercom-stand-in"' not in page
    answer = demo.client.post("/v1/messenger/token", headers={"Origin": ORIGIN}).get_json()
    assert (answer["app_id"], answer["api_base"]) == ("ab12cd34", "https://api-iam.eu.intercom.io")
    claims = jwt.decode(answer["token"], secret, algorithms=["HS256"])
    assert claims["user_id"] == ADA.id and claims["plan"] == ADA.plan
    # The replaced development secret is never even generated: nothing reads it.
    assert not (tmp_path / "instance" / "dev-workspaces-default.secret").exists()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--real-widget"], {}, "--real-widget needs your workspace"),
        ([], {"INTERCOM_APP_ID": "ab12cd34"}, "INTERCOM_MESSENGER_SECRET is not"),
        ([], {"INTERCOM_APP_ID": "ab12cd34", "INTERCOM_MESSENGER_SECRET": "short"}, "5 bytes"),
        (
            [],
            {"INTERCOM_APP_ID": "a b", "INTERCOM_MESSENGER_SECRET": "x" * 40},
            "must be your Intercom app id",
        ),
    ],
    ids=["flag-without-workspace", "half-configured", "short-secret", "bad-app-id"],
)
def test_a_half_configured_real_workspace_is_a_clear_error(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    environ: dict[str, str | None] = {
        "INTERCOM_APP_ID": None,
        "INTERCOM_MESSENGER_SECRET": None,
        "INTERCOM_REGION": None,
        "IDENTITY_SERVICE_CONFIG": None,
        INSTANCE_ENV: str(tmp_path / "instance"),
        **env,
    }
    # A port already taken: were the check ever to pass, the demo would fail to listen
    # (a different message) instead of serving forever inside the test.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, ["demo", "--port", port, *args], env=environ)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "instance" / "demo.db").exists()  # refused before any setup
