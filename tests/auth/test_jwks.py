"""Key sources: a real JWKS server on 127.0.0.1 (caching, rotation, outages), and key files.

Time that matters to the cache is a FakeClock the tests move; nothing sleeps.
Background fetches run on real threads, which `settle()` waits for (bounded).
The real-time measurements prove the fetch deadlines: a stalled, trickling or
unreachable IdP holds a caller, and the fetch's thread, no longer than them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt import PyJWK

from identity_service.auth import Identity, RequestView
from identity_service.auth import jwks as jwks_module
from identity_service.auth import keys as keys_module
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.auth.jose import load_json_object
from identity_service.auth.jwks import Backoff, RemoteKeySource
from identity_service.auth.key_fetch import MAX_JWKS_BYTES, FetchLimits, fetch_url
from identity_service.auth.keys import keyset_from_jwks
from identity_service.errors import AuthenticationError, ConfigError, KeySourceUnavailableError
from tests.support.jwks_server import (
    JWKS_PATH,
    FakeClock,
    JWKSServer,
    Mode,
    fetch_threads,
    settle,
)
from tests.support.keys import (
    NOW,
    SigningKey,
    bearer_settings,
    ec_key,
    ed_key,
    rsa_key,
    write_jwks,
)

TTL, INTERVAL, MAX_STALE = 600.0, 30.0, 3600.0
RETRY_INITIAL, RETRY_MAX = 0.5, 4.0
ALLOWED = ("RS256", "PS256", "ES256", "EdDSA")
LIMITS = FetchLimits(connect=1.0, read=1.0, total=1.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(server: JWKSServer, clock: FakeClock, **overrides: Any) -> BearerAuthenticator:
    settings = bearer_settings(
        jwks_url=server.url,
        jwks_cache_ttl=TTL,
        jwks_refetch_interval=INTERVAL,
        jwks_max_stale=MAX_STALE,
        jwks_retry_initial=RETRY_INITIAL,
        jwks_retry_max=RETRY_MAX,
        **overrides,
    )
    return BearerAuthenticator(settings, clock=clock)


def source(url: str, clock: FakeClock, **overrides: Any) -> RemoteKeySource:
    """A RemoteKeySource with the module's timings, any of them overridden."""
    options: dict[str, Any] = {
        "limits": LIMITS,
        "refetch_interval": INTERVAL,
        "cache_ttl": TTL,
        "max_stale": MAX_STALE,
        "backoff": Backoff(RETRY_INITIAL, RETRY_MAX),
        "clock": clock,
    }
    options.update(overrides)
    return RemoteKeySource(url, ALLOWED, **options)


def unique_url() -> str:
    """An injected fetch's URL: one per test, as fetches in flight are shared per URL."""
    return f"https://idp.example.test/{uuid.uuid4().hex}/jwks"


def login(authenticator: BearerAuthenticator, token: str) -> Identity:
    return authenticator.authenticate(RequestView(authorization=f"Bearer {token}"), NOW)


