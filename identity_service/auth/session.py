"""The product's own signed session cookie, verified exactly as Flask would.

A Flask product logs its users in with `SecureCookieSessionInterface`: an
itsdangerous `URLSafeTimedSerializer` (salt "cookie-session", HMAC key
derivation, SHA-1, Flask's tagged JSON) over the session dict. Sharing the
product's `SECRET_KEY` (and `SECRET_KEY_FALLBACKS` during a rotation) lets us
recognise the same users without a second login, and without importing Flask:
the tagged-JSON decoding is reimplemented here, for reading only.

Browsers attach cookies to every request to our host, whoever started it, so a
cookie-authenticated request must also prove where it comes from (Origin /
Sec-Fetch-Site); otherwise any page on the web could mint a token for its
visitor.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import b64decode
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

from itsdangerous import BadPayload, BadSignature, TimestampSigner, URLSafeTimedSerializer

from identity_service.auth import Identity, Method, RequestView
from identity_service.errors import AuthenticationError, AuthReason, ForbiddenOriginError
from identity_service.settings import SessionAuthSettings, SessionDigest

# Spelled out even where equal to Flask's defaults: these decide whether a
# cookie verifies, so a library default changing must not change them silently.
KEY_DERIVATION = "hmac"
# Keyed by the digests the loader accepts (settings.SessionDigest; a test holds them equal).
DIGESTS: Mapping[SessionDigest, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
# Browsers keep at most ~4 KiB per cookie; anything much larger was not set by
# the product, and refusing it early keeps HMAC and zlib work bounded.
MAX_COOKIE_CHARS = 8192
# payload.timestamp.signature in URL-safe base64; a leading "." marks a zlib payload.
_COOKIE_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_METHODS = ("session",)
# Where a signed timestamp no datetime can hold (past 9999-12-31) is placed: in the future.
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


class SessionAuthenticator:
    """Recognise a user by the product's Flask session cookie."""

    method: Method = "session"

    def __init__(self, settings: SessionAuthSettings) -> None:
        if settings.digest not in DIGESTS:  # the loader refuses it; settings built in code may not
            raise ValueError(f"session digest must be one of {sorted(DIGESTS)}")
        self.settings = settings
        self._digest = DIGESTS[settings.digest]
        # (keys, serializer) swapped as one tuple: readers on other threads see
        # either the old pair or the new one, never a key list with the wrong
        # serializer; building it twice in a race is harmless.
        self._cached: tuple[tuple[bytes, ...], URLSafeTimedSerializer] | None = None

    def refused(self) -> bool:
        """Whether the current key's file is refused now, its last good value in use (/readyz)."""
        self.settings.secret.current()  # a stat(): notices a file that broke since the last cookie
        return self.settings.secret.refused is not None

    def applies(self, request: RequestView) -> bool:
        """Whether the session cookie is present; empty means "no session", as in Flask."""
        return bool(request.cookies.get(self.settings.cookie_name))

    def authenticate(self, request: RequestView, now: float) -> Identity:
        """The user behind a signed, unexpired cookie sent from an allowed origin."""
        # Origin first: a cross-site request with a cookie gets the same 403
        # whatever the cookie holds, so it cannot probe whether the session is
        # valid or expired, and we spend no crypto on requests we would refuse.
        self._check_origin(request)
        session = self._verify(request.cookies.get(self.settings.cookie_name, ""), now)
        return Identity(user_id=self._user_id(session), method="session", claims=session)

    def _check_origin(self, request: RequestView) -> None:
        origin = request.origin
        if origin is not None:
            # Exact string match only: browsers serialise Origin canonically,
            # and any prefix/suffix logic lets https://pete.example.evil.com in.
            # "null" (sandboxed frames, file:, some redirects) is never trusted.
            if origin != "null" and (
                origin in self.settings.allowed_origins or origin == request.host_origin
            ):
                return
            raise ForbiddenOriginError(
                "cookie authentication is refused from this origin; the product's origin "
                "must be listed in allowed_origins",
                reason="origin",
            )
        # No Origin header: only a browser's own statement that the request
        # came from our origin will do. same-site is not enough (a sibling
        # subdomain may be attacker-controlled), and a request without either
        # header cannot show where it comes from.
        if request.sec_fetch_site == "same-origin":
            return
        raise ForbiddenOriginError(
            "cookie authentication needs an allowed Origin header or Sec-Fetch-Site: same-origin",
            reason="fetch_site",
        )

    def _serializer(self) -> URLSafeTimedSerializer:
        # Read on every request: SecretSource.get() is a stat() for files, so a
        # rotated key is picked up without a restart. Order as Flask builds it:
        # fallbacks, then the current key last (itsdangerous: newest last, all verify).
        # The current key is *read* first: operators rotate by copying the outgoing key
        # into the fallback file, then replacing the current one, and a request whose
        # reads straddle both renames then still holds the outgoing key in one of them
        # (read the other way round it could hold neither; tests/test_rotation.py).
        # A fallback whose file was removed, emptied or shortened is revoked: left out.
        current = self.settings.secret.get()
        fallbacks = (s.current() for s in self.settings.fallback_secrets)
        keys = (*(key for key in fallbacks if key is not None), current)
        cached = self._cached
        if cached is not None and cached[0] == keys:
            return cached[1]
        serializer = URLSafeTimedSerializer(
            list(keys),
            salt=self.settings.salt,
            serializer=_FlaskTaggedJSON(),
            signer=_TimestampSigner,
            signer_kwargs={"key_derivation": KEY_DERIVATION, "digest_method": self._digest},
        )
        self._cached = (keys, serializer)
        return serializer

    def _verify(self, cookie: str, now: float) -> dict[str, Any]:
        if len(cookie) > MAX_COOKIE_CHARS or not _COOKIE_SHAPE.fullmatch(cookie):
            raise _fail("malformed", "the session cookie is not a signed session")
        try:
            # No max_age here: itsdangerous would read the wall clock, and time
            # is injected. The signature (all keys tried) is checked first.
            data, signed_at = self._serializer().loads(cookie, return_timestamp=True)
        except BadPayload:
            raise _fail("malformed", "the session cookie's content cannot be read") from None
        except BadSignature:
            raise _fail("bad_signature", "the session cookie's signature is not valid") from None
        # Whole seconds, as itsdangerous (and so Flask) computes the age.
        age = int(now) - int(signed_at.timestamp())
        if age > self.settings.max_age:
            raise _fail("expired", "the session has expired; log in again")
        if age < 0:
            raise _fail("expired", "the session cookie is dated in the future")
        if not isinstance(data, dict):
            raise _fail("malformed", "the session cookie does not hold a session")
        return data

    def _user_id(self, session: Mapping[str, Any]) -> str:
        key = self.settings.user_id_key
        value = session.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _fail("missing_claim", f"the session has no {key!r}: the user is not logged in")
        # bool is an int subclass, but True is not a user id.
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _fail("malformed", f"the session's {key!r} must be a string or an integer")
        return str(value)


