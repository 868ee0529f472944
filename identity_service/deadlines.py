"""Client-side deadlines for blocking database calls: a watchdog that aborts what overruns.

A database that keeps its TCP connection open but never answers (a network
partition behind a peer that still ACKs) blocks a driver's read forever:
libpq's keepalives and `tcp_user_timeout` see a healthy connection, and the
server's `statement_timeout` never starts. So the caller cannot rely on any
timeout but its own. Each guarded call registers the connections it uses
(`Deadline.watch`); one thread per `Watchdog` sleeps until the oldest
deadline and, when a call is still running then, aborts its connections from
the outside. For a socket that is `shutdown()`: the blocked read returns at
once and the driver raises, so the call ends with an error the caller turns
into its outage policy. The aborted connection is not reused.

Every call on one watchdog has the same budget, so deadlines are due in the
order they start and a FIFO queue is all the bookkeeping: a call costs a lock,
an append and no wakeup (the watchdog only wakes up for the oldest call).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

log = logging.getLogger(__name__)

Abort = Callable[[], None]


class Deadline:
    """One guarded call: when it is due and what to abort if it is still running then."""

    def __init__(self, due: float) -> None:
        self.due = due
        self.expired = False
        self._done = False
        self._aborts: dict[int, Abort] = {}
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        return self._done

    def watch(self, key: int, abort: Abort, close: Callable[[], None] | None = None) -> None:
        """Abort connection `key` with `abort` if the call overruns (at once if it already has)."""
        with self._lock:
            if close is not None:
                self._closers.append(close)
            if not self.expired:
                self._aborts[key] = abort
                return
        abort()

    def watch_socket(self, key: int, fileno: int) -> None:
        """Shut the connection on file descriptor `fileno` down if the call overruns.

        Through a duplicate descriptor held until the call ends: the driver
        may close its own while we still hold the deadline, and a reused
        descriptor number must never be shut down in its place.
        """
        duplicate = socket.socket(fileno=os.dup(fileno))
        self.watch(key, lambda: _shutdown(duplicate), duplicate.close)

    def unwatch(self, key: int) -> None:
        """The call is done with connection `key` (returned to its pool for others to use)."""
        with self._lock:
            self._aborts.pop(key, None)

    def expire(self) -> None:
        # Aborts run under the lock, so a connection handed back (`unwatch`)
        # meanwhile, and then used by another call, is never aborted.
        with self._lock:
            if self._done or self.expired:
                return
            self.expired = True
            for abort in self._aborts.values():
                with suppress(Exception):  # a failed abort leaves the call to its own timeouts
                    abort()
            self._aborts.clear()

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._aborts.clear()
            closers, self._closers = self._closers, []
        for close in closers:
            with suppress(OSError):
                close()


class Watchdog:
    """Aborts guarded calls still running `seconds` after they started."""

    def __init__(
        self, seconds: float, name: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.name = name
        self._clock = clock
        self._wakeup = threading.Condition()
        self._pending: deque[Deadline] = deque()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    @contextmanager
    def guard(self) -> Iterator[Deadline]:
        """A deadline for the calls made inside this block, on this thread."""
        deadline = Deadline(self._clock() + self.seconds)
        with self._wakeup:
            if self._thread is None or not self._thread.is_alive():
                # Started on first use, so in each (forked) worker that uses it.
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._pending.append(deadline)
            if len(self._pending) == 1:
                self._wakeup.notify()
        self._local.current = deadline
        try:
            yield deadline
        finally:
            self._local.current = None
            deadline.finish()

    def current(self) -> Deadline | None:
        """The deadline of the guarded call running on this thread, if any."""
        current: Deadline | None = getattr(self._local, "current", None)
        return current

    def _run(self) -> None:
        while True:
            with self._wakeup:
                # Calls that have ended need no expiring: drop them now, so the
                # thread wakes up about once per deadline under load, not per call.
                while self._pending and self._pending[0].done:
                    self._pending.popleft()
                if not self._pending:
                    self._wakeup.wait()
                    continue
                oldest = self._pending[0]
                delay = oldest.due - self._clock()
                if delay > 0:
                    self._wakeup.wait(delay)
                    continue
                self._pending.popleft()
            oldest.expire()


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
