"""Slow-client benchmark: `identity-service serve` alone beside it behind nginx, in one run.

Starts two `identity-service serve` instances with the same worker settings on
127.0.0.1: (a) alone, as the issue measured it, and (b) behind Debian's nginx
run from the repo's `deploy/nginx/identity-service.conf` (tests/support/nginx.py
renders it with free ports). For each attack, 0, 4, 16 and 64 attacking
connections are opened and held (reopened when the server closes them, as a
real attacker would), and normal token requests are sent meanwhile, each on a
new connection with a `--deadline` timeout. It reports the share that got a 200
in time and their p99 (a failed request counts as the deadline), (a) and (b)
measured back to back for every row. Attacks:

- headers: slowloris, the request head sent one byte per `--interval`, forever;
- silent: one byte, then nothing;
- body: a complete head announcing a body under max_body_bytes, then the body
  one byte per `--interval`.

With `--waitress-venv DIR` (a scratch venv with waitress, never a project
dependency: `python3 -m venv DIR && DIR/bin/pip install waitress`) it measures
(c) the app under waitress too, which reads whole requests on its own event
loop before a thread sees them: one process, `--workers` x `--threads`
threads, `channel_timeout` 10 s, the same body cap.

Then it drives the token endpoint of each with wrk (`--wrk-rounds` interleaved
rounds) and prints the throughput ratio. Everything is bounded (connection
counts, each phase's duration) and stops by itself; only 127.0.0.1 is used.
Run: `.venv/bin/python bench/slow_clients.py`.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from load import SECRET, balanced_wrk, bench_token, config
from serving import Server, wait_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.nginx import Nginx, render  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

TOKEN_PATH = "/v1/messenger/token"
MAX_BODY_BYTES = 4096  # the service's default, which load.config keeps
ATTACKS = ("headers", "silent", "body")
COUNTS = (0, 4, 16, 64)
ALONE, PROXIED, WAITRESS = "serve alone", "serve + nginx", "waitress"


class Attack:
    """`count` attacking connections to 127.0.0.1:`port`, held by one selector thread."""

    def __init__(self, kind: str, port: int, count: int, interval: float) -> None:
        self.kind, self.port, self.count, self.interval = kind, port, count, interval
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Attack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _head(self) -> bytes:
        if self.kind == "body":
            return (
                f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {MAX_BODY_BYTES // 2}\r\n\r\n"
            ).encode()
        return f"POST {TOKEN_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()

    def _open(self, selector: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        # State: how many bytes of the endless stream this connection has sent.
        selector.register(sock, selectors.EVENT_READ, [0])

    def _stream(self, sent: int) -> bytes:
        """The byte this connection sends next (b"" when it should stay silent)."""
        head = self._head()
        if self.kind == "silent":
            return head[:1] if sent == 0 else b""
        if self.kind == "body":
            if sent == 0:
                return head
            return b" " if sent < len(head) + MAX_BODY_BYTES // 2 - 1 else b""
        if sent < len(head):
            return head[sent : sent + 1]
        header = b"X-Padding: a\r\n"  # endless headers, one byte at a time
        return header[(sent - len(head)) % len(header) :][:1]

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for _ in range(self.count):
            self._open(selector)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in selector.select(timeout):
                # Readable: the server answered or closed it. Reopen, as an attacker would.
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
                    self.reopened += 1
                    self._open(selector)
            if time.monotonic() >= next_tick:
                next_tick += self.interval
                for key in list(selector.get_map().values()):
                    state = key.data
                    chunk = self._stream(state[0])
                    if not chunk:
                        continue
                    try:
                        state[0] += key.fileobj.send(chunk)  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        pass  # not connected yet, or the server is not reading: next tick
                    except OSError:
                        pass  # closed: the read side reports it
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def normal_requests(
    port: int, token: str, seconds: float, clients: int, deadline: float
) -> list[float | None]:
    """Token requests for `seconds` from `clients` threads: each latency, None when it failed."""
    results: list[float | None] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client() -> None:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            outcome: float | None = None
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=deadline)
            try:
                connection.request("POST", TOKEN_PATH, body=b"", headers=headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.monotonic() - started
                if response.status == 200 and elapsed <= deadline:
                    outcome = elapsed
            except OSError:
                outcome = None
            finally:
                connection.close()
            with lock:
                results.append(outcome)
            if outcome is None:
                # A refused or reset connection returns at once: do not spin on it.
                time.sleep(max(0.0, started + 0.05 - time.monotonic()))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + deadline + 5)
    return results


def summary(results: list[float | None], deadline: float) -> tuple[float, float, int]:
    """(success share, p99 in ms with failures counted as the deadline, request count)."""
    if not results:
        return 0.0, deadline * 1000, 0
    latencies = sorted(deadline if r is None else r for r in results)
    ok = sum(r is not None for r in results) / len(results)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return ok, p99 * 1000, len(results)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4, help="normal traffic per row")
    parser.add_argument("--clients", type=int, default=4, help="normal clients")
    parser.add_argument("--deadline", type=float, default=3, help="a normal request's timeout")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between slow bytes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--wrk-rounds", type=int, default=3)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--waitress-venv", type=Path, help="a scratch venv holding waitress")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="identity-slow-clients-"))
    token, _ = bench_token(tmp)
    env = {"BENCH_MESSENGER_SECRET": SECRET}
    alone_config = config(tmp)
    # Behind nginx the service trusts one proxy for the client address (proxy_hops = 1).
    proxied_config = tmp / "proxied.toml"
    proxied_config.write_text("[service]\nproxy_hops = 1\n" + alone_config.read_text())
    (tmp / "alone").mkdir()
    (tmp / "proxied").mkdir()
    alone = Server(alone_config, tmp / "alone", args.workers, args.threads, env)
    proxied = Server(proxied_config, tmp / "proxied", args.workers, args.threads, env)
    proxy: Nginx | None = None
    waitress: subprocess.Popen[bytes] | None = None
    rows: list[tuple[str, int, dict[str, tuple[float, float, int]]]] = []
    try:
        alone_port = alone.wait_started()
        upstream_port = proxied.wait_started()
        nginx_port = free_port()
        proxy = Nginx(tmp / "nginx", render(nginx_port, upstream_port, MAX_BODY_BYTES), nginx_port)
        setups = {ALONE: alone_port, PROXIED: nginx_port}
        masters = {ALONE: alone.process.pid, PROXIED: proxied.process.pid}
        if args.waitress_venv:
            waitress_port = free_port()
            waitress = start_waitress(args, alone_config, tmp, waitress_port, env)
            setups[WAITRESS], masters[WAITRESS] = waitress_port, waitress.pid
        for kind, count in [("none", 0)] + [(k, c) for k in ATTACKS for c in COUNTS if c]:
            measured = {}
            for name, port in setups.items():
                with Attack(kind, port, count, args.interval):
                    time.sleep(min(1.0, 2 * args.interval))  # let the attack take hold
                    results = normal_requests(
                        port, token, args.seconds, args.clients, args.deadline
                    )
                measured[name] = summary(results, args.deadline)
                time.sleep(0.5)  # the attack's connections are closed; let the server see it
            rows.append((kind, count, measured))
            print_row(kind, count, measured, header=len(rows) == 1)
        throughput = measure_throughput(
            {name: (masters[name], port) for name, port in setups.items()}, token, args, tmp
        )
    finally:
        if proxy is not None:
            proxy.stop()
        if waitress is not None:
            waitress.terminate()
            waitress.wait(timeout=30)
        alone.stop()
        proxied.stop()
    report_throughput(throughput, args)
    shutil.rmtree(tmp, ignore_errors=True)


def start_waitress(
    args: argparse.Namespace, config_path: Path, tmp: Path, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """wsgi.py under waitress, imported from the scratch venv (same Python as ours)."""
    site = next(args.waitress_venv.glob("lib/python3*/site-packages"))
    process = subprocess.Popen(
        [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
         f"--threads={args.workers * args.threads}", "--channel-timeout=10",
         f"--max-request-body-size={MAX_BODY_BYTES}", "wsgi:app"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "waitress.log", "w"),  # noqa: SIM115
        env={**os.environ, **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}",
             "IDENTITY_SERVICE_CONFIG": str(config_path),
             "IDENTITY_SERVICE_INSTANCE": str(tmp / "waitress-instance")},
    )  # fmt: skip
    wait_port(port)
    return process


def print_row(
    kind: str, count: int, measured: dict[str, tuple[float, float, int]], header: bool
) -> None:
    if header:
        print(f"{'attack':8} {'slow':>4}  " + "  ".join(f"{n:>28}" for n in measured))
        print(f"{'':8} {'conns':>4}  " + "  ".join(f"{'ok':>7} {'p99 ms':>8} {'reqs':>11}"
              for _ in measured))  # fmt: skip
    cells = "  ".join(f"{ok:7.1%} {p99:8.0f} {n:11d}" for ok, p99, n in measured.values())
    print(f"{kind:8} {count:5d}  {cells}", flush=True)


def measure_throughput(
    targets: dict[str, tuple[int, int]], token: str, args: argparse.Namespace, tmp: Path
) -> list[dict[str, dict[str, float]]]:
    """Interleaved wrk rounds on each setup's token endpoint (bench/load.py's balanced runs)."""
    rounds = []
    for _ in range(args.wrk_rounds):
        this_round = {}
        for name, (master, port) in targets.items():
            url = f"http://127.0.0.1:{port}{TOKEN_PATH}"
            this_round[name], _ = balanced_wrk(
                master, url, token, args.wrk_seconds, args.wrk_connections, tmp
            )
        rounds.append(this_round)
    return rounds


def report_throughput(rounds: list[dict[str, dict[str, float]]], args: argparse.Namespace) -> None:
    print()
    print(f"token endpoint under wrk: medians of {args.wrk_rounds} interleaved rounds of "
          f"{args.wrk_seconds} s, {args.wrk_connections} connections, "
          f"{args.workers} workers x {args.threads} threads")  # fmt: skip
    for name in rounds[0]:
        rps = statistics.median(r[name]["rps"] for r in rounds)
        p99 = statistics.median(r[name]["p99"] for r in rounds)
        print(f"{name:16} {rps:9.0f} req/s  p99 {p99:7.2f} ms")
    for name in list(rounds[0])[1:]:
        ratios = [r[name]["rps"] / r[ALONE]["rps"] for r in rounds]
        print(f"{name} / {ALONE} throughput: {statistics.median(ratios):.2f}  per round: "
              + ", ".join(f"{x:.2f}" for x in ratios))  # fmt: skip


if __name__ == "__main__":
    main()
