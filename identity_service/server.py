"""Run the app under gunicorn with production defaults."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from prometheus_client import Counter, multiprocess

from identity_service.observability import configure_logging, use_multiprocess_metrics
from identity_service.reloading import REFUSED_CONFIG, LastGoodConfig
from identity_service.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types
    def __init__(self, options: dict[str, Any], last_good: LastGoodConfig) -> None:
        self.options = options
        self.last_good = last_good
        super().__init__()

    def reload(self) -> None:
        # SIGHUP, in the master, before gunicorn forks the new workers: validate
        # the file first, so a broken one leaves them on the last good settings
        # instead of failing to boot (which makes gunicorn's master exit).
        self.last_good.reload()
        super().reload()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Each worker builds its own app after the fork: no sockets, pools or
        # locks are shared across processes.
        from identity_service import create_app

        configure_logging()
        use_multiprocess_metrics()
        # The master's validated settings, secrets already read: nothing here
        # reads the configuration or a secret file that may have broken since.
        last_good = self.last_good
        app = create_app(
            last_good.settings,
            key_files=last_good.key_files,
            **{REFUSED_CONFIG: last_good.refused},
        )
        # The worker can serve: the line a replacement worker's boot is confirmed by.
        log.info(
            "worker app ready",
            extra={"fields": {"pid": os.getpid(), "config": last_good.settings.source,
                              "refused_reload": last_good.refused is not None}},
        )  # fmt: skip
        return app


def _child_exit(server: object, worker: Any) -> None:
    # A dead worker's live values (none of ours are gauges) are dropped; its
    # counters and histograms stay in the files and keep counting in the totals.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def metrics_directory() -> str:
    """$PROMETHEUS_MULTIPROC_DIR, or a fresh private folder for this server's workers."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        return existing
    # Empty at every start, as prometheus_client requires, and private to this user.
    created = tempfile.mkdtemp(prefix="identity-service-metrics-")
    os.environ[MULTIPROC_ENV] = created
    return created


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


def run_gunicorn(
    bind: str,
    workers: int,
    threads: int,
    timeout: int,
    settings: Settings,
    load: Callable[[], Settings],
) -> None:
    """Serve `settings` until SIGTERM; in-flight requests get `graceful_timeout` seconds to finish.

    `load` reads and validates the configuration again at each SIGHUP. Metrics
    are shared by the workers through prometheus_client's multiprocess mode, so
    /metrics answers with the totals of every worker, whichever serves it.
    """
    metrics_directory()
    configure_logging()  # the master's own lines (reloads) as JSON, like the workers'
    use_multiprocess_metrics()  # the master counts reloads in the shared files too
    reloads = Counter(
        "identity_config_reloads", "Configuration reloads (SIGHUP) by result", ["result"],
        registry=None,  # exposed through the multiprocess files, with the workers' metrics
    )  # fmt: skip
    last_good = LastGoodConfig(settings, load, lambda result: reloads.labels(result).inc())
    _Gunicorn(
        {
            # Before each fork, in the master: the new worker starts from the
            # latest good secret values, whatever the files hold now.
            "pre_fork": lambda server, worker: last_good.refresh_secrets(),
            "child_exit": _child_exit,
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
        },
        last_good,
    ).run()
