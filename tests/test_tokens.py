"""Messenger tokens, verified by pyjwt and independently by joserfc."""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
import time_machine
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError
from joserfc.jwk import OctKey

from identity_service.attributes import AttributePolicy, AttributeValue
from identity_service.errors import InvalidUserIdError, SecretUnavailableError
from identity_service.secrets import SecretSource
from identity_service.settings import AttributeSpec, WorkspaceSettings
from identity_service.tokens import MintedToken, mint, sign
from tests.conftest import MESSENGER_SECRET, MESSENGER_SECRET_ENV

SECRET = MESSENGER_SECRET.encode()
OTHER_SECRET = b"another-secret-of-the-right-length-0123456789"
NOW = 1_700_000_000
HEADER_JSON = b'{"alg":"HS256","typ":"JWT"}'
IDENTITY_CLAIMS = {"user_id", "iat", "exp", "jti"}

ATTRIBUTES: dict[str, AttributeValue] = {
    "email": "zoe@example.com",
    "plan": "pro",
    "teammates": 4,
    "score": 2.0,  # an integral float must stay a float
    "ratio": 0.25,
    "is_admin": False,
    "beta": True,
    "last_order_at": 1_714_557_600,
    "nickname": None,
    "cleared": "",
}


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch) -> WorkspaceSettings:
    monkeypatch.setenv(MESSENGER_SECRET_ENV, MESSENGER_SECRET)
    return make_workspace()


def make_workspace(lifetime: int = 3600) -> WorkspaceSettings:
    return WorkspaceSettings(
        key="eu",
        app_id="abc123",
        api_base="https://api-iam.eu.intercom.io",
        secret=SecretSource("env", MESSENGER_SECRET_ENV, "test Messenger secret"),
        region="eu",
        token_lifetime=lifetime,
    )


@pytest.fixture
def frozen() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def verify_pyjwt(token: str, secret: bytes = SECRET) -> dict[str, Any]:
    return pyjwt.decode(
        token,
        secret,
        algorithms=["HS256"],
        options={"require": ["user_id", "iat", "exp", "jti"], "verify_exp": True},
    )