def refused(authenticator: BearerAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        login(authenticator, token)
    return caught.value.reason


# -- caching ------------------------------------------------------------------------------


def test_nothing_is_fetched_until_a_token_needs_keys(server: JWKSServer, clock: FakeClock) -> None:
    make(server, clock)
    assert server.requests == 0


def test_keys_are_fetched_once_and_cached(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    for _ in range(50):
        assert login(authenticator, idp.sign()).user_id == "user-42"
        clock.advance(TTL / 100)
    assert server.requests == 1
    assert server.paths == [JWKS_PATH]


def test_each_jwk_is_parsed_once_not_per_request(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []

    class CountingPyJWK(PyJWK):
        def __init__(self, data: dict[str, Any], algorithm: str | None = None) -> None:
            parsed.append(data["kid"])
            super().__init__(data, algorithm)

    monkeypatch.setattr(keys_module, "PyJWK", CountingPyJWK)
    server.publish(idp, ec_key("ec-1"))
    authenticator = make(server, clock)
    for _ in range(100):
        login(authenticator, idp.sign())
        login(authenticator, ec_key("ec-1").sign())
    assert sorted(parsed) == ["ec-1", "idp-1"]


def test_the_cached_key_set_is_the_same_object_between_fetches(
    server: JWKSServer, clock: FakeClock
) -> None:
    keys = source(server.url, clock, max_stale=0)
    first = keys.current()
    assert keys.current() is first
    assert keys.current().keys[0].key is first.keys[0].key


def test_nothing_runs_in_the_background_until_keys_are_needed(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    """A process that forks later (a gunicorn master) must not own a fetch thread."""
    settle()  # a fetch another test left behind
    before = set(threading.enumerate())
    authenticator = make(server, clock)
    authenticator.applies(RequestView(authorization="Bearer x"))
    assert set(threading.enumerate()) <= before
    login(authenticator, idp.sign())
    settle()  # the fetch's thread ends with the fetch: no thread stays behind
    assert not fetch_threads()


def test_an_expired_cache_is_served_while_the_refresh_runs_in_the_background(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock, jwks_timeout=2.0)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(idp, new)
    server.mode = "stall"  # the refresh hangs until released
    clock.advance(TTL)

    started = time.perf_counter()
    for _ in range(20):
        assert login(authenticator, idp.sign()).user_id == "user-42"
    assert time.perf_counter() - started < 0.5  # not one of them waited for the IdP (2 s)

    server.release()  # the refresh now lands with the rotated set
    settle()
    assert server.requests == 2
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2  # the new kid was already there: no refetch


def test_keys_are_refreshed_after_the_cache_ttl(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(new)  # the IdP rotated and retired the old key

    clock.advance(TTL - 1)
    login(authenticator, idp.sign())  # still within the TTL: the old key is trusted
    assert server.requests == 1

    clock.advance(1)
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2
    # The refresh just happened, so the retired kid does not trigger another fetch.
    assert refused(authenticator, idp.sign()) == "unknown_key"
    assert server.requests == 2


# -- rotation and unknown kids ----------------------------------------------------------


def test_a_new_key_is_accepted_after_exactly_one_refetch(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(idp, new)
    clock.advance(INTERVAL)

    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2
    login(authenticator, new.sign())
    login(authenticator, idp.sign())
    assert server.requests == 2


def test_an_unknown_kid_refetches_at_most_once_per_interval(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(idp, new)

    # Fetched a moment ago: the unknown kid waits for the interval.
    assert refused(authenticator, new.sign()) == "unknown_key"
    assert server.requests == 1
    clock.advance(INTERVAL - 0.5)
    assert refused(authenticator, new.sign()) == "unknown_key"
    assert server.requests == 1
    clock.advance(0.5)
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2


def test_a_flood_of_random_kids_causes_bounded_refetches(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    attacker = ec_key("attacker")  # fast to sign; any key works, the kid is what matters
    clock.advance(INTERVAL)

    for _ in range(200):
        token = attacker.sign(headers={"kid": secrets.token_hex(8)})
        assert refused(authenticator, token) == "unknown_key"
    assert server.requests == 2  # the initial fetch and one refetch for 200 unknown kids

    steps = 20
    for _ in range(steps):  # 10 intervals' worth of flooding
        clock.advance(INTERVAL / 2)
        for _ in range(10):
            refused(authenticator, attacker.sign(headers={"kid": secrets.token_hex(8)}))
    assert server.requests - 2 <= steps // 2
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_a_huge_kid_never_triggers_a_refetch(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock, max_token_bytes=65536)
    login(authenticator, idp.sign())
    clock.advance(INTERVAL)
    assert refused(authenticator, idp.sign(headers={"kid": "k" * 10_000})) == "unknown_key"
    assert server.requests == 1


# -- the IdP is down, broken or slow ------------------------------------------------------


def test_cached_keys_outlive_an_idp_outage_until_max_stale(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    server.mode = "error"

    clock.advance(TTL)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    settle()
    assert server.requests == 2  # one refresh attempt, which failed
    for _ in range(20):
        login(authenticator, idp.sign())
    settle()
    assert server.requests == 2  # failures do not turn every request into an attempt

    clock.advance(MAX_STALE - 1)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    assert authenticator.ready() is True

    clock.advance(1)  # past TTL + max_stale: the cached keys are no longer trusted
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert authenticator.ready() is False
    settle()

    server.mode = "ok"
    clock.advance(RETRY_MAX)  # the longest backoff, whatever the jitter
    assert authenticator.ready() is False  # a probe starts the due fetch, it does not wait
    settle()
    assert authenticator.ready() is True
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_idp_down_at_start_is_503_and_not_ready(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    server.mode = "error"
    authenticator = make(server, clock)
    with pytest.raises(KeySourceUnavailableError) as caught:
        login(authenticator, idp.sign())
    assert caught.value.status == 503
    assert authenticator.ready() is False
    assert server.requests == 1  # the retry waits for its backoff

    # Back up: the first retry is due after RETRY_INITIAL (at most), not jwks_refetch_interval.
    server.mode = "ok"
    clock.advance(RETRY_INITIAL)
    assert authenticator.ready() is False  # the probe started the retry
    settle()
    assert server.requests == 2
    assert authenticator.ready() is True
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_a_failed_fetch_is_retried_with_exponential_backoff(
    server: JWKSServer, clock: FakeClock
) -> None:
    server.mode = "error"
    keys = source(server.url, clock, jitter=lambda: 0.999999)  # the top of each jitter range
    expected_delays = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]  # doubling from RETRY_INITIAL to RETRY_MAX
    with pytest.raises(KeySourceUnavailableError):
        keys.current()
    for attempt, delay in enumerate(expected_delays, start=2):
        clock.advance(delay - 0.01)
        assert keys.ready() is False
        settle()
        assert server.requests == attempt - 1, f"retry {attempt} came early"
        clock.advance(0.01)
        assert keys.ready() is False
        settle()
        assert server.requests == attempt, f"retry {attempt} did not come after {delay} s"

    server.mode = "ok"
    clock.advance(RETRY_MAX)
    keys.ready()
    settle()
    assert keys.ready() is True
    clock.advance(INTERVAL - 1)  # after a success, the kid-flood interval again
    keys.refetch()
    settle()
    assert server.requests == len(expected_delays) + 2


@pytest.mark.parametrize(
    ("failures", "jitter", "delay"),
    [
        (1, 0.0, 0.25),
        (1, 0.5, 0.375),
        (2, 0.0, 0.5),
        (3, 0.999, 1.999),
        (4, 0.0, 2.0),
        (5, 0.0, 2.0),  # capped at 4 s, of which half to all
        (10_000, 0.999, 3.998),
    ],
)
def test_backoff_doubles_up_to_its_maximum_and_jitters_over_the_upper_half(
    failures: int, jitter: float, delay: float
) -> None:
    assert Backoff(0.5, 4.0).delay(failures, jitter) == pytest.approx(delay)


def test_callers_never_wait_for_a_retry_while_the_idp_is_failing(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    server.mode = "stall"
    authenticator = make(server, clock, jwks_timeout=1.0)
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())  # the first attempt: waited for, up to 1 s
    settle()

    for _ in range(3):
        clock.advance(INTERVAL)
        started = time.perf_counter()
        with pytest.raises(KeySourceUnavailableError):
            login(authenticator, idp.sign())  # a retry starts, in the background
        assert time.perf_counter() - started < 0.5
        settle()
    assert server.requests == 4


def _status(server: JWKSServer) -> None:
    server.mode = "error"


def _hangup(server: JWKSServer) -> None:
    server.mode = "hangup"


def _redirect(server: JWKSServer) -> None:
    server.mode = "redirect"


def _raw(body: dict[str, Any] | bytes) -> Callable[[JWKSServer], None]:
    return lambda server: server.serve_raw(body)


BROKEN_IDPS: dict[str, Callable[[JWKSServer], None]] = {
    "http 500": _status,
    "connection dropped": _hangup,
    "redirect elsewhere": _redirect,
    "not json": _raw(b"<html>maintenance</html>"),
    "a json list": _raw(b"[]"),
    "empty key set": _raw({"keys": []}),
    "keys not a list": _raw({"keys": {"kid": "idp-1"}}),
    "only symmetric keys": _raw({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "idp-1"}]}),
    "duplicate json keys": _raw(b'{"keys": [], "keys": []}'),
    "invalid utf-8": _raw(b'{"keys": ["\xff"]}'),
    "too large": lambda server: server.serve_raw(
        {"keys": [rsa_key("idp-1").public_jwk()], "pad": "x" * MAX_JWKS_BYTES}
    ),
}


@pytest.mark.parametrize("breakage", BROKEN_IDPS.values(), ids=BROKEN_IDPS.keys())
def test_a_broken_jwks_endpoint_is_503_not_401(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, breakage: Callable[[JWKSServer], None]
) -> None:
    breakage(server)
    authenticator = make(server, clock)
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert server.paths == [JWKS_PATH]  # a redirect was not followed


@pytest.mark.parametrize("breakage", BROKEN_IDPS.values(), ids=BROKEN_IDPS.keys())
def test_a_broken_refresh_keeps_the_cached_keys(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, breakage: Callable[[JWKSServer], None]
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    breakage(server)
    clock.advance(TTL)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    settle()
    assert server.requests == 2
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_a_stalled_idp_holds_a_cold_caller_no_longer_than_the_timeout(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    server.mode = "stall"  # accepts, then says nothing for 5 s (released at teardown)
    authenticator = make(server, clock, jwks_timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 1.0

    # A second caller does not start a second fetch, nor wait again for the stalled one.
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 0.2
    assert server.requests == 1


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body"])
def test_a_trickling_idp_holds_a_caller_no_longer_than_the_timeout(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, mode: Mode
) -> None:
    server.mode = mode  # every socket read succeeds, so only a deadline helps
    authenticator = make(server, clock, jwks_timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body"])
def test_the_download_itself_stops_at_the_total_deadline(server: JWKSServer, mode: Mode) -> None:
    server.mode = mode  # a byte every 50 ms: the read timeout alone would never fire
    started = time.perf_counter()
    with pytest.raises(OSError, match=r"timed out|deadline"):
        fetch_url(server.url, FetchLimits(connect=1.0, read=1.0, total=0.3))
    assert time.perf_counter() - started < 1.0  # not the 5 s the server trickles for


def test_a_silent_idp_is_cut_at_the_read_timeout(server: JWKSServer) -> None:
    server.mode = "stall"
    started = time.perf_counter()
    with pytest.raises(OSError, match="timed out"):
        fetch_url(server.url, FetchLimits(connect=1.0, read=0.2, total=3.0))
    assert time.perf_counter() - started < 1.5


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's SYN is dropped, connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.settimeout(0.1)
        with contextlib.suppress(OSError):  # the queue is full: that is the point
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in (*fillers, listener):
        sock.close()


def test_a_connect_that_never_completes_is_cut_at_the_connect_timeout(
    unanswered_port: int,
) -> None:
    started = time.perf_counter()
    with pytest.raises(OSError, match="timed out"):
        fetch_url(
            f"http://127.0.0.1:{unanswered_port}/jwks",
            FetchLimits(connect=0.2, read=3.0, total=3.0),
        )
    assert time.perf_counter() - started < 1.5


def test_a_tls_handshake_that_never_completes_is_cut_at_the_connect_timeout() -> None:
    """The TCP connection is made (the kernel queues it) but no TLS server ever answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.perf_counter()
        with pytest.raises(OSError, match="timed out"):
            fetch_url(
                f"https://127.0.0.1:{silent.getsockname()[1]}/jwks",
                FetchLimits(connect=0.2, read=3.0, total=3.0),
            )
        assert time.perf_counter() - started < 1.5


def test_a_body_over_the_size_cap_is_refused(server: JWKSServer) -> None:
    server.serve_raw(b" " * 2048)
    with pytest.raises(ValueError, match="larger than 1024 bytes"):
        fetch_url(server.url, FetchLimits(connect=1.0, read=1.0, total=1.0, max_bytes=1024))
    server.serve_raw(b"{}")
    assert fetch_url(server.url, FetchLimits(connect=1.0, read=1.0, total=1.0)) == b"{}"


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body", "stall"])
def test_a_slow_idp_never_has_more_than_one_fetch_in_flight(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, mode: Mode
) -> None:
    """Each fetch ends by its deadline, and the next starts only after it: no thread piles up."""
    server.mode = mode
    authenticator = make(server, clock, jwks_timeout=0.2, jwks_read_timeout=0.2)
    most = 0
    for _ in range(10):
        clock.advance(INTERVAL)
        with pytest.raises(KeySourceUnavailableError):
            login(authenticator, idp.sign())
        most = max(most, len(fetch_threads()))
        time.sleep(0.05)  # real time for the fetch to run; its deadline is real time too
    assert most <= 1
    settle()  # within its deadline, not when the server stops trickling (5 s)


def test_sources_of_one_url_share_one_fetch(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    """Two workspaces trusting one IdP (or a reloaded app) start one fetch between them."""
    server.mode = "stall"  # the first fetch stays in flight until released
    first, second = make(server, clock, jwks_timeout=5.0), make(server, clock, jwks_timeout=5.0)
    assert first.ready() is False  # starts the fetch (a probe does not wait)
    assert second.ready() is False  # joins it: the URL's fetch is in flight
    server.mode = "ok"
    server.release()
    settle()
    assert first.ready() is True and second.ready() is True
    assert login(first, idp.sign()).user_id == login(second, idp.sign()).user_id == "user-42"
    assert server.requests == 1


def test_a_fetch_that_overruns_its_deadline_holds_back_the_next_fetch_not_the_caller(
    clock: FakeClock,
) -> None:
    """An injected fetch that ignores its deadline: still never two in flight."""
    old, new = rsa_key("idp-1"), rsa_key("idp-2")
    documents = [old, new]
    first_may_answer = threading.Event()

    def fetch(url: str, limits: FetchLimits) -> bytes:
        key = documents.pop(0)
        if key is old:
            first_may_answer.wait(5)  # an IdP answering long after we stopped waiting
        return json.dumps({"keys": [key.public_jwk()]}).encode()

    keys = source(unique_url(), clock, limits=FetchLimits(0.1, 0.1, 0.1), fetch=fetch)
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        keys.current()
    clock.advance(INTERVAL)
    with pytest.raises(KeySourceUnavailableError):
        keys.refetch()  # joins the fetch in flight, whose deadline has passed
    assert time.perf_counter() - started < 1.0  # not the 5 s the fetch overruns by
    assert documents == [new]  # no second fetch beside the first

    first_may_answer.set()
    settle()
    assert [k.kid for k in keys.current().keys] == ["idp-1"]


def test_a_forked_child_fetches_for_itself(clock: FakeClock) -> None:
    """A fetch in flight in the parent does not exist in a child; the child starts its own."""
    parent = os.getpid()
    release_parent = threading.Event()
    body = json.dumps({"keys": [rsa_key("idp-1").public_jwk()]}).encode()

    def fetch(url: str, limits: FetchLimits) -> bytes:
        if os.getpid() == parent:
            release_parent.wait(5)
        return body

    keys = source(unique_url(), clock, limits=FetchLimits(5.0, 5.0, 5.0), fetch=fetch)
    assert keys.ready() is False  # the parent's fetch is now in flight, blocked
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child, which reports by its exit status)
        try:
            ok = keys.current().keys[0].kid == "idp-1"
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    release_parent.set()
    settle()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_thread_that_cannot_start_is_a_failed_attempt_not_a_500(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process at its thread limit: cached keys still serve, a cold source answers 503."""

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    warm, cold = make(server, clock), make(server, clock)
    login(warm, idp.sign())
    monkeypatch.setattr(jwks_module, "Thread", NoThread)
    clock.advance(TTL)
    assert login(warm, idp.sign()).user_id == "user-42"  # stale-while-revalidate, no refresh
    with pytest.raises(KeySourceUnavailableError):
        login(cold, idp.sign())
    assert cold.ready() is False  # within the backoff: no second attempt

    monkeypatch.undo()
    clock.advance(RETRY_MAX)
    assert login(warm, idp.sign()).user_id == "user-42"
    settle()
    cold.ready()
    settle()
    assert login(cold, idp.sign()).user_id == "user-42"
    assert server.requests == 3  # the first fetch, then one for each source


def test_only_http_urls_are_fetched(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="http"):
        source("file:///etc/passwd", clock)


# -- parsing a JWK Set ----------------------------------------------------------------------


def _rsa_1024() -> dict[str, Any]:
    return rsa_key("weak", bits=1024).public_jwk()


UNUSABLE_JWKS: dict[str, Callable[[], dict[str, Any]]] = {
    "encryption key": lambda: rsa_key("enc").public_jwk(use="enc"),
    "symmetric key": lambda: {"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "oct"},
    "private key": lambda: rsa_key("leaked").private_jwk(),
    "1024-bit rsa": _rsa_1024,
    "alg not allowed": lambda: rsa_key("rs512", "RS512").public_jwk(),
    "alg not matching kty": lambda: ec_key("ec-as-rsa").public_jwk(alg="RS256"),
    "curve not matching alg": lambda: ec_key("p384", "ES384").public_jwk(alg="ES256"),
    "key_ops without verify": lambda: rsa_key("ops").public_jwk(key_ops=["encrypt"]),
    "kid not a string": lambda: rsa_key("int-kid").public_jwk(kid=7),
    "no kty": lambda: {"kid": "nokty", "n": "AQAB", "e": "AQAB"},
    "garbage modulus": lambda: {"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"},
    "unknown kty": lambda: {"kty": "PQC", "kid": "future"},
}


@pytest.mark.parametrize("bad", UNUSABLE_JWKS.values(), ids=UNUSABLE_JWKS.keys())
def test_unusable_jwks_are_skipped(bad: Callable[[], dict[str, Any]]) -> None:
    good = rsa_key("idp-1").public_jwk()
    keys = keyset_from_jwks({"keys": [bad(), "not an object", good]}, ALLOWED)
    assert [k.kid for k in keys.keys] == ["idp-1"]
    with pytest.raises(ValueError, match="no usable"):
        keyset_from_jwks({"keys": [bad()]}, ALLOWED)


@pytest.mark.parametrize(
    ("jwk", "algorithms"),
    [
        (lambda: rsa_key("a").public_jwk(alg=False), ("PS256", "RS256")),
        (lambda: rsa_key("a").public_jwk(), ("RS256",)),
        (lambda: rsa_key("a", "PS256").public_jwk(), ("PS256",)),
        (lambda: ec_key("a").public_jwk(alg=False), ("ES256",)),
        (lambda: ed_key("a").public_jwk(alg=False), ("EdDSA",)),
    ],
    ids=["rsa without alg", "rsa RS256", "rsa PS256", "ec p-256", "ed25519"],
)
def test_each_key_verifies_only_algorithms_of_its_type(
    jwk: Callable[[], dict[str, Any]], algorithms: tuple[str, ...]
) -> None:
    (trusted,) = keyset_from_jwks({"keys": [jwk()]}, ALLOWED).keys
    assert trusted.algorithms == algorithms


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": {"b": 1, "b": 1}}',
        '[{"a": 1}]',
        '"a string"',
        '{"exp": NaN}',
        '{"exp": Infinity}',
        '{"a": 1} {"b": 2}',
        "[" * 100_000 + "]" * 100_000,
        b'{"a": "\xc3\x28"}',
    ],
    ids=[
        "duplicate",
        "nested duplicate",
        "list",
        "string",
        "nan",
        "infinity",
        "trailing data",
        "deep nesting",
        "bad utf-8",
    ],
)
def test_strict_json_refuses(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        load_json_object(text)


# -- key files ------------------------------------------------------------------------------


def _pem(key: SigningKey, path: Path) -> Path:
    path.write_bytes(key.public_pem())
    return path


def _certificate(key: SigningKey, path: Path) -> Path:
    path.write_bytes(key.certificate_pem())
    return path


def _jwk(key: SigningKey, path: Path) -> Path:
    path.write_text(json.dumps(key.public_jwk()), "utf-8")
    return path


def _jwks(key: SigningKey, path: Path) -> Path:
    return write_jwks(path, rsa_key("other"), key)


KEY_FILES = {"pem": _pem, "certificate": _certificate, "jwk": _jwk, "jwks": _jwks}


@pytest.mark.parametrize("write", KEY_FILES.values(), ids=KEY_FILES.keys())
@pytest.mark.parametrize(
    "key", [lambda: rsa_key("idp-1"), lambda: ec_key("ec-1"), lambda: ed_key("ed-1")],
    ids=["rsa", "ec", "ed25519"],
)  # fmt: skip
def test_key_file_sources(
    tmp_path: Path, write: Callable[[SigningKey, Path], Path], key: Callable[[], SigningKey]
) -> None:
    signing = key()
    authenticator = BearerAuthenticator(bearer_settings(key_file=write(signing, tmp_path / "k")))
    assert authenticator.ready() is True
    assert login(authenticator, signing.sign()).user_id == "user-42"
    assert refused(authenticator, rsa_key("attacker").sign(headers={"kid": signing.kid})) in {
        "bad_signature",
        "algorithm",
    }


def _private_pem(path: Path) -> None:
    private = rsa_key("idp-1").private
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


BAD_KEY_FILES: dict[str, Callable[[Path], Any]] = {
    "private key pem": _private_pem,
    "garbage": lambda p: p.write_bytes(b"not a key"),
    "json with duplicate keys": lambda p: p.write_text('{"keys": [], "keys": []}'),
    "no allowed algorithm": lambda p: p.write_bytes(rsa_key("x", bits=1024).public_pem()),
    "missing file": lambda p: None,
}


@pytest.mark.parametrize("write", BAD_KEY_FILES.values(), ids=BAD_KEY_FILES.keys())
def test_an_unusable_key_file_is_a_configuration_error(
    tmp_path: Path, write: Callable[[Path], Any]
) -> None:
    path = tmp_path / "key"
    write(path)
    with pytest.raises(ConfigError) as caught:
        BearerAuthenticator(bearer_settings(key_file=path))
    assert "key_file" in str(caught.value)
    assert "PRIVATE" not in str(caught.value)
