"""The circuit breaker on its own, on an injected monotonic clock."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from identity_service.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_skips_the_dependency_until_one_probe_per_interval() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, clock)
    assert breaker.allow() and breaker.succeeded() is None  # closed: nothing to report
    assert breaker.failed() is True  # the first failure is logged
    assert [breaker.allow() for _ in range(3)] == [False] * 3
    assert breaker.retry_in() == 5
    clock.now += 5
    assert breaker.allow() is True  # the probe
    assert breaker.allow() is False  # the others keep skipping while it runs
    assert breaker.failed() is True  # a failed probe: logged again, once per interval
    clock.now += 5
    assert breaker.allow() is True
    assert breaker.succeeded() == 4  # closes, and says how many calls were skipped
    assert breaker.allow() and breaker.retry_in() == 0


def test_failures_in_flight_together_are_logged_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, clock)
    assert [breaker.allow() for _ in range(4)] == [True] * 4  # four calls, then it hangs
    assert [breaker.failed() for _ in range(4)] == [True, False, False, False]
    clock.now += 4.9
    assert breaker.allow() is False
    clock.now += 0.1
    assert breaker.allow() is True
    assert breaker.failed() is True


def test_a_probe_holds_the_dependency_alone_until_its_deadline_even_past_the_interval() -> None:
    clock = Clock()
    breaker = CircuitBreaker(0.1, clock, call_deadline=1.0)
    assert breaker.failed() is True
    clock.now += 0.1
    assert breaker.allow() is True  # the probe, which then hangs
    clock.now += 0.5
    assert breaker.allow() is False  # past the interval, but the probe is still in flight
    assert breaker.retry_in() == 0.5
    clock.now += 0.5
    assert breaker.allow() is True  # overdue: given up on, the next call probes
    assert breaker.failed() is True
    clock.now += 0.1
    assert breaker.allow() is True  # a probe that reported frees the next one after the interval


def test_a_late_failure_from_another_call_does_not_let_a_second_probe_start() -> None:
    # A call that was in flight when the dependency stopped answering fails while the probe
    # still waits: the probe keeps the dependency to itself until it reports or is overdue.
    clock = Clock()
    breaker = CircuitBreaker(0.1, clock, call_deadline=1.0)
    assert breaker.failed() is True
    clock.now += 0.1
    with ThreadPoolExecutor(1) as probe_thread:
        assert probe_thread.submit(breaker.allow).result() is True  # the probe, in its thread
        breaker.failed()  # here: a call from before the probe gives up
        clock.now += 0.2
        assert breaker.allow() is False  # the probe is still in flight
        probe_thread.submit(breaker.failed).result()  # the probe reports its failure
    assert breaker.allow() is False  # then the interval starts again
    clock.now += 0.1
    assert breaker.allow() is True


def test_an_outage_opens_it_at_once_and_failed_calls_only_at_the_threshold() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, clock, failures=3)
    breaker.failed()
    breaker.failed()
    assert breaker.allow()  # two failed calls: not yet a pattern
    breaker.succeeded()
    assert breaker.failed(outage=True) is True  # no answer at all: open, and logged
    assert not breaker.allow()
    clock.now += 5
    assert breaker.allow()  # the probe
