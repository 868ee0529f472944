"""The product whose session cookie the service verifies: a plain Flask app, as a product has.

Cookies in the tests are made by Flask's own session machinery, never by
hand, so the service is tested against exactly what a Flask product sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface


def product_app(
    secret_key: str,
    fallbacks: tuple[str, ...] = (),
    salt: str = "cookie-session",
    digest: str = "sha1",
) -> Flask:
    """The product: a plain Flask app that logs a user in by filling its session."""

    class Interface(SecureCookieSessionInterface):
        pass

    Interface.salt = salt
    Interface.digest_method = staticmethod(getattr(hashlib, digest))
    app = Flask("product")
    app.secret_key = secret_key
    app.config["SECRET_KEY_FALLBACKS"] = list(fallbacks)
    app.session_interface = Interface()

    @app.post("/login")
    def login() -> str:
        session.update(request.get_json())
        return "ok"

    return app


def product_cookie(
    data: Mapping[str, Any],
    key: str,
    salt: str = "cookie-session",
    digest: str = "sha1",
) -> str:
    """A session cookie signed by the product's Flask session machinery, now."""
    app = product_app(key, salt=salt, digest=digest)
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    return str(serializer.dumps(dict(data)))


def product_cookie_stamped(data: Mapping[str, Any], key: str, timestamp: int) -> str:
    """A cookie validly signed with `key` by Flask's serializer, stamped with any `timestamp`.

    Flask stamps the wall clock; the subclass makes the same serializer stamp a
    value no clock reaches (itsdangerous packs it into 8 bytes, so 2**64 - 1 is
    the largest a signed cookie can carry).
    """
    app = product_app(key)
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None

    class Stamped(serializer.signer):  # type: ignore[name-defined,misc]
        def get_timestamp(self) -> int:
            return timestamp

    serializer.signer = Stamped
    return str(serializer.dumps(dict(data)))
