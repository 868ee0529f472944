"""Secrets rotate without a restart and without one failed request.

The Messenger secret and the product's session key are files; an operator
rotates one by writing the new value beside it and `os.replace`-ing it into
place. These tests do exactly that while a real server (werkzeug on
127.0.0.1:0, a thread per request) is answering a pool of concurrent clients,
and count every response. No sleeping: the rotation happens once enough
requests have completed, and every request records whether it started before
or after the file was replaced.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from werkzeug.serving import make_server

from identity_service import create_app
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.secrets import SecretSource
from identity_service.settings import SessionAuthSettings, Settings
from tests.support.service import (
    MESSENGER_SECRET,
    ORIGIN,
    SESSION_SECRET,
    ServiceFixture,
    make_service,
)

TOKEN_PATH = "/v1/messenger/token"
NEW_MESSENGER_SECRET = "n" * 40 + "-rotated-messenger-secret"
OLDER_SESSION_KEY = "o" * 40 + "-the-key-before-the-current"
NEW_SESSION_KEY = "k" * 40 + "-the-next-product-session-key"
UNLIMITED = '\n[service.rate_limit]\nper_client = "1000000/minute"\nper_user = "1000000/minute"\n'
CLIENTS = 6
PER_PHASE = 60  # completed requests before the rotation, and started after it


# -- a real server and a pool of clients ----------------------------------------------


@contextmanager
def serving(app: Flask) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 on a free port, a thread per request; yields the port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@dataclass(frozen=True)
class Outcome:
    """One request: which rotation phase it started and finished in, and the answer."""

    started: int
    finished: int
    status: int
    body: dict[str, Any]
    credential: str


class Traffic:
    """Clients that keep POSTing to the token endpoint until told to stop."""

    def __init__(self, port: int, request: Callable[[int], tuple[dict[str, str], str]]) -> None:
        self.port = port
        self.request = request  # phase -> (headers, a label of the credential sent)
        self.phase = 0
        self.outcomes: list[Outcome] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._stop = threading.Event()

    def _client(self) -> None:
        while not self._stop.is_set():
            started = self.phase
            headers, credential = self.request(started)
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                connection.request("POST", TOKEN_PATH, headers=headers)
                response = connection.getresponse()
                status, raw = response.status, response.read()
            except OSError as exc:  # a refused or dropped connection is a failed request too
                with self._progress:
                    self.errors.append(type(exc).__name__)
                    self._progress.notify_all()
                continue
            finally:
                connection.close()
            outcome = Outcome(started, self.phase, status, json.loads(raw), credential)
            with self._progress:
                self.outcomes.append(outcome)
                self._progress.notify_all()

    def wait_for(self, count: int, started_in: int) -> None:
        """Block until `count` requests that started in phase `started_in` have completed."""
        with self._progress:
            done = self._progress.wait_for(
                lambda: (
                    sum(o.started == started_in for o in self.outcomes) >= count
                    or len(self.errors) > 0
                ),
                timeout=60,
            )
        assert done, "the clients stalled"

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(self._client) for _ in range(CLIENTS)]
            try:
                yield self
            finally:
                self._stop.set()
                for future in futures:
                    future.result()

    def next_phase(self) -> None:
        self.phase += 1


def replace_file(path: Path, value: str) -> None:
    """Rotate a secret the way operators should: write beside it, then rename over it."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(value + "\n")
    temporary.chmod(0o600)
    os.replace(temporary, path)


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    svc = make_service(tmp_path, extra=UNLIMITED)
    svc.add_profile("user-42", email="ada@pete.example", plan="pro", teammates=3)
    return svc


