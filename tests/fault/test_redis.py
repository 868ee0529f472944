"""A frozen or dead Redis under the real `identity-service serve`: fast, few log lines, recovers.

The rate-limit storage is a redis-server of the test's own (tests/support/redis_server.py),
frozen with SIGSTOP (connections open, nothing answers: a hung server or a partition),
killed (connections refused) or filled (`maxmemory 1` under `noeviction`: PING answers,
every write is refused), then thawed, restarted or given its memory back. Four clients
keep sending token requests meanwhile. What must hold (docs/operations.md, "Rate-limit storage"):

- a token request waits on Redis no longer than connect + read timeout
  (2 x `storage_timeout`), and only the requests in flight when Redis stops and one
  probe per worker per `storage_retry_interval` wait at all: the breaker skips Redis
  in between, and `on_storage_error` decides those requests;
- the outage is logged once per worker per interval, not per request;
- /healthz answers throughout, /readyz answers 503 within its deadline (also for a Redis
  that answers PING but refuses every count);
- once Redis answers again, every worker counts in it again at its first request
  after `storage_retry_interval`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_server import OwnRedis, own_redis
from tests.support.served import Server, serving
from tests.support.service import ServiceFixture, make_service

pytestmark = pytest.mark.fault

WORKERS, THREADS = 2, 4
CLIENTS = 4
TIMEOUT = 0.2  # storage_timeout in this configuration
RETRY = 0.5  # storage_retry_interval in this configuration
FAULT_SECONDS = 2.0
# The documented bound on what Redis adds to a request (connect + read timeout), plus what
# the rest of a request may take on a shared, loaded 2-core machine.
BOUND = 2 * TIMEOUT + 0.6
SLOW = 0.75 * TIMEOUT  # a request this slow waited on Redis
PER_USER = 3
TOKEN_PATH = "/v1/messenger/token"
STORAGE_LINE = r"rate limit storage"


@dataclass(frozen=True)
class Answer:
    path: str
    status: int
    seconds: float
    retry_after: str | None


def call(port: int, path: str, headers: dict[str, str] | None = None) -> Answer:
    # A new connection per request, so the kernel spreads them over both workers.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    try:
        method = "POST" if path == TOKEN_PATH else "GET"
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return Answer(
            path, response.status, time.monotonic() - started, response.getheader("Retry-After")
        )
    finally:
        connection.close()


def token(port: int, svc: ServiceFixture, user: str) -> Answer:
    return call(port, TOKEN_PATH, svc.bearer_headers(sub=user))


def limited_after(port: int, svc: ServiceFixture, user: str, extra: int = 8) -> list[int]:
    """Statuses of PER_USER + `extra` token requests for one user: PER_USER 200s, then 429s,
    whichever worker answers, when every worker counts in Redis."""
    return [token(port, svc, user).status for _ in range(PER_USER + extra)]


def load(port: int, svc: ServiceFixture, seconds: float) -> list[Answer]:
    """CLIENTS clients sending token requests (one user each time) for `seconds`, with
    /healthz in between and a few /readyz."""
    deadline = time.monotonic() + seconds
    answers: list[Answer] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        sent = 0
        while time.monotonic() < deadline:
            got = [token(port, svc, f"load-{number}-{sent}")]
            if sent % 4 == 0:
                got.append(call(port, "/healthz"))
            if number == 0 and sent % 10 == 0:
                got.append(call(port, "/readyz"))
            sent += 1
            with lock:
                answers.extend(got)

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client, n) for n in range(CLIENTS)]:
            future.result()
    return answers


def freeze(redis: OwnRedis) -> Callable[[], None]:
    redis.freeze()
    return redis.thaw


def kill(redis: OwnRedis) -> Callable[[], None]:
    redis.kill()
    return redis.start


def fill(redis: OwnRedis) -> Callable[[], None]:
    # Out of memory under `noeviction`: Redis answers, PING included, but refuses every write.
    redis.configure("maxmemory-policy", "noeviction")
    redis.configure("maxmemory", "1")
    return lambda: redis.configure("maxmemory", "0")


FAULTS = {"frozen": freeze, "dead": kill, "full": fill}


def metric(port: int, name: str) -> float:
    text = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        text.request("GET", "/metrics")
        body = text.getresponse().read().decode()
    finally:
        text.close()
    found = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(found.group(1)) if found else 0.0


def storage_lines(server: Server, since: int) -> list[str]:
    return [line for line in server.log().splitlines()[since:] if re.search(STORAGE_LINE, line)]


@pytest.mark.parametrize(
    ("fault", "policy"),
    [
        pytest.param("frozen", "open", id="frozen-open"),
        pytest.param("dead", "open", id="dead-open"),
        pytest.param("frozen", "closed", id="frozen-closed"),
        pytest.param("full", "open", id="full-open"),
        pytest.param("full", "closed", id="full-closed"),
    ],
)
def test_redis_fault_keeps_requests_fast_logs_bounded_and_limits_resume(
    tmp_path: Path, fault: str, policy: str
) -> None:
    with own_redis(tmp_path) as redis:
        svc = make_service(
            tmp_path,
            extra=f"""
