"""BearerAuthenticator: what it accepts, and the rules it applies to claims and keys.

Attacks live in tests/attack/test_bearer_attacks.py; key caching and outages
in test_jwks.py. Keys are published by a real JWKS server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_service.auth import Identity, RequestView, authenticate
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.auth.jose import b64url_decode
from identity_service.errors import AuthenticationError
from tests.support.jwks_server import FakeClock, JWKSServer, settle
from tests.support.keys import (
    AUDIENCE,
    NOW,
    SigningKey,
    bearer_settings,
    ec_key,
    ed_key,
    make_claims,
    rsa_key,
    sign_with,
)


@pytest.fixture
def make(server: JWKSServer) -> Callable[..., BearerAuthenticator]:
    def build(**overrides: Any) -> BearerAuthenticator:
        return BearerAuthenticator(
            bearer_settings(jwks_url=server.url, **overrides), clock=FakeClock()
        )

    return build


@pytest.fixture
def bearer(make: Callable[..., BearerAuthenticator]) -> BearerAuthenticator:
    return make()


def login(authenticator: BearerAuthenticator, token: str, now: float = NOW) -> Identity:
    return authenticator.authenticate(RequestView(authorization=f"Bearer {token}"), now)


def refused(authenticator: BearerAuthenticator, token: str, now: float = NOW) -> str:
    with pytest.raises(AuthenticationError) as caught:
        login(authenticator, token, now)
    assert caught.value.status == 401
    assert caught.value.methods == ("bearer",)
    assert token not in caught.value.detail
    return caught.value.reason


# -- which requests it applies to -------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "applies"),
    [
        ("Bearer abc.def.ghi", True),
        ("bearer abc.def.ghi", True),
        ("BEARER abc.def.ghi", True),
        ("Bearer ", True),  # present but empty: refused, not skipped
        ("Basic dXNlcjpwYXNz", False),
        ("Bearerabc.def.ghi", False),
        ("Token abc.def.ghi", False),
        ("", False),
        (None, False),
    ],
)
def test_applies_only_to_the_bearer_scheme(
    bearer: BearerAuthenticator, authorization: str | None, applies: bool
) -> None:
    assert bearer.applies(RequestView(authorization=authorization)) is applies


def test_a_bearer_header_wins_over_a_cookie_and_failures_do_not_fall_through(
    bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    class Cookie:
        method = "session"

        def applies(self, request: RequestView) -> bool:
            return True

        def authenticate(self, request: RequestView, now: float) -> Identity:
            return Identity("from-cookie", "session")

    forged = rsa_key("attacker").sign(headers={"kid": "idp-1"})
    request = RequestView(authorization=f"Bearer {forged}", cookies={"session": "x"})
    with pytest.raises(AuthenticationError):
        authenticate(request, [bearer, Cookie()], NOW)  # type: ignore[list-item]
    good = RequestView(authorization=f"Bearer {idp.sign()}", cookies={"session": "x"})
    assert authenticate(good, [bearer, Cookie()], NOW).method == "bearer"  # type: ignore[list-item]


def test_without_the_header_authenticate_refuses(bearer: BearerAuthenticator) -> None:
    with pytest.raises(AuthenticationError) as caught:
        bearer.authenticate(RequestView(), NOW)
    assert caught.value.reason == "missing_credentials"


# -- accepted tokens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        lambda: rsa_key("idp-1"),
        lambda: rsa_key("rsa-pss", "PS256"),
        lambda: ec_key("ec-1"),
        lambda: ed_key("ed-1"),
    ],
    ids=["RS256", "PS256", "ES256", "EdDSA"],
)
def test_accepts_each_allowed_algorithm(
    server: JWKSServer, bearer: BearerAuthenticator, key: Callable[[], SigningKey]
) -> None:
    signing = key()
    server.publish(rsa_key("idp-1"), signing)
    identity = login(bearer, signing.sign())
    assert identity == Identity(user_id="user-42", method="bearer", claims=make_claims())


def test_scheme_case_and_spaces_around_the_token_are_tolerated(
    bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    request = RequestView(authorization=f"bearer  {idp.sign()} ")
    assert bearer.authenticate(request, NOW).user_id == "user-42"


def test_claims_are_the_verified_payload(bearer: BearerAuthenticator, idp: SigningKey) -> None:
    claims = make_claims(**{"https://example.test/plan": "pro", "roles": ["admin"]})
    assert login(bearer, idp.sign(claims)).claims == claims


def test_an_rsa_jwk_without_alg_verifies_rs256_and_ps256(
    server: JWKSServer, bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    server.publish(idp, alg=False)
    assert login(bearer, idp.sign(algorithm="RS256")).user_id == "user-42"
    assert login(bearer, idp.sign(algorithm="PS256")).user_id == "user-42"


def test_a_jwk_that_names_its_alg_verifies_only_that_alg(
    bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    assert refused(bearer, idp.sign(algorithm="PS256")) == "algorithm"


def test_the_token_alg_must_suit_the_key_it_names(
    server: JWKSServer, bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    server.publish(idp, ec_key("ec-1"))
    token = ec_key("ec-1").sign(headers={"kid": "idp-1"})  # ES256 claiming the RSA key
    assert refused(bearer, token) == "algorithm"


def test_an_algorithm_outside_the_allowlist_is_refused_even_with_a_published_key(
    server: JWKSServer, make: Callable[..., BearerAuthenticator], idp: SigningKey
) -> None:
    server.publish(idp, alg=False)
    bearer = make(algorithms=("RS256",))
    assert refused(bearer, idp.sign(algorithm="PS256")) == "algorithm"
    assert refused(bearer, idp.sign(algorithm="RS384")) == "algorithm"


# -- tokens without kid, keys without kid -----------------------------------------------------


def test_a_token_without_kid_uses_the_only_key(
    server: JWKSServer, bearer: BearerAuthenticator
) -> None:
    key = rsa_key(None)
    server.publish(key)
    assert login(bearer, key.sign()).user_id == "user-42"


def test_a_token_without_kid_tries_the_keys_that_suit_its_alg(
    server: JWKSServer, bearer: BearerAuthenticator
) -> None:
    first, second, ec = rsa_key("a"), rsa_key("b"), ec_key("c")
    server.publish(first, second, ec)
    assert login(bearer, second.with_kid(None).sign(sub="second")).user_id == "second"
    assert login(bearer, ec.with_kid(None).sign(sub="ec")).user_id == "ec"
    assert refused(bearer, rsa_key(None).sign()) == "bad_signature"


def test_a_pinned_pem_key_verifies_tokens_whatever_their_kid(tmp_path: Path) -> None:
    key = rsa_key("idp-1")
    path = tmp_path / "idp.pem"
    path.write_bytes(key.public_pem())
    bearer = BearerAuthenticator(bearer_settings(key_file=path))
    assert login(bearer, key.sign(headers={"kid": "2024-rotation"})).user_id == "user-42"
    assert login(bearer, key.with_kid(None).sign()).user_id == "user-42"
    assert refused(bearer, rsa_key("attacker").sign()) == "bad_signature"


# -- claims ---------------------------------------------------------------------------------


LEEWAY = 30


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(NOW) - LEEWAY + 1}, None),
        ({"exp": int(NOW) - LEEWAY}, "expired"),
        ({"exp": int(NOW) - 3600}, "expired"),
        ({"iat": int(NOW) + LEEWAY}, None),
        ({"iat": int(NOW) + LEEWAY + 1}, "not_yet_valid"),
        ({"nbf": int(NOW) + LEEWAY}, None),
        ({"nbf": int(NOW) + LEEWAY + 1}, "not_yet_valid"),
        ({"nbf": int(NOW) - 10}, None),
        ({"exp": NOW + 0.5, "iat": NOW - 0.5}, None),  # NumericDate may be fractional
        ({"exp": str(int(NOW) + 300)}, "invalid_claim"),
        ({"exp": True}, "invalid_claim"),
        ({"iat": [int(NOW)]}, "invalid_claim"),
        ({"nbf": "yesterday"}, "invalid_claim"),
        # Far outside any clock or datetime: plain numbers, compared as such.
        ({"exp": 2**63}, None),
        ({"exp": 1e308}, None),
        ({"iat": -(2**63), "nbf": -1e308}, None),
        ({"iat": 2**63}, "not_yet_valid"),
        ({"nbf": 2**64}, "not_yet_valid"),
        ({"exp": -(2**63)}, "expired"),
    ],
)
def test_time_claims_with_leeway(
    bearer: BearerAuthenticator, idp: SigningKey, claims: dict[str, Any], reason: str | None
) -> None:
    token = idp.sign(**claims)
    if reason is None:
        assert login(bearer, token).user_id == "user-42"
    else:
        assert refused(bearer, token) == reason


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["1e400", "1" + "0" * 400, "-1e400"])
def test_an_out_of_range_time_claim_is_not_a_numeric_date(
    bearer: BearerAuthenticator, idp: SigningKey, claim: str, value: str
) -> None:
    payload = json.dumps(make_claims(drop=[claim]))[:-1] + f', "{claim}": {value}}}'
    token = sign_with(idp, {"alg": "RS256", "kid": "idp-1"}, payload)
    assert refused(bearer, token) == "invalid_claim"


def test_time_is_the_injected_now_not_the_wall_clock(
    bearer: BearerAuthenticator, idp: SigningKey
) -> None:
    token = idp.sign()  # valid at NOW, a date in 2025
    assert login(bearer, token, now=NOW).user_id == "user-42"
    assert refused(bearer, token, now=NOW + 3600) == "expired"
    assert refused(bearer, token, now=NOW - 3600) == "not_yet_valid"


@pytest.mark.parametrize(
    ("claim", "value", "expected"),
    [
        ("sub", "user-42", "user-42"),
        ("uid", 42, "42"),
        ("uid", "  padded  ", "  padded  "),
        ("https://example.test/user_id", "u-9", "u-9"),
    ],
)
def test_user_id_from_the_configured_claim(
    make: Callable[..., BearerAuthenticator], idp: SigningKey, claim: str, value: Any, expected: str
) -> None:
    bearer = make(user_id_claim=claim)
    assert login(bearer, idp.sign(**{claim: value})).user_id == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "invalid_claim"),
        (4.2, "invalid_claim"),
        ([42], "invalid_claim"),
        ({"id": 42}, "invalid_claim"),
        ("", "invalid_claim"),
        ("   ", "invalid_claim"),
        (None, "missing_claim"),
    ],
)
def test_user_id_must_be_a_string_or_an_integer(
    make: Callable[..., BearerAuthenticator], idp: SigningKey, value: Any, reason: str
) -> None:
    bearer = make(user_id_claim="uid")
    assert refused(bearer, idp.sign(uid=value)) == reason


def test_sub_must_be_a_string(bearer: BearerAuthenticator, idp: SigningKey) -> None:
    assert refused(bearer, idp.sign(sub=42)) == "invalid_claim"


@pytest.mark.parametrize(
    ("aud", "accepted"),
    [
        (AUDIENCE, True),
        ([AUDIENCE, "https://idp.example.test/userinfo"], True),
        (["other", "second-api"], True),
        (["other"], False),
        ("second-api-v2", False),
    ],
)
def test_any_configured_audience_matches_exactly(
    make: Callable[..., BearerAuthenticator], idp: SigningKey, aud: Any, accepted: bool
) -> None:
    bearer = make(audience=(AUDIENCE, "second-api"))
    if accepted:
        assert login(bearer, idp.sign(aud=aud)).user_id == "user-42"
    else:
        assert refused(bearer, idp.sign(aud=aud)) == "audience"


def test_a_tampered_payload_does_not_verify(bearer: BearerAuthenticator, idp: SigningKey) -> None:
    header, _, signature = idp.sign().split(".")
    other_payload = idp.sign(sub="admin").split(".")[1]
    assert refused(bearer, f"{header}.{other_payload}.{signature}") == "bad_signature"


# -- construction and readiness ---------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"algorithms": ("RS256", "HS256")},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"issuer": ""},
        {"audience": ()},
        {"jwks_url": None, "key_file": None},
    ],
    ids=["hs256", "none", "no algorithms", "no issuer", "no audience", "no key source"],
)
def test_unsafe_settings_are_refused_at_construction(overrides: dict[str, Any]) -> None:
    settings = bearer_settings(**{"jwks_url": "https://idp.example.test/jwks", **overrides})
    with pytest.raises(ValueError):  # a programming error: config.py never builds these
        BearerAuthenticator(settings)


def test_ready_starts_a_fetch_when_no_keys_are_cached_and_does_not_wait(
    server: JWKSServer, bearer: BearerAuthenticator
) -> None:
    assert server.requests == 0
    assert bearer.ready() is False  # a probe never waits for the IdP
    settle()
    assert server.requests == 1
    assert bearer.ready() is True
    assert server.requests == 1


def test_the_size_cap_is_inclusive(
    make: Callable[..., BearerAuthenticator], idp: SigningKey
) -> None:
    token = idp.sign()
    assert login(make(max_token_bytes=len(token)), token).user_id == "user-42"
    assert refused(make(max_token_bytes=len(token) - 1), token) == "too_large"


# -- base64url: exactly the canonical, unpadded encoding -------------------------------

_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=300)
@given(data=st.binary(max_size=64))
def test_base64url_decodes_every_canonical_encoding(data: bytes) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64url_decode(encoded) == data


@settings(max_examples=300)
@given(data=st.binary(min_size=1, max_size=64), last=st.sampled_from(_B64URL_ALPHABET))
def test_base64url_refuses_every_other_spelling_of_the_last_character(
    data: bytes, last: str
) -> None:
    """Only the canonical last character decodes; the others set bits no byte uses."""
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    altered = encoded[:-1] + last
    padded = altered + "=" * (-len(altered) % 4)
    canonical = base64.urlsafe_b64encode(base64.urlsafe_b64decode(padded)).rstrip(b"=")
    if canonical.decode() == altered:
        assert b64url_decode(altered) == base64.urlsafe_b64decode(padded)
    else:
        with pytest.raises(ValueError, match="non-canonical"):
            b64url_decode(altered)


@pytest.mark.parametrize(
    "segment", ["a+bc", "ab/c", "abc=", "ab=c", "ab c", "ab\nc", "abé", "a", "ab.c", "abcde"]
)
def test_base64url_refuses_other_alphabets_padding_and_stray_characters(segment: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(segment)
