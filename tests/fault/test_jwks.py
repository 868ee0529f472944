"""The IdP's JWKS server misbehaves under the real `identity-service serve` (issue 12, item 5).

The JWKS server is this test's own (`tests/support/jwks_server.py`, a thread of
the test process on 127.0.0.1), made slow, trickling, down and back up, and
rotated. The service runs as a subprocess with two gthread workers and short
JWKS deadlines, so each fault shows within seconds. Workers are told apart by
the `pid` field of their JWKS log lines, and their threads are counted in
/proc/<pid>/task: no endpoint is added for the test.

What holds, whatever the JWKS server does: token requests whose `kid` is
cached are answered without waiting for it, a worker never has more than one
extra thread for JWKS fetches, `/healthz` answers throughout, and the only
5xx is the documented 503 `idp-keys-unavailable` (when no key is usable).
After a failed start the workers have keys within `jwks_retry_max` +
`jwks_timeout` of the IdP's return, not after `jwks_refetch_interval`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.jwks_server import JWKSServer, Mode, running
from tests.support.keys import AUDIENCE, ISSUER, SigningKey, rsa_key
from tests.support.served import Server, serving
from tests.support.service import MESSENGER_SECRET

pytestmark = pytest.mark.fault

WORKERS, THREADS = 2, 4
TOKEN_PATH = "/v1/messenger/token"
UNAVAILABLE = "idp-keys-unavailable"
# The JWKS timings under test (seconds). A request that waited for a fetch
# would take about JWKS_TIMEOUT; one that did not takes milliseconds.
JWKS_TIMEOUT = 2.0
RETRY_INITIAL, RETRY_MAX = 0.2, 1.0
FAST = 1.0  # the slowest answer accepted from a request that must not wait
CONFIG = """
[service.rate_limit]
per_client = "1000000/minute"
per_user = "1000000/minute"

[workspaces.main]
app_id = "abc123"
region = "eu"
secret_file = "messenger.secret"

[[workspaces.main.auth]]
method = "bearer"
issuer = "{issuer}"
audience = "{audience}"
algorithms = ["RS256"]
jwks_url = "{jwks_url}"
jwks_timeout = {timeout}
jwks_connect_timeout = 0.5
jwks_read_timeout = {timeout}
jwks_cache_ttl = 1
jwks_refetch_interval = {refetch_interval}
jwks_max_stale = 60
jwks_retry_initial = {retry_initial}
jwks_retry_max = {retry_max}
"""


def write_config(root: Path, jwks_url: str, refetch_interval: float = 1) -> Path:
    (root / "messenger.secret").write_text(MESSENGER_SECRET + "\n")
    path = root / "service.toml"
    path.write_text(
        CONFIG.format(
            issuer=ISSUER,
            audience=AUDIENCE,
            jwks_url=jwks_url,
            timeout=JWKS_TIMEOUT,
            refetch_interval=refetch_interval,
            retry_initial=RETRY_INITIAL,
            retry_max=RETRY_MAX,
        )
    )
    return path


def token(key: SigningKey) -> str:
    """A token valid now (the server checks `exp` against the real clock)."""
    now = int(time.time())
    return key.sign(iat=now, exp=now + 600)


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    problem_type: str = ""


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """One request on a new connection (so that both workers get some)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    problem_type = ""
    if response.status >= 400 and body:
        problem_type = str(json.loads(body).get("type", ""))
    return Answer(response.status, seconds, problem_type)


def post_token(port: int, idp_token: str) -> Answer:
    return call(port, "POST", TOKEN_PATH, {"Authorization": f"Bearer {idp_token}"})


@dataclass
class Traffic:
    """Answers collected by background callers until `stop` is set."""

    stop: threading.Event = field(default_factory=threading.Event)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, answer: Answer) -> None:
        with self.lock:
            self.answers.setdefault(kind, []).append(answer)

    def of(self, kind: str) -> list[Answer]:
        with self.lock:
            return list(self.answers.get(kind, []))


