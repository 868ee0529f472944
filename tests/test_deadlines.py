"""The watchdog behind the profile lookups' client-side deadline, on real threads and sockets."""

from __future__ import annotations

import socket
import threading
import time

from identity_service.deadlines import Watchdog

SECONDS = 0.2


def test_a_call_that_overruns_is_aborted_once_at_its_deadline() -> None:
    watchdog = Watchdog(SECONDS, "test")
    aborted: list[float] = []
    # The deadline counts from entering the guard: measure from just before it,
    # or a busy machine's pause between the two reads looks like an early abort.
    started = time.monotonic()
    with watchdog.guard() as deadline:
        deadline.watch(1, lambda: aborted.append(time.monotonic() - started))
        time.sleep(SECONDS * 3)
    assert deadline.expired
    assert len(aborted) == 1
    assert SECONDS * 0.9 <= aborted[0] < SECONDS + 0.5


def test_a_call_that_ends_in_time_is_never_aborted() -> None:
    watchdog = Watchdog(SECONDS, "test")
    aborted: list[int] = []
    for _ in range(50):
        with watchdog.guard() as deadline:
            deadline.watch(1, lambda: aborted.append(1))
    time.sleep(SECONDS * 2)
    assert aborted == []
    assert not deadline.expired


def test_a_connection_watched_after_the_deadline_is_aborted_at_once() -> None:
    watchdog = Watchdog(SECONDS, "test")
    with watchdog.guard() as deadline:
        time.sleep(SECONDS * 2)
        aborted: list[int] = []
        deadline.watch(1, lambda: aborted.append(1))  # a connection that opened too late
        assert aborted == [1]


def test_a_blocked_read_returns_when_its_socket_is_shut_down() -> None:
    # What the watchdog does to a PostgreSQL connection nobody answers on.
    ours, silent_peer = socket.socketpair()
    watchdog = Watchdog(SECONDS, "test")
    got: list[bytes] = []
    try:
        with watchdog.guard() as deadline:
            deadline.watch_socket(1, ours.fileno())
            reader = threading.Thread(target=lambda: got.append(ours.recv(10)))
            reader.start()
            reader.join(5)
            assert not reader.is_alive(), "the read is still blocked"
        assert got == [b""]  # end of stream: the driver sees a lost connection
        assert deadline.expired
        ours.fileno()  # our descriptor itself was left for its owner to close
    finally:
        ours.close()
        silent_peer.close()


def test_a_connection_handed_back_is_never_aborted() -> None:
    # Returned to the pool, it may already serve another call when the deadline passes.
    watchdog = Watchdog(SECONDS, "test")
    aborted: list[str] = []
    with watchdog.guard() as deadline:
        deadline.watch(1, lambda: aborted.append("returned"))
        deadline.watch(2, lambda: aborted.append("still in use"))
        deadline.unwatch(1)
        time.sleep(SECONDS * 2)
    assert aborted == ["still in use"]
