"""The profile database hung or cut under traffic, behind a proxy the test controls.

The real `identity-service serve` (2 workers x 4 threads) reads profile rows
from the shared PostgreSQL through `tests/support/tcp_proxy.py`. The test
makes the proxy silent (connections open, nothing answered: a partition that
no TCP timeout notices) or cuts every connection, while clients keep asking
for tokens and a prober keeps asking `/healthz`. What must hold:

- no 5xx, except 503 `profile-unavailable` where `on_unavailable = "fail"`;
- no request slower than the documented bound: the lookup's deadline
  (timeout + 0.25 s) or, for a new connection, the pool wait plus the connect
  timeout (here 0.5 s + 2 s), plus scheduling slack;
- `/healthz` answers throughout;
- once the proxy forwards again, profile rows are back within the breaker's
  cooldown plus one lookup.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import jwt
import pytest
from sqlalchemy import make_url

from tests.support.postgres import POSTGRES_URL, require_postgres, scratch_table
from tests.support.profile_workspace import bearer_profile_workspace, idp_bearer, write_idp_key
from tests.support.served import Server, serving
from tests.support.service import MESSENGER_SECRET
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = [pytest.mark.postgres, pytest.mark.fault]

TIMEOUT = 0.5  # profile.timeout
DEADLINE = TIMEOUT + 0.25  # the client deadline of a lookup on an open connection
CONNECT_TIMEOUT = 2  # libpq's minimum, which a new connection may wait
COOLDOWN = 1.0  # profile.breaker_cooldown
BOUND = max(DEADLINE, TIMEOUT + CONNECT_TIMEOUT)  # documented in docs/operations.md
SLACK = 1.5  # a busy 2-core machine running the test, the server and PostgreSQL
PLAN = "plan-from-the-profile-row"


@dataclass
class Answer:
    what: str  # "omit", "fail" or "healthz"
    status: int  # 0: no answer (the client's own 10 s timeout, or a reset)
    seconds: float
    body: dict[str, object] = field(default_factory=dict)

    @property
    def has_plan(self) -> bool:
        token = self.body.get("token")
        if not isinstance(token, str):
            return False
        claims = jwt.decode(token, MESSENGER_SECRET, algorithms=["HS256"])
        return claims.get("plan") == PLAN


@dataclass
class Deployment:
    server: Server
    proxy: TcpProxy
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, what: str) -> Answer:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            if what == "healthz":
                connection.request("GET", "/healthz")
            else:
                token = idp_bearer("7")
                connection.request(
                    "POST",
                    "/v1/messenger/token",
                    body=json.dumps({"workspace": what}),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
            response = connection.getresponse()
            status, body = response.status, json.loads(response.read() or b"{}")
        except OSError:
            status, body = 0, {}
        finally:
            connection.close()
        answer = Answer(what, status, time.monotonic() - started, body)
        with self.lock:
            self.answers.append(answer)
        return answer


class Traffic:
    """Token requests from `clients` clients (both policies) and a /healthz prober, until
    stopped."""

    def __init__(self, deployment: Deployment, clients: int = 4) -> None:
        self.deployment = deployment
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._tokens, args=(i,), daemon=True) for i in range(clients)
        ]
        self.threads.append(threading.Thread(target=self._healthz, daemon=True))

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)

    def _tokens(self, index: int) -> None:
        policy = ("omit", "fail")[index % 2]
        while not self.stop.is_set():
            self.deployment.ask(policy)

    def _healthz(self) -> None:
        while not self.stop.wait(0.1):
            self.deployment.ask("healthz")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One server for the module: each test ends with the database back and rows signed."""
    require_postgres()
    tmp_path = tmp_path_factory.mktemp("profile-faults")
    write_idp_key(tmp_path)
    (tmp_path / "messenger.secret").write_text(MESSENGER_SECRET + "\n")
    (tmp_path / "messenger.secret").chmod(0o600)
    target = make_url(POSTGRES_URL)
    rows = [{"id": "7", "plan": PLAN}]
    with (
        scratch_table("id text PRIMARY KEY, plan text", rows) as table,
        tcp_proxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
    ):
        url = target.set(port=proxy.port).render_as_string(hide_password=False)
        config = '[service.rate_limit]\nper_client = ""\nper_user = ""\n' + "".join(
            bearer_profile_workspace(
                key, url, table, on_unavailable=key,
                profile_options=f"timeout = {TIMEOUT}\nbreaker_cooldown = {COOLDOWN}\n",
            )
            for key in ("omit", "fail")
        )  # fmt: skip
        (tmp_path / "service.toml").write_text('default_workspace = "omit"\n' + config)
        with serving(tmp_path / "service.toml", tmp_path, workers=2, threads=4) as server:
            # Booted first: the recovery limit of the first test's setup is not for boot time.
            server.wait_for_lines('"message":"worker app ready"', count=2)
            yield Deployment(server, proxy)


