"""The in-memory limiter decides exactly as the `limits` sliding-window counter does.

`memory://` counts with a copy of limits' arithmetic (see ratelimit.py for why
it is a copy), and `redis://` runs limits' own strategy. These property tests
replay random hit sequences at frozen, injected times through both and compare
every decision, so the two storages cannot drift apart again, and an upgrade of
`limits` that changes its arithmetic fails here.

Against limits' MemoryStorage the windows are whole multiples of the period
(time-machine freezes the clock limits reads; our limiter gets the same instant
through its injected clock). limits' Redis scripts instead start a key's window
at its first hit and measure time with the server's TTLs, so the Redis test
starts each sequence on a window boundary, keeps every window busy (a gap
shorter than the period), and ages the keys by rewriting their expiry times
(PEXPIRETIME / PEXPIREAT) so that the server sees the test's virtual clock.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import pytest
import redis
import time_machine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from limits import parse
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from identity_service.errors import RateLimitedError
from identity_service.ratelimit import RateLimiter
from identity_service.settings import RateLimitSettings
from tests.test_ratelimit import REDIS_URL, needs_redis

START = 1_800_000_000  # a multiple of every period below

# (text, seconds) pairs in the notation the configuration uses.
PERIODS = [("second", 1), ("2 seconds", 2), ("10 seconds", 10), ("minute", 60)]

Decision = tuple[bool, int | None]  # (allowed, Retry-After in whole seconds when refused)


class Clock:
    """The instant our limiter is handed (injected, as the app's runtime does)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ours(limit: str, clock: Clock) -> Callable[[], Decision]:
    limiter = RateLimiter(RateLimitSettings(per_client=limit, per_user=""), clock=clock)

    def hit() -> Decision:
        try:
            limiter.check_client("198.51.100.7")
        except RateLimitedError as refused:
            return False, refused.retry_after
        return True, None

    return hit


def theirs(
    limit: str, strategy: SlidingWindowCounterRateLimiter, key: str, clock: Clock
) -> Callable[[], Decision]:
    item = parse(limit)

    def hit() -> Decision:
        if strategy.hit(item, key):
            return True, None
        reset = strategy.get_window_stats(item, key).reset_time
        return False, max(1, math.ceil(reset - clock.now))

    return hit


@st.composite
def memory_sequences(draw: st.DrawFn) -> tuple[str, list[float]]:
    """A limit and the instants of its hits: bursts, gaps inside a window and long idle gaps."""
    text, seconds = draw(st.sampled_from(PERIODS))
    amount = draw(st.integers(1, 6))
    period_ms = seconds * 1000
    gap = st.one_of(
        st.just(0),
        st.integers(0, period_ms // 4),
        st.integers(0, period_ms),
        st.integers(0, 3 * period_ms),
    )
    start_ms = draw(st.integers(0, 2 * period_ms))
    gaps = draw(st.lists(gap, min_size=1, max_size=40))
    times, at = [], start_ms
    for step in gaps:
        at += step
        times.append(START + at / 1000)
    return f"{amount}/{text}", times


_memory_storage: list[MemoryStorage] = []


def limits_memory() -> SlidingWindowCounterRateLimiter:
    # One storage for the whole run (it starts a timer thread); a fresh key per example.
    if not _memory_storage:
        _memory_storage.append(MemoryStorage())
    return SlidingWindowCounterRateLimiter(_memory_storage[0])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=memory_sequences())
def test_memory_limiter_decides_as_limits_memory_storage(
    sequence: tuple[str, list[float]],
) -> None:
    limit, times = sequence
    clock = Clock(times[0])
    mine = ours(limit, clock)
    reference = theirs(limit, limits_memory(), secrets.token_hex(8), clock)
    expected, got = [], []
    with time_machine.travel(times[0], tick=False) as traveller:
        for at in times:
            traveller.move_to(at)  # the clock limits reads
            clock.now = at  # the clock our limiter is given
            expected.append(reference())
            got.append(mine())
    assert got == expected, f"{limit} at {[round(t - START, 3) for t in times]}"


class RedisVirtualClock:
    """Ages the keys under `pattern` as if the Redis server's clock read a virtual time.

    The server's TTLs run on its real clock. Before each hit the test computes the
    offset virtual - real (from the server's TIME) and moves every key's expiry
    by the change of that offset, so each key keeps the expiry it would have had
    on a server whose clock read the virtual time. The offset is recomputed from
    TIME at every step, so errors do not add up; what remains is the latency
    between TIME and the script, which `settled()` measures (`lag_ms`, the
    worst step): milliseconds, against the 125 ms that separate the test's
    instants from any window boundary and the 1/8 that separates any weighted
    count from a whole number (31 ms at 4 hits a second).
    """

    def __init__(self, client: redis.Redis, pattern: str) -> None:
        self.client = client
        self.pattern = pattern
        self.offset_ms: int | None = None
        self.moved_at_ms = 0.0
        self.lag_ms = 0.0

    def server_ms(self) -> float:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros / 1000

    def move_to(self, virtual: float) -> None:
        self.moved_at_ms = self.server_ms()
        offset = round(virtual * 1000 - self.moved_at_ms)
        if self.offset_ms is not None and offset != self.offset_ms:
            shift = self.offset_ms - offset
            for key in self.client.scan_iter(match=self.pattern, count=1000):
                expires_at = self.client.pexpiretime(key)
                if expires_at > 0:  # a time in the past deletes the key, as expiry would
                    self.client.pexpireat(key, expires_at + shift)
        self.offset_ms = offset

    def settled(self) -> None:
        """After a hit: how long since `move_to` read the server's clock."""
        self.lag_ms = max(self.lag_ms, self.server_ms() - self.moved_at_ms)


@st.composite
def redis_sequences(draw: st.DrawFn) -> tuple[str, list[float]]:
    """A limit and its hits: the first on a window boundary, then gaps shorter than the period.

    Every later instant sits at an odd multiple of 125 ms after the boundary, so
    no hit falls on a window boundary and no weighted count (at most 4 x a
    multiple of 1/8) is a whole number: a few milliseconds of server latency
    cannot change a decision.
    """
    text, seconds = draw(st.sampled_from(PERIODS[:2]))
    amount = draw(st.integers(1, 4))
    slots = seconds * 4  # 250 ms slots per window
    gaps = draw(st.lists(st.integers(0, slots - 1), max_size=30))
    times, at = [float(START)], 0.125
    for step in gaps:
        at += step * 0.25
        times.append(START + at)
    return f"{amount}/{text}", times


@pytest.mark.redis
@needs_redis
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(sequence=redis_sequences())
def test_memory_limiter_decides_as_limits_on_the_real_redis(
    sequence: tuple[str, list[float]],
) -> None:
    limit, times = sequence
    prefix = f"identity-service-test-{secrets.token_hex(6)}"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    storage = RedisStorage(REDIS_URL, key_prefix=prefix, socket_timeout=2)
    server_clock = RedisVirtualClock(client, f"{prefix}:*")
    clock = Clock(times[0])
    mine = ours(limit, clock)
    reference = theirs(limit, SlidingWindowCounterRateLimiter(storage), "198.51.100.7", clock)
    expected, got = [], []
    try:
        for at in times:
            server_clock.move_to(at)
            clock.now = at
            expected.append(reference()[0])
            server_clock.settled()
            got.append(mine()[0])
    finally:
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()
    # A step stalled this long (a loaded machine) may have moved a decision: not a valid case.
    assume(server_clock.lag_ms < 25)
    assert got == expected, f"{limit} at {[round(t - START, 3) for t in times]}"