@contextmanager
def traffic(port: int, idp_token: str, token_callers: int = 2) -> Iterator[Traffic]:
    """Token requests from `token_callers` loops and a /healthz poller, until the block ends."""
    collected = Traffic()

    def tokens() -> None:
        while not collected.stop.is_set():
            collected.add("token", post_token(port, idp_token))

    def health() -> None:
        while not collected.stop.wait(0.1):
            collected.add("healthz", call(port, "GET", "/healthz"))

    loops = [threading.Thread(target=tokens) for _ in range(token_callers)]
    loops.append(threading.Thread(target=health))
    for loop in loops:
        loop.start()
    try:
        yield collected
    finally:
        collected.stop.set()
        for loop in loops:
            loop.join(timeout=20)


def worker_pids(server: Server) -> list[int]:
    """The gunicorn workers: the children of the `serve` process."""
    master = server.process.pid
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        if int(stat.rpartition(")")[2].split()[1]) == master:
            children.append(int(entry.name))
    return sorted(children)


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def fetched_by(server: Server, after: int = 0) -> set[int]:
    """The pids of the workers that logged a successful JWKS fetch (in lines from `after` on)."""
    pids = set()
    for line in server.log().splitlines()[after:]:
        if '"fetched the JWKS' in line:
            pids.add(int(json.loads(line)["pid"]))
    return pids


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll an outside process's state (every 50 ms) until `condition`; the time it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def start(server: Server) -> tuple[int, list[int]]:
    """The port, once both workers have booted, and their pids."""
    port = server.port
    server.wait_for_lines(r"Booting worker", count=WORKERS)
    wait_until(lambda: len(worker_pids(server)) == WORKERS, 10, "both workers up")
    return port, worker_pids(server)


def warm(server: Server, port: int, pids: list[int], idp_token: str) -> None:
    """Token requests until every worker has fetched the JWKS once."""

    def all_warm() -> bool:
        for _ in range(8):
            assert post_token(port, idp_token).status == 200
        return fetched_by(server) >= set(pids)

    wait_until(all_warm, 10, "every worker fetched the JWKS")


def assert_no_5xx_but_the_documented_503(answers: list[Answer]) -> None:
    bad = [a for a in answers if a.status >= 500 and not a.problem_type.endswith(UNAVAILABLE)]
    assert not bad, bad


@pytest.mark.parametrize("mode", ["stall", "trickle_headers", "trickle_body"])
def test_a_slow_or_trickling_idp_neither_slows_cached_kids_nor_grows_threads(
    tmp_path: Path, mode: Mode
) -> None:
    idp, rotated = rsa_key("fault-1"), rsa_key("fault-2")
    with running(idp) as jwks, serving(write_config(tmp_path, jwks.url), tmp_path) as server:
        port, pids = start(server)
        idle_threads = {pid: thread_count(pid) for pid in pids}  # booted, before any request
        master_threads = thread_count(server.process.pid)
        idp_token = token(idp)
        warm(server, port, pids, idp_token)

        jwks.stall_seconds = 30.0  # released when the test ends
        jwks.mode = mode
        before = jwks.requests
        most = dict(idle_threads)
        with traffic(port, idp_token) as seen:
            deadline = time.monotonic() + 3  # the cache TTL (1 s) lapses three times
            while time.monotonic() < deadline:
                for pid in pids:
                    most[pid] = max(most[pid], thread_count(pid))
                time.sleep(0.05)
        refetches = jwks.requests - before

        tokens, health = seen.of("token"), seen.of("healthz")
        assert refetches >= 2, "the fault was not exercised: no refetch reached the IdP"
        assert len(tokens) > 20 and all(a.status == 200 for a in tokens), tokens
        slowest = max(a.seconds for a in tokens)
        assert slowest < FAST, f"a cached-kid request took {slowest:.2f} s"
        assert health and all(a.status == 200 and a.seconds < FAST for a in health), health
        for pid in pids:
            # The main thread and up to THREADS request threads were there to
            # start (or may start); JWKS fetches may add one, never more.
            assert most[pid] <= idle_threads[pid] + THREADS + 1, (pid, idle_threads, most)
        assert thread_count(server.process.pid) == master_threads  # nothing in the master

        # The fault ends and the IdP has rotated: refreshes land again, and the
        # rotated key is accepted once each worker has refetched (a fetch that
        # was stalled may land first with the old set; the kid-flood interval,
        # 1 s here, then delays the refetch for the new kid: 401 meanwhile).
        jwks.publish(idp, rotated)
        jwks.mode = "ok"
        jwks.release()
        rotated_token = token(rotated)
        answers: list[Answer] = []

        def rotated_everywhere() -> bool:
            batch = [post_token(port, rotated_token) for _ in range(10)]
            answers.extend(batch)
            return all(a.status == 200 for a in batch)

        wait_until(rotated_everywhere, 5, "the rotated key accepted by every worker")
        assert all(a.status in {200, 401} for a in answers), answers
        assert_no_5xx_but_the_documented_503(tokens + answers)
        assert "Traceback" not in server.log()
        stop(server)


