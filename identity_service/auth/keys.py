"""The identity provider's public keys, parsed once: JWKs, PEM keys and certificates.

Each key becomes a `cryptography` public key kept, with the algorithms it may
verify, in a `TrustedKey`; a source's keys form an immutable `KeySet` indexed
by `kid`, so verifying a token only looks keys up and never parses them again.
A key is trusted only for what its type, curve, size and its own JWK members
allow, within the configured allowlist.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWTError

from identity_service.auth.algorithms import EC_CURVES, MIN_RSA_BITS, algorithms_of
from identity_service.auth.jose import load_json_object

log = logging.getLogger(__name__)

PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

RSA_ALGORITHMS = algorithms_of("RSA")
MAX_KEYS = 64  # a kid-less token is tried against each matching key; keep that bounded


@dataclass(frozen=True)
class TrustedKey:
    """A public key from a configured source, and the algorithms it may verify."""

    key: PublicKey
    algorithms: tuple[str, ...]  # configured allowlist ∩ key type ∩ the JWK's own `alg`
    kid: str | None = None


@dataclass(frozen=True)
class KeySet:
    """The keys one source currently trusts, indexed by `kid` once rather than per token."""

    keys: tuple[TrustedKey, ...]
    _by_kid: Mapping[str, tuple[TrustedKey, ...]] = field(init=False, repr=False, compare=False)
    unnamed: tuple[TrustedKey, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_kid: dict[str, list[TrustedKey]] = {}
        for trusted in self.keys:
            if trusted.kid is not None:
                by_kid.setdefault(trusted.kid, []).append(trusted)
        object.__setattr__(self, "_by_kid", {k: tuple(v) for k, v in by_kid.items()})
        object.__setattr__(self, "unnamed", tuple(k for k in self.keys if k.kid is None))

    def with_kid(self, kid: str) -> tuple[TrustedKey, ...]:
        """The keys published under `kid` (usually one; empty when unknown)."""
        return self._by_kid.get(kid, ())


def algorithms_for(key: PublicKey) -> frozenset[str]:
    """Which JWS algorithms a key of this type and curve can verify."""
    if isinstance(key, RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, EllipticCurvePublicKey):
        alg = EC_CURVES.get(key.curve.name)
        return frozenset({alg}) if alg else frozenset()
    return algorithms_of("OKP")


def trusted_key(
    key: object, allowed: Collection[str], *, kid: str | None = None, alg: str | None = None
) -> TrustedKey | None:
    """`key` as a TrustedKey, or None when it cannot verify any allowed algorithm."""
    if not isinstance(key, PublicKey):
        return None  # private keys and exotic types are never used to verify
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return None
    usable = algorithms_for(key) & set(allowed)
    if alg is not None:
        usable &= {alg}  # a JWK that names its algorithm verifies that one only
    if not usable:
        return None
    return TrustedKey(key=key, algorithms=tuple(sorted(usable)), kid=kid)


def key_from_jwk(jwk: Mapping[str, Any], allowed: Collection[str]) -> TrustedKey | None:
    """One JWK as a TrustedKey, or None when it is not a usable signature-verification key."""
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if (kid is not None and not isinstance(kid, str)) or (
        alg is not None and not isinstance(alg, str)
    ):
        return None
    if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in {"RSA", "EC", "OKP"}:
        return None  # encryption keys and symmetric ("oct") keys never verify tokens
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    if "d" in jwk:
        # Private material in a JWKS is an IdP misconfiguration; never use it.
        log.warning("ignoring JWK %r: it contains a private key", kid)
        return None
    try:
        parsed = PyJWK(dict(jwk)).key
    except (PyJWTError, ValueError, TypeError, KeyError):
        return None
    return trusted_key(parsed, allowed, kid=kid, alg=alg)


def keyset_from_jwks(document: Mapping[str, Any], allowed: Collection[str]) -> KeySet:
    """The usable keys of a JWK Set (or of a single JWK); ValueError when there are none."""
    raw = document.get("keys", [document])
    if not isinstance(raw, list):
        raise ValueError("'keys' is not a list")
    keys = [k for k in (key_from_jwk(j, allowed) for j in raw if isinstance(j, dict)) if k]
    if not keys:
        raise ValueError("no usable signature-verification key for the allowed algorithms")
    if len(keys) > MAX_KEYS:
        log.warning("the JWKS has %d usable keys; using the first %d", len(keys), MAX_KEYS)
    return KeySet(tuple(keys[:MAX_KEYS]))


def keyset_from_file(path: Path, allowed: Collection[str]) -> KeySet:
    """Keys from a PEM public key or certificate(s), or a JWK or JWKS file; ValueError if none."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"{"):
        return keyset_from_jwks(load_json_object(data), allowed)
    if b"-----BEGIN CERTIFICATE-----" in data:
        # A certificate (as Auth0 and Okta offer for download) is only a container
        # for the key here: pinning the file is the trust decision, so its dates
        # and chain are not checked.
        candidates: list[object] = [c.public_key() for c in x509.load_pem_x509_certificates(data)]
    else:
        candidates = [load_pem_public_key(data)]
    keys = [k for k in (trusted_key(c, allowed) for c in candidates) if k]
    if not keys:
        raise ValueError("no public key usable with the allowed algorithms")
    return KeySet(tuple(keys))
