"""Which JWS algorithms an identity provider's token may be signed with.

Here rather than in the configuration loader, so that verifying a token does
not import the loader (and, through it, the rate-limit library): the loader
checks the configured list against this set, the authenticator checks it
again and builds its verifiers from it.
"""

from __future__ import annotations

# Asymmetric only: an HS* IdP algorithm would let anyone holding the (public)
# verification material forge tokens, the classic algorithm-confusion attack.
IDP_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