def verify_joserfc(token: str, secret: bytes = SECRET) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jose_jwt.decode(token, OctKey.import_key(secret), algorithms=["HS256"])
    registry = jose_jwt.JWTClaimsRegistry(
        now=int(time.time()),
        leeway=0,
        user_id={"essential": True},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    registry.validate(decoded.claims)
    return dict(decoded.header), decoded.claims


def segments(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")]


# -- the token's shape -----------------------------------------------------------------


def test_both_verifiers_accept_the_token_and_see_the_exact_claim_set(
    workspace: WorkspaceSettings, frozen: time_machine.Traveller
) -> None:
    minted = mint("user-42", ATTRIBUTES, workspace, now=NOW)
    expected = {**ATTRIBUTES, "user_id": "user-42", "iat": NOW, "exp": NOW + 3600,
                "jti": minted.jti}  # fmt: skip
    by_pyjwt = verify_pyjwt(minted.token)
    header, by_joserfc = verify_joserfc(minted.token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    for claims in (by_pyjwt, by_joserfc):
        assert claims == expected
        assert {k: type(v) for k, v in claims.items()} == {k: type(v) for k, v in expected.items()}
        assert set(claims) == set(ATTRIBUTES) | IDENTITY_CLAIMS


def test_header_is_exactly_hs256_jwt(workspace: WorkspaceSettings) -> None:
    token = mint("u", {}, workspace, now=NOW).token
    assert segments(token)[0] == HEADER_JSON
    assert pyjwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


def test_token_is_three_unpadded_base64url_segments(workspace: WorkspaceSettings) -> None:
    token = mint("u", ATTRIBUTES, workspace, now=NOW).token
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token)
    assert len(segments(token)[2]) == 32  # a SHA-256 HMAC


def test_payload_is_compact_standard_utf8_json(workspace: WorkspaceSettings) -> None:
    attributes: dict[str, AttributeValue] = {
        "name": "Zo\u00eb \N{GRINNING FACE} \u2028 \u7528\u6237",
        "teammates": 4,
    }
    raw = segments(mint("\u7528\u6237-42", attributes, workspace, now=NOW).token)[1]
    claims = json.loads(raw)
    assert raw == json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert "Zo\u00eb \N{GRINNING FACE}".encode() in raw  # raw UTF-8, no \u escapes
    assert b"\\u" not in raw
    assert b'"teammates":4,' in raw


def test_identity_claims_come_last_and_attributes_keep_the_whitelist_order(
    workspace: WorkspaceSettings,
) -> None:
    raw = segments(mint("u", ATTRIBUTES, workspace, now=NOW).token)[1]
    assert list(json.loads(raw)) == [*ATTRIBUTES, "user_id", "iat", "exp", "jti"]


def test_same_bytes_as_pyjwt_encode_for_an_ascii_payload(workspace: WorkspaceSettings) -> None:
    minted = mint("user-42", ATTRIBUTES, workspace, now=NOW)
    claims = json.loads(segments(minted.token)[1])  # keeps the key order
    assert minted.token == pyjwt.encode(claims, SECRET, algorithm="HS256")


def test_unicode_round_trips_through_both_verifiers(
    workspace: WorkspaceSettings, frozen: time_machine.Traveller
) -> None:
    text = "Zo\u00eb \N{GRINNING FACE} \u05e9\u05dc\u05d5\u05dd \u2028 \U0001f468\u200d\U0001f4bb"
    minted = mint("\u7528\u6237-42", {"name": text}, workspace, now=NOW)
    assert verify_pyjwt(minted.token)["name"] == text
    assert verify_joserfc(minted.token)[1]["name"] == text
    assert verify_pyjwt(minted.token)["user_id"] == "\u7528\u6237-42"


def test_minted_token_carries_what_the_messenger_needs(workspace: WorkspaceSettings) -> None:
    minted = mint(42, ATTRIBUTES, workspace, now=NOW, warnings=("attribute 'x' dropped: why",))
    assert isinstance(minted, MintedToken)
    assert minted.user_id == "42"
    assert minted.issued_at == NOW
    assert minted.expires_at == NOW + 3600
    assert minted.app_id == "abc123"
    assert minted.api_base == "https://api-iam.eu.intercom.io"
    assert minted.attributes == tuple(ATTRIBUTES)
    assert minted.warnings == ("attribute 'x' dropped: why",)


def test_every_token_has_its_own_jti(workspace: WorkspaceSettings) -> None:
    jtis = {mint("u", {}, workspace, now=NOW).jti for _ in range(50)}
    assert len(jtis) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22,}", j) for j in jtis)


def test_attributes_can_never_override_the_identity_claims(workspace: WorkspaceSettings) -> None:
    forged: dict[str, AttributeValue] = {
        "user_id": "admin",
        "iat": 1,
        "exp": 2**40,
        "jti": "fixed",
        "plan": "pro",
    }
    claims = json.loads(segments(mint("u", forged, workspace, now=NOW).token)[1])
    assert claims["user_id"] == "u"
    assert claims["iat"] == NOW
    assert claims["exp"] == NOW + 3600
    assert claims["jti"] != "fixed"


# -- time ------------------------------------------------------------------------------


@pytest.mark.parametrize("lifetime", [60, 3600, 86400])
def test_exp_is_iat_plus_the_lifetime(monkeypatch: pytest.MonkeyPatch, lifetime: int) -> None:
    monkeypatch.setenv(MESSENGER_SECRET_ENV, MESSENGER_SECRET)
    with time_machine.travel(NOW, tick=False):
        minted = mint("u", {}, make_workspace(lifetime), now=int(time.time()))
        claims = verify_pyjwt(minted.token)
    assert claims["iat"] == NOW
    assert claims["exp"] == NOW + lifetime == minted.expires_at


def test_default_lifetime_is_one_hour() -> None:
    secret = SecretSource("env", MESSENGER_SECRET_ENV, "test Messenger secret")
    bare = WorkspaceSettings(key="k", app_id="a1", api_base="https://x.example", secret=secret)
    assert bare.token_lifetime == 3600


def test_token_expires_for_both_verifiers(
    workspace: WorkspaceSettings, frozen: time_machine.Traveller
) -> None:
    minted = mint("u", {}, workspace, now=NOW)
    frozen.move_to(NOW + 3599)
    verify_pyjwt(minted.token)
    verify_joserfc(minted.token)
    frozen.move_to(NOW + 3600)
    with pytest.raises(pyjwt.ExpiredSignatureError):
        verify_pyjwt(minted.token)
    with pytest.raises(ExpiredTokenError):
        verify_joserfc(minted.token)


# -- signatures ------------------------------------------------------------------------


def test_a_token_signed_with_another_secret_fails_both_verifiers(
    workspace: WorkspaceSettings, frozen: time_machine.Traveller
) -> None:
    minted = mint("u", {"plan": "pro"}, workspace, now=NOW)
    with pytest.raises(pyjwt.InvalidSignatureError):
        verify_pyjwt(minted.token, OTHER_SECRET)
    with pytest.raises(BadSignatureError):
        verify_joserfc(minted.token, OTHER_SECRET)
    forged = sign({"user_id": "u", "iat": NOW, "exp": NOW + 60, "jti": "x"}, OTHER_SECRET)
    with pytest.raises(pyjwt.InvalidSignatureError):
        verify_pyjwt(forged)
    with pytest.raises(BadSignatureError):
        verify_joserfc(forged)


def test_a_tampered_payload_fails_both_verifiers(
    workspace: WorkspaceSettings, frozen: time_machine.Traveller
) -> None:
    header, _, signature = mint("u", {"plan": "free"}, workspace, now=NOW).token.split(".")
    other = mint("u", {"plan": "enterprise"}, workspace, now=NOW).token.split(".")[1]
    tampered = f"{header}.{other}.{signature}"
    with pytest.raises(pyjwt.InvalidSignatureError):
        verify_pyjwt(tampered)
    with pytest.raises(BadSignatureError):
        verify_joserfc(tampered)


@pytest.mark.parametrize("length", [0, 16, 31])
def test_a_secret_shorter_than_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(SecretUnavailableError, match="at least 32 bytes"):
        sign({"user_id": "u"}, b"k" * length)


def test_a_32_byte_secret_is_enough() -> None:
    token = sign({"user_id": "u"}, b"k" * 32)
    assert pyjwt.decode(token, b"k" * 32, algorithms=["HS256"]) == {"user_id": "u"}


def test_mint_refuses_a_workspace_whose_secret_is_too_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MESSENGER_SECRET_ENV, "k" * 31)
    with pytest.raises(SecretUnavailableError, match="31 bytes"):
        mint("u", {}, make_workspace(), now=NOW)


