"""Key sources: a real JWKS server on 127.0.0.1 (caching, rotation, outages), and key files.

Time that matters to the cache is a FakeClock the tests move; nothing sleeps.
The only real-time measurement proves that a stalled IdP holds a caller no
longer than the configured timeout.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt import PyJWK

from identity_service.auth import Identity, RequestView
from identity_service.auth import jwks as jwks_module
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.auth.jwks import (
    MAX_JWKS_BYTES,
    RemoteKeySource,
    fetch_url,
    keyset_from_jwks,
    load_json_object,
)
from identity_service.errors import AuthenticationError, ConfigError, KeySourceUnavailableError
from tests.support.jwks_server import JWKS_PATH, FakeClock, JWKSServer, Mode
from tests.support.keys import (
    NOW,
    SigningKey,
    bearer_settings,
    ec_key,
    ed_key,
    rsa_key,
    write_jwks,
)

TTL, INTERVAL, MAX_STALE = 600.0, 30.0, 3600.0
ALLOWED = ("RS256", "PS256", "ES256", "EdDSA")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(server: JWKSServer, clock: FakeClock, **overrides: Any) -> BearerAuthenticator:
    settings = bearer_settings(
        jwks_url=server.url,
        jwks_cache_ttl=TTL,
        jwks_refetch_interval=INTERVAL,
        jwks_max_stale=MAX_STALE,
        **overrides,
    )
    return BearerAuthenticator(settings, clock=clock)


def login(authenticator: BearerAuthenticator, token: str) -> Identity:
    return authenticator.authenticate(RequestView(authorization=f"Bearer {token}"), NOW)


def refused(authenticator: BearerAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        login(authenticator, token)
    return caught.value.reason


# -- caching ------------------------------------------------------------------------------


def test_nothing_is_fetched_until_a_token_needs_keys(server: JWKSServer, clock: FakeClock) -> None:
    make(server, clock)
    assert server.requests == 0


def test_keys_are_fetched_once_and_cached(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    for _ in range(50):
        assert login(authenticator, idp.sign()).user_id == "user-42"
        clock.advance(TTL / 100)
    assert server.requests == 1
    assert server.paths == [JWKS_PATH]


def test_each_jwk_is_parsed_once_not_per_request(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []

    class CountingPyJWK(PyJWK):
        def __init__(self, data: dict[str, Any], algorithm: str | None = None) -> None:
            parsed.append(data["kid"])
            super().__init__(data, algorithm)

    monkeypatch.setattr(jwks_module, "PyJWK", CountingPyJWK)
    server.publish(idp, ec_key("ec-1"))
    authenticator = make(server, clock)
    for _ in range(100):
        login(authenticator, idp.sign())
        login(authenticator, ec_key("ec-1").sign())
    assert sorted(parsed) == ["ec-1", "idp-1"]


def test_the_cached_key_set_is_the_same_object_between_fetches(server: JWKSServer) -> None:
    source = RemoteKeySource(
        server.url, ALLOWED, timeout=1, refetch_interval=INTERVAL, cache_ttl=TTL, max_stale=0
    )
    first = source.current()
    assert source.current() is first
    assert source.current().keys[0].key is first.keys[0].key


def test_keys_are_refreshed_after_the_cache_ttl(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(new)  # the IdP rotated and retired the old key

    clock.advance(TTL - 1)
    login(authenticator, idp.sign())  # still within the TTL: the old key is trusted
    assert server.requests == 1

    clock.advance(1)
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2
    # The refresh just happened, so the retired kid does not trigger another fetch.
    assert refused(authenticator, idp.sign()) == "unknown_key"
    assert server.requests == 2


# -- rotation and unknown kids ----------------------------------------------------------


def test_a_new_key_is_accepted_after_exactly_one_refetch(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(idp, new)
    clock.advance(INTERVAL)

    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2
    login(authenticator, new.sign())
    login(authenticator, idp.sign())
    assert server.requests == 2


def test_an_unknown_kid_refetches_at_most_once_per_interval(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    new = rsa_key("idp-2")
    server.publish(idp, new)

    # Fetched a moment ago: the unknown kid waits for the interval.
    assert refused(authenticator, new.sign()) == "unknown_key"
    assert server.requests == 1
    clock.advance(INTERVAL - 0.5)
    assert refused(authenticator, new.sign()) == "unknown_key"
    assert server.requests == 1
    clock.advance(0.5)
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert server.requests == 2


def test_a_flood_of_random_kids_causes_bounded_refetches(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    attacker = ec_key("attacker")  # fast to sign; any key works, the kid is what matters
    clock.advance(INTERVAL)

    for _ in range(200):
        token = attacker.sign(headers={"kid": secrets.token_hex(8)})
        assert refused(authenticator, token) == "unknown_key"
    assert server.requests == 2  # the initial fetch and one refetch for 200 unknown kids

    steps = 20
    for _ in range(steps):  # 10 intervals' worth of flooding
        clock.advance(INTERVAL / 2)
        for _ in range(10):
            refused(authenticator, attacker.sign(headers={"kid": secrets.token_hex(8)}))
    assert server.requests - 2 <= steps // 2
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_a_huge_kid_never_triggers_a_refetch(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock, max_token_bytes=65536)
    login(authenticator, idp.sign())
    clock.advance(INTERVAL)
    assert refused(authenticator, idp.sign(headers={"kid": "k" * 10_000})) == "unknown_key"
    assert server.requests == 1


# -- the IdP is down, broken or slow ------------------------------------------------------


def test_cached_keys_outlive_an_idp_outage_until_max_stale(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    server.mode = "error"

    clock.advance(TTL)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    assert server.requests == 2  # one refresh attempt, which failed
    for _ in range(20):
        login(authenticator, idp.sign())
    assert server.requests == 2  # failures do not turn every request into an attempt

    clock.advance(MAX_STALE - 1)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    assert authenticator.ready() is True
    attempts = server.requests

    clock.advance(1)
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert authenticator.ready() is False
    assert server.requests == attempts  # the last attempt was 1 s ago

    server.mode = "ok"
    clock.advance(INTERVAL)
    assert authenticator.ready() is True
    assert login(authenticator, idp.sign()).user_id == "user-42"


def test_idp_down_at_start_is_503_and_not_ready(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    server.mode = "error"
    authenticator = make(server, clock)
    with pytest.raises(KeySourceUnavailableError) as caught:
        login(authenticator, idp.sign())
    assert caught.value.status == 503
    assert authenticator.ready() is False
    assert server.requests == 1  # the retry waits for the interval

    server.mode = "ok"
    clock.advance(INTERVAL)
    assert authenticator.ready() is True
    assert server.requests == 2
    assert login(authenticator, idp.sign()).user_id == "user-42"


def _status(server: JWKSServer) -> None:
    server.mode = "error"


def _hangup(server: JWKSServer) -> None:
    server.mode = "hangup"


def _redirect(server: JWKSServer) -> None:
    server.mode = "redirect"


def _raw(body: dict[str, Any] | bytes) -> Callable[[JWKSServer], None]:
    return lambda server: server.serve_raw(body)


BROKEN_IDPS: dict[str, Callable[[JWKSServer], None]] = {
    "http 500": _status,
    "connection dropped": _hangup,
    "redirect elsewhere": _redirect,
    "not json": _raw(b"<html>maintenance</html>"),
    "a json list": _raw(b"[]"),
    "empty key set": _raw({"keys": []}),
    "keys not a list": _raw({"keys": {"kid": "idp-1"}}),
    "only symmetric keys": _raw({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "idp-1"}]}),
    "duplicate json keys": _raw(b'{"keys": [], "keys": []}'),
    "invalid utf-8": _raw(b'{"keys": ["\xff"]}'),
    "too large": lambda server: server.serve_raw(
        {"keys": [rsa_key("idp-1").public_jwk()], "pad": "x" * MAX_JWKS_BYTES}
    ),
}


@pytest.mark.parametrize("breakage", BROKEN_IDPS.values(), ids=BROKEN_IDPS.keys())
def test_a_broken_jwks_endpoint_is_503_not_401(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, breakage: Callable[[JWKSServer], None]
) -> None:
    breakage(server)
    authenticator = make(server, clock)
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert server.paths == [JWKS_PATH]  # a redirect was not followed


@pytest.mark.parametrize("breakage", BROKEN_IDPS.values(), ids=BROKEN_IDPS.keys())
def test_a_broken_refresh_keeps_the_cached_keys(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, breakage: Callable[[JWKSServer], None]
) -> None:
    authenticator = make(server, clock)
    login(authenticator, idp.sign())
    breakage(server)
    clock.advance(TTL)
    assert login(authenticator, idp.sign()).user_id == "user-42"
    assert server.requests == 2


def test_a_stalled_idp_holds_a_cold_caller_no_longer_than_the_timeout(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    server.mode = "stall"  # accepts, then says nothing for 5 s (released at teardown)
    authenticator = make(server, clock, jwks_timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 1.0

    # A second caller does not start a second fetch, nor wait again for the stalled one.
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 0.2
    assert server.requests == 1


@pytest.mark.parametrize("mode", ["trickle_headers", "trickle_body"])
def test_a_trickling_idp_holds_a_caller_no_longer_than_the_timeout(
    server: JWKSServer, clock: FakeClock, idp: SigningKey, mode: Mode
) -> None:
    server.mode = mode  # every socket read succeeds, so only a deadline helps
    authenticator = make(server, clock, jwks_timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, idp.sign())
    assert time.perf_counter() - started < 1.0


def test_the_download_itself_stops_at_the_deadline(server: JWKSServer) -> None:
    server.mode = "trickle_body"
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        fetch_url(server.url, 0.2)
    assert time.perf_counter() - started < 1.0


def test_a_stalled_refresh_falls_back_to_cached_keys_within_the_timeout(
    server: JWKSServer, clock: FakeClock, idp: SigningKey
) -> None:
    authenticator = make(server, clock, jwks_timeout=0.2)
    login(authenticator, idp.sign())
    server.mode = "stall"
    clock.advance(TTL)
    started = time.perf_counter()
    assert login(authenticator, idp.sign()).user_id == "user-42"
    assert time.perf_counter() - started < 1.0
    assert server.requests == 2


def test_an_abandoned_fetch_never_replaces_newer_keys(server: JWKSServer, clock: FakeClock) -> None:
    old, new = rsa_key("idp-1"), rsa_key("idp-2")
    server.mode = "trickle_headers"  # answers with the old keys, but only once released
    authenticator = make(server, clock, jwks_timeout=0.2)
    with pytest.raises(KeySourceUnavailableError):
        login(authenticator, old.sign())

    server.mode = "ok"
    server.publish(new)
    clock.advance(INTERVAL)
    assert login(authenticator, new.sign()).user_id == "user-42"

    server.release()  # the abandoned fetch now completes with the old key set
    for thread in threading.enumerate():
        if thread.name == "jwks-fetch":
            thread.join(timeout=2)
    assert login(authenticator, new.sign()).user_id == "user-42"
    assert refused(authenticator, old.sign()) == "unknown_key"
    assert server.requests == 2


def test_a_late_answer_never_replaces_newer_keys(clock: FakeClock) -> None:
    """Generations, not arrival order, decide which key set wins."""
    old, new = rsa_key("idp-1"), rsa_key("idp-2")
    documents = [old, new]
    first_may_answer = threading.Event()

    def fetch(url: str, timeout: float) -> bytes:
        key = documents.pop(0)
        if key is old:
            first_may_answer.wait(5)  # an IdP answering long after we stopped waiting
        return json.dumps({"keys": [key.public_jwk()]}).encode()

    source = RemoteKeySource(
        "https://idp.example.test/jwks",
        ALLOWED,
        timeout=0.1,
        refetch_interval=INTERVAL,
        cache_ttl=TTL,
        max_stale=MAX_STALE,
        clock=clock,
        fetch=fetch,
    )
    with pytest.raises(KeySourceUnavailableError):
        source.current()
    clock.advance(INTERVAL)
    assert [k.kid for k in source.refetch().keys] == ["idp-2"]

    first_may_answer.set()
    for thread in threading.enumerate():
        if thread.name == "jwks-fetch":
            thread.join(timeout=2)
    assert [k.kid for k in source.current().keys] == ["idp-2"]


def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(ValueError, match="http"):
        RemoteKeySource(
            "file:///etc/passwd", ALLOWED, timeout=1, refetch_interval=1, cache_ttl=1, max_stale=0
        )


# -- parsing a JWK Set ----------------------------------------------------------------------


def _rsa_1024() -> dict[str, Any]:
    return rsa_key("weak", bits=1024).public_jwk()


UNUSABLE_JWKS: dict[str, Callable[[], dict[str, Any]]] = {
    "encryption key": lambda: rsa_key("enc").public_jwk(use="enc"),
    "symmetric key": lambda: {"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "oct"},
    "private key": lambda: rsa_key("leaked").private_jwk(),
    "1024-bit rsa": _rsa_1024,
    "alg not allowed": lambda: rsa_key("rs512", "RS512").public_jwk(),
    "alg not matching kty": lambda: ec_key("ec-as-rsa").public_jwk(alg="RS256"),
    "curve not matching alg": lambda: ec_key("p384", "ES384").public_jwk(alg="ES256"),
    "key_ops without verify": lambda: rsa_key("ops").public_jwk(key_ops=["encrypt"]),
    "kid not a string": lambda: rsa_key("int-kid").public_jwk(kid=7),
    "no kty": lambda: {"kid": "nokty", "n": "AQAB", "e": "AQAB"},
    "garbage modulus": lambda: {"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"},
    "unknown kty": lambda: {"kty": "PQC", "kid": "future"},
}


@pytest.mark.parametrize("bad", UNUSABLE_JWKS.values(), ids=UNUSABLE_JWKS.keys())
def test_unusable_jwks_are_skipped(bad: Callable[[], dict[str, Any]]) -> None:
    good = rsa_key("idp-1").public_jwk()
    keys = keyset_from_jwks({"keys": [bad(), "not an object", good]}, ALLOWED)
    assert [k.kid for k in keys.keys] == ["idp-1"]
    with pytest.raises(ValueError, match="no usable"):
        keyset_from_jwks({"keys": [bad()]}, ALLOWED)


@pytest.mark.parametrize(
    ("jwk", "algorithms"),
    [
        (lambda: rsa_key("a").public_jwk(alg=False), ("PS256", "RS256")),
        (lambda: rsa_key("a").public_jwk(), ("RS256",)),
        (lambda: rsa_key("a", "PS256").public_jwk(), ("PS256",)),
        (lambda: ec_key("a").public_jwk(alg=False), ("ES256",)),
        (lambda: ed_key("a").public_jwk(alg=False), ("EdDSA",)),
    ],
    ids=["rsa without alg", "rsa RS256", "rsa PS256", "ec p-256", "ed25519"],
)
def test_each_key_verifies_only_algorithms_of_its_type(
    jwk: Callable[[], dict[str, Any]], algorithms: tuple[str, ...]
) -> None:
    (trusted,) = keyset_from_jwks({"keys": [jwk()]}, ALLOWED).keys
    assert trusted.algorithms == algorithms


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": {"b": 1, "b": 1}}',
        '[{"a": 1}]',
        '"a string"',
        '{"exp": NaN}',
        '{"exp": Infinity}',
        '{"a": 1} {"b": 2}',
        "[" * 100_000 + "]" * 100_000,
        b'{"a": "\xc3\x28"}',
    ],
    ids=[
        "duplicate",
        "nested duplicate",
        "list",
        "string",
        "nan",
        "infinity",
        "trailing data",
        "deep nesting",
        "bad utf-8",
    ],
)
def test_strict_json_refuses(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        load_json_object(text)


# -- key files ------------------------------------------------------------------------------


def _pem(key: SigningKey, path: Path) -> Path:
    path.write_bytes(key.public_pem())
    return path


def _certificate(key: SigningKey, path: Path) -> Path:
    path.write_bytes(key.certificate_pem())
    return path


def _jwk(key: SigningKey, path: Path) -> Path:
    path.write_text(json.dumps(key.public_jwk()), "utf-8")
    return path


def _jwks(key: SigningKey, path: Path) -> Path:
    return write_jwks(path, rsa_key("other"), key)


KEY_FILES = {"pem": _pem, "certificate": _certificate, "jwk": _jwk, "jwks": _jwks}


@pytest.mark.parametrize("write", KEY_FILES.values(), ids=KEY_FILES.keys())
@pytest.mark.parametrize(
    "key", [lambda: rsa_key("idp-1"), lambda: ec_key("ec-1"), lambda: ed_key("ed-1")],
    ids=["rsa", "ec", "ed25519"],
)  # fmt: skip
def test_key_file_sources(
    tmp_path: Path, write: Callable[[SigningKey, Path], Path], key: Callable[[], SigningKey]
) -> None:
    signing = key()
    authenticator = BearerAuthenticator(bearer_settings(key_file=write(signing, tmp_path / "k")))
    assert authenticator.ready() is True
    assert login(authenticator, signing.sign()).user_id == "user-42"
    assert refused(authenticator, rsa_key("attacker").sign(headers={"kid": signing.kid})) in {
        "bad_signature",
        "algorithm",
    }


def _private_pem(path: Path) -> None:
    private = rsa_key("idp-1").private
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


BAD_KEY_FILES: dict[str, Callable[[Path], Any]] = {
    "private key pem": _private_pem,
    "garbage": lambda p: p.write_bytes(b"not a key"),
    "json with duplicate keys": lambda p: p.write_text('{"keys": [], "keys": []}'),
    "no allowed algorithm": lambda p: p.write_bytes(rsa_key("x", bits=1024).public_pem()),
    "missing file": lambda p: None,
}


@pytest.mark.parametrize("write", BAD_KEY_FILES.values(), ids=BAD_KEY_FILES.keys())
def test_an_unusable_key_file_is_a_configuration_error(
    tmp_path: Path, write: Callable[[Path], Any]
) -> None:
    path = tmp_path / "key"
    write(path)
    with pytest.raises(ConfigError) as caught:
        BearerAuthenticator(bearer_settings(key_file=path))
    assert "key_file" in str(caught.value)
    assert "PRIVATE" not in str(caught.value)
