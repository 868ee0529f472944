"""A circuit breaker: after a dependency fails, skip it for a while, then let one call probe it.

Without one, every request pays the dependency's full deadline while it hangs
(and logs it). With it, only the calls in flight when it stopped answering and
one probe at a time, at most one per `retry_interval`, wait on it; everything
else is told at once that the dependency is being skipped, and the caller's
policy decides what that means. The rate-limit storage opens it at the first
failure; the profile database after a few in a row (one failed query is not an
outage), or at once when it did not answer at all: every request a worker takes
after that would wait out the same deadline, and with more requests than
threads each round of them adds one to the time of the requests queued behind.
Time comes from the injected monotonic clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CircuitBreaker:
    """Closed (calls go through) until `failures` failures in a row; then open for
    `retry_interval` seconds, after which one call probes. An interval of 0 never opens."""

    def __init__(
        self,
        retry_interval: float,
        monotonic: Callable[[], float],
        *,
        failures: int = 1,
        call_deadline: float = 0.0,
    ) -> None:
        """`call_deadline` bounds one call: a probe has the dependency to itself that long even
        when `retry_interval` is shorter, so probes never overlap on a hung dependency."""
        self.retry_interval = retry_interval
        self.failures = failures
        self.call_deadline = call_deadline
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._failed = 0  # failures in a row
        self._retry_at: float | None = None  # None while closed
        self._logged_at: float | None = None
        # The thread whose call is the probe, until it reports or its deadline passes. Only
        # its own report ends it: a call from before it that fails late must not free a
        # second probe while the first still waits.
        self._prober: int | None = None
        self._probe_until = 0.0
        self.skipped = 0  # calls skipped since it last opened

    @property
    def is_open(self) -> bool:
        return self._retry_at is not None

    def allow(self) -> bool:
        """Whether to call the dependency now: always while closed; once open, only the first
        caller after each `retry_interval` (the probe), so a hung dependency holds one thread."""
        if self._retry_at is None:  # the healthy path takes no lock
            return True
        now = self.monotonic()
        with self._lock:
            if self._retry_at is None:
                return True
            if now < self._retry_at or (self._prober is not None and now < self._probe_until):
                self.skipped += 1
                return False
            # The others keep skipping until the probe reports (failed or succeeded), or
            # until it is overdue: a probe that never reports cannot hold the breaker open.
            self._prober, self._probe_until = threading.get_ident(), now + self.call_deadline
            self._retry_at = now + self.retry_interval
            return True

    def retry_in(self) -> float:
        """Seconds until the next probe may start (0 while closed)."""
        retry_at = self._retry_at
        if retry_at is None:
            return 0.0
        if self._prober is not None:
            retry_at = max(retry_at, self._probe_until)
        return max(0.0, retry_at - self.monotonic())

    def failed(self, outage: bool = False) -> bool:
        """Count a failed call, opening (again) at the threshold, or at once for an `outage`
        (the dependency did not answer at all); True when this failure should be logged:
        when it opens, at most once per `retry_interval` however many calls were in flight."""
        if self.retry_interval <= 0:
            return False
        now = self.monotonic()
        with self._lock:
            self._failed += 1
            if self._retry_at is None and self._failed < self.failures and not outage:
                return False
            self._retry_at = now + self.retry_interval
            if self._prober == threading.get_ident():
                self._prober = None
            if self._logged_at is not None and now - self._logged_at < self.retry_interval:
                return False
            self._logged_at = now
            return True

    def succeeded(self) -> int | None:
        """Close after a call that worked; returns how many calls were skipped when this
        success ended an outage (log it), None when it was already closed."""
        if self._retry_at is None and self._failed == 0:
            return None
        with self._lock:
            self._failed = 0
            if self._retry_at is None:
                return None
            skipped, self.skipped = self.skipped, 0
            self._retry_at = self._logged_at = self._prober = None
            return skipped
