"""A redis-server of the test's own, on a free port: the test freezes, thaws, kills, restarts it.

Never the machine's shared Redis: only this process is ever signalled, by its pid.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import free_port


def answers(port: int, timeout: float = 0.2) -> bool:
    """Whether a redis-server on `port` answers PING within `timeout`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class OwnRedis:
    """One redis-server process with no persistence, bound to 127.0.0.1:`port`."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (CI installs it with the shared Redis)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not answers(self.port):
            assert self.process.poll() is None, "redis-server exited at startup"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.02)

    def freeze(self) -> None:
        """SIGSTOP: connections still open (the kernel accepts them), nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def configure(self, name: str, value: str) -> None:
        """CONFIG SET on this server (never the shared one): e.g. `maxmemory 1`, after
        which every write is refused with an OOM error while PING still answers."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            command = [b"CONFIG", b"SET", name.encode(), value.encode()]
            sock.sendall(
                b"*%d\r\n" % len(command)
                + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in command)
            )
            reply = sock.recv(64)
        assert reply.startswith(b"+OK"), reply

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL and reap: connections are refused until `start()` again."""
        if self.process is None:
            return
        if self.frozen:
            self.thaw()
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None


@contextmanager
def own_redis(directory: Path) -> Iterator[OwnRedis]:
    """A started redis-server of the test's own, killed on exit whatever state it is in."""
    server = OwnRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()
