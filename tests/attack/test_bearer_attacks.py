"""Forged and malformed bearer tokens: each one is refused with a fixed reason.

The IdP publishes its keys on a real JWKS server; the attacker runs a second
one and points `jku`/`x5u` at it. Every case asserts the refusal reason, that
the client-facing detail echoes no part of the token, that the attacker's
server was never contacted and that the IdP saw nothing but its JWKS path.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from identity_service.auth import RequestView
from identity_service.auth.bearer import BearerAuthenticator
from identity_service.errors import AuthenticationError
from tests.support.jwks_server import JWKS_PATH, FakeClock, JWKSServer, running
from tests.support.keys import (
    AUDIENCE,
    ISSUER,
    NOW,
    SigningKey,
    b64url,
    bearer_settings,
    ec_key,
    forge,
    hs256,
    make_claims,
    rsa_key,
    segment,
    sign_with,
)

REASONS = {
    "malformed",
    "too_large",
    "bad_signature",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "invalid_claim",
    "algorithm",
    "forbidden_header",
}


@dataclass(frozen=True)
class Kit:
    """What an attacker works with: the IdP's public material, their own keys and server."""

    idp: SigningKey
    idp_ec: SigningKey
    attacker: SigningKey
    attacker_ec: SigningKey
    attacker_url: str

    def header(self, **fields: Any) -> dict[str, Any]:
        return {"alg": "RS256", "typ": "JWT", "kid": "idp-1", **fields}


@dataclass(frozen=True)
class Attack:
    make: Callable[[Kit], str]
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)


def signed(**claims: Any) -> Callable[[Kit], str]:
    """A token the IdP really signed, with these claim overrides."""
    return lambda kit: kit.idp.sign(**claims)


def without(*names: str) -> Callable[[Kit], str]:
    return lambda kit: kit.idp.sign(make_claims(drop=list(names)))


def idp_signed_raw(header: str | dict[str, Any], payload: str | bytes) -> Callable[[Kit], str]:
    """Raw header/payload bytes really signed by the IdP key (what no library would emit)."""
    return lambda kit: sign_with(kit.idp, header, payload)


def _claims_json(**extra: Any) -> str:
    return json.dumps(make_claims(**extra))


def _duplicate(key: str, first: Any, last: Any) -> str:
    """Payload JSON where `key` appears twice: `first`, then `last`."""
    body = json.dumps(make_claims(drop=[key]))[:-1]
    return (
        f"{body}, {json.dumps(key)}: {json.dumps(first)}, {json.dumps(key)}: {json.dumps(last)}}}"
    )


def _alg_none(alg: str, signature: bytes = b"", kid: bool = True) -> Callable[[Kit], str]:
    def make(kit: Kit) -> str:
        header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
        if kid:
            header["kid"] = "idp-1"
        return forge(header, make_claims(sub="admin"), signature)

    return make


def _hs(secret: Callable[[Kit], bytes], kid: bool = True) -> Callable[[Kit], str]:
    def make(kit: Kit) -> str:
        header = kit.header(alg="HS256") if kid else {"alg": "HS256", "typ": "JWT"}
        return hs256(header, make_claims(sub="admin"), secret(kit))

    return make


def _attacker_kid(kid: Any) -> Callable[[Kit], str]:
    return lambda kit: kit.attacker.sign(headers={"kid": kid})


def _idp_kid(kid: Any) -> Callable[[Kit], str]:
    return lambda kit: kit.idp.sign(headers={"kid": kid})


def _attacker_headers(**headers: Callable[[Kit], Any]) -> Callable[[Kit], str]:
    def make(kit: Kit) -> str:
        values = {name: value(kit) for name, value in headers.items()}
        return kit.attacker.with_kid("idp-1").sign(sub="admin", headers=values)

    return make


def _resigned_by_other(kit: Kit) -> str:
    header, payload, _ = kit.idp.sign(sub="admin").split(".")
    return f"{header}.{payload}.{kit.idp.sign().split('.')[2]}"


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _noncanonical(segment: str) -> str:
    """The same bytes with a nonzero padding bit in the last character: never canonical.

    A 256-byte signature is 342 characters whose last one carries 2 data bits
    and 4 padding bits, which a canonical encoder leaves at zero. (Dropping
    characters instead would leave a canonical encoding 1 time in 16.)
    """
    assert len(segment) % 4 == 2, "expects a 256-byte signature"
    last = _B64URL.index(segment[-1])
    return segment[:-1] + _B64URL[last | 1]


