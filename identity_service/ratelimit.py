"""Rate limits on the token endpoint, per client address and per user, shared across instances.

One algorithm, `limits`' sliding-window counter, on two storages. `redis://`
runs limits' own strategy and shares one count between every gunicorn worker
and host. `memory://` counts within one process with a copy of limits'
MemoryStorage arithmetic, a few lines kept identical by property tests
(tests/test_ratelimit_algorithm.py), rather than limits' MemoryStorage itself:
that storage starts a timer thread whenever its last one has finished (every
10 ms under load), takes a lock per key and reads the wall clock itself, which
made a hit cost 17-24 us against 3-4 us here, and could not be given the
app's injected clock. When the storage is unreachable the configured policy
decides: `open` lets the request through (availability first), `closed`
refuses it (429); either way it is logged and counted, never an unhandled 500.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from limits.storage import SlidingWindowCounterSupport, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from identity_service.breaker import CircuitBreaker
from identity_service.errors import RateLimitedError, RateLimitScope
from identity_service.settings import DEFAULT_PLATFORM, RateLimitSettings

log = logging.getLogger(__name__)

READY_KEY_SECONDS = 10  # the readiness probe's counter expires on its own


def parse_limit(text: str) -> RateLimitItem:
    """Parse "N/period"; ValueError says what is wrong with `text`.

    One limit per scope: limits' `parse` reads "10/minute;100/hour" (or with "," or "|")
    as its first limit only, which would drop the others without a word.
    """
    try:
        items = parse_many(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate limit") from None
    if len(items) != 1:
        raise ValueError(f"{text!r} holds {len(items)} rate limits; only one is enforced per scope")
    if items[0].amount < 1:
        # limits takes "0/minute" and then refuses every request: a typo, not a policy.
        raise ValueError(f"{text!r} allows no request at all; give at least 1 per period")
    return items[0]


Window = tuple[int, float, int, float]
"""(previous count, seconds the previous window still weighs, current count, seconds to the
current window's expiry): limits' `get_sliding_window` shape, shared by both storages."""


def weighted_count(window: Window, period: int) -> float:
    """The sliding estimate: the previous window's count, weighted by how much of it still
    overlaps the sliding window, plus the current window's count (limits' expression, in its
    order of operations, so that the floats round the same way)."""
    previous_count, previous_ttl, current_count, _ = window
    return previous_count * previous_ttl / period + current_count


def retry_after(window: Window, period: int, now: float) -> int:
    """Whole seconds until a refused caller may try again, as limits' `get_window_stats`
    computes the reset: the sooner of the previous window's weight dropping by one hit and
    the current window's end."""
    previous_count, previous_ttl, current_count, current_ttl = window
    wait = math.inf
    if previous_count:
        wait = previous_ttl % (period / previous_count)
    if current_count:
        wait = min(wait, current_ttl % period)
    if wait == math.inf:
        return 1
    # Through the absolute reset time, as limits does: rounding it to a float near 1.8e9 drops
    # the sub-microsecond noise of `wait` that would otherwise round the ceiling up.
    return max(1, math.ceil((now + wait) - now))


class MemoryWindows:
    """Sliding-window counters in this process, with the arithmetic of limits' MemoryStorage.

    Windows are whole multiples of the period since the epoch, numbered as limits numbers
    them, and a hit passes while floor(weighted count) + 1 <= the limit. The property tests in
    tests/test_ratelimit_algorithm.py hold every decision to limits' own strategy.
    """

    SWEEP_EVERY = 4096  # hits between sweeps of finished windows, so memory stays bounded

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (key, period, window number) -> hits counted in that window
        self._counts: dict[tuple[str, int, int], int] = {}
        self._hits = 0

    def hit(self, key: str, item: RateLimitItem, now: float) -> tuple[bool, Window]:
        """Count one hit at `now` if the limit allows it; returns (allowed, the window seen)."""
        period = item.get_expiry()
        previous = (key, period, int((now - period) / period))
        current = (key, period, int(now / period))
        with self._lock:
            self._sweep(now)
            previous_count = self._counts.get(previous, 0)
            current_count = self._counts.get(current, 0)
            previous_ttl = (1 - (((now - period) / period) % 1)) * period if previous_count else 0.0
            current_ttl = (1 - ((now / period) % 1)) * period + period
            window = (previous_count, previous_ttl, current_count, current_ttl)
            if math.floor(weighted_count(window, period)) + 1 > item.amount:
                return False, window
            self._counts[current] = current_count + 1
            return True, window

    def _sweep(self, now: float) -> None:
        self._hits += 1
        if self._hits % self.SWEEP_EVERY:
            return
        for key in list(self._counts):
            period = key[1]
            if key[2] < int((now - period) / period):  # older than the previous window
                del self._counts[key]


