"""Operator faults with secret files, against the real `identity-service serve` (2 workers).

A session fallback key that is removed, emptied or shortened is revoked: no
cookie signed with it verifies any more, in any worker, from the next request
each worker serves, and each worker logs the revocation once. The primary
secrets keep their "last good value" rule instead (tests/test_rotation.py).
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.served import Server, serving
from tests.support.service import ORIGIN, ServiceFixture, make_service

TOKEN_PATH = "/v1/messenger/token"
OLD_SESSION_KEY = "o" * 40 + "-the-outgoing-product-session-key"
UNLIMITED = '\n[service.rate_limit]\nper_client = "1000000/minute"\nper_user = "1000000/minute"\n'
WORKERS = 2
REVOKED = r'"message":"secret revoked: workspaces\.main\.auth\[1\] session key \(fallback\)'


def with_fallback(root: Path) -> ServiceFixture:
    """The test service, its session method also verifying with a fallback key file."""
    service = make_service(root, extra=UNLIMITED)
    service.add_profile("user-42", email="ada@pete.example", plan="pro", teammates=3)
    (root / "session-old.secret").write_text(OLD_SESSION_KEY + "\n")
    config = root / "service.toml"
    text = config.read_text().replace(
        'secret_file = "session.secret"\n',
        'secret_file = "session.secret"\nfallback_secret_files = ["session-old.secret"]\n',
    )
    config.write_text(text)
    return service


def mint_status(port: int, cookie: str) -> tuple[int, str | None]:
    """One token request on a fresh connection (so the workers share them)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST", TOKEN_PATH, headers={"Origin": ORIGIN, "Cookie": f"session={cookie}"}
        )
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    return response.status, body.get("reason")


def revoking_workers(server: Server) -> set[str]:
    pids = set()
    for line in server.lines:
        if re.search(REVOKED, line):
            found = re.search(r'"pid":(\d+)', line)
            assert found is not None, line
            pids.add(found.group(1))
    return pids


def delete(path: Path) -> None:
    path.unlink()


def empty(path: Path) -> None:
    path.write_text("")


def shorten(path: Path) -> None:
    path.write_text("short\n")  # under the 16 bytes a session key needs


@pytest.mark.fault
@pytest.mark.parametrize("damage", [delete, empty, shorten], ids=["deleted", "emptied", "short"])
def test_a_removed_session_fallback_key_is_revoked_in_every_worker(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    service = with_fallback(tmp_path)
    old_cookie = service.session_cookie({"user_id": "user-42"}, key=OLD_SESSION_KEY)
    current_cookie = service.session_cookie({"user_id": "user-42"})
    with serving(tmp_path / "service.toml", tmp_path, workers=WORKERS, threads=2) as server:
        port = server.port
        server.wait_for_lines("Booting worker", count=WORKERS)
        assert [mint_status(port, old_cookie)[0] for _ in range(6)] == [200] * 6

        damage(tmp_path / "session-old.secret")
        answers = []
        # Each worker revokes at its next request; send until both have said so.
        for _ in range(200):
            answers.append(mint_status(port, old_cookie))
            if len(revoking_workers(server)) == WORKERS:
                break
        assert len(revoking_workers(server)) == WORKERS, server.log()
        assert set(answers) == {(401, "bad_signature")}
        assert mint_status(port, current_cookie)[0] == 200  # the current key still verifies
        lines = [x for x in server.lines if re.search(REVOKED, x)]
        assert len(lines) == WORKERS  # once per worker, not once per request
        assert "session-old.secret" in lines[0]
        assert OLD_SESSION_KEY not in server.log()

        # Restored (a new good file): the key verifies again.
        (tmp_path / "session-old.secret").write_text(OLD_SESSION_KEY + "\n")
        assert mint_status(port, old_cookie)[0] == 200