def _tamper(part: int, change: Callable[[str], str]) -> Callable[[Kit], str]:
    def make(kit: Kit) -> str:
        parts = kit.idp.sign().split(".")
        parts[part] = change(parts[part])
        return ".".join(parts)

    return make


def _non_canonical(text: str) -> str:
    """Same bytes, different base64url: set the unused low bits of the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert len(text) % 4 in {2, 3}, "needs a segment with unused bits"
    last = alphabet.index(text[-1])
    return text[:-1] + alphabet[last | (0b1111 if len(text) % 4 == 2 else 0b11)]


def _raw_header(header: bytes | str) -> Callable[[Kit], str]:
    """A forged header segment in front of a genuine payload and signature."""

    def make(kit: Kit) -> str:
        _, payload, signature = kit.idp.sign().split(".")
        return f"{segment(header)}.{payload}.{signature}"

    return make


def _huge(size: int) -> Callable[[Kit], str]:
    return lambda kit: kit.idp.sign(padding="x" * size)


def _exactly(length: int) -> Callable[[Kit], str]:
    """A real token lengthened to exactly `length` characters by appending to its signature."""

    def make(kit: Kit) -> str:
        token = kit.idp.sign()
        return token + "A" * (length - len(token))

    return make


def _non_canonical_header(kit: Kit) -> str:
    """A token whose header segment is re-spelled with non-zero unused bits.

    Its kid is unknown, so a lenient decoder would answer `unknown_key`: the
    header must be refused as malformed before any key lookup.
    """
    for pad in range(3):
        token = kit.attacker.sign(headers={"p": "x" * pad})
        header, payload, signature = token.split(".")
        if len(header) % 4 in {2, 3}:
            return f"{_non_canonical(header)}.{payload}.{signature}"
    raise AssertionError("unreachable: three lengths in a row cover a residue of 2 or 3")


def _non_canonical_payload(kit: Kit) -> str:
    """A genuine token whose payload segment is re-spelled with non-zero unused bits."""
    for pad in range(4):
        token = kit.idp.sign(p="x" * pad)
        header, payload, signature = token.split(".")
        if len(payload) % 4 in {2, 3}:
            return f"{header}.{_non_canonical(payload)}.{signature}"
    raise AssertionError("unreachable: four lengths in a row cover a residue of 2 or 3")


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


MINUTE = 60
ATTACKS: dict[str, Attack] = {
    # alg "none" in every letter case, with and without kid or signature
    **{
        f"alg {alg!r}": Attack(_alg_none(alg), "algorithm")
        for alg in ("none", "None", "NONE", "nOnE", "NoNe", "nonE", "NONe")
    },
    "alg none without kid": Attack(_alg_none("none", kid=False), "algorithm"),
    "alg none with a signature": Attack(_alg_none("none", b"\x00" * 32), "algorithm"),
    "alg empty": Attack(_alg_none(""), "algorithm"),
    "alg missing": Attack(lambda kit: forge({"kid": "idp-1"}, make_claims()), "algorithm"),
    "alg null": Attack(lambda kit: forge(kit.header(alg=None), make_claims()), "algorithm"),
    "alg list": Attack(lambda kit: forge(kit.header(alg=["RS256"]), make_claims()), "algorithm"),
    "alg lower case rs256": Attack(_alg_none("rs256", b"\x00" * 256), "algorithm"),
    # HS256 keyed with the IdP's public key (algorithm confusion)
    "hs256 keyed with the public pem": Attack(_hs(lambda kit: kit.idp.public_pem()), "algorithm"),
    "hs256 keyed with the public pem, no kid": Attack(
        _hs(lambda kit: kit.idp.public_pem(), kid=False), "algorithm"
    ),
    "hs256 keyed with the public jwk": Attack(
        _hs(lambda kit: json.dumps(kit.idp.public_jwk()).encode()), "algorithm"
    ),
    "hs256 keyed with the ec public pem": Attack(
        _hs(lambda kit: kit.idp_ec.public_pem()), "algorithm"
    ),
    # keys the IdP never published
    "attacker key under its own kid": Attack(lambda kit: kit.attacker.sign(), "unknown_key"),
    "attacker key claiming the idp kid": Attack(
        lambda kit: kit.attacker.with_kid("idp-1").sign(), "bad_signature"
    ),
    "attacker key without kid": Attack(
        lambda kit: kit.attacker.with_kid(None).sign(), "bad_signature"
    ),
    "attacker ec key claiming the idp ec kid": Attack(
        lambda kit: kit.attacker_ec.with_kid("idp-ec").sign(), "bad_signature"
    ),
    "attacker ec key claiming the idp rsa kid": Attack(
        lambda kit: kit.attacker_ec.with_kid("idp-1").sign(), "algorithm"
    ),
    # kid injection: kid only ever selects among trusted keys
    **{
        f"kid {label}": Attack(_attacker_kid(kid), "unknown_key")
        for label, kid in {
            "path traversal": "../../../../../../etc/passwd",
            "absolute path": "/dev/null",
            "file url": "file:///etc/passwd",
            "sql or": "' OR '1'='1",
            "sql comment": "idp-1' --",
            "sql union": "x' UNION SELECT 'secret' --",
            "nul byte": "idp-1\x00",
            "trailing space": "idp-1 ",
            "other case": "IDP-1",
            "wildcard": "*",
            "empty": "",
            "300 chars": "k" * 300,
        }.items()
    },
    "kid traversal on an idp-signed token": Attack(_idp_kid("../idp-1"), "unknown_key"),
    "kid 10 kB": Attack(_attacker_kid("k" * 10_240), "too_large"),
    "kid 10 kB under a large cap": Attack(
        _attacker_kid("k" * 10_240), "unknown_key", {"max_token_bytes": 65536}
    ),
    "kid an object": Attack(
        lambda kit: forge(kit.header(kid={"$ne": None}), make_claims(), b"\x00" * 256), "malformed"
    ),
    "kid a number": Attack(
        lambda kit: forge(kit.header(kid=1), make_claims(), b"\x00" * 256), "malformed"
    ),
    # headers that carry or locate a key
    "jku to the attacker's jwks": Attack(
        _attacker_headers(jku=lambda kit: kit.attacker_url), "forbidden_header"
    ),
    "x5u to the attacker's certificate": Attack(
        _attacker_headers(x5u=lambda kit: kit.attacker_url), "forbidden_header"
    ),
    "embedded jwk": Attack(
        _attacker_headers(jwk=lambda kit: kit.attacker.public_jwk()), "forbidden_header"
    ),
    "embedded x5c chain": Attack(
        _attacker_headers(x5c=lambda kit: [kit.attacker.certificate_der_b64()]),
        "forbidden_header",
    ),
    "jku on a token the idp really signed": Attack(
        lambda kit: kit.idp.sign(headers={"jku": kit.attacker_url}), "forbidden_header"
    ),
    # signatures
    "stripped signature": Attack(lambda kit: kit.idp.sign().rpartition(".")[0], "malformed"),
    "empty signature": Attack(
        lambda kit: kit.idp.sign(sub="admin").rpartition(".")[0] + ".", "bad_signature"
    ),
    "empty signature with an unknown kid": Attack(
        lambda kit: kit.attacker.sign(sub="admin").rpartition(".")[0] + ".", "bad_signature"
    ),
    "truncated signature": Attack(_tamper(2, lambda s: b64url(_b64(s)[:-3])), "bad_signature"),
    "signature not canonically encoded": Attack(_tamper(2, _noncanonical), "malformed"),
    "zero signature": Attack(
        lambda kit: forge(kit.header(), make_claims(sub="admin"), b"\x00" * 256), "bad_signature"
    ),
    "signature of another token": Attack(_resigned_by_other, "bad_signature"),
    "payload changed after signing": Attack(
        _tamper(1, lambda p: segment(_claims_json(sub="admin"))), "bad_signature"
    ),
    # time
    "expired": Attack(signed(exp=int(NOW) - MINUTE), "expired"),
    "expired a year ago": Attack(
        signed(iat=int(NOW) - 366 * 86400, exp=int(NOW) - 365 * 86400), "expired"
    ),
    "nbf in the future": Attack(signed(nbf=int(NOW) + MINUTE), "not_yet_valid"),
    "iat in the future": Attack(signed(iat=int(NOW) + MINUTE), "not_yet_valid"),
    "exp missing": Attack(without("exp"), "missing_claim"),
    "iat missing": Attack(without("iat"), "missing_claim"),
    "exp null": Attack(signed(exp=None), "missing_claim"),
    "exp a string": Attack(signed(exp="2099-01-01"), "invalid_claim"),
    # issuer
    "wrong iss": Attack(signed(iss="https://evil.example.test/"), "issuer"),
    "iss prefix of the right one": Attack(signed(iss=ISSUER[:-1]), "issuer"),
    "iss with a suffix": Attack(signed(iss=ISSUER + "evil"), "issuer"),
    "iss on a look-alike host": Attack(signed(iss="https://idp.example.test.evil.test/"), "issuer"),
    "iss in upper case": Attack(signed(iss=ISSUER.upper()), "issuer"),
    "iss over http": Attack(signed(iss=ISSUER.replace("https", "http")), "issuer"),
    "iss a list": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, _claims_json(iss=[ISSUER])), "issuer"
    ),
    "iss missing": Attack(without("iss"), "missing_claim"),
    # audience
    "wrong aud": Attack(signed(aud="another-api"), "audience"),
    "aud prefix of the right one": Attack(signed(aud=AUDIENCE[:-1]), "audience"),
    "aud with a suffix": Attack(signed(aud=AUDIENCE + "-admin"), "audience"),
    "aud list without ours": Attack(signed(aud=["another-api", "third"]), "audience"),
    "aud an object": Attack(signed(aud={"aud": AUDIENCE}), "audience"),
    "aud a number": Attack(signed(aud=7), "audience"),
    "aud missing": Attack(without("aud"), "missing_claim"),
    "aud empty list": Attack(signed(aud=[]), "missing_claim"),
    "aud null": Attack(signed(aud=None), "missing_claim"),
    # subject
    "sub missing": Attack(without("sub"), "missing_claim"),
    "sub null": Attack(signed(sub=None), "missing_claim"),
    "sub a number": Attack(signed(sub=42), "invalid_claim"),
    "jti a number": Attack(signed(jti=7), "invalid_claim"),
    # critical headers
    "crit unknown extension": Attack(
        lambda kit: kit.idp.sign(headers={"crit": ["exp"], "exp": 1}), "forbidden_header"
    ),
    "crit b64 false": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1", "b64": False, "crit": ["b64"]}, "{}"),
        "forbidden_header",
    ),
    "b64 false without crit": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1", "b64": False}, "{}"), "malformed"
    ),
    "crit empty list": Attack(lambda kit: kit.idp.sign(headers={"crit": []}), "forbidden_header"),
    # duplicate JSON member names: refused, never "last one wins"
    "duplicate sub in the payload": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, _duplicate("sub", "user-42", "admin")),
        "malformed",
    ),
    "duplicate iss in the payload": Attack(
        idp_signed_raw(
            {"alg": "RS256", "kid": "idp-1"}, _duplicate("iss", "https://evil.test/", ISSUER)
        ),
        "malformed",
    ),
    "duplicate key in a nested payload object": Attack(
        idp_signed_raw(
            {"alg": "RS256", "kid": "idp-1"}, _claims_json()[:-1] + ', "o": {"a": 1, "a": 2}}'
        ),
        "malformed",
    ),
    "duplicate alg in the header": Attack(
        idp_signed_raw('{"alg": "none", "alg": "RS256", "kid": "idp-1"}', _claims_json()),
        "malformed",
    ),
    "duplicate kid in the header": Attack(
        idp_signed_raw('{"alg": "RS256", "kid": "attacker", "kid": "idp-1"}', _claims_json()),
        "malformed",
    ),
    # size
    "2 MB token": Attack(_huge(2 * 1024 * 1024), "too_large"),
    "one byte over the cap": Attack(_exactly(8193), "too_large"),
    # malformed base64
    "empty token": Attack(lambda kit: "", "malformed"),
    "one segment": Attack(lambda kit: kit.idp.sign().split(".")[0], "malformed"),
    "four segments": Attack(lambda kit: kit.idp.sign() + ".AAAA", "malformed"),
    "five segments (jwe shape)": Attack(lambda kit: "a.b.c.d.e", "malformed"),
    "padded base64": Attack(_tamper(0, lambda h: h + "=" * (-len(h) % 4 or 4)), "malformed"),
    "standard base64 alphabet": Attack(_tamper(1, lambda p: p[:-1] + "+"), "malformed"),
    "whitespace inside": Attack(_tamper(1, lambda p: p[:10] + " " + p[10:]), "malformed"),
    "non-ascii": Attack(_tamper(1, lambda p: p[:10] + "é" + p[10:]), "malformed"),
    "impossible base64 length": Attack(
        _tamper(0, lambda h: h + "A" * (5 - len(h) % 4)), "malformed"
    ),
    "non-canonical header base64": Attack(_non_canonical_header, "malformed"),
    "non-canonical payload base64": Attack(_non_canonical_payload, "malformed"),
    # malformed JSON
    "header not json": Attack(_raw_header(b"alg=RS256"), "malformed"),
    "header a json list": Attack(_raw_header(b'["RS256"]'), "malformed"),
    "header a json string": Attack(_raw_header(b'"RS256"'), "malformed"),
    "header invalid utf-8": Attack(_raw_header(b'{"alg":"RS256","kid":"\xff"}'), "malformed"),
    "header deeply nested": Attack(_raw_header(b"[" * 1500 + b"]" * 1500), "malformed"),
    "payload not json": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, "sub=admin"), "malformed"
    ),
    "payload a json list": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, "[" + _claims_json() + "]"), "malformed"
    ),
    "payload a json number": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, "42"), "malformed"
    ),
    "payload invalid utf-8": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, b'{"sub": "\xff"}'), "malformed"
    ),
    "payload with NaN": Attack(
        idp_signed_raw({"alg": "RS256", "kid": "idp-1"}, _claims_json()[:-1] + ', "n": NaN}'),
        "malformed",
    ),
}


@pytest.fixture(scope="module")
def kit_keys() -> tuple[SigningKey, SigningKey, SigningKey, SigningKey]:
    return rsa_key("idp-1"), ec_key("idp-ec"), rsa_key("attacker"), ec_key("attacker-ec")


@pytest.fixture
def idp_server(kit_keys: tuple[SigningKey, ...]) -> Iterator[JWKSServer]:
    with running(kit_keys[0], kit_keys[1]) as server:
        yield server


@pytest.fixture
def attacker_server(kit_keys: tuple[SigningKey, ...]) -> Iterator[JWKSServer]:
    with running(kit_keys[2], kit_keys[3]) as server:
        yield server


@pytest.fixture
def kit(
    kit_keys: tuple[SigningKey, SigningKey, SigningKey, SigningKey], attacker_server: JWKSServer
) -> Kit:
    idp, idp_ec, attacker, attacker_ec = kit_keys
    return Kit(idp, idp_ec, attacker, attacker_ec, attacker_server.url)


def _authenticator(idp_server: JWKSServer, **overrides: Any) -> BearerAuthenticator:
    values: dict[str, Any] = {"jwks_url": idp_server.url, "algorithms": ("RS256", "ES256")}
    settings = bearer_settings(**(values | overrides))
    return BearerAuthenticator(settings, clock=FakeClock())


def test_the_kit_itself_is_accepted(idp_server: JWKSServer, kit: Kit) -> None:
    """The control: every attack below starts from tokens this authenticator accepts."""
    bearer = _authenticator(idp_server)
    for key in (kit.idp, kit.idp_ec):
        assert (
            bearer.authenticate(RequestView(authorization=f"Bearer {key.sign()}"), NOW).user_id
            == "user-42"
        )


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused(
    idp_server: JWKSServer, attacker_server: JWKSServer, kit: Kit, attack: Attack
) -> None:
    bearer = _authenticator(idp_server, **attack.settings)
    token = attack.make(kit)

    with pytest.raises(AuthenticationError) as caught:
        bearer.authenticate(RequestView(authorization=f"Bearer {token}"), NOW)

    error = caught.value
    assert error.reason == attack.reason
    assert error.reason in REASONS
    assert error.status == 401
    assert str(error) == error.detail
    for part in [token, *token.split(".")]:
        if len(part) >= 8:
            assert part not in error.detail
    assert "idp-1" not in error.detail and "admin" not in error.detail
    assert attacker_server.requests == 0
    assert set(idp_server.paths) <= {JWKS_PATH}
    assert idp_server.requests <= 1  # no refetch: the clock is frozen after the first fetch


def test_hs256_is_refused_even_when_misconfigured_as_allowed(idp_server: JWKSServer) -> None:
    with pytest.raises(ValueError, match="HS256"):
        _authenticator(idp_server, algorithms=("RS256", "HS256"))
