"""A circuit breaker: after repeated failures, skip a dependency for a while, not wait on it.

Closed: every call goes through. `failures` failures in a row open it: for
`cooldown` seconds calls are refused at once (the caller applies its outage
policy without paying the dependency's deadline). After the cooldown one call
is let through as a probe (half-open): success closes the breaker, failure
opens it for another cooldown. A cooldown of 0 turns the breaker off.
The clock is injected (monotonic seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Counts consecutive failures of one dependency and decides whether to call it."""

    def __init__(
        self,
        name: str,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failed = 0  # consecutive failures
        self._open_until: float | None = None  # None: closed
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        """Whether to call the dependency now (False: skip it, it is failing)."""
        if self._open_until is None:  # closed: the hot path takes no lock
            return True
        with self._lock:
            if self._open_until is None:
                return True
            if self._probing or self._clock() < self._open_until:
                return False
            self._probing = True  # one probe at a time
            return True

    def succeeded(self) -> None:
        if self._failed == 0 and self._open_until is None:
            return
        with self._lock:
            reopened = self._open_until is not None
            self._failed = 0
            self._open_until = None
            self._probing = False
        if reopened:
            log.warning("%s answers again; calling it again", self.name)

    def failed(self) -> None:
        if self.cooldown <= 0:
            return
        with self._lock:
            self._failed += 1
            was_open = self._open_until is not None
            if self._probing or self._failed >= self.failures:
                self._open_until = self._clock() + self.cooldown
                self._probing = False
            else:
                return
        if not was_open:
            log.warning(
                "%s failed %d times in a row; skipping it for %gs at a time until it answers",
                self.name,
                self._failed,
                self.cooldown,
            )