[service.rate_limit]
per_client = "100000/minute"
per_user = "{PER_USER}/minute"
storage_url = "{redis.url}"
on_storage_error = "{policy}"
storage_timeout = {TIMEOUT}
storage_retry_interval = {RETRY}
""",
        )
        with serving(tmp_path / "service.toml", tmp_path, WORKERS, THREADS) as server:
            port = server.port
            server.wait_for_lines(r"Booting worker", count=WORKERS)
            assert limited_after(port, svc, "before") == [200] * PER_USER + [429] * 8

            mark = len(server.log().splitlines())
            end_fault = FAULTS[fault](redis)
            answers = load(port, svc, FAULT_SECONDS)
            lines = storage_lines(server, mark)
            end_fault()
            ended = time.monotonic()

            tokens = [a for a in answers if a.path == TOKEN_PATH]
            expected = 200 if policy == "open" else 429
            assert {a.status for a in tokens} == {expected}, [a.status for a in tokens]
            if policy == "closed":
                assert all(a.retry_after and int(a.retry_after) >= 1 for a in tokens)
            slowest = max(a.seconds for a in answers)
            assert slowest <= BOUND, f"a request took {slowest:.3f} s (bound {BOUND} s)"
            # Only requests in flight when the fault began, and one probe per worker per
            # interval, may wait on Redis; the old limiter made every request wait twice.
            probes = WORKERS * (FAULT_SECONDS / RETRY + 1)
            slow = [round(a.seconds, 3) for a in tokens if a.seconds > SLOW]
            assert len(slow) <= CLIENTS + probes, f"{len(slow)} of {len(tokens)} slow: {slow}"
            assert len(lines) <= WORKERS * (FAULT_SECONDS / RETRY + 2), "\n".join(lines)
            assert lines, "the outage was not logged"
            health = [a.status for a in answers if a.path == "/healthz"]
            ready = [a.status for a in answers if a.path == "/readyz"]
            assert health and set(health) == {200}
            assert ready and set(ready) == {503}
            assert metric(port, "identity_rate_limit_storage_skipped_total") > 0

            # Recovery: at the first request after storage_retry_interval, every worker
            # probes Redis, finds it answering and counts in it again.
            time.sleep(max(0.0, ended + RETRY + 0.1 - time.monotonic()))
            assert limited_after(port, svc, "after") == [200] * PER_USER + [429] * 8
            assert call(port, "/readyz").status == 200
            server.wait_for_lines(r"rate limit storage answers again", count=1, timeout=5)
            stop_at_once(server)


def stop_at_once(server: Server) -> None:
    """SIGKILL the workers, then the master: a killed master alone leaves its workers to
    notice (seconds), and a graceful stop waits on their idle loops."""
    for pid in re.findall(r"Booting worker with pid: (\d+)", server.log()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    server.stop()