# -- NaN and friends can never reach the JSON ------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_never_reach_the_json(workspace: WorkspaceSettings, value: float) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        mint("u", {"score": value}, workspace, now=NOW)
    with pytest.raises(ValueError, match="JSON compliant"):
        sign({"score": value}, SECRET)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("type_", ["integer", "number", "date"])
def test_the_policy_stops_nan_before_minting(
    workspace: WorkspaceSettings, type_: Any, value: float
) -> None:
    policy = AttributePolicy((AttributeSpec("score_at" if type_ == "date" else "score", type_),),
                             "drop")  # fmt: skip
    clean = policy.clean({"score": value, "score_at": value})
    assert dict(clean.values) == {}
    raw = segments(mint("u", clean.values, workspace, now=NOW, warnings=clean.warnings).token)[1]
    assert b"NaN" not in raw
    assert b"Infinity" not in raw


# -- user ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ("user-42", "user-42"),
        (42, "42"),
        (0, "0"),
        (-1, "-1"),
        ("\u7528\u6237", "\u7528\u6237"),
        ("x" * 255, "x" * 255),
        (2**64, str(2**64)),
    ],
)
def test_user_id_is_a_non_empty_string(
    workspace: WorkspaceSettings, user_id: object, expected: str
) -> None:
    minted = mint(user_id, {}, workspace, now=NOW)
    assert minted.user_id == expected
    claims = json.loads(segments(minted.token)[1])
    assert claims["user_id"] == expected
    assert type(claims["user_id"]) is str


@pytest.mark.parametrize(
    ("user_id", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        (None, "got NoneType"),
        (True, "got bool"),
        (False, "got bool"),
        (1.5, "got float"),
        (b"bytes", "got bytes"),
        (["u"], "got list"),
        ({"id": 1}, "got dict"),
        ("x" * 256, "256 characters"),
        ("lone \ud800", "not valid Unicode"),
    ],
)
def test_bad_user_ids_are_refused(
    workspace: WorkspaceSettings, user_id: object, fragment: str
) -> None:
    with pytest.raises(InvalidUserIdError) as caught:
        mint(user_id, {}, workspace, now=NOW)
    assert fragment in caught.value.detail
    assert caught.value.status == 422