class _TimestampSigner(TimestampSigner):
    """itsdangerous's timestamp signer, for a stamp past what a datetime can hold too.

    A cookie signed with the product's key may carry any 8-byte timestamp, and
    itsdangerous turns it into a datetime only after the signature verified:
    past year 9999 (or the platform's time_t) that raised out of `loads` as a
    500. Such a stamp is in the future, and refused as any future stamp is.
    """

    def timestamp_to_datetime(self, ts: int) -> datetime:
        try:
            return super().timestamp_to_datetime(ts)
        except (ValueError, OverflowError, OSError):  # OSError: some platforms' time_t
            return _FAR_FUTURE


def _fail(reason: AuthReason, detail: str) -> AuthenticationError:
    return AuthenticationError(reason, detail, methods=_METHODS)


class _FlaskTaggedJSON:
    """Read-only twin of `flask.json.tag.TaggedJSONSerializer` with Flask's default tags.

    Markup (" m") comes back as a plain `str`: session values are data to us,
    never trusted HTML, so they must not carry Markup's "already escaped" flag.
    """

    def loads(self, payload: str, /) -> Any:
        return _untag_scan(json.loads(payload))

    def dumps(self, obj: Any, /) -> str:
        # Untagged, so not a full twin: itsdangerous only calls it to learn that
        # this serializer produces text. Sessions are issued by the product, never here.
        return json.dumps(obj, separators=(",", ":"))


def _tagged_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    # A one-key dict whose key looks like a tag was stored with "__" appended.
    ((key, item),) = value.items()
    return {key[:-2]: item}


def _http_date(value: str) -> datetime | None:
    # As werkzeug.http.parse_date: an aware datetime (naive taken as UTC), or None.
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_TAGS: Mapping[str, Callable[[Any], Any]] = {
    " di": _tagged_dict,
    " t": tuple,
    " b": b64decode,
    " m": str,
    " u": UUID,
    " d": _http_date,
}


def _untag_scan(value: Any) -> Any:
    # Children first, then the dict itself: the reverse of the order Flask tags in.
    if isinstance(value, dict):
        value = {k: _untag_scan(v) for k, v in value.items()}
        if len(value) == 1:
            key = next(iter(value))
            if key in _TAGS:
                return _TAGS[key](value[key])
        return value
    if isinstance(value, list):
        return [_untag_scan(item) for item in value]
    return value
