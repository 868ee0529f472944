"""Rate limits per client and per user, in memory and shared through the real Redis."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import cast

import pytest
import time_machine
from flask.testing import FlaskClient

from identity_service import create_app
from identity_service.errors import RateLimitedError
from identity_service.http.state import service_state
from identity_service.ratelimit import RateLimiter
from identity_service.settings import OnStorageError, RateLimitSettings
from tests.support.redis_server import own_redis
from tests.support.service import ServiceFixture, make_service

TOKEN_URL = "/v1/messenger/token"
REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


needs_redis = pytest.mark.skipif(
    not redis_available() and os.environ.get("CI") != "true",
    reason="REDIS NOT RUNNING on 127.0.0.1:6379: shared rate-limit tests skipped (CI runs them)",
)


def limited_service(tmp_path: Path, **limits: str) -> ServiceFixture:
    lines = "\n".join(f'{k} = "{v}"' for k, v in limits.items())
    return make_service(tmp_path, extra=f"\n[service.rate_limit]\n{lines}\n")


def post(
    client: FlaskClient, svc: ServiceFixture, sub: str = "user-42", addr: str = "10.0.0.1"
) -> int:
    response = client.post(
        TOKEN_URL,
        headers={"Authorization": f"Bearer {svc.idp_token(sub=sub)}"},
        environ_base={"REMOTE_ADDR": addr},
    )
    return response.status_code


def test_per_user_limit_gives_429_with_retry_after(tmp_path: Path) -> None:
    svc = limited_service(tmp_path, per_user="3/minute", per_client="100/minute")
    client = create_app(svc.settings).test_client()
    with time_machine.travel(1_800_000_000, tick=False):
        assert [post(client, svc) for _ in range(3)] == [200, 200, 200]
        response = client.post(TOKEN_URL, headers={"Authorization": f"Bearer {svc.idp_token()}"})
        assert response.status_code == 429
        assert response.mimetype == "application/problem+json"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert post(client, svc, sub="someone-else") == 200  # other users are unaffected
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'identity_rate_limited_total{platform="web",scope="user"} 1.0' in metrics


def test_per_client_limit_applies_before_authentication(tmp_path: Path) -> None:
    svc = limited_service(tmp_path, per_user="", per_client="2/minute")
    client = create_app(svc.settings).test_client()
    with time_machine.travel(1_800_000_000, tick=False):
        statuses = [post(client, svc, sub=f"u{i}", addr="10.0.0.9") for i in range(3)]
        assert statuses == [200, 200, 429]
        # Unauthenticated floods are limited too: nothing to verify, still counted.
        assert client.post(TOKEN_URL, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 429
        assert post(client, svc, addr="10.0.0.10") == 200


def test_window_resets_with_time(tmp_path: Path) -> None:
    svc = limited_service(tmp_path, per_user="1/minute")
    client = create_app(svc.settings).test_client()
    with time_machine.travel(1_800_000_000, tick=False) as traveller:
        assert post(client, svc) == 200
        assert post(client, svc) == 429
        traveller.shift(125)
        assert post(client, svc) == 200


def test_windows_follow_the_apps_injected_clock_not_the_wall_clock(tmp_path: Path) -> None:
    svc = limited_service(tmp_path, per_user="1/minute")
    now = [float(int(time.time()))]
    client = create_app(svc.settings, clock=lambda: now[0]).test_client()
    assert post(client, svc) == 200
    assert post(client, svc) == 429
    now[0] += 125  # the app's clock moves on; the wall clock has not
    assert post(client, svc) == 200


@needs_redis
def test_two_instances_share_one_limit_through_redis(tmp_path: Path) -> None:
    namespace = f"test-{secrets.token_hex(4)}"
    svc = limited_service(tmp_path, per_user="3/minute", storage_url=REDIS_URL)
    # Two independent apps, as two gunicorn workers or hosts would be.
    first, second = create_app(svc.settings), create_app(svc.settings)
    for app in (first, second):
        service_state(app).runtime.limiter.namespace = namespace
    a, b = first.test_client(), second.test_client()
    user = f"shared-{namespace}"
    assert [post(a, svc, sub=user), post(b, svc, sub=user), post(a, svc, sub=user)] == [200] * 3
    assert post(b, svc, sub=user) == 429
    assert post(a, svc, sub=user) == 429


@pytest.mark.parametrize(("policy", "expected"), [("open", 200), ("closed", 429)])
def test_redis_unreachable_fails_open_or_closed_never_500(
    tmp_path: Path, policy: str, expected: int
) -> None:
    svc = limited_service(tmp_path, storage_url="redis://127.0.0.1:1/0", on_storage_error=policy)
    app = create_app(svc.settings)
    client = app.test_client()
    assert post(client, svc) == expected
    assert service_state(app).runtime.limiter.storage_errors >= 1
    metrics = client.get("/metrics").get_data(as_text=True)
    errors = re.search(r"^identity_rate_limit_storage_errors_total (\S+)$", metrics, re.M)
    assert errors is not None and float(errors.group(1)) >= 1
    assert client.get("/readyz").status_code == 503


class Monotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_after_a_storage_failure_checks_skip_redis_until_the_next_probe(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic, skipped = Monotonic(), []
    settings = RateLimitSettings(
        storage_url="redis://127.0.0.1:1/0",  # connection refused
        on_storage_error=cast(OnStorageError, policy),
        storage_retry_interval=5,
    )
    limiter = RateLimiter(
        settings, monotonic=monotonic, on_storage_skipped=lambda: skipped.append(1)
    )
    outcomes = []
    for _ in range(4):
        try:
            limiter.check_client("10.0.0.1")
            outcomes.append(0)
        except RateLimitedError as refused:
            outcomes.append(refused.retry_after)
        monotonic.now += 1
    assert outcomes == ([0, 0, 0, 0] if policy == "open" else [5, 4, 3, 2])
    assert limiter.storage_errors == 1 and len(skipped) == 3  # one call to Redis, three skipped
    monotonic.now += 1  # 5 s after the failure: the next check probes Redis again
    with contextlib.suppress(RateLimitedError):
        limiter.check_user("w", "u")
    assert limiter.storage_errors == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "identity_service.ratelimit"]
    assert len(lines) == 2, lines  # once per interval, not once per check
    assert lines[0].startswith("rate limit storage unavailable (ConnectionError); failing")


def test_limits_resume_at_the_first_check_after_the_interval_once_redis_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = Monotonic()
    with own_redis(tmp_path) as redis:
        settings = RateLimitSettings(
            per_client="2/minute", storage_url=redis.url, storage_retry_interval=5
        )
        limiter = RateLimiter(settings, monotonic=monotonic)
        redis.kill()
        limiter.check_client("10.0.0.1")  # fails open
        limiter.check_client("10.0.0.1")  # skipped
        redis.start()
        monotonic.now += 4.9
        limiter.check_client("10.0.0.1")  # still skipped: not counted
        monotonic.now += 0.1
        limiter.check_client("10.0.0.1")  # the probe: counted in Redis again
        limiter.check_client("10.0.0.1")
        with pytest.raises(RateLimitedError):
            limiter.check_client("10.0.0.1")
    assert limiter.storage_errors == 1
    assert any(
        r.getMessage() == "rate limit storage answers again (2 checks skipped)"
        for r in caplog.records
    )


def test_a_probe_slower_than_the_retry_interval_is_the_only_one_in_flight(tmp_path: Path) -> None:
    # storage_retry_interval may be shorter than a call's deadline (2 x storage_timeout):
    # a probe still waiting on a hung Redis must not let the next request probe it too,
    # or every request after each interval joins the wait.
    monotonic, skipped = Monotonic(), []
    with own_redis(tmp_path) as redis:
        settings = RateLimitSettings(
            storage_url=redis.url, storage_timeout=0.3, storage_retry_interval=0.1
        )
        limiter = RateLimiter(
            settings, monotonic=monotonic, on_storage_skipped=lambda: skipped.append(1)
        )
        redis.freeze()
        limiter.check_client("10.0.0.1")  # waits for its deadline, then opens the breaker
        monotonic.now += 0.1
        probe = threading.Thread(target=limiter.check_client, args=("10.0.0.2",))
        probe.start()  # the probe: waits on the frozen Redis
        deadline = time.monotonic() + 2
        while limiter.breaker.retry_in() == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # until the probe has taken its turn
        monotonic.now += 0.2  # past the interval, while the probe still waits
        started = time.monotonic()
        limiter.check_client("10.0.0.3")
        waited = time.monotonic() - started
        probe.join(5)
        redis.thaw()
    assert waited < 0.1, f"a second probe waited {waited:.2f} s on the hung Redis"
    assert skipped == [1] and limiter.storage_errors == 2  # the first call and the probe


def test_limiter_unit_memory_storage() -> None:
    limiter = RateLimiter(RateLimitSettings(per_client="2/second", per_user="1/second"))
    with time_machine.travel(1_800_000_000, tick=False):
        limiter.check_client("a")
        limiter.check_client("a")
        with pytest.raises(RateLimitedError) as caught:
            limiter.check_client("a")
        assert caught.value.retry_after >= 1
        limiter.check_user("w", "u")
        with pytest.raises(RateLimitedError):
            limiter.check_user("w", "u")