def stop(server: Server) -> None:
    """SIGTERM, so that the workers exit with the master (a SIGKILL leaves them behind a while)."""
    server.process.terminate()
    server.process.wait(timeout=20)


def free_port() -> int:
    """A port nothing listens on (yet): connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_after_a_failed_start_the_workers_recover_within_the_backoff(tmp_path: Path) -> None:
    """The IdP is down when the service starts; once it is back, keys within ~3 s, not 30 s."""
    idp = rsa_key("fault-1")
    port_of_idp = free_port()
    jwks_url = f"http://127.0.0.1:{port_of_idp}/.well-known/jwks.json"
    # The kid-flood interval stays at its default: retries after a failure do not wait for it.
    config = write_config(tmp_path, jwks_url, refetch_interval=30)
    with serving(config, tmp_path) as server:
        port, pids = start(server)
        idp_token = token(idp)
        with traffic(port, idp_token) as down:
            time.sleep(1.5)  # failing traffic: the backoff climbs to RETRY_MAX
        failed = down.of("token")
        assert failed and all(a.status == 503 for a in failed), failed
        assert all(a.problem_type.endswith(UNAVAILABLE) and a.seconds < FAST for a in failed)
        assert call(port, "GET", "/readyz").status == 503

        jwks = JWKSServer(port_of_idp)  # the IdP comes back
        jwks.publish(idp)
        jwks.start()
        try:
            with traffic(port, idp_token) as back:
                took = wait_until(
                    lambda: fetched_by(server) >= set(pids), 10, "every worker's keys"
                )
                time.sleep(0.5)  # answers from recovered workers
            assert took < RETRY_MAX + JWKS_TIMEOUT, f"recovered after {took:.2f} s"
            answers = [post_token(port, idp_token) for _ in range(20)]
            assert all(a.status == 200 for a in answers), answers
            assert call(port, "GET", "/readyz").status == 200

            # Down again, with keys cached: requests keep their answers, without waiting.
            jwks.stop()
            with traffic(port, idp_token) as outage:
                time.sleep(1.5)  # the 1 s cache TTL lapses: background refreshes fail
            during = outage.of("token")
            assert during and all(a.status == 200 and a.seconds < FAST for a in during), during
        finally:
            jwks.stop()

        everything = failed + back.of("token") + answers + during
        assert_no_5xx_but_the_documented_503(everything)
        health = down.of("healthz") + back.of("healthz") + outage.of("healthz")
        assert health and all(a.status == 200 for a in health), health
        assert "Traceback" not in server.log()
        stop(server)
