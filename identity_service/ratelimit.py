"""Rate limits on the token endpoint, per client address and per user, shared across instances.

`redis://` shares one count between every gunicorn worker and host, through the
`limits` package's sliding-window counter. `memory://` counts within one
process with the same algorithm in a few lines of our own: the `limits`
memory storage starts a timer thread to expire keys, which cost more than the
whole token mint on the hot path. When the
storage is unreachable the configured policy decides: `open` lets the request
through (availability first), `closed` refuses it (429); either way it is
logged and counted, never an unhandled 500.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from identity_service.errors import IdentityServiceError
from identity_service.settings import RateLimitSettings

log = logging.getLogger(__name__)

STORAGE_TIMEOUT = 0.25  # seconds: a stuck Redis must not hold a worker


class RateLimitedError(IdentityServiceError):
    """Too many token requests (429); `retry_after` is whole seconds."""

    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after: int, scope: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.scope = scope


def parse_limit(text: str) -> RateLimitItem:
    """Parse "N/period" (raises ValueError with the library's message when malformed)."""
    return parse(text)


class MemoryWindows:
    """Sliding-window counters in this process: the previous window's count, weighted by how
    much of it still overlaps the sliding window, plus the current window's count."""

    SWEEP_EVERY = 4096  # hits between sweeps of idle keys, so memory stays bounded

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], list[float]] = {}  # key -> [window, previous, current]
        self._hits = 0

    def hit(self, key: str, item: RateLimitItem, now: float) -> tuple[bool, float]:
        """Count one hit; returns (allowed, when the caller may retry)."""
        period = item.get_expiry()
        window = now // period
        with self._lock:
            self._sweep(now)
            state = self._counts.setdefault((key, period), [window, 0.0, 0.0])
            if state[0] != window:
                state[1] = state[2] if state[0] == window - 1 else 0.0
                state[0], state[2] = window, 0.0
            weight = 1 - (now - window * period) / period
            if state[1] * weight + state[2] + 1 > item.amount:
                return False, (window + 1) * period
            state[2] += 1
            return True, 0.0

    def _sweep(self, now: float) -> None:
        self._hits += 1
        if self._hits % self.SWEEP_EVERY:
            return
        for key, state in list(self._counts.items()):
            if state[0] < now // key[1] - 1:
                del self._counts[key]


class RateLimiter:
    """Checks and counts requests against the configured limits."""

    def __init__(
        self,
        settings: RateLimitSettings,
        namespace: str = "identity_service",
        on_storage_error: Callable[[], None] | None = None,
    ) -> None:
        """`on_storage_error` is called once per storage failure (the app counts them)."""
        self.on_storage_error = on_storage_error
        self.settings = settings
        self.namespace = namespace
        self.storage_errors = 0
        options: dict[str, float | str | bool] = {}
        if settings.storage_url.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": STORAGE_TIMEOUT, "socket_connect_timeout": STORAGE_TIMEOUT}
        self.memory = MemoryWindows() if settings.storage_url.startswith("memory://") else None
        self.storage: Storage | None = None
        self.limiter: SlidingWindowCounterRateLimiter | None = None
        if self.memory is None:
            storage = storage_from_string(settings.storage_url, **options)
            if not isinstance(storage, Storage):  # only synchronous storages fit this service
                raise TypeError(f"unsupported rate limit storage {settings.storage_url!r}")
            self.storage = storage
            self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_client = parse_limit(settings.per_client) if settings.per_client else None
        self.per_user = parse_limit(settings.per_user) if settings.per_user else None

    def check_client(self, address: str | None) -> None:
        """Count one request from `address`; raise RateLimitedError past the limit."""
        if self.settings.enabled and self.per_client is not None:
            self._hit(self.per_client, "client", address or "unknown")

    def check_user(self, workspace: str, user_id: str) -> None:
        """Count one token for `user_id`; raise RateLimitedError past the limit."""
        if self.settings.enabled and self.per_user is not None:
            self._hit(self.per_user, "user", f"{workspace}:{user_id}")

    def _hit(self, item: RateLimitItem, scope: str, key: str) -> None:
        if self.memory is not None:
            now = time.time()
            allowed, reset = self.memory.hit(f"{scope}:{key}", item, now)
            if not allowed:
                self._refuse(scope, reset, now)
            return
        limiter = self.limiter
        if limiter is None:
            return
        try:
            allowed = limiter.hit(item, self.namespace, scope, key)
            if allowed:
                return
            reset = limiter.get_window_stats(item, self.namespace, scope, key).reset_time
        except Exception as exc:  # any storage failure: Redis down, timeout, protocol error
            self.storage_errors += 1
            if self.on_storage_error is not None:
                self.on_storage_error()
            log.error(
                "rate limit storage unavailable (%s); failing %s",
                type(exc).__name__,
                self.settings.on_storage_error,
            )
            if self.settings.on_storage_error == "open":
                return
            raise RateLimitedError(
                "rate limiting is unavailable and configured to fail closed; retry shortly",
                retry_after=1,
                scope=scope,
            ) from None
        self._refuse(scope, reset, time.time())

    def _refuse(self, scope: str, reset: float, now: float) -> None:
        retry_after = max(1, math.ceil(reset - now))
        raise RateLimitedError(
            f"too many token requests for this {scope}; retry in {retry_after} s",
            retry_after=retry_after,
            scope=scope,
        )

    def ready(self) -> bool:
        """Whether the shared storage answers (always true for memory://)."""
        if self.storage is None:
            return True
        try:
            return bool(self.storage.check())
        except Exception:
            return False
