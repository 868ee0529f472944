"""Rate limits on the token endpoint, per client address and per user, shared across instances.

Built on the `limits` package: `memory://` counts within one process, and
`redis://` shares one count between every gunicorn worker and host. When the
storage is unreachable the configured policy decides: `open` lets the request
through (availability first), `closed` refuses it (429); either way it is
logged and counted, never an unhandled 500.
"""

from __future__ import annotations

import logging
import math
import time

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


class RateLimiter:
    """Checks and counts requests against the configured limits."""

    def __init__(self, settings: RateLimitSettings, namespace: str = "identity_service") -> None:
        self.settings = settings
        self.namespace = namespace
        self.storage_errors = 0
        options: dict[str, float | str | bool] = {}
        if settings.storage_url.startswith(("redis://", "rediss://")):
            options = {"socket_timeout": STORAGE_TIMEOUT, "socket_connect_timeout": STORAGE_TIMEOUT}
        self.storage: Storage = storage_from_string(settings.storage_url, **options)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
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
        try:
            allowed = self.limiter.hit(item, self.namespace, scope, key)
            if allowed:
                return
            reset = self.limiter.get_window_stats(item, self.namespace, scope, key).reset_time
        except Exception as exc:  # any storage failure: Redis down, timeout, protocol error
            self.storage_errors += 1
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
        retry_after = max(1, math.ceil(reset - time.time()))
        raise RateLimitedError(
            f"too many token requests for this {scope}; retry in {retry_after} s",
            retry_after=retry_after,
            scope=scope,
        )

    def ready(self) -> bool:
        """Whether the shared storage answers (always true for memory://)."""
        try:
            return bool(self.storage.check())
        except Exception:
            return False
