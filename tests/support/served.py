"""`identity-service serve` as a subprocess for tests: its stderr read line by line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Every server started in this session whose stderr the log leak guard has
# not read to the end yet (tests/support/leak_guard.py).
UNCHECKED: list[Server] = []


class Server:
    """`identity-service serve` in a subprocess; its stderr is collected line by line."""

    def __init__(self, config: Path, root: Path, workers: int, threads: int) -> None:
        command = [
            str(Path(sys.executable).parent / "identity-service"), "serve",
            "--config", str(config), "--bind", "127.0.0.1:0",
            "--workers", str(workers), "--threads", str(threads),
        ]  # fmt: skip
        env = {**os.environ, "IDENTITY_SERVICE_INSTANCE": str(root / "instance")}
        self.process = subprocess.Popen(
            command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._checked = 0  # how many lines the leak guard has read
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        UNCHECKED.append(self)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_lines(self, pattern: str, count: int = 1, timeout: float = 20) -> list[str]:
        """The first `count` stderr lines matching `pattern`, waiting for them to appear."""
        regex = re.compile(pattern)
        with self._changed:
            ok = self._changed.wait_for(
                lambda: (
                    len([x for x in self.lines if regex.search(x)]) >= count
                    or self.process.poll() is not None
                ),
                timeout=timeout,
            )
            found = [x for x in self.lines if regex.search(x)]
        assert ok and len(found) >= count, f"no {pattern!r} in the server log:\n" + self.log()
        return found[:count]

    @property
    def port(self) -> int:
        """The port gunicorn bound (the command asked for port 0)."""
        line = self.wait_for_lines(r"Listening at: http://127\.0\.0\.1:(\d+)")[0]
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found is not None
        return int(found.group(1))

    def unchecked_lines(self) -> list[str]:
        """The lines written since the last call (the leak guard reads each line once)."""
        with self._changed:
            new = self.lines[self._checked :]
            self._checked = len(self.lines)
        return new

    @property
    def finished(self) -> bool:
        """The process has exited and every line it wrote has been read."""
        return self.process.poll() is not None and not self._reader.is_alive()

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)


@contextmanager
def serving(config: Path, root: Path, workers: int = 2, threads: int = 4) -> Iterator[Server]:
    """`identity-service serve` on a free port of 127.0.0.1, killed on exit."""
    server = Server(config, root, workers, threads)
    try:
        yield server
    finally:
        server.stop()
