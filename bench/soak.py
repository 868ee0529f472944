"""Soak: thousands of token requests against `identity-service serve`, counting errors and memory.

Starts the real server (gunicorn, gthread workers) on a free 127.0.0.1 port
with a temporary configuration (RS256 bearer tokens, six attributes from token
claims and a SQLite profile row, rate limits too high to trip), warms it up,
samples each worker's resident memory (VmRSS of the master's children), sends
N token requests from C threads, each on its own keep-alive connection
(http.client), samples memory again, then stops the server with SIGTERM.

Exits non-zero on any failed request (non-200, bad body, token that does not
verify, connection error), on a worker growing by more than the bound, on the
time limit, or if the server does not exit 0. Not a test: run it by hand.

    .venv/bin/python bench/soak.py [--requests 5000] [--concurrency 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jwt
from serving import Server, idp_token

BIN = Path(sys.executable).parent
ISSUER, AUDIENCE = "https://idp.soak.example/", "identity-service"
SECRET = "soak-messenger-secret-" + "s" * 40
TOKEN_PATH = "/v1/messenger/token"
CLAIMS = {"email": "ada@soak.example", "name": "Ada", "https://soak.example/plan": "pro"}
# Kept out of the f-string below: the SQL is a constant, nothing is interpolated into it.
PROFILE_TABLE = """
[workspaces.soak.profile]
url = "sqlite:///profiles.db"
query = "SELECT id, plan, teammates, last_order_at FROM users WHERE id = :user_id"
id_column = "id"
"""
VERIFY_EVERY = 50  # decode every 50th token with the Messenger secret


def config(tmp: Path) -> Path:
    with sqlite3.connect(tmp / "profiles.db") as db:
        db.execute("CREATE TABLE users (id TEXT PRIMARY KEY, plan TEXT, teammates INTEGER, "
                   "last_order_at INTEGER)")  # fmt: skip
        db.execute("INSERT INTO users VALUES ('user-1', 'enterprise', 7, 1700000000)")
    path = tmp / "soak.toml"
    settings = f"""
[service.rate_limit]
per_client = "100000000/minute"
per_user = "100000000/minute"

[workspaces.soak]
app_id = "soak1"
region = "eu"
secret_env = "SOAK_MESSENGER_SECRET"

[[workspaces.soak.attributes]]
name = "email"
type = "string"
claim = "email"

[[workspaces.soak.attributes]]
name = "name"
type = "string"
claim = "name"

[[workspaces.soak.attributes]]
name = "plan"
type = "string"
claim = "https://soak.example/plan"
profile = "plan"

[[workspaces.soak.attributes]]
name = "teammates"
type = "integer"
profile = "teammates"

[[workspaces.soak.attributes]]
name = "last_order_at"
type = "date"
profile = "last_order_at"

[[workspaces.soak.auth]]
method = "bearer"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
algorithms = ["RS256"]
key_file = "idp.pem"
"""
    path.write_text(settings + PROFILE_TABLE)
    return path


def rss_kib(pid: int) -> int | None:
    """A process's resident set size (VmRSS), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise SystemExit("the server never became ready (/readyz)")


class Load:
    """N requests shared by C threads, each on its own keep-alive connection."""

    def __init__(self, port: int, token: str, total: int, deadline: float) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Content-Length": "0"}
        self.total = total
        self.deadline = deadline
        self.sent = 0
        self.lock = threading.Lock()
        self.failures: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.timed_out = False

    def _take(self) -> int | None:
        with self.lock:
            if self.sent >= self.total:
                return None
            if time.monotonic() > self.deadline:
                self.timed_out = True
                return None
            self.sent += 1
            return self.sent

    def client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        latencies = []
        try:
            while (number := self._take()) is not None:
                started = time.perf_counter()
                try:
                    connection.request("POST", TOKEN_PATH, headers=self.headers)
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._fail(f"connection: {type(exc).__name__}")
                    connection.close()  # the next request opens a fresh connection
                    continue
                latencies.append(time.perf_counter() - started)
                self._check(number, response.status, body)
        finally:
            connection.close()
            with self.lock:
                self.latencies.extend(latencies)

    def _check(self, number: int, status: int, body: bytes) -> None:
        if status != 200:
            self._fail(f"HTTP {status}")
            return
        try:
            token = json.loads(body)["token"]
            if number % VERIFY_EVERY == 0:
                claims = jwt.decode(token, SECRET, algorithms=["HS256"])
                if claims["user_id"] != "user-1" or claims["plan"] != "enterprise":
                    self._fail("token: wrong claims")
        except (ValueError, KeyError, jwt.InvalidTokenError) as exc:
            self._fail(f"body: {type(exc).__name__}")

    def _fail(self, kind: str) -> None:
        with self.lock:
            self.failures[kind] += 1

    def run(self, concurrency: int) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(self.client) for _ in range(concurrency)]:
                future.result()
        return time.perf_counter() - started


