"""What one request costs inside the WSGI app, without a server or a network in the way.

Calls each app's WSGI callable directly with a prepared environ, as gunicorn
would, and times many calls: the service's /healthz, its token endpoint (the
load benchmark's configuration: RS256 bearer, 10 attributes, audit and access
lines written to a real file, rate limiter on; with no body, with `{}`, and
with one attribute from a SQLite profile row), the same on issue 13's fixture
(the key from a JWKS on 127.0.0.1, 6 attributes, body `{}`; also with the
SQLite profile) and the naive baseline. The
figures are per-request microseconds of CPU time, best of `--repeat`
interleaved rounds, all in one run so the ratios can be compared (still noisy on
this shared machine: `instructions.py` counts instead). `--profile` prints
cProfile's top entries for the token endpoint instead. Run: `.venv/bin/python bench/wsgi_cost.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

# $BENCH_SOURCE: another checkout's identity_service to measure instead (instructions.py
# --baseline runs the same endpoints on both, side by side).
sys.path.insert(0, os.environ.get("BENCH_SOURCE") or str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from flask import Flask
from load import AUDIENCE, ISSUE_ATTRIBUTES, ISSUER, SECRET, bench_token, config
from serving import serving_jwks

from identity_service import create_app
from identity_service.config import load_settings
from identity_service.observability import configure_logging

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(method: str, path: str, token: str | None, body: bytes = b"") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # gunicorn's: its stream ends at the body's end
    }
    if token:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    env["bench.body"] = body
    return env


def call(app: WsgiApp, env: dict[str, Any]) -> Callable[[], None]:
    statuses: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        statuses.append(status)

    def once() -> None:
        request_env = dict(env)
        request_env["wsgi.input"] = io.BytesIO(env["bench.body"])
        body = app(request_env, start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()
        status = statuses.pop()
        if not status.startswith("200"):
            raise SystemExit(f"{env['PATH_INFO']} answered {status}")

    return once


def per_call_us(calls: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    """Best per-call time of each, in rounds that interleave them (the machine is shared)."""
    # CPU time of this thread: time other tenants of the machine take is not counted.
    timers = {name: timeit.Timer(fn, timer=time.thread_time) for name, fn in calls.items()}
    loops = {name: timer.autorange()[0] for name, timer in timers.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(loops[name]) / loops[name] * 1e6)
    return best


def make_fixture(folder: Path) -> tuple[str, bytes]:
    """The load benchmark's IdP token (10 attribute claims) and key, also saved in `folder`."""
    token, pem = bench_token(folder)
    (folder / "token").write_text(token)
    return token, pem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--only", metavar="NAME", help="call only this endpoint, --calls times (for valgrind)"
    )
    parser.add_argument("--calls", type=int, default=0)
    parser.add_argument(
        "--fixture", type=Path, help="a folder with `token` and `idp.pem` to reuse (else made)"
    )
    parser.add_argument(
        "--jwks-url", help="the IdP's JWKS for the issue-fixture endpoints (else served here)"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        run(args, stack)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:

    tmp = Path(tempfile.mkdtemp(prefix="identity-wsgi-cost-"))
    if args.fixture:
        token, pem = (args.fixture / "token").read_text(), (args.fixture / "idp.pem").read_bytes()
    else:
        token, pem = make_fixture(tmp)
    (tmp / "idp.pem").write_bytes(pem)
    os.environ.update(
        BENCH_MESSENGER_SECRET=SECRET,
        BENCH_IDP_PEM=str(tmp / "idp.pem"),
        BENCH_ISSUER=ISSUER,
        BENCH_AUDIENCE=AUDIENCE,
    )
    # The service's log lines go to a real file, as under gunicorn (stderr to a file).
    log_file = open(tmp / "service.log", "w", buffering=1)  # noqa: SIM115 (lives as long as the run)
    configure_logging(stream=log_file)

    service = create_app(load_settings(config(tmp)))
    profiled_tmp = tmp / "profiled"
    profiled_tmp.mkdir()
    (profiled_tmp / "idp.pem").write_bytes(pem)
    profiled = create_app(load_settings(config(profiled_tmp, profile=True)))
    # Issue 13's fixture. Its JWKS is served by instructions.py's process when it
    # counts (a server thread here would add its own instructions to the count).
    jwks_url = args.jwks_url or stack.enter_context(serving_jwks(pem))
    issue_apps = {}
    for name, profile in (("issue", False), ("issue-profiled", True)):
        folder = tmp / name
        folder.mkdir()
        issue_config = config(folder, profile, attributes=ISSUE_ATTRIBUTES, jwks_url=jwks_url)
        issue_apps[name] = create_app(load_settings(issue_config))
    import naive_app

    bare = Flask("bare")
    bare.get("/healthz")(lambda: {"status": "ok"})
    calls = {
        "bare Flask GET": call(bare, environ("GET", "/healthz", None)),
        "service /healthz": call(service, environ("GET", "/healthz", None)),
        "service token": call(service, environ("POST", "/v1/messenger/token", token)),
        "service token {}": call(service, environ("POST", "/v1/messenger/token", token, b"{}")),
        "token + SQLite": call(profiled, environ("POST", "/v1/messenger/token", token)),
        "issue token {}": call(
            issue_apps["issue"], environ("POST", "/v1/messenger/token", token, b"{}")
        ),
        "issue {} + SQLite": call(
            issue_apps["issue-profiled"], environ("POST", "/v1/messenger/token", token, b"{}")
        ),
        "naive token": call(naive_app.app, environ("POST", "/v1/messenger/token", token)),
    }
    if args.only:
        for name, fn in calls.items():
            if name == args.only:
                fn()  # warm: first-call costs (lazy imports, caches) are not per-request costs
                for _ in range(args.calls):
                    fn()
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3000):
            calls["service token"]()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    results = per_call_us(calls, args.repeat)
    for name, us in results.items():
        print(f"{name:20} {us:8.1f} us")
    print(f"token / healthz cost: {results['service token'] / results['service /healthz']:.2f}")
    print(f"token / naive cost:   {results['service token'] / results['naive token']:.2f}")


if __name__ == "__main__":
    main()
