"""A token carries only the profile row of exactly the user it names, on every backend.

A database compares the bound `:user_id` with the id column in the column's
type: "01", " 1", "+1", "1.0" or "1e0" equal 1 in an INTEGER column (SQLite
and PostgreSQL), so `WHERE id = :user_id` finds user 1's row for a token whose
`user_id` is "01". The service checks the row's own id (`id_column`) against
the token's user id, exactly, before any value of the row is used.

These run against the real `identity-service serve`, with one workspace per
backend and id column type, and a bearer token per variant.
"""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest

from identity_service.auth import Identity
from identity_service.errors import InvalidUserIdError, ProfileUnavailableError
from identity_service.runtime import Runtime
from tests.support.postgres import POSTGRES_URL, require_postgres, scratch_table
from tests.support.product import product_cookie
from tests.support.profile_workspace import bearer_profile_workspace, idp_bearer, write_idp_key
from tests.support.served import Server, serving
from tests.support.service import MESSENGER_SECRET, SESSION_SECRET, make_service

pytestmark = pytest.mark.postgres

VICTIM_PLAN = "victim-plan-of-user-1"
# Every spelling the issue found, on either backend, and a few more of the same kind.
VARIANTS = ["01", "001", "1.0", "1.", " 1", "1 ", "+1", "1e0", "1E0", "0x1", "1\t", "1\n", "\t1"]
WORKSPACES = ["sqlite_text", "sqlite_integer", "pg_text", "pg_integer"]
# Not user ids on any backend: NUL (which PostgreSQL's text refuses), other
# controls, line separators, a lone surrogate.
NOT_USER_IDS = ["victim\u0000admin", "1\u0000", "a\u007fb", "a\u0085b", "a\u2028b", "a\ud800b"]
ORIGIN = "https://app.pete.example"
# Cookie sessions, on the INTEGER table, with ids narrowed to canonical decimals.
SESSION_WORKSPACE = """
[workspaces.session_integer]
app_id = "abc123"
region = "eu"
secret_file = "messenger.secret"
user_id_pattern = "[1-9][0-9]{{0,8}}"

[[workspaces.session_integer.attributes]]
name = "plan"
type = "string"
profile = "plan"

[[workspaces.session_integer.auth]]
method = "session"
secret_file = "session.secret"
allowed_origins = ["{origin}"]

[workspaces.session_integer.profile]
url = "{url}"
query = "SELECT id, plan FROM {table} WHERE id = :user_id"
id_column = "id"
on_unavailable = "fail"
"""


