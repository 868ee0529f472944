"""The processes tests start (nginx, redis-server, the demo, `make run`): ports and stopping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Send `sig` to a process we started (if it still runs), wait `timeout` s for it, else
    SIGKILL it; its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def children(process: subprocess.Popen[Any]) -> list[int]:
    """The pids of a process's children (the command `make` runs for a recipe)."""
    path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def stop_make(process: subprocess.Popen[Any], timeout: float = 20) -> int:
    """End a `make` we started and what its recipe runs: make forwards no signal, so its
    children get SIGTERM by pid first, then make itself."""
    for pid in children(process):
        os.kill(pid, signal.SIGTERM)
    return stop(process, timeout=timeout)