@dataclass
class Soak:
    """What one soak measured."""

    port: int
    warmup: Load
    load: Load
    elapsed: float
    pids: list[int]
    pids_after: list[int]
    before: dict[int, int | None]
    after: dict[int, int | None]
    exit_code: int
    log: str


def soak(args: argparse.Namespace, token: str, server: Server) -> Soak:
    deadline = time.monotonic() + args.time_limit
    try:
        port = server.wait_started()
        wait_ready(port)
        warmup = Load(port, token, args.warmup, deadline)
        warmup.run(args.concurrency)
        pids = server.worker_pids()
        before = {pid: rss_kib(pid) for pid in pids}
        load = Load(port, token, args.requests, deadline)
        elapsed = load.run(args.concurrency)
        after = {pid: rss_kib(pid) for pid in pids}
        pids_after = server.worker_pids()
    finally:
        exit_code = server.stop()
    return Soak(port, warmup, load, elapsed, pids, pids_after, before, after, exit_code,
                server.log())  # fmt: skip


def report(args: argparse.Namespace, result: Soak) -> list[str]:
    """Print the numbers; return the problems (empty: the soak passed)."""
    load, problems = result.load, []
    failures = result.warmup.failures + load.failures
    done = len(load.latencies)
    print(f"server: {args.workers} workers x {args.threads} threads (gthread), "
          f"127.0.0.1:{result.port}")  # fmt: skip
    print(f"requests: {done} of {args.requests} at concurrency {args.concurrency} "
          f"(+{args.warmup} warm-up) in {result.elapsed:.1f} s "
          f"= {done / result.elapsed:.0f} req/s")  # fmt: skip
    if load.latencies:
        ms = sorted(x * 1000 for x in load.latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"latency: p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"errors: {sum(failures.values())}"
          + "".join(f"\n  {kind}: {n}" for kind, n in sorted(failures.items())))  # fmt: skip
    if failures:
        problems.append(f"{sum(failures.values())} failed requests")
    if load.timed_out or result.warmup.timed_out:
        problems.append(f"time limit of {args.time_limit:g} s reached")

    bound = args.max_growth_mb * 1024
    print(f"worker RSS, after {args.warmup} warm-up requests -> after the soak "
          f"(bound: +{args.max_growth_mb:g} MB per worker):")  # fmt: skip
    for pid in result.pids:
        old, new = result.before[pid], result.after[pid]
        if old is None or new is None:
            print(f"  pid {pid}: gone during the soak (recycled by max_requests?)")
            problems.append(f"worker {pid} gone: its growth is unmeasured")
            continue
        delta = new - old
        print(f"  pid {pid}: {old / 1024:.1f} MB -> {new / 1024:.1f} MB ({delta / 1024:+.1f} MB)")
        if delta > bound:
            problems.append(f"worker {pid} grew {delta / 1024:.1f} MB")
    if result.pids_after != result.pids:
        print(f"  workers changed during the soak: {result.pids} -> {result.pids_after}")

    tracebacks = result.log.count("Traceback")
    print(f"server exit status after SIGTERM: {result.exit_code}; "
          f"tracebacks in its log: {tracebacks}")  # fmt: skip
    if result.exit_code != 0:
        problems.append(f"server exited {result.exit_code}")
    if tracebacks:
        problems.append("tracebacks in the server log")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500, help="requests before the baseline")
    parser.add_argument("--max-growth-mb", type=float, default=20.0, help="per worker")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds, whole soak")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="identity-soak-"))
    token, pem = idp_token(ISSUER, AUDIENCE, CLAIMS)
    (tmp / "idp.pem").write_bytes(pem)
    env = {"SOAK_MESSENGER_SECRET": SECRET}
    server = Server(config(tmp), tmp, args.workers, args.threads, env)
    problems = report(args, soak(args, token, server))
    if problems:
        print("FAIL: " + "; ".join(problems))
        print(f"server log kept in {server.log_path}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