@dataclass
class Deployment:
    server: Server

    def token_response(self, workspace: str, sub: Any) -> tuple[int, dict[str, Any]]:
        return self.post(workspace, {"Authorization": f"Bearer {idp_bearer(sub)}"})

    def cookie_response(self, user_id: Any) -> tuple[int, dict[str, Any]]:
        cookie = product_cookie({"user_id": user_id}, SESSION_SECRET)
        return self.post("session_integer", {"Cookie": f"session={cookie}", "Origin": ORIGIN})

    def post(self, workspace: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/v1/messenger/token",
                body=json.dumps({"workspace": workspace}),
                headers={**headers, "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def _sqlite_table(path: Path, column_type: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE users (id {column_type} PRIMARY KEY, plan TEXT)")
        db.executemany("INSERT INTO users VALUES (?, ?)", [(1, VICTIM_PLAN), (2, "other")])
    db.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    require_postgres()
    root = tmp_path_factory.mktemp("ownership")
    write_idp_key(root)
    for name, secret in (
        ("messenger.secret", MESSENGER_SECRET),
        ("session.secret", SESSION_SECRET),
    ):
        (root / name).write_text(secret + "\n")
        (root / name).chmod(0o600)
    rows = [{"id": 1, "plan": VICTIM_PLAN}, {"id": 2, "plan": "other"}]
    with ExitStack() as stack:
        tables = {
            "sqlite_text": ("sqlite:///text.db", "users"),
            "sqlite_integer": ("sqlite:///integer.db", "users"),
            "pg_text": (POSTGRES_URL, stack.enter_context(scratch_table("id text, plan text", [
                {"id": "1", "plan": VICTIM_PLAN}, {"id": "2", "plan": "other"}]))),
            "pg_integer": (POSTGRES_URL, stack.enter_context(
                scratch_table("id integer, plan text", rows))),
        }  # fmt: skip
        _sqlite_table(root / "text.db", "TEXT")
        _sqlite_table(root / "integer.db", "INTEGER")
        config = "".join(
            bearer_profile_workspace(key, url, table, claim="plan")
            for key, (url, table) in tables.items()
        ) + SESSION_WORKSPACE.format(url=POSTGRES_URL, table=tables["pg_integer"][1], origin=ORIGIN)
        (root / "service.toml").write_text('default_workspace = "sqlite_text"\n' + config, "utf-8")
        with serving(root / "service.toml", root, workers=1, threads=4) as server:
            yield Deployment(server)


@pytest.mark.parametrize("workspace", WORKSPACES)
def test_the_user_named_gets_their_own_row(deployment: Deployment, workspace: str) -> None:
    status, body = deployment.token_response(workspace, "1")
    assert status == 200, body
    assert body["user_id"] == "1"
    claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
    assert claims["plan"] == VICTIM_PLAN
    assert body["warnings"] == []


@pytest.mark.parametrize("workspace", WORKSPACES)
@pytest.mark.parametrize("sub", VARIANTS, ids=repr)
def test_another_spelling_of_the_id_never_gets_that_row(
    deployment: Deployment, workspace: str, sub: str
) -> None:
    status, body = deployment.token_response(workspace, sub)
    if status == 401:  # a control character: not a user id at all
        assert body["reason"] == "invalid_claim"
        assert any(ord(c) < 0x20 for c in sub)
        return
    assert status == 200, body
    assert body["user_id"] == sub
    claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == sub
    assert "plan" not in claims
    assert VICTIM_PLAN not in json.dumps(body)
    assert len(body["warnings"]) == 1
    assert body["warnings"][0].startswith(("profile row ignored", "no profile row"))


@pytest.mark.parametrize("workspace", WORKSPACES)
@pytest.mark.parametrize("sub", NOT_USER_IDS, ids=repr)
def test_a_sub_that_is_not_a_user_id_is_refused_alike_on_every_backend(
    deployment: Deployment, workspace: str, sub: str
) -> None:
    # On PostgreSQL, NUL used to come back as a 503 "profile unavailable".
    status, body = deployment.token_response(workspace, sub)
    assert status == 401, body
    assert body["reason"] == "invalid_claim"


@pytest.mark.parametrize(
    ("user_id", "status"),
    [
        pytest.param("1", 200, id="own-id"),
        pytest.param(1, 200, id="integer-in-the-session"),
        pytest.param("01", 401, id="leading-zero-refused-by-the-pattern"),
        pytest.param("1\n", 401, id="newline-not-let-through-as-by-dollar"),
        pytest.param("1\u0000", 401, id="nul"),
        pytest.param("abc", 401, id="not-the-pattern"),
    ],
)
def test_session_user_ids_follow_the_same_rule(
    deployment: Deployment, user_id: Any, status: int
) -> None:
    got, body = deployment.cookie_response(user_id)
    assert got == status, body
    if status == 200:
        claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
        assert (claims["user_id"], claims["plan"]) == ("1", VICTIM_PLAN)
    else:
        assert body["reason"] == "invalid_claim"


@pytest.mark.parametrize("workspace", ["sqlite_integer", "pg_integer"])
def test_an_id_the_column_type_cannot_hold_is_no_row_not_an_outage(
    deployment: Deployment, workspace: str
) -> None:
    # "abc" is no integer: PostgreSQL refuses the comparison (a data exception).
    status, body = deployment.token_response(workspace, "abc")
    assert status == 200, body
    assert body["warnings"] == [
        "no profile row for this user: attributes come from the identity's claims alone"
    ]


def test_the_issuer_checks_the_user_id_before_any_lookup(tmp_path: Path) -> None:
    # The server-rendered snippet mints through the issuer without authenticate().
    # The profile database is unreachable under `fail`: a lookup would be a 503.
    service = make_service(tmp_path)
    main = service.settings.workspaces["main"]
    assert main.profile is not None
    unreachable = replace(
        main.profile, url="postgresql+psycopg://nobody@127.0.0.1:1/x", on_unavailable="fail"
    )
    main = replace(main, profile=unreachable)
    runtime = Runtime.build(replace(service.settings, workspaces={"main": main}))
    try:
        for bad in ("victim\x00admin", "a\nb", "x" * 256):
            with pytest.raises(InvalidUserIdError):
                runtime.issuer.issue(Identity(user_id=bad, method="session"), "main", 1)
        narrowed = replace(main, user_id_pattern=re.compile("[0-9]+"))
        with pytest.raises(InvalidUserIdError, match="user_id_pattern"):
            runtime.issuer.issue_detailed(Identity("user-42", "session"), narrowed, 1)
        with pytest.raises(ProfileUnavailableError):  # a good id does reach the database
            runtime.issuer.issue(Identity("42", "session"), "main", 1)
    finally:
        for source in runtime.profiles.values():
            source.close()
