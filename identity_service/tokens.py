"""Sign Intercom Messenger JWTs (HS256) for a user and their clean attributes.

The token is built by hand rather than through `jwt.encode`: the header is a
constant, the payload is compact standard JSON (orjson: UTF-8, no ASCII
escaping; NaN and Infinity refused before it) and the signature is one
`hmac.digest`. That keeps the hot path
short and makes the exact bytes we sign obvious; the tests verify every token
with pyjwt and with a second, independent JOSE implementation.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from identity_service.attributes import AttributeValue
from identity_service.errors import InvalidUserIdError, SecretUnavailableError
from identity_service.intercom import MAX_USER_ID_CHARS, TOKEN_ALGORITHM
from identity_service.secrets import MIN_SECRET_BYTES
from identity_service.settings import DEFAULT_PLATFORM, Platform, WorkspaceSettings
from identity_service.user_ids import user_id_problem


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(json.dumps({"alg": TOKEN_ALGORITHM, "typ": "JWT"}, separators=(",", ":")).encode())


@dataclass(frozen=True)
class MintedToken:
    """A signed Messenger token and what the caller needs to boot the Messenger with it."""

    token: str
    expires_at: int
    issued_at: int
    jti: str
    user_id: str
    app_id: str
    api_base: str
    attributes: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    platform: Platform = DEFAULT_PLATFORM  # whose secret signed it


def normalize_user_id(user_id: object) -> str:
    """Intercom needs a stable, non-empty string id; integers are converted, nothing else is.

    The text is checked by `user_ids.user_id_problem`, as the authenticators' ids are.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, str | int):
        kind = type(user_id).__name__
        raise InvalidUserIdError(f"user id must be a string or an integer, got {kind}")
    text = str(user_id)
    if not text.strip():
        raise InvalidUserIdError("user id must not be empty")
    if len(text) > MAX_USER_ID_CHARS:
        raise InvalidUserIdError(f"user id is {len(text)} characters; at most {MAX_USER_ID_CHARS}")
    if problem := user_id_problem(text):
        raise InvalidUserIdError(problem)
    return text


def sign(payload: Mapping[str, Any], secret: bytes) -> str:
    """HS256-sign `payload` as compact, standard JSON."""
    if len(secret) < MIN_SECRET_BYTES:
        # Checked at configuration load too; this guards callers that build secrets by hand.
        raise SecretUnavailableError(f"Messenger secret must be at least {MIN_SECRET_BYTES} bytes")
    # The payload is flat (Intercom takes no nested data). orjson would write
    # NaN and Infinity as null, silently changing a value: refuse them, as
    # json.dumps(allow_nan=False) did.
    for value in payload.values():
        if type(value) is float and not math.isfinite(value):
            raise ValueError("Out of range float values are not JSON compliant")
    # Compact UTF-8 JSON in one call; a lone surrogate is refused (TypeError).
    body = orjson.dumps(payload)
    signing_input = _HEADER + b"." + _b64(body)
    signature = hmac.digest(secret, signing_input, "sha256")
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def mint(
    user_id: object,
    attributes: Mapping[str, AttributeValue],
    workspace: WorkspaceSettings,
    now: int,
    warnings: tuple[str, ...] = (),
    platform: Platform = DEFAULT_PLATFORM,
) -> MintedToken:
    """Mint a Messenger token for `user_id` carrying already-clean `attributes`.

    Signed with `platform`'s secret (PlatformNotServedError when the workspace has
    none). `now` is injected (Unix seconds) so that tests freeze time instead of sleeping.
    """
    secret = workspace.secret_for(platform)
    uid = normalize_user_id(user_id)
    exp = now + workspace.token_lifetime
    jti = secrets.token_urlsafe(16)
    # Attributes first, identity claims last: a whitelisted name can never
    # override them (reserved names are refused at load, this is the backstop).
    payload: dict[str, Any] = {**attributes, "user_id": uid, "iat": now, "exp": exp, "jti": jti}
    token = sign(payload, secret.get())
    return MintedToken(
        token=token,
        expires_at=exp,
        issued_at=now,
        jti=jti,
        user_id=uid,
        app_id=workspace.app_id,
        api_base=workspace.api_base,
        attributes=tuple(attributes),
        warnings=warnings,
        platform=platform,
    )
