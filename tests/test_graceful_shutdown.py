"""SIGTERM while requests are in flight: every one of them completes with 200, then exit 0.

`identity-service serve` runs as a real subprocess (gunicorn, two gthread
workers). To hold requests in flight without sleeping, the profile query takes
a shared PostgreSQL advisory lock that the test holds exclusively: the test
sees in `pg_stat_activity` that every request is waiting inside the service,
sends SIGTERM, waits for each worker to log that it is draining, and only then
releases the lock. A client on an idle keep-alive connection that sends its
request just after the signal is answered too (with `Connection: close`).
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from tests.support.postgres import POSTGRES_URL, admin_engine, require_postgres, scratch_table
from tests.support.served import serving
from tests.support.service import MESSENGER_SECRET, ServiceFixture, make_service

pytestmark = pytest.mark.postgres

WORKERS = 2
THREADS = 8
IN_FLIGHT = 8  # fits in either worker's threads, however the connections are spread
TOKEN_PATH = "/v1/messenger/token"
CONFIG = """
[service.rate_limit]
per_client = "100000/minute"
per_user = "100000/minute"

[workspaces.main]
app_id = "abc123"
region = "eu"
secret_file = "messenger.secret"

[[workspaces.main.attributes]]
name = "plan"
type = "string"
profile = "plan"

[[workspaces.main.auth]]
method = "bearer"
issuer = "https://idp.pete.example/"
audience = "identity-service"
algorithms = ["RS256"]
key_file = "idp-public.pem"

[workspaces.main.profile]
url = "{url}"
# The gate: a shared transaction lock, held exclusively by the test until it lets go.
query = '''SELECT p.id, p.plan FROM {table} p
  CROSS JOIN (SELECT pg_advisory_xact_lock_shared({lock})) AS gate WHERE p.id = :user_id'''
id_column = "id"
timeout = 30
pool_size = {threads}
on_unavailable = "fail"
"""


@contextmanager
def gate(lock: int) -> Iterator[Callable[[], None]]:
    """Hold the advisory lock exclusively; yields the function that releases it."""
    engine = admin_engine()
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connection.execute(text("SELECT pg_advisory_lock(:lock)"), {"lock": lock})
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            connection.execute(text("SELECT pg_advisory_unlock(:lock)"), {"lock": lock})
            released = True

    try:
        yield release
    finally:
        release()
        connection.close()
        engine.dispose()


def waiting_at_gate(table: str) -> int:
    """How many profile queries are blocked on the gate right now."""
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND wait_event = 'advisory' AND query LIKE :table"
                ),
                {"table": f"%{table}%"},
            )
            return int(found.scalar_one())
    finally:
        engine.dispose()


Answer = tuple[int, str | None, dict[str, Any]]


def post_token(
    port: int, idp_token: str, connection: http.client.HTTPConnection | None = None
) -> Answer:
    """POST a token request; returns (status, Connection header, body)."""
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", TOKEN_PATH, headers={"Authorization": f"Bearer {idp_token}"})
        response = conn.getresponse()
        return response.status, response.getheader("Connection"), json.loads(response.read())
    finally:
        if own:
            conn.close()


def test_sigterm_lets_every_in_flight_request_finish(tmp_path: Path) -> None:
    require_postgres()
    service: ServiceFixture = make_service(tmp_path)  # keys and the Messenger secret file
    lock = secrets.randbelow(2**31)
    idp_token = service.idp_token()
    with scratch_table(
        "id TEXT PRIMARY KEY, plan TEXT", [{"id": "user-42", "plan": "pro"}]
    ) as table:
        config = tmp_path / "graceful.toml"
        config.write_text(CONFIG.format(url=POSTGRES_URL, table=table, lock=lock, threads=THREADS))
        with gate(lock) as release, serving(config, tmp_path, WORKERS, THREADS) as server:
            listening = server.wait_for_lines(r"Listening at: http://127\.0\.0\.1:(\d+)")[0]
            port = int(re.search(r"127\.0\.0\.1:(\d+)", listening).group(1))  # type: ignore[union-attr]
            server.wait_for_lines(r"Worker ready", count=WORKERS)  # SIGTERM drains it from here

            # An idle keep-alive connection, as a load balancer keeps them.
            idle = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            idle.request("GET", "/healthz")
            health = idle.getresponse()
            assert health.status == 200 and health.getheader("Connection") != "close"
            health.read()

            with ThreadPoolExecutor(IN_FLIGHT + 1) as pool:
                flights: list[Future[Answer]] = [
                    pool.submit(post_token, port, idp_token) for _ in range(IN_FLIGHT)
                ]
                deadline = time.monotonic() + 15
                while waiting_at_gate(table) < IN_FLIGHT:
                    assert time.monotonic() < deadline, "requests never reached the gate"
                    assert not any(f.done() for f in flights), [
                        f.result() for f in flights if f.done()
                    ]
                    time.sleep(0.05)  # polling an external process, not timing the logic

                server.process.send_signal(signal.SIGTERM)
                server.wait_for_lines(r"Worker draining", count=WORKERS)
                late = pool.submit(post_token, port, idp_token, idle)
                assert not any(f.done() for f in flights)  # still held at the gate
                release()
                results = [f.result(timeout=30) for f in flights]
                late_result = late.result(timeout=30)

            returncode = server.process.wait(timeout=30)

    log = server.log()
    assert returncode == 0, log
    assert len(results) == IN_FLIGHT
    for status, _, body in [*results, late_result]:
        assert status == 200, body
        claims = jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
        assert claims["user_id"] == "user-42" and claims["plan"] == "pro"
    # The request that arrived on a kept-alive connection after the signal was
    # answered by a draining worker, which does not keep the connection for reuse.
    assert late_result[1] == "close"
    assert "Traceback" not in log
    assert "WORKER TIMEOUT" not in log and "SIGKILL" not in log
    assert len(re.findall(r"Worker exiting", log)) == WORKERS
    assert "Shutting down: Master" in log
