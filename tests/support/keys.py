"""Signing keys and tokens for the bearer tests, generated at test time (never committed).

`SigningKey` signs like an identity provider; `forge` assembles tokens byte by
byte for the attacks a library would refuse to produce (alg none, HS256 with a
public key, duplicate JSON keys, broken base64).
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from identity_service.settings import BearerAuthSettings

ISSUER = "https://idp.example.test/"
AUDIENCE = "identity-service"
NOW = 1_750_000_000.0  # the wall-clock `now` every test passes to authenticate()
ALL_ALGORITHMS = ("RS256", "RS384", "PS256", "ES256", "ES384", "EdDSA")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningKey:
    """An IdP signing key: signs tokens, publishes its public half as a JWK or PEM."""

    private: PrivateKey
    algorithm: str
    kid: str | None

    def with_kid(self, kid: str | None) -> SigningKey:
        """The same private key, announcing another kid (or none) in the tokens it signs."""
        return replace(self, kid=kid)

    def public_jwk(self, *, alg: str | bool = True, **extra: Any) -> dict[str, Any]:
        """The public JWK as an IdP publishes it: kid, use, and alg (own, another, or none)."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = algorithm.to_jwk(self.private.public_key(), as_dict=True)
        if self.kid is not None:
            jwk["kid"] = self.kid
        jwk["use"] = "sig"
        if alg is not False:
            jwk["alg"] = self.algorithm if alg is True else alg
        jwk.update(extra)
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        """The private JWK: what an IdP must never publish."""
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = algorithm.to_jwk(self.private, as_dict=True)
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def certificate_pem(self) -> bytes:
        """A self-signed certificate for the key, as Auth0 and Okta offer for download."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.test")])
        start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start.replace(year=2040))
        )
        digest = None if isinstance(self.private, ed25519.Ed25519PrivateKey) else hashes.SHA256()
        certificate = builder.sign(self.private, digest)
        return certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_der_b64(self) -> str:
        """The certificate as an `x5c` header member carries it (standard base64 of DER)."""
        certificate = x509.load_pem_x509_certificate(self.certificate_pem())
        return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()

    def sign(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, Any] | None = None,
        algorithm: str | None = None,
        **overrides: Any,
    ) -> str:
        """A token signed by this key: `claims()` defaults, updated with `overrides`."""
        payload = {**(claims if claims is not None else make_claims()), **overrides}
        header: dict[str, Any] = {} if self.kid is None else {"kid": self.kid}
        header.update(headers or {})
        return jwt.encode(
            payload, self.private, algorithm=algorithm or self.algorithm, headers=header
        )


@functools.cache
def rsa_key(kid: str | None = "rsa-1", algorithm: str = "RS256", bits: int = 2048) -> SigningKey:
    return SigningKey(
        rsa.generate_private_key(public_exponent=65537, key_size=bits), algorithm, kid
    )


@functools.cache
def ec_key(kid: str | None = "ec-1", algorithm: str = "ES256") -> SigningKey:
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[algorithm]
    return SigningKey(ec.generate_private_key(curve), algorithm, kid)


@functools.cache
def ed_key(kid: str | None = "ed-1") -> SigningKey:
    return SigningKey(ed25519.Ed25519PrivateKey.generate(), "EdDSA", kid)


def make_claims(**overrides: Any) -> dict[str, Any]:
    """A valid payload at NOW, updated with `overrides`; `drop=[...]` removes claims."""
    drop = overrides.pop("drop", ())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "email": "ada@example.test",
    }
    payload.update(overrides)
    for name in drop:
        payload.pop(name, None)
    return payload


def bearer_settings(**overrides: Any) -> BearerAuthSettings:
    """Settings for the tests' IdP; pass jwks_url or key_file."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": (AUDIENCE,),
        "algorithms": ("RS256", "PS256", "ES256", "EdDSA"),
        "leeway": 30,
        "jwks_timeout": 0.5,
        "jwks_refetch_interval": 30.0,
        "jwks_cache_ttl": 600.0,
        "jwks_max_stale": 3600.0,
    }
    values.update(overrides)
    return BearerAuthSettings(**values)


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [k.public_jwk() for k in keys]}), "utf-8")
    return path


# -- hand-made tokens for the attack suite ---------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Mapping[str, Any] | str | bytes) -> str:
    """A token segment from a mapping (JSON), a str (raw JSON text) or bytes."""
    if isinstance(value, Mapping):
        value = json.dumps(value, separators=(",", ":"))
    if isinstance(value, str):
        value = value.encode()
    return b64url(value)


def forge(
    header: Mapping[str, Any] | str | bytes,
    payload: Mapping[str, Any] | str | bytes,
    signature: bytes = b"",
) -> str:
    """A compact JWS assembled by hand, with whatever signature bytes the attacker chose."""
    return f"{segment(header)}.{segment(payload)}.{b64url(signature)}"


def sign_with(
    key: SigningKey,
    header: Mapping[str, Any] | str | bytes,
    payload: Mapping[str, Any] | str | bytes,
) -> str:
    """Really sign arbitrary header and payload bytes (e.g. JSON with duplicate keys) with `key`."""
    signing_input = f"{segment(header)}.{segment(payload)}".encode()
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    signature = algorithm.sign(signing_input, key.private)
    return f"{signing_input.decode()}.{b64url(signature)}"


def hs256(header: Mapping[str, Any], payload: Mapping[str, Any], secret: bytes) -> str:
    """An HS256 token keyed with `secret` (pyjwt refuses to use a PEM key as an HMAC secret)."""
    signing_input = f"{segment(header)}.{segment(payload)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"
