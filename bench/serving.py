"""What the benchmark scripts share: an IdP token, and `identity-service serve` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

BIN = Path(sys.executable).parent


# The bench IdP's key id in its JWKS (and in its tokens' headers).
KID = "bench-key"


def idp_token(issuer: str, audience: str, claims: Mapping[str, Any]) -> tuple[str, bytes]:
    """An RS256 token from a fresh IdP key, valid for an hour, and that key's public PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    standard = {"iss": issuer, "aud": audience, "sub": "user-1", "iat": now, "exp": now + 3600}
    token = jwt.encode({**standard, **claims}, key, algorithm="RS256", headers={"kid": KID})
    return token, pem


def jwks_document(pem: bytes) -> bytes:
    """The JWKS that publishes the public key `pem` under KID."""
    jwk = json.loads(RSAAlgorithm.to_jwk(serialization.load_pem_public_key(pem)))
    return json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()


@contextmanager
def serving_jwks(pem: bytes) -> Iterator[str]:
    """A JWKS endpoint for `pem` on 127.0.0.1 (a thread of this process), as its URL."""
    document = jwks_document(pem)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def wait_port(port: int, timeout: float = 30) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port} after {timeout:g} s")


class Server:
    """The `identity-service serve` subprocess; its log goes to a file we can search."""

    def __init__(
        self, config: Path, tmp: Path, workers: int, threads: int, env: Mapping[str, str]
    ) -> None:
        self.log_path = tmp / "service.log"
        env = {**os.environ, **env, "IDENTITY_SERVICE_INSTANCE": str(tmp / "instance")}
        self.process = subprocess.Popen(
            [str(BIN / "identity-service"), "serve", "--config", str(config),
             "--bind", "127.0.0.1:0", "--workers", str(workers), "--threads", str(threads)],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"),  # noqa: SIM115 (the child owns it)
        )  # fmt: skip
        self.workers = workers

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 60) -> int:
        """The port gunicorn bound, once every worker has booted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited during startup:\n{self.log()}")
            text = self.log()
            port = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", text)
            if port and len(self.worker_pids()) == self.workers:
                return int(port.group(1))
            time.sleep(0.2)
        raise SystemExit(f"the server did not start within {timeout:g} s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's child processes."""
        return children(self.process.pid)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def children(pid: int) -> list[int]:
    """The child processes of `pid` (a gunicorn master's are its workers)."""
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return sorted(int(child) for child in listing.read_text().split())
    except OSError:  # kernels without CONFIG_PROC_CHILDREN: scan every process
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
        return sorted(found)


def cpu_ticks(pid: int) -> int:
    """User + system CPU time `pid` has used, in clock ticks (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