class Records(logging.Handler):
    """Every record of the service's loggers, whatever production logging did to propagation."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, logger: str) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == logger]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("identity_service")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def verifies(token: str, secret: str) -> bool:
    try:
        jwt.decode(token, secret, algorithms=["HS256"])
    except jwt.InvalidSignatureError:
        return False
    return True


# -- the Messenger secret -----------------------------------------------------------------


def test_messenger_secret_rotation_under_load_fails_no_request(service: ServiceFixture) -> None:
    idp_token = service.idp_token()
    headers = {"Authorization": f"Bearer {idp_token}"}
    with serving(create_app(service.settings)) as port:
        traffic = Traffic(port, lambda _phase: (headers, "bearer"))
        with traffic.running():
            traffic.wait_for(PER_PHASE, started_in=0)
            replace_file(service.root / "messenger.secret", NEW_MESSENGER_SECRET)
            traffic.next_phase()
            traffic.wait_for(PER_PHASE, started_in=1)

    assert traffic.errors == []
    assert [o.status for o in traffic.outcomes if o.status != 200] == []
    tokens: dict[tuple[int, int], list[str]] = defaultdict(list)
    for outcome in traffic.outcomes:
        tokens[outcome.started, outcome.finished].append(outcome.body["token"])
    # Before the replace: the old secret. After it: only the new one. In between: either.
    assert all(verifies(t, MESSENGER_SECRET) for t in tokens[0, 0])
    assert all(verifies(t, NEW_MESSENGER_SECRET) for t in tokens[1, 1])
    assert not any(verifies(t, MESSENGER_SECRET) for t in tokens[1, 1])
    assert all(
        verifies(t, MESSENGER_SECRET) != verifies(t, NEW_MESSENGER_SECRET) for t in tokens[0, 1]
    )
    assert len(tokens[0, 0]) >= PER_PHASE
    assert len(tokens[1, 1]) >= PER_PHASE


def test_next_token_after_the_replace_uses_the_new_secret(service: ServiceFixture) -> None:
    client = create_app(service.settings).test_client()
    headers = {"Authorization": f"Bearer {service.idp_token()}"}
    before = client.post(TOKEN_PATH, headers=headers).get_json()["token"]
    replace_file(service.root / "messenger.secret", NEW_MESSENGER_SECRET)
    after = client.post(TOKEN_PATH, headers=headers).get_json()["token"]
    assert verifies(before, MESSENGER_SECRET)
    assert verifies(after, NEW_MESSENGER_SECRET) and not verifies(after, MESSENGER_SECRET)


BAD_ROTATIONS: dict[str, Callable[[Path], None]] = {
    "too short": lambda path: replace_file(path, "short-rotated-value-xyz"),
    "empty": lambda path: replace_file(path, ""),
    "removed mid-rotation": lambda path: path.unlink(),
}


@pytest.mark.parametrize("bad", list(BAD_ROTATIONS))
def test_a_bad_rotated_messenger_secret_keeps_the_previous_one(
    service: ServiceFixture, records: Records, bad: str
) -> None:
    path = service.root / "messenger.secret"
    client = create_app(service.settings).test_client()
    headers = {"Authorization": f"Bearer {service.idp_token()}"}
    assert client.post(TOKEN_PATH, headers=headers).status_code == 200
    BAD_ROTATIONS[bad](path)
    for _ in range(3):
        response = client.post(TOKEN_PATH, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert verifies(response.get_json()["token"], MESSENGER_SECRET)
    refusals = [m for m in records.messages("identity_service.secrets") if "refused" in m]
    if path.exists():
        # Reported once (the refused file is remembered), naming the file, never the value.
        assert len(refusals) == 1
        assert str(path) in refusals[0] and "at least 32" in refusals[0]
    for record in records.records:
        text = record.getMessage()
        assert "short-rotated-value-xyz" not in text and MESSENGER_SECRET not in text
    # Then a good file is picked up as usual.
    path.unlink(missing_ok=True)
    replace_file(path, NEW_MESSENGER_SECRET)
    token = client.post(TOKEN_PATH, headers=headers).get_json()["token"]
    assert verifies(token, NEW_MESSENGER_SECRET)
    assert any("secret reloaded" in m for m in records.messages("identity_service.secrets"))


# -- the product's session key ----------------------------------------------------------


def with_fallback(service: ServiceFixture) -> Settings:
    """The service's configuration with a previous session key in fallback_secret_files."""
    replace_file(service.root / "session.old.secret", OLDER_SESSION_KEY)
    config = service.root / "service.toml"
    text = config.read_text().replace(
        'secret_file = "session.secret"',
        'secret_file = "session.secret"\nfallback_secret_files = ["session.old.secret"]',
        1,
    )
    config.write_text(text)
    return load_settings(config, {INSTANCE_ENV: str(service.root / "instance")})


