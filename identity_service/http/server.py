"""Run the app under gunicorn with production defaults."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker
from prometheus_client import Counter, multiprocess
from werkzeug.http import HTTP_STATUS_CODES

from identity_service.http.health import start_draining
from identity_service.http.middleware import generate_request_id
from identity_service.http.problems import INTERNAL_ERROR, PROBLEM_MIME, problem_body
from identity_service.http.reloading import REFUSED_CONFIG, LastGoodConfig
from identity_service.http.server_errors import refusal
from identity_service.http.server_logging import SafeLogger
from identity_service.http.state import service_state
from identity_service.observability.logs import configure_logging
from identity_service.observability.metrics import use_multiprocess_metrics
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
    """gunicorn's gthread worker, with the service's answers to requests gunicorn refuses.

    SIGTERM: `/readyz` turns 503 at once, and the listening sockets are
    closed as soon as the main loop sees the signal (the master closes its
    copies before it signals the workers), so a new connection is refused
    (ECONNREFUSED) and a load balancer retries elsewhere, instead of waiting
    in a backlog that nobody serves and being reset when the workers exit.
    Connections the kernel had already queued are taken first and served.
    The rest of the drain is gthread's: finish every accepted request
    (answering with `Connection: close`), close idle keep-alive connections,
    and exit within `graceful_timeout`.

    Refusals: a request gunicorn cannot parse (request line, headers, framing)
    never reaches the app, and gunicorn would answer with an HTML page that
    quotes the input. `handle_error`, gunicorn's hook for these answers, gives
    the app's problem+json instead, with the app's security headers and a
    request id, and logs the refusal by status and kind only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The request each thread answered last: gunicorn reports an error met
        # after the response (draining a body the app left unread) like any
        # other, and a second response must never follow the first.
        self.answered = threading.local()
        self.listening = True

    def run(self) -> None:
        # The app is loaded and the signal handlers are in place: from here on
        # SIGTERM drains this worker. (gunicorn's "Booting worker" comes from
        # the master at fork; a worker signalled before it installed its
        # handlers misses the SIGTERM and is killed at graceful_timeout.)
        self.log.info("Worker ready (pid: %s)", self.pid)
        super().run()

    def handle_exit(self, sig: int, frame: object) -> None:
        if self.alive:
            app = getattr(self, "wsgi", None)  # None while the worker is still booting
            if app is not None:
                start_draining(app)
            self.log.info("Worker draining (pid: %s): finishing in-flight requests", self.pid)
        super().handle_exit(sig, frame)
        if not self.booted:
            # Still loading the app, which can take seconds: it has accepted
            # nothing and polls nothing yet, so its copies close now rather
            # than keep the port open (and queue connections) until it boots.
            self.stop_listening()

    def set_accept_enabled(self, enabled: bool) -> None:
        if enabled and not self.listening:
            return  # closed at SIGTERM while booting
        # gthread calls this with False as its main loop ends, when SIGTERM
        # has stopped it: the one point, in the main thread, where the
        # listeners are no longer polled and can be closed for good.
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self.stop_listening()

    def stop_listening(self) -> None:
        """Serve what the kernel has queued already, then close the listening sockets."""
        if not self.listening:
            return
        self.listening = False
        for listener in self.sockets:
            # Connections queued before the close would be reset by it: take
            # them now (non-blocking, until none is left or the worker is
            # full), unless the app is not even loaded yet.
            listener.setblocking(False)
            while self.booted and self.nr_conns < self.worker_connections:
                before = self.nr_conns
                self.accept(listener)
                if self.nr_conns == before:
                    break
            listener.close()
        self.log.info("Worker stopped accepting (pid: %s): listening sockets closed", self.pid)

    def handle_request(self, req: Any, conn: Any) -> bool:
        keepalive: bool = super().handle_request(req, conn)
        self.answered.request = req
        return keepalive

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        ip = addr[0] if addr else ""  # a unix socket has no address
        if req is not None and getattr(self.answered, "request", None) is req:
            self.log.warning(
                "Invalid request from ip=%s after its response: %s; connection closed",
                ip,
                type(exc).__name__,
            )
            return
        rid = generate_request_id()
        answer = refusal(exc)
        if answer is None:
            # Type and stack, not the message: it may quote the request.
            self.log.error(
                "Error handling request: %s (request id %s)\n%s",
                type(exc).__name__,
                rid,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            status, title, detail, slug = INTERNAL_ERROR
        else:
            self.log.warning(
                "Invalid request from ip=%s: %s %s (request id %s)",
                ip,
                answer.status,
                type(exc).__name__,
                rid,
            )
            status, title, detail, slug = answer.status, answer.title, answer.detail, answer.slug
        body = json.dumps(problem_body(status, title, detail, slug, rid)).encode()
        head = [
            f"HTTP/1.1 {status} {HTTP_STATUS_CODES[status]}",
            "Connection: close",
            f"Content-Type: {PROBLEM_MIME}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            *(f"{name}: {value}" for name, value in self.response_headers()),
            f"X-Request-ID: {rid}",
        ]
        try:
            client.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:  # the client is gone; nothing left to tell it
            self.log.debug("Failed to send error message.")

    def response_headers(self) -> Sequence[tuple[str, str]]:
        """The headers the app puts on every response (security headers, HSTS, CSP)."""
        return service_state(self.wsgi).response_headers


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
            # gunicorn's own lines (master and workers) without query strings,
            # credentials or exception messages (server_logging).
            "logger_class": SafeLogger,
            "forwarded_allow_ips": "127.0.0.1",
            # gunicorn >= 25 opens a management socket (worker counts, shutdown) in
            # $HOME/.gunicorn by default, one path shared by every instance of the user,
            # which a stopping instance unlinks under the others. Not an interface we use.
            "control_socket_disable": True,
        },
        last_good,
    ).run()
