"""Recognise a user by the bearer JWT their identity provider issued (Auth0, Okta, Keycloak...).

The checks run cheapest first, and nothing the token says is trusted before
its signature verifies, except to pick among keys we already trust:

1. size cap, before any parsing;
2. compact-JWS shape and a strict header (duplicate JSON keys refused);
3. header policy: no key-carrying headers, no `crit`, `alg` on the allowlist;
4. key selection by `kid` among trusted keys (an unknown kid may trigger one
   rate-limited JWKS refetch), then the `alg` must suit the key's type;
5. the signature, verified with pyjwt's algorithm objects and the trusted
   key, then `iss` (exact), `aud` (one configured audience) and the required
   claims (pyjwt's generic decode re-validates every base64 character in
   Python, which cost more than the RSA verification itself on the hot path);
6. `exp`, `iat` and `nbf` against the injected `now`, with `leeway`;
7. the user id claim.

Every refusal is an `AuthenticationError` with a fixed `reason` label and a
fixed `detail` that never contains the token.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from identity_service.auth import Identity, Method, RequestView
from identity_service.auth.algorithms import IDP_ALGORITHMS
from identity_service.auth.jose import b64url_decode, load_json_object
from identity_service.auth.jwks import KeySource, key_source
from identity_service.auth.keys import KeySet, TrustedKey
from identity_service.errors import AuthenticationError
from identity_service.settings import BearerAuthSettings

# RFC 7515 compact serialisation: three unpadded base64url segments. The
# signature may be empty here so that it is refused as `bad_signature` before
# any key lookup.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Headers that carry a key or say where to fetch one. An IdP's access or ID
# token never needs them, and honouring any of them lets the sender choose the
# key that verifies their own token. We refuse the token rather than ignore
# the header, so the attempt is visible (reason `forbidden_header`) and no
# future library default can start honouring it.
_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})
# A kid longer than this is no IdP's; it is refused without a JWKS refetch.
MAX_KID_LENGTH = 256
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")


# One algorithm object per allowed name, built once: verification is then a
# single call into `cryptography` with the already-parsed key.
_ALGORITHMS = {name: jwt.get_algorithm_by_name(name) for name in IDP_ALGORITHMS}


class BearerAuthenticator:
    """Authenticate `Authorization: Bearer <jwt>` against the IdP's trusted keys."""

    method: Method = "bearer"

    def __init__(
        self,
        settings: BearerAuthSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        keys: KeySource | None = None,
    ) -> None:
        """`clock` times the JWKS cache (tests inject a frozen one); `keys` overrides the source."""
        _check_settings(settings)
        self.settings = settings
        self._keys = keys if keys is not None else key_source(settings, clock)
        self._algorithms = frozenset(settings.algorithms)
        self._audiences = frozenset(settings.audience)

    def applies(self, request: RequestView) -> bool:
        """Whether the request carries an `Authorization` header with the Bearer scheme."""
        return _bearer_credential(request.authorization) is not None

    def authenticate(self, request: RequestView, now: float) -> Identity:
        """The verified user behind the bearer token, or AuthenticationError (401)."""
        token = self._token(request.authorization)
        header = _header(token)
        alg, kid = self._header_policy(header)
        if not token.rpartition(".")[2]:
            raise AuthenticationError("bad_signature", "the token is not signed")
        claims = self._verify(token, alg, self._candidates(alg, kid))
        self._check_claims(claims)
        _check_times(claims, now, self.settings.leeway)
        user_id = _user_id(claims, self.settings.user_id_claim)
        return Identity(user_id=user_id, method="bearer", claims=claims)

    def ready(self) -> bool:
        """Whether usable signing keys are held now (for /readyz); never waits for the IdP."""
        return self._keys.ready()

    # -- steps ----------------------------------------------------------------------

    def _token(self, authorization: str | None) -> str:
        credential = _bearer_credential(authorization)
        if credential is None:
            raise AuthenticationError("missing_credentials", "send Authorization: Bearer <token>")
        # Checked on the raw credential, before stripping or any parsing.
        if len(credential) > self.settings.max_token_bytes:
            raise AuthenticationError("too_large", "the bearer token is too large")
        token = credential.strip(" ")
        if not _COMPACT_JWS.fullmatch(token):
            raise AuthenticationError("malformed", "the bearer token is not a signed JWT")
        return token

    def _header_policy(self, header: Mapping[str, Any]) -> tuple[str, str | None]:
        """The token's `alg` and `kid`, once the header is acceptable."""
        if _KEY_HEADERS & header.keys():
            raise AuthenticationError(
                "forbidden_header", "the token names its own key (jku, x5u, jwk or x5c)"
            )
        if "crit" in header:
            # We implement no JWS extension, so every critical one is unknown (RFC 7515 §4.1.11).
            raise AuthenticationError(
                "forbidden_header", "the token has critical header parameters we do not support"
            )
        if "b64" in header:
            # RFC 7797 unencoded payloads: no IdP token uses them, and we sign-check
            # the base64url form only.
            raise AuthenticationError("malformed", "the token uses an unsupported payload encoding")
        # `typ` is not checked: IdPs disagree on it (JWT, at+jwt, application/
        # okta-internal-at+jwt...); `iss` and `aud` are what bind a token to us.
        alg = header.get("alg")
        # Exact, case-sensitive match: "none", "None", "NONE" and HS256 are never listed.
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthenticationError("algorithm", "the token's signing algorithm is not accepted")
        kid = header.get("kid")
        if "kid" in header and not isinstance(kid, str):
            raise AuthenticationError("malformed", "the token's key id is not a string")
        return alg, kid

    def _candidates(self, alg: str, kid: str | None) -> tuple[TrustedKey, ...]:
        """The trusted keys that may have signed a token with this `alg` and `kid`."""
        found = _select(self._keys.current(), kid)
        if not found and kid is not None and len(kid) <= MAX_KID_LENGTH:
            found = _select(self._keys.refetch(), kid)  # perhaps a rotation; rate-limited
        if not found:
            raise AuthenticationError(
                "unknown_key", "the token is not signed by a key of the identity provider"
            )
        usable = tuple(k for k in found if alg in k.algorithms)
        if not usable:
            raise AuthenticationError(
                "algorithm", "the token's signing algorithm does not match its key"
            )
        return usable

    def _verify(self, token: str, alg: str, keys: tuple[TrustedKey, ...]) -> dict[str, Any]:
        """The payload, once one candidate key verifies the signature over the signing input."""
        signing_input, _, signature_segment = token.rpartition(".")
        try:
            signature = b64url_decode(signature_segment)
            payload = load_json_object(b64url_decode(signing_input.partition(".")[2]))
        except ValueError:
            raise AuthenticationError("malformed", "the token is not a well-formed JWT") from None
        algorithm = _ALGORITHMS[alg]  # alg is on the allowlist (checked by _header_policy)
        message = signing_input.encode("ascii")  # the compact-JWS regex allows ASCII only
        for trusted in keys:
            try:
                if algorithm.verify(message, trusted.key, signature):
                    return payload
            except (ValueError, TypeError):  # a signature of the wrong shape for this key
                continue
        raise AuthenticationError("bad_signature", "the token's signature does not verify")

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        """Required claims present, `iss` exact, one configured `aud`, string `sub` and `jti`."""
        for name in REQUIRED_CLAIMS:
            if claims.get(name) in (None, []):  # null (and an empty aud list) count as missing
                # The claim name comes from our fixed REQUIRED_CLAIMS, not from the token.
                raise AuthenticationError("missing_claim", f"the token has no {name!r} claim")
        # Exact string equality: no prefix, suffix or normalisation.
        if claims["iss"] != self.settings.issuer or not isinstance(claims["iss"], str):
            raise AuthenticationError("issuer", "the token was issued by another issuer")
        # IdPs such as Auth0 send `aud` as a list ([api, userinfo]); one exact match is enough.
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if (
            not isinstance(audiences, list)
            or not audiences
            or not all(isinstance(a, str) for a in audiences)
            or self._audiences.isdisjoint(audiences)
        ):
            raise AuthenticationError("audience", "the token is meant for another audience")
        if not isinstance(claims["sub"], str):
            raise AuthenticationError("invalid_claim", "the token's 'sub' claim is not a string")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise AuthenticationError("invalid_claim", "the token's 'jti' claim is not a string")


