"""Run the app under gunicorn with production defaults."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Each worker builds its own app after the fork: no sockets, pools or
        # locks are shared across processes.
        from identity_service import create_app
        from identity_service.observability import configure_logging

        configure_logging()
        return create_app()


class GracefulThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn ships no types
    """gunicorn's gthread worker, saying in the log when SIGTERM starts its drain.

    The drain itself is gthread's: stop accepting, finish every accepted request
    (answering with `Connection: close`), close idle keep-alive connections, and
    exit within `graceful_timeout`. The log line tells an operator (and the
    shutdown test) that the worker got the signal while requests were in flight.
    """

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.alive:
            self.log.info("Worker draining (pid: %s): finishing in-flight requests", self.pid)
        super().handle_exit(sig, frame)


def run_gunicorn(bind: str, workers: int, threads: int, timeout: int) -> None:
    """Serve until SIGTERM; in-flight requests get `graceful_timeout` seconds to finish."""
    _Gunicorn(
        {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": GracefulThreadWorker,
            "timeout": timeout,
            "graceful_timeout": 30,
            "keepalive": 5,
            # No max_requests recycling: a recycled worker drops its keep-alive
            # connections mid-load and rebuilds the app; bench/soak.py shows no
            # memory growth to bound.
            "limit_request_field_size": 16384,  # an 8 KiB bearer token plus headroom
            "accesslog": None,  # the app writes its own JSON access line
            "forwarded_allow_ips": "127.0.0.1",
            # gunicorn >= 25 opens a management socket (worker counts, shutdown) in
            # $HOME/.gunicorn by default, one path shared by every instance of the user,
            # which a stopping instance unlinks under the others. Not an interface we use.
            "control_socket_disable": True,
        }
    ).run()
