"""Where the identity provider's public keys come from: a JWKS URL (fetched, cached) or a file.

The keys themselves are parsed by `auth.keys` into an immutable `KeySet`
(strict JSON by `auth.jose`); this module decides when to fetch them again.

The remote source caches its set for `jwks_cache_ttl` seconds, then keeps
serving it while one background fetch refreshes it, for up to
`jwks_max_stale` seconds more. After a successful fetch no other starts for
`jwks_refetch_interval`, whatever asks for it (an expired cache, an unknown
`kid`, a readiness probe), so a flood of tokens with random kids cannot be
amplified into requests to the IdP. A failed fetch is retried after an
exponential backoff (`jwks_retry_initial` doubling up to `jwks_retry_max`,
with jitter). Each fetch is bounded by `key_fetch.fetch_url`'s connect, read
and total deadlines, and at most one runs per URL in a process.

Where keys come from is configuration only: nothing a token says (`kid`,
`jku`, `x5u`, `jwk`, `x5c`) can add a key or change the URL.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Protocol
from urllib.parse import urlsplit

from identity_service.auth.jose import load_json_object
from identity_service.auth.key_fetch import Fetch, FetchLimits, fetch_url
from identity_service.auth.keys import KeySet, keyset_from_file, keyset_from_jwks
from identity_service.errors import ConfigError, ConfigProblem, KeySourceUnavailableError
from identity_service.settings import BearerAuthSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class KeySource(Protocol):
    """Where a bearer authenticator gets the keys it trusts."""

    def current(self) -> KeySet:
        """The keys to verify with now; KeySourceUnavailableError (503) when there are none."""
        ...

    def refetch(self) -> KeySet:
        """The keys after a rate-limited refetch, for a token whose `kid` is unknown."""
        ...

    def ready(self) -> bool:
        """Whether usable keys are held now (for /readyz); may start a fetch, never waits."""
        ...


class StaticKeySource:
    """Keys pinned in a local file, loaded once at start-up."""

    def __init__(self, path: Path, allowed: Collection[str]) -> None:
        try:
            self._keys = keyset_from_file(path, allowed)
        except (OSError, ValueError) as exc:
            problem = ConfigProblem("key_file", f"cannot use {path} as the IdP's public key: {exc}")
            raise ConfigError(str(path), [problem]) from None

    def current(self) -> KeySet:
        return self._keys

    def refetch(self) -> KeySet:
        return self._keys

    def ready(self) -> bool:
        return True


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retrying a failed fetch: doubling, capped, with jitter."""

    initial: float
    maximum: float

    def delay(self, failures: int, jitter: float) -> float:
        """Seconds before the next attempt after `failures` in a row; `jitter` is in [0, 1).

        The delay is spread over [half, all] of the doubled step so that the
        workers (and instances) that failed together do not retry together.
        """
        step = min(self.maximum, self.initial * 2.0 ** min(failures - 1, 32))
        return step * (0.5 + jitter / 2)


class _Flight:
    """One fetch of one URL on its own daemon thread; each source that joined hears the outcome."""

    def __init__(self, url: str, deadline: float) -> None:
        self.url = url
        self.deadline = deadline  # real monotonic time: the fetch's own total deadline
        self.body: bytes | None = None
        self.error = ""
        self.listeners: list[Callable[[_Flight], None]] = []
        self.done = threading.Event()  # set once every listener has been told
        self._pid = os.getpid()

    def running(self) -> bool:
        """Whether the fetch still runs: in a forked child, the parent's never will."""
        return not self.done.is_set() and self._pid == os.getpid()


