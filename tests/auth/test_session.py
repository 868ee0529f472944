"""Session cookies minted by a real Flask app verify here, and nothing else does."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest
import time_machine
from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup

from identity_service.auth import Identity, RequestView, authenticate
from identity_service.auth.session import DIGESTS, SessionAuthenticator
from identity_service.errors import AuthenticationError, ForbiddenOriginError
from identity_service.secrets import SecretSource
from identity_service.settings import SessionAuthSettings, SessionDigest
from tests.support.product import product_app, product_cookie_stamped

OLD_KEY = "product-secret-key-2024-aaaaaaaaaaaaaaaa"
NEW_KEY = "product-secret-key-2025-bbbbbbbbbbbbbbbb"
OTHER_KEY = "someone-elses-secret-key-cccccccccccccccc"
PRODUCT = "https://pete.example"
SERVICE = "https://id.pete.example"  # this service's own origin
T0 = 1_750_000_000  # when the product signed the cookie
MAX_AGE = 3600


def signed_by(app: Flask, data: dict[str, Any], at: float = T0) -> str:
    """A session cookie exactly as the product's browser would carry it."""
    client = app.test_client()
    with time_machine.travel(at, tick=False):
        client.post("/login", json=data)
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def serialized_by(app: Flask, data: dict[str, Any], at: float = T0) -> str:
    """Sign through Flask's own serializer: for values JSON requests cannot carry."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    with time_machine.travel(at, tick=False):
        return str(serializer.dumps(data))


def secret_file(directory: Path, value: str, name: str = "session.key") -> SecretSource:
    path = directory / name
    path.write_text(value + "\n")
    return SecretSource("file", str(path), f"test {name}", min_bytes=16)


def rotate(source: SecretSource, value: str) -> None:
    """Replace the key file atomically, as an operator would with `mv`."""
    staged = Path(source.reference + ".new")
    staged.write_text(value + "\n")
    os.replace(staged, source.reference)


@pytest.fixture
def make_auth(tmp_path: Path) -> Callable[..., SessionAuthenticator]:
    def make(
        key: str = NEW_KEY, fallbacks: tuple[str, ...] = (), **options: Any
    ) -> SessionAuthenticator:
        sources = tuple(
            secret_file(tmp_path, value, f"fallback{i}.key") for i, value in enumerate(fallbacks)
        )
        settings = SessionAuthSettings(
            secret=secret_file(tmp_path, key),
            fallback_secrets=sources,
            allowed_origins=(PRODUCT,),
            max_age=MAX_AGE,
            **options,
        )
        return SessionAuthenticator(settings)

    return make


def view(cookie: str, origin: str | None = PRODUCT, fetch_site: str | None = None) -> RequestView:
    return RequestView(
        cookies={"session": cookie}, origin=origin, sec_fetch_site=fetch_site, host_origin=SERVICE
    )


def refused(auth: SessionAuthenticator, cookie: str, now: float = T0 + 1) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(view(cookie), now)
    error = caught.value
    assert error.status == 401
    assert error.methods == ("session",)
    assert cookie not in str(error)
    for part in cookie.split("."):
        assert len(part) < 8 or part not in error.detail
    return error


# --- cookies from the real Flask session machinery ---------------------------


def test_cookie_from_flask_client_verifies(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42, "plan": "pro"})
    identity = make_auth().authenticate(view(cookie), T0 + 1)
    assert identity == Identity(user_id="42", method="session", claims=identity.claims)
    assert dict(identity.claims) == {"user_id": 42, "plan": "pro"}


def test_tagged_values_decode_as_flask_decodes_them(
    make_auth: Callable[..., SessionAuthenticator],
) -> None:
    app = product_app(NEW_KEY)
    data: dict[str, Any] = {
        "user_id": "u-1",
        "tuple": (1, "two", (3,)),
        "bytes": b"\x00\xffraw",
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "when": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "html": Markup("<b>hi</b>"),
        "looks_tagged": {" t": ["not", "a", "tuple"]},
        "nested": {"list": [{" u": "plain"}, {"a": 1, "b": [None, True, 1.5]}]},
    }
    cookie = serialized_by(app, data)
    claims = make_auth().authenticate(view(cookie), T0 + 1).claims
    flask_reads = app.session_interface.get_signing_serializer(app).loads(cookie)  # type: ignore[attr-defined]
    assert dict(claims) == flask_reads == data
    assert type(claims["tuple"]) is tuple
    assert type(claims["html"]) is str  # data, not trusted HTML
    assert claims["when"].tzinfo is not None


def test_compressed_cookie_verifies(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": "u-1", "cart": ["same item"] * 200})
    assert cookie.startswith(".")  # itsdangerous zlib-compressed the payload
    assert make_auth().authenticate(view(cookie), T0 + 1).claims["cart"] == ["same item"] * 200


def test_custom_user_id_key(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"_user_id": "7", "user_id": "not this"})
    auth = make_auth(user_id_key="_user_id")  # Flask-Login's key
    assert auth.authenticate(view(cookie), T0 + 1).user_id == "7"


def test_through_the_dispatcher(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 5})
    identity = authenticate(view(cookie), [make_auth()], T0 + 1)
    assert (identity.user_id, identity.method) == ("5", "session")


# --- what must not verify ----------------------------------------------------


def _flip(cookie: str, index: int) -> str:
    replacement = "A" if cookie[index] != "A" else "B"
    return cookie[:index] + replacement + cookie[index + 1 :]


@pytest.mark.parametrize("where", ["payload", "timestamp", "signature"])
def test_tampered_cookie(make_auth: Callable[..., SessionAuthenticator], where: str) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42})
    payload = cookie.split(".")[0]
    index = {"payload": 2, "timestamp": len(payload) + 2, "signature": len(cookie) - 3}[where]
    tampered = _flip(cookie, index)
    assert tampered != cookie
    assert refused(make_auth(), tampered).reason == "bad_signature"


def test_user_id_swapped_into_payload(make_auth: Callable[..., SessionAuthenticator]) -> None:
    # Re-encode another user's payload with the original signature.
    mine = signed_by(product_app(NEW_KEY), {"user_id": 1})
    theirs = serialized_by(product_app(OTHER_KEY), {"user_id": 2})
    forged = ".".join([theirs.split(".")[0], *mine.split(".")[1:]])
    assert refused(make_auth(), forged).reason == "bad_signature"


def test_another_key(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(OTHER_KEY), {"user_id": 42})
    assert refused(make_auth(), cookie).reason == "bad_signature"


def test_another_salt(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY, salt="remember-me"), {"user_id": 42})
    assert refused(make_auth(), cookie).reason == "bad_signature"
    identity = make_auth(salt="remember-me").authenticate(view(cookie), T0 + 1)
    assert identity.user_id == "42"


def test_digest_is_configurable(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY, digest="sha256"), {"user_id": 42})
    assert refused(make_auth(), cookie).reason == "bad_signature"
    assert make_auth(digest="sha256").authenticate(view(cookie), T0 + 1).user_id == "42"


def test_unknown_digest_is_refused(make_auth: Callable[..., SessionAuthenticator]) -> None:
    with pytest.raises(ValueError, match="digest"):
        make_auth(digest="md5")


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "only.two",
        "a.b.c.d",
        "a.b.c.",
        "pay load.ts.sig",
        "pàyload.ts.sig",
        "." + "A" * 9000 + ".ts.sig",
    ],
)
def test_malformed_cookie(make_auth: Callable[..., SessionAuthenticator], cookie: str) -> None:
    assert refused(make_auth(), cookie).reason == "malformed"


def test_signed_but_unreadable_payload(make_auth: Callable[..., SessionAuthenticator]) -> None:
    class NotJson:
        def dumps(self, obj: Any) -> str:
            return "{not json"

        def loads(self, payload: str) -> Any:
            raise NotImplementedError

    signer = URLSafeTimedSerializer(
        NEW_KEY,
        salt="cookie-session",
        serializer=NotJson(),
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    with time_machine.travel(T0, tick=False):
        cookie = signer.dumps({})
    assert refused(make_auth(), cookie).reason == "malformed"


@pytest.mark.parametrize(
    "tagged",
    [
        {" d": "Mon, 01 Jan 2024 00:00:00 +99999999999999999999"},  # OverflowError in parsing
        {" u": "not-a-uuid"},
        {" b": "not base64!"},
        {" t": 5},
        {" di": {"a": 1, "b": 2}},
    ],
    ids=["date offset overflow", "uuid", "bytes", "tuple", "dict"],
)
def test_a_signed_tag_that_cannot_be_read_is_malformed_not_a_500(
    make_auth: Callable[..., SessionAuthenticator], tagged: dict[str, Any]
) -> None:
    # Signed with the product's key but not what Flask would write: each tag's
    # own conversion error (an overflow included) makes the payload unreadable.
    signer = URLSafeTimedSerializer(
        NEW_KEY,
        salt="cookie-session",
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha1},
    )
    with time_machine.travel(T0, tick=False):
        cookie = signer.dumps({"user_id": "u-1", "field": tagged})
    assert refused(make_auth(), cookie).reason == "malformed"


def test_signed_but_not_a_dict(make_auth: Callable[..., SessionAuthenticator]) -> None:
    app = product_app(NEW_KEY)
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    with time_machine.travel(T0, tick=False):
        cookie = serializer.dumps(["user_id", 42])
    assert refused(make_auth(), cookie).reason == "malformed"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"cart": 3}, "missing_claim"),
        ({"user_id": None}, "missing_claim"),
        ({"user_id": ""}, "missing_claim"),
        ({"user_id": "   "}, "missing_claim"),
        ({"user_id": True}, "malformed"),
        ({"user_id": 4.5}, "malformed"),
        ({"user_id": [1]}, "malformed"),
        ({"user_id": {"id": 1}}, "malformed"),
    ],
)
def test_user_id_must_be_there(
    make_auth: Callable[..., SessionAuthenticator], data: dict[str, Any], reason: str
) -> None:
    cookie = signed_by(product_app(NEW_KEY), data)
    assert refused(make_auth(), cookie).reason == reason


# --- age ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (T0, None),
        (T0 + MAX_AGE, None),
        (T0 + MAX_AGE + 0.999, None),  # whole seconds, as itsdangerous counts
        (T0 + MAX_AGE + 1, "expired"),
        (T0 + 10 * MAX_AGE, "expired"),
        (T0 - 1, "expired"),  # dated in the future: refused, as Flask does
    ],
)
def test_max_age_against_injected_now(
    make_auth: Callable[..., SessionAuthenticator], now: float, reason: str | None
) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42})
    auth = make_auth()
    if reason is None:
        assert auth.authenticate(view(cookie), now).user_id == "42"
    else:
        assert refused(auth, cookie, now).reason == reason


def test_wall_clock_is_not_read(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42})
    auth = make_auth()
    with time_machine.travel(T0 + 100 * MAX_AGE, tick=False):
        assert auth.authenticate(view(cookie), T0 + 1).user_id == "42"
    with time_machine.travel(T0, tick=False):
        assert refused(auth, cookie, T0 + MAX_AGE + 1).reason == "expired"


@pytest.mark.parametrize(
    "timestamp",
    [
        253402300799,  # 9999-12-31T23:59:59Z, the last second a datetime can hold
        253402300800,  # year 10000: no datetime
        2**31,
        2**63 - 1,
        2**63,
        2**64 - 1,
    ],
)
def test_a_signed_cookie_dated_past_any_clock_is_refused_as_future(
    make_auth: Callable[..., SessionAuthenticator], timestamp: int
) -> None:
    cookie = product_cookie_stamped({"user_id": 42}, NEW_KEY, timestamp)
    error = refused(make_auth(), cookie)
    assert error.reason == "expired"
    assert error.detail == "the session cookie is dated in the future"


# --- key rotation -------------------------------------------------------------


def test_flask_fallback_rotation(make_auth: Callable[..., SessionAuthenticator]) -> None:
    before = signed_by(product_app(OLD_KEY), {"user_id": "old-session"})
    after = signed_by(product_app(NEW_KEY, fallbacks=(OLD_KEY,)), {"user_id": "new-session"})
    rotating = make_auth(NEW_KEY, fallbacks=(OLD_KEY,))
    assert rotating.authenticate(view(before), T0 + 1).user_id == "old-session"
    assert rotating.authenticate(view(after), T0 + 1).user_id == "new-session"
    assert refused(make_auth(NEW_KEY), before).reason == "bad_signature"
    # A fallback only verifies: the product's app still signs with the current key.
    assert refused(make_auth(OLD_KEY), after).reason == "bad_signature"


def test_several_fallbacks(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(OLD_KEY), {"user_id": 1})
    auth = make_auth(NEW_KEY, fallbacks=(OTHER_KEY, OLD_KEY))
    assert auth.authenticate(view(cookie), T0 + 1).user_id == "1"


def test_key_file_rotated_on_disk_without_restart(tmp_path: Path) -> None:
    key = secret_file(tmp_path, OLD_KEY)
    fallback = secret_file(tmp_path, OTHER_KEY, "fallback.key")
    auth = SessionAuthenticator(
        SessionAuthSettings(secret=key, fallback_secrets=(fallback,), allowed_origins=(PRODUCT,))
    )
    old_cookie = signed_by(product_app(OLD_KEY), {"user_id": "a"})
    new_cookie = signed_by(product_app(NEW_KEY), {"user_id": "b"})
    assert auth.authenticate(view(old_cookie), T0 + 1).user_id == "a"
    assert refused(auth, new_cookie).reason == "bad_signature"

    # Step 1: the new key goes live, the old one becomes the fallback.
    rotate(key, NEW_KEY)
    rotate(fallback, OLD_KEY)
    assert auth.authenticate(view(new_cookie), T0 + 1).user_id == "b"
    assert auth.authenticate(view(old_cookie), T0 + 1).user_id == "a"

    # Step 2: the old key is retired; its cookies stop verifying.
    rotate(fallback, OTHER_KEY)
    assert auth.authenticate(view(new_cookie), T0 + 1).user_id == "b"
    assert refused(auth, old_cookie).reason == "bad_signature"


# --- where the request comes from (CSRF) --------------------------------------


@pytest.mark.parametrize(
    ("origin", "fetch_site", "allowed"),
    [
        pytest.param(PRODUCT, None, True, id="allowed-origin"),
        pytest.param(PRODUCT, "cross-site", True, id="allowed-origin-cross-site"),
        pytest.param(SERVICE, None, True, id="own-origin"),
        pytest.param(SERVICE, "same-origin", True, id="own-origin-same-origin"),
        pytest.param(None, "same-origin", True, id="no-origin-same-origin"),
        pytest.param(None, None, False, id="no-origin-no-fetch-site"),
        pytest.param(None, "cross-site", False, id="no-origin-cross-site"),
        pytest.param(None, "same-site", False, id="no-origin-same-site"),
        pytest.param(None, "none", False, id="no-origin-user-initiated"),
        pytest.param(None, "", False, id="no-origin-empty-fetch-site"),
        pytest.param("null", None, False, id="null-origin"),
        pytest.param("null", "same-origin", False, id="null-origin-same-origin"),
        pytest.param("", "same-origin", False, id="empty-origin"),
        pytest.param("https://evil.example", "same-origin", False, id="other-origin-lying"),
        pytest.param("https://pete.example.evil.com", None, False, id="look-alike-suffix"),
        pytest.param("https://evilpete.example", None, False, id="look-alike-prefix"),
        pytest.param("https://evil.com/https://pete.example", None, False, id="embedded"),
        pytest.param("http://pete.example", None, False, id="scheme-downgrade"),
        pytest.param("https://pete.example:8443", None, False, id="other-port"),
        pytest.param("https://pete.example/", None, False, id="trailing-slash"),
        pytest.param("https://sub.pete.example", None, False, id="sibling-subdomain"),
    ],
)
def test_origin_matrix(
    make_auth: Callable[..., SessionAuthenticator],
    origin: str | None,
    fetch_site: str | None,
    allowed: bool,
) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42})
    auth = make_auth()
    request = view(cookie, origin=origin, fetch_site=fetch_site)
    if allowed:
        assert auth.authenticate(request, T0 + 1).user_id == "42"
    else:
        with pytest.raises(ForbiddenOriginError) as caught:
            auth.authenticate(request, T0 + 1)
        assert caught.value.status == 403
        assert caught.value.reason in {"origin", "fetch_site"}
        assert cookie not in caught.value.detail


def test_own_origin_unknown_means_no_match(make_auth: Callable[..., SessionAuthenticator]) -> None:
    cookie = signed_by(product_app(NEW_KEY), {"user_id": 42})
    request = RequestView(cookies={"session": cookie}, origin=SERVICE, host_origin=None)
    with pytest.raises(ForbiddenOriginError):
        make_auth().authenticate(request, T0 + 1)


@pytest.mark.parametrize("cookie", ["garbage", "expired"])
def test_origin_is_checked_before_the_cookie(
    make_auth: Callable[..., SessionAuthenticator], cookie: str
) -> None:
    # The same 403 whatever the cookie holds: a cross-site page learns nothing.
    if cookie == "expired":
        cookie = signed_by(product_app(NEW_KEY), {"user_id": 42}, at=T0 - 10 * MAX_AGE)
    with pytest.raises(ForbiddenOriginError):
        make_auth().authenticate(view(cookie, origin="https://evil.example"), T0)


# --- applies ------------------------------------------------------------------


def test_applies_only_when_the_cookie_is_there(
    make_auth: Callable[..., SessionAuthenticator],
) -> None:
    auth = make_auth()
    assert auth.applies(RequestView(cookies={"session": "x.y.z"})) is True
    assert auth.applies(RequestView(cookies={})) is False
    assert auth.applies(RequestView(cookies={"session": ""})) is False  # Flask: no session
    assert auth.applies(RequestView(cookies={"other": "x.y.z"})) is False
    assert auth.applies(RequestView(authorization="Bearer abc")) is False


def test_custom_cookie_name(make_auth: Callable[..., SessionAuthenticator]) -> None:
    app = product_app(NEW_KEY)
    app.config["SESSION_COOKIE_NAME"] = "pete_session"
    client = app.test_client()
    with time_machine.travel(T0, tick=False):
        client.post("/login", json={"user_id": 9})
    cookie = client.get_cookie("pete_session")
    assert cookie is not None
    auth = make_auth(cookie_name="pete_session")
    request = RequestView(cookies={"pete_session": cookie.value}, origin=PRODUCT)
    assert auth.applies(request) is True
    assert auth.applies(view(cookie.value)) is False
    assert auth.authenticate(request, T0 + 1).user_id == "9"


def test_the_digests_are_the_ones_the_loader_accepts() -> None:
    assert set(DIGESTS) == set(get_args(SessionDigest))