def _check_settings(settings: BearerAuthSettings) -> None:
    """Refuse settings that bypassed `config.load_settings` validation unsafely."""
    unsafe = set(settings.algorithms) - IDP_ALGORITHMS
    if not settings.algorithms or unsafe:
        raise ValueError(f"bearer algorithms must be asymmetric; refused {sorted(unsafe)}")
    if not settings.issuer or not settings.audience:
        raise ValueError("bearer authentication needs an issuer and at least one audience")


def _bearer_credential(authorization: str | None) -> str | None:
    """What follows the Bearer scheme (case-insensitive, RFC 7235), or None for another scheme."""
    if authorization is None:
        return None
    scheme, _, credential = authorization.partition(" ")
    return credential if scheme.lower() == "bearer" else None


def _header(token: str) -> dict[str, Any]:
    """The token's JOSE header, decoded strictly; not trusted until the signature verifies."""
    segment = token.partition(".")[0]
    try:
        return load_json_object(b64url_decode(segment))
    except ValueError:
        raise AuthenticationError("malformed", "the token's header is not valid") from None


def _select(keys: KeySet, kid: str | None) -> tuple[TrustedKey, ...]:
    """Keys by `kid`; keys pinned without a kid (a PEM file) serve any kid."""
    if kid is None:
        return keys.keys
    return keys.with_kid(kid) or keys.unnamed


def _check_times(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """Refuse an expired token, or one issued or valid only in the future (beyond `leeway`)."""
    if _number(claims, "exp") <= now - leeway:
        raise AuthenticationError("expired", "the token has expired")
    if _number(claims, "iat") > now + leeway:
        raise AuthenticationError("not_yet_valid", "the token was issued in the future")
    if "nbf" in claims and _number(claims, "nbf") > now + leeway:
        raise AuthenticationError("not_yet_valid", "the token is not valid yet")


def _number(claims: Mapping[str, Any], name: str) -> float:
    """A NumericDate claim (RFC 7519 §2) as a float; booleans, strings and infinities refused."""
    value = claims[name]
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
    except OverflowError:
        pass
    raise AuthenticationError("invalid_claim", f"the token's {name!r} claim is not a NumericDate")


def _user_id(claims: Mapping[str, Any], claim: str) -> str:
    """The configured user id claim as a non-empty string (an integer is converted)."""
    value = claims.get(claim)
    if value is None:
        raise AuthenticationError("missing_claim", "the token has no user id claim")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AuthenticationError("invalid_claim", "the token's user id is not a string")
    user_id = str(value)
    if not user_id.strip():
        raise AuthenticationError("invalid_claim", "the token's user id is empty")
    return user_id
