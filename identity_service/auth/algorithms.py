"""The JWS algorithms an identity provider's token may be signed with, and the key each needs.

The loader, the bearer authenticator, the key parser and the security report
all read these tables; none keeps a list of its own.

Here rather than in the configuration loader, so that verifying a token does
not import the loader (and, through it, the rate-limit library).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

KeyType = Literal["RSA", "EC", "OKP"]  # JWK `kty` values

# The IdP algorithms we verify and the key type each needs. Asymmetric only:
# an HS* IdP algorithm would let anyone holding the (public) verification
# material forge tokens, the classic algorithm-confusion attack.
KEY_TYPES: Mapping[str, KeyType] = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA",
    "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC",
    "EdDSA": "OKP",
}  # fmt: skip
IDP_ALGORITHMS = frozenset(KEY_TYPES)
# ES256 is P-256 only, and so on: a curve that does not match the algorithm is refused.
EC_CURVES: Mapping[str, str] = {
    "secp256r1": "ES256",
    "secp384r1": "ES384",
    "secp521r1": "ES512",
}
MIN_RSA_BITS = 2048


def algorithms_of(key_type: KeyType) -> frozenset[str]:
    """The IdP algorithms a key of this type verifies (for EC, before its curve narrows them)."""
    return frozenset(alg for alg, kty in KEY_TYPES.items() if kty == key_type)
