"""Run the app under gunicorn with production defaults."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
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


def run_gunicorn(bind: str, workers: int, threads: int, timeout: int) -> None:
    """Serve until SIGTERM; in-flight requests get `graceful_timeout` seconds to finish."""
    _Gunicorn(
        {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": timeout,
            "graceful_timeout": 30,
            "keepalive": 5,
            "max_requests": 10000,  # recycle workers now and then: bounds any slow leak
            "max_requests_jitter": 1000,
            "limit_request_field_size": 16384,  # an 8 KiB bearer token plus headroom
            "accesslog": None,  # the app writes its own JSON access line
            "forwarded_allow_ips": "127.0.0.1",
        }
    ).run()