@pytest.fixture
def deployment(served: Deployment) -> Deployment:
    _until_rows_are_signed(served)  # after the previous test's outage, too
    served.answers.clear()
    return served


def _check_outage(answers: list[Answer], server: Server) -> None:
    tokens = [a for a in answers if a.what != "healthz"]
    probes = [a for a in answers if a.what == "healthz"]
    assert len(tokens) >= 8 and len(probes) >= 5
    for answer in tokens:
        if answer.what == "omit":
            assert answer.status == 200, answer
        else:
            assert answer.status in (200, 503), answer
            if answer.status == 503:
                assert str(answer.body["type"]).endswith("profile-unavailable"), answer
    assert all(a.status == 200 for a in probes), [a for a in probes if a.status != 200]
    slowest = max(a.seconds for a in answers)
    assert slowest < BOUND + SLACK, f"a request took {slowest:.2f}s"
    assert "unhandled error" not in server.log()


def _until_rows_are_signed(deployment: Deployment) -> float:
    """Seconds until 16 requests in a row (both policies) sign the profile row again.

    A worker's breaker may have reopened just before the database came back:
    it skips the database for up to the cooldown, then its next request
    probes. So within the cooldown plus one lookup every request signs the
    row, whichever worker takes it.
    """
    started = time.monotonic()
    limit = started + COOLDOWN + BOUND + SLACK
    in_a_row = 0
    while in_a_row < 16:
        assert time.monotonic() < limit, "profile rows did not come back in time"
        ok = deployment.ask("omit").has_plan and deployment.ask("fail").has_plan
        in_a_row = in_a_row + 1 if ok else 0
    return time.monotonic() - started


def _recovered_within(deployment: Deployment) -> float:
    """Seconds after the proxy resumes until every request signs the profile row again."""
    deployment.proxy.resume()
    return _until_rows_are_signed(deployment)


def test_a_silent_database_never_hangs_the_service(deployment: Deployment) -> None:
    with Traffic(deployment):
        time.sleep(0.3)  # the traffic is flowing
        deployment.proxy.silence()
        time.sleep(4)  # the outage: a few deadlines, a few breaker cooldowns
    # Still silent: every request in flight when the traffic stopped has ended
    # (or hit the client's 10 s timeout, status 0) and is checked too.
    outage = list(deployment.answers)
    _check_outage(outage, deployment.server)
    omitted = [a for a in outage if a.what == "omit" and not a.has_plan]
    assert omitted, "the outage was never noticed"
    assert all(
        str(w).startswith("profile source unavailable: ")
        for a in omitted
        for w in a.body["warnings"]  # type: ignore[attr-defined]
    )
    assert _recovered_within(deployment) < COOLDOWN + BOUND + SLACK


def test_cutting_the_database_mid_traffic_follows_the_policy(deployment: Deployment) -> None:
    with Traffic(deployment):
        for _ in range(4):
            time.sleep(0.4)
            deployment.proxy.cut()  # every connection dropped, new ones refused
            time.sleep(0.4)
            deployment.proxy.resume()
        time.sleep(0.3)
    answers = list(deployment.answers)
    _check_outage(answers, deployment.server)
    assert _recovered_within(deployment) < COOLDOWN + BOUND + SLACK


def test_more_clients_than_threads_on_a_silent_database_stay_within_the_bound(
    deployment: Deployment,
) -> None:
    # 24 clients on 2 x 4 threads: requests queue for a thread behind the lookups
    # that hang. Once a worker has seen the database not answer, the requests it
    # takes next must skip it, or each queued round adds another connect timeout.
    with Traffic(deployment, clients=24):
        time.sleep(0.3)
        deployment.proxy.silence()
        time.sleep(4)
    _check_outage(list(deployment.answers), deployment.server)
    assert _recovered_within(deployment) < COOLDOWN + BOUND + SLACK