def test_session_key_rotation_under_load_fails_no_request(service: ServiceFixture) -> None:
    settings = with_fallback(service)
    user = {"user_id": "user-42"}
    # Cookies the product issued before the rotation (current key), after it (new key),
    # and one from the rotation before that, which must stop working.
    cookie_current = service.session_cookie(user, key=SESSION_SECRET)
    cookie_new = service.session_cookie(user, key=NEW_SESSION_KEY)
    cookie_older = service.session_cookie(user, key=OLDER_SESSION_KEY)

    turns = itertools.count()

    def request(phase: int) -> tuple[dict[str, str], str]:
        # Phase 0: before; 1: old key copied to the fallback file; 2: new key in place.
        # From phase 2 on, clients alternate between the outgoing and the new cookie.
        label = "new" if phase >= 2 and next(turns) % 2 else "current"
        cookie = cookie_new if label == "new" else cookie_current
        return {"Cookie": f"session={cookie}", "Origin": ORIGIN}, label

    with serving(create_app(settings)) as port:
        traffic = Traffic(port, request)
        with traffic.running():
            traffic.wait_for(PER_PHASE, started_in=0)
            # Step 1: the outgoing key becomes the fallback (the older one drops out).
            replace_file(service.root / "session.old.secret", SESSION_SECRET)
            traffic.next_phase()
            traffic.wait_for(PER_PHASE, started_in=1)
            # Step 2: the new key becomes current; the product starts signing with it.
            replace_file(service.root / "session.secret", NEW_SESSION_KEY)
            traffic.next_phase()
            traffic.wait_for(PER_PHASE, started_in=2)
        client = create_app(settings).test_client(use_cookies=False)

        def status(cookie: str) -> int:
            headers = {"Cookie": f"session={cookie}", "Origin": ORIGIN}
            return client.post(TOKEN_PATH, headers=headers).status_code

        assert (status(cookie_current), status(cookie_new), status(cookie_older)) == (200, 200, 401)

    assert traffic.errors == []
    failed = [(o.started, o.credential, o.status) for o in traffic.outcomes if o.status != 200]
    assert failed == []
    labels = {(o.started, o.credential) for o in traffic.outcomes}
    assert {(0, "current"), (1, "current"), (2, "current")} <= labels
    assert (2, "new") in labels


def test_session_rotation_between_the_two_key_reads_of_one_request(
    service: ServiceFixture,
) -> None:
    """The operator's two renames can fall between the reads of the current and fallback keys.

    Each request reads the current key and the fallback keys (a stat each); the
    operator's two `os.replace` calls are made here at the worst moment, right
    after the request's first key read, so it sees one file before and one after
    the rotation. A cookie signed with the outgoing key must still verify.
    """
    settings = with_fallback(service)
    method = settings.workspaces["main"].auth[1]
    assert isinstance(method, SessionAuthSettings)
    cookie = service.session_cookie({"user_id": "user-42"}, key=SESSION_SECRET)
    client = create_app(settings).test_client(use_cookies=False)
    headers = {"Cookie": f"session={cookie}", "Origin": ORIGIN}
    assert client.post(TOKEN_PATH, headers=headers).status_code == 200  # keys now cached

    def rotate() -> None:
        replace_file(service.root / "session.old.secret", SESSION_SECRET)
        replace_file(service.root / "session.secret", NEW_SESSION_KEY)

    rotate_after_first_read([method.secret, *method.fallback_secrets], rotate)
    response = client.post(TOKEN_PATH, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    new_cookie = service.session_cookie({"user_id": "user-42"}, key=NEW_SESSION_KEY)
    headers["Cookie"] = f"session={new_cookie}"
    assert client.post(TOKEN_PATH, headers=headers).status_code == 200


def rotate_after_first_read(sources: list[SecretSource], rotate: Callable[[], None]) -> None:
    """Run `rotate` once, right after whichever of `sources` is read first (a real read)."""
    done = threading.Event()
    for source in sources:
        read = source.get

        def get(read: Callable[[], bytes] = read) -> bytes:
            value = read()
            if not done.is_set():
                done.set()
                rotate()
            return value

        source.get = get  # type: ignore[method-assign]


def test_a_too_short_rotated_session_key_keeps_the_previous_one(
    service: ServiceFixture, records: Records
) -> None:
    client = create_app(service.settings).test_client(use_cookies=False)
    cookie = service.session_cookie({"user_id": "user-42"})
    headers = {"Cookie": f"session={cookie}", "Origin": ORIGIN}
    replace_file(service.root / "session.secret", "short-key")  # < 16 bytes
    for _ in range(2):
        assert client.post(TOKEN_PATH, headers=headers).status_code == 200
    refusals = [m for m in records.messages("identity_service.secrets") if "refused" in m]
    assert len(refusals) == 1
    assert "session key" in refusals[0] and "short-key" not in refusals[0]
