"""Debian's nginx in front of a served identity_service, from the repo's own config.

`deploy/nginx/identity-service.conf` is rendered into a private folder with
only the listen port, the upstream address, the body cap and (optionally) some
timeouts changed, each by name and each required to appear exactly once, so a
renamed directive fails here instead of silently testing something else. nginx
runs in the foreground as a child process with its own prefix, pid file, error
log and temp paths, and is stopped by its pid. The bench (bench/slow_clients.py)
uses this module too.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port, stop

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx" / "identity-service.conf"

MAIN = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/identity-service.conf;
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (`apt-get install nginx`), which is in /usr/sbin."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def set_directive(text: str, name: str, value: str) -> str:
    """`text` with the one `name ...;` directive set to `value` (it must appear exactly once)."""
    pattern = re.compile(rf"^([ \t]*){re.escape(name)}[ \t][^;\n]*;", re.M)
    found = pattern.findall(text)
    assert len(found) == 1, f"{SHIPPED.name}: expected one `{name}` directive, found {len(found)}"
    return pattern.sub(lambda m: f"{m.group(1)}{name} {value};", text)


def render(
    listen_port: int,
    upstream_port: int,
    max_body_bytes: int,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """The shipped config for 127.0.0.1:`listen_port` in front of 127.0.0.1:`upstream_port`."""
    text = SHIPPED.read_text()
    text = set_directive(text, "listen", f"127.0.0.1:{listen_port}")
    text = set_directive(text, "server", f"127.0.0.1:{upstream_port}")
    text = set_directive(text, "client_max_body_size", str(max_body_bytes))
    for name, value in (overrides or {}).items():
        text = set_directive(text, name, value)
    return text


class Nginx:
    """A foreground nginx master (one worker) on a private prefix; `port` is where it listens."""

    def __init__(self, prefix: Path, config: str, port: int) -> None:
        binary = nginx_binary()
        assert binary, "nginx is not installed (apt-get install nginx)"
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "identity-service.conf").write_text(config)
        main = prefix / "nginx.conf"
        main.write_text(MAIN.format(prefix=prefix))
        self.prefix, self.port = prefix, port
        # -e: the error log before the config is read (else /var/log/nginx/error.log).
        command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")]
        checked = subprocess.run(
            [*command, "-t", "-q"], check=False, capture_output=True, text=True
        )
        assert checked.returncode == 0, f"nginx -t refused the config:\n{checked.stderr}"
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"nginx exited:\n{self.error_log()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx does not listen on {self.port}:\n{self.error_log()}")

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to our master (fast shutdown: it stops its worker), then wait for it."""
        stop(self.process)


@contextmanager
def fronting(
    prefix: Path,
    upstream_port: int,
    max_body_bytes: int,
    overrides: Mapping[str, str] | None = None,
) -> Iterator[Nginx]:
    """nginx from the shipped config on a free port of 127.0.0.1, stopped on exit."""
    port = free_port()
    proxy = Nginx(prefix, render(port, upstream_port, max_body_bytes, overrides), port)
    try:
        yield proxy
    finally:
        proxy.stop()