class RateLimiter:
    """Checks and counts requests against the configured limits."""

    def __init__(
        self,
        settings: RateLimitSettings,
        namespace: str = "identity_service",
        on_storage_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_storage_skipped: Callable[[], None] | None = None,
    ) -> None:
        """`on_storage_error` is called once per storage failure and `on_storage_skipped` once
        per check that skipped the storage after one (the app counts both); `clock` (Unix
        seconds) places memory:// hits in their windows, `monotonic` times the breaker."""
        self.on_storage_error = on_storage_error
        self.on_storage_skipped = on_storage_skipped
        self.clock = clock
        # A check is at most two calls (the hit, then the window of a refused one), each a
        # new connection then its reply: the longest a probe can wait on a hung Redis.
        check_deadline = 2 * 2 * settings.storage_timeout
        self.breaker = CircuitBreaker(
            settings.storage_retry_interval, monotonic, call_deadline=check_deadline
        )
        self.settings = settings
        self.namespace = namespace
        self.storage_errors = 0
        options: dict[str, float | str | bool] = {}
        if settings.storage_url.startswith(("redis://", "rediss://")):
            # redis-py's own deadlines (connect, then each reply); a client made from a URL
            # does not retry, so one call waits at most connect + read timeout.
            options = {
                "socket_timeout": settings.storage_timeout,
                "socket_connect_timeout": settings.storage_timeout,
            }
        self.memory = MemoryWindows() if settings.storage_url.startswith("memory://") else None
        self.storage: Storage | None = None
        self.windows: SlidingWindowCounterSupport | None = None  # the same object, by its role
        self.limiter: SlidingWindowCounterRateLimiter | None = None
        if self.memory is None:
            storage = storage_from_string(settings.storage_url, **options)
            # Only synchronous storages with the sliding-window counter fit this service.
            if not isinstance(storage, Storage) or not isinstance(
                storage, SlidingWindowCounterSupport
            ):
                raise TypeError(f"unsupported rate limit storage {settings.storage_url!r}")
            self.storage, self.windows = storage, storage
            self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_client = parse_limit(settings.per_client) if settings.per_client else None
        self.per_user = parse_limit(settings.per_user) if settings.per_user else None

    def check_client(self, address: str | None) -> None:
        """Count one request from `address`; raise RateLimitedError past the limit."""
        if self.settings.enabled and self.per_client is not None:
            self._hit(self.per_client, "client", address or "unknown")

    def check_user(self, workspace: str, user_id: str, platform: str = DEFAULT_PLATFORM) -> None:
        """Count one token for `user_id` on `platform`; raise RateLimitedError past the limit.

        Each platform has its own count: a user's phone app refreshing its token
        never uses up the budget of their browser tabs.
        """
        if self.settings.enabled and self.per_user is not None:
            key = (
                f"{workspace}:{user_id}"
                if platform == DEFAULT_PLATFORM
                else f"{workspace}:{platform}:{user_id}"
            )
            self._hit(self.per_user, "user", key)

    def _hit(self, item: RateLimitItem, scope: RateLimitScope, key: str) -> None:
        if self.memory is not None:
            now = self.clock()
            allowed, window = self.memory.hit(f"{scope}:{key}", item, now)
            if not allowed:
                self._refuse(scope, retry_after(window, item.get_expiry(), now))
            return
        limiter, windows = self.limiter, self.windows
        if limiter is None or windows is None:
            return
        if not self.breaker.allow():  # it failed lately: no waiting on it until the next probe
            if self.on_storage_skipped is not None:
                self.on_storage_skipped()
            self._storage_unavailable(scope)
            return
        try:
            refused = None
            if not limiter.hit(item, self.namespace, scope, key):
                # The window's TTLs, not limits' reset time: that one is read from the wall clock.
                refused = windows.get_sliding_window(
                    item.key_for(self.namespace, scope, key), item.get_expiry()
                )
        except Exception as exc:  # any storage failure: Redis down, timeout, protocol error
            self._storage_failed(exc)
            self._storage_unavailable(scope)
            return
        self._storage_answered()
        if refused is not None:
            self._refuse(scope, retry_after(refused, item.get_expiry(), self.clock()))

    def _storage_failed(self, exc: Exception) -> None:
        self.storage_errors += 1
        if self.on_storage_error is not None:
            self.on_storage_error()
        if self.breaker.failed():
            log.error(
                "rate limit storage unavailable (%s); failing %s, skipping it for %g s",
                type(exc).__name__,
                self.settings.on_storage_error,
                self.breaker.retry_interval,
            )

    def _storage_answered(self) -> None:
        if (skipped := self.breaker.succeeded()) is not None:
            log.warning("rate limit storage answers again (%d checks skipped)", skipped)

    def _storage_unavailable(self, scope: RateLimitScope) -> None:
        """The `on_storage_error` policy: let the request through, or refuse it until the
        storage is probed again."""
        if self.settings.on_storage_error == "open":
            return
        raise RateLimitedError(
            "rate limiting is unavailable and configured to fail closed; retry shortly",
            retry_after=max(1, math.ceil(self.breaker.retry_in())),
            scope=scope,
        ) from None

    def _refuse(self, scope: RateLimitScope, seconds: int) -> None:
        raise RateLimitedError(
            f"too many token requests for this {scope}; retry in {seconds} s",
            retry_after=seconds,
            scope=scope,
        )

    def ready(self) -> bool:
        """Whether the shared storage takes a count now (always true for memory://).

        A write, like a hit, not a PING: a Redis out of memory under `noeviction`
        (or a read-only replica) answers PING but refuses every count, and an
        instance whose every check fails is not ready. The probe goes through
        the breaker as a hit does: skipped while it is open, and when a retry
        is due it is the probe, so an instance that gets no token requests
        (taken out of rotation by this very answer) still finds Redis back.
        """
        if self.storage is None:
            return True
        if not self.breaker.allow():
            return False
        try:
            self.storage.incr(f"{self.namespace}/ready", READY_KEY_SECONDS)
        except Exception as exc:
            self._storage_failed(exc)
            return False
        self._storage_answered()
        return True