class _Flights:
    """The JWKS fetches in flight in this process: at most one per URL, whoever asks.

    Several workspaces (or a reloaded app) may name the same IdP; they share
    its fetch. A fetch's thread exists only while it runs, and a new one
    starts only once the previous fetch of that URL has ended (by its total
    deadline at the latest), so threads cannot pile up behind a slow IdP.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._by_url: dict[str, _Flight] = {}

    def after_fork_in_child(self) -> None:
        # The parent's fetch threads do not exist in a child, and a lock one
        # of them held would stay held: start again empty (a source's own
        # reference to such a flight is dropped by `_Flight.running`).
        self.lock = threading.Lock()
        self._by_url = {}

    def join(
        self, url: str, limits: FetchLimits, fetch: Fetch, listener: Callable[[_Flight], None]
    ) -> _Flight:
        """The flight fetching `url` (started now unless one is running); call with `lock` held."""
        flight = self._by_url.get(url)
        if flight is None:
            flight = _Flight(url, time.monotonic() + limits.total)
            # Started lazily by the first request that needs keys, so never in a
            # process that forks afterwards (gunicorn builds the app in each worker).
            thread = Thread(
                target=self._run, args=(flight, limits, fetch), name="jwks-fetch", daemon=True
            )
            thread.start()  # RuntimeError when the process cannot start a thread
            self._by_url[url] = flight
        flight.listeners.append(listener)
        return flight

    def _run(self, flight: _Flight, limits: FetchLimits, fetch: Fetch) -> None:
        try:
            flight.body = fetch(flight.url, limits)
        except Exception as exc:  # any failure means "keep the keys we have, retry later"
            flight.error = _describe(exc)
        with self.lock:
            listeners = list(flight.listeners)
            if self._by_url.get(flight.url) is flight:
                del self._by_url[flight.url]
        try:
            for listener in listeners:
                listener(flight)
        finally:
            flight.done.set()


_FLIGHTS = _Flights()
os.register_at_fork(after_in_child=_FLIGHTS.after_fork_in_child)


class RemoteKeySource:
    """Keys from the IdP's JWKS URL: cached, refreshed in the background, retried with backoff.

    A request never waits for a refresh while it has keys it may use: past
    `cache_ttl` the cached set is served (stale-while-revalidate) while one
    fetch runs in the background, until `cache_ttl + max_stale` after the last
    successful fetch, when the cached keys are no longer trusted. A request
    waits for a fetch (at most its total deadline) only while the IdP is
    believed healthy (no attempt has failed since the last success) and it
    has no usable key: a cold start, or an unknown `kid` (perhaps a
    rotation). Once an attempt has failed, requests answer at once (cached
    keys, 401 `unknown_key` or 503) and the next attempt starts after a
    backoff, when a request (or `/readyz`) next asks for keys.
    """

    def __init__(
        self,
        url: str,
        allowed: Collection[str],
        *,
        limits: FetchLimits,
        refetch_interval: float,
        cache_ttl: float,
        max_stale: float,
        backoff: Backoff,
        clock: Clock = time.monotonic,
        fetch: Fetch = fetch_url,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if urlsplit(url).scheme not in {"https", "http"}:
            raise ValueError("the JWKS URL must be http(s)")
        self._url = url
        self._allowed = frozenset(allowed)
        self._limits = limits
        self._refetch_interval = refetch_interval
        self._cache_ttl = cache_ttl
        self._max_stale = max_stale
        self._backoff = backoff
        self._clock = clock
        self._fetch = fetch
        self._jitter = jitter
        # Written under _FLIGHTS.lock; the hot path reads _keys and _fetched_at without it.
        self._keys: KeySet | None = None
        self._fetched_at = -math.inf  # cache clock, last successful fetch
        self._next_attempt = -math.inf  # cache clock: no fetch starts before this
        self._failures = 0  # attempts failed since the last success
        self._flight: _Flight | None = None  # the last fetch this source joined

    def current(self) -> KeySet:
        keys = self._keys
        if keys is not None and self._clock() - self._fetched_at < self._cache_ttl:
            return keys  # the hot path: no lock, no I/O, as cheap as a cache can be
        flight = self._begin()
        if flight is not None and not self._usable_now():
            self._wait(flight)  # only when there is no key we may use
        return self._usable()

    def refetch(self) -> KeySet:
        flight = self._begin()
        if flight is not None:
            self._wait(flight)
        return self._usable()

    def ready(self) -> bool:
        # Never waits: a probe kicks a due fetch off and reports what is usable now.
        if self._keys is None or not self._usable_now():
            self._begin()
        return self._usable_now()

    def _usable_now(self) -> bool:
        return (
            self._keys is not None
            and self._clock() - self._fetched_at < self._cache_ttl + self._max_stale
        )

    def _usable(self) -> KeySet:
        keys = self._keys
        if keys is None or not self._usable_now():
            raise KeySourceUnavailableError(
                "the identity provider's signing keys cannot be fetched; try again shortly"
            )
        return keys

    def _begin(self) -> _Flight | None:
        """The fetch in flight for this source, starting one if it is due; None if none runs."""
        with _FLIGHTS.lock:
            flight = self._flight
            if flight is not None and flight.running():
                return flight
            if self._clock() < self._next_attempt:
                return None
            try:
                flight = self._flight = _FLIGHTS.join(
                    self._url, self._limits, self._fetch, self._absorb
                )
            except RuntimeError as exc:  # no thread to fetch on: an attempt that failed
                failures, error = self._failed(), _describe(exc)
            else:
                return flight
        self._log_failure(failures, error)
        return None

    def _failed(self) -> int:
        """Count a failed attempt and schedule the retry; call with _FLIGHTS.lock held."""
        self._failures += 1
        self._next_attempt = self._clock() + self._backoff.delay(self._failures, self._jitter())
        return self._failures

    def _log_failure(self, failures: int, error: str) -> None:
        log.warning(
            "fetching the JWKS from %s failed (%d in a row): %s",
            self._url,
            failures,
            error,
            extra={"fields": {"jwks_url": self._url, "pid": os.getpid(), "failures": failures}},
        )

    def _wait(self, flight: _Flight) -> None:
        """Wait for `flight`, bounded by its deadline, if the IdP is believed healthy."""
        if self._failures == 0:
            flight.done.wait(max(0.0, flight.deadline - time.monotonic()))

    def _absorb(self, flight: _Flight) -> None:
        """Install the keys a fetch brought, or schedule the retry after a failure."""
        error, keys = flight.error, None
        if flight.body is not None:
            try:
                keys = keyset_from_jwks(load_json_object(flight.body), self._allowed)
            except Exception as exc:  # any unusable document is a failed attempt, retried later
                error = _describe(exc)
        with _FLIGHTS.lock:
            if keys is None:
                failures = self._failed()
            else:
                now = self._clock()
                self._keys, self._fetched_at = keys, now
                self._failures = 0
                # The kid-flood guard: after a success, nothing refetches sooner.
                self._next_attempt = now + self._refetch_interval
        if keys is None:
            self._log_failure(failures, error)
        else:
            # Each worker process fetches for itself; the pid says which one.
            fields = {"jwks_url": self._url, "pid": os.getpid(), "keys": len(keys.keys)}
            log.info("fetched the JWKS from %s", self._url, extra={"fields": fields})


def _describe(exc: Exception) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def key_source(settings: BearerAuthSettings, clock: Clock = time.monotonic) -> KeySource:
    """The key source `settings` configure: a JWKS URL or a key file."""
    if settings.jwks_url is not None:
        return RemoteKeySource(
            settings.jwks_url,
            settings.algorithms,
            limits=FetchLimits(
                connect=settings.jwks_connect_timeout,
                read=settings.jwks_read_timeout,
                total=settings.jwks_timeout,
            ),
            refetch_interval=settings.jwks_refetch_interval,
            cache_ttl=settings.jwks_cache_ttl,
            max_stale=settings.jwks_max_stale,
            backoff=Backoff(settings.jwks_retry_initial, settings.jwks_retry_max),
            clock=clock,
        )
    if settings.key_file is not None:
        return StaticKeySource(settings.key_file, settings.algorithms)
    raise ValueError("bearer authentication needs a jwks_url or a key_file")
