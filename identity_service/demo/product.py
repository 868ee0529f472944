"""Pete, the demo product: login, the signed-in page with the Messenger, logout.

`create_demo_app` serves Pete and the identity service from one origin: Pete's
routes go to Pete's Flask app, every other path to `create_app(settings)`. Pete
signs its session cookie with Flask's own session machinery, keyed by the
default workspace's session authenticator secret (the bundled configuration's
development key), so the service recognises a logged-in demo user exactly as it
recognises a real product's users: by verifying that cookie.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Response as BaseResponse

from identity_service import create_app
from identity_service.auth.session import DIGESTS
from identity_service.demo import database, idp
from identity_service.frontend.embed import embed_html, messenger_options
from identity_service.frontend.public_config import MessengerConfig
from identity_service.http.paths import SCRIPT_PATH, TOKEN_PATH
from identity_service.secrets import SecretSource
from identity_service.settings import (
    BearerAuthSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

EXTENSION = "identity_service.demo"
STAND_IN_WIDGET_URL = "/demo/widget.js"
CSRF_KEY = "csrf"
CSRF_FIELD = "csrf_token"
LOGIN_FAILED = "Wrong email or password."
CSRF_FAILED = "This form has expired or did not come from this page. Reload it and try again."

bp = Blueprint(
    "pete",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/demo",
)


class DemoSetupError(Exception):
    """The configuration cannot run the demo (say, no session authentication)."""


@dataclass(frozen=True)
class Demo:
    """What Pete's views need: the workspace, its session settings, the database, the widget."""

    workspace: WorkspaceSettings
    auth: SessionAuthSettings
    database: Path
    widget_url: str
    real_widget: bool
    secret_files: Mapping[str, str]
    idp_key: EllipticCurvePrivateKey | None  # the development IdP's, when the demo uses it


def session_auth(workspace: WorkspaceSettings) -> SessionAuthSettings:
    """The workspace's (first) session authenticator settings; the demo cannot run without one."""
    for method in workspace.auth:
        if isinstance(method, SessionAuthSettings):
            return method
    raise DemoSetupError(
        f"workspace {workspace.key!r} has no [[workspaces.{workspace.key}.auth]] with "
        'method = "session": the demo logs users in with a session cookie the service '
        "must be able to verify"
    )


class ServiceCompatibleSessions(SecureCookieSessionInterface):
    """Flask's own signed-cookie sessions, with the salt and digest the service verifies."""

    def __init__(self, auth: SessionAuthSettings) -> None:
        self.salt = auth.salt
        self.digest_method = DIGESTS[auth.digest]


def create_product(settings: Settings, database_file: Path, *, widget_url: str) -> Flask:
    """Pete's Flask app for the default workspace of `settings`."""
    workspace = settings.workspace(None)
    auth = session_auth(workspace)
    app = Flask(__name__, static_folder=None)
    app.config.update(
        # The key the service's session authenticator reads (fallbacks first, as Flask
        # and itsdangerous order them: oldest to newest, the newest signs).
        SECRET_KEY=auth.secret.get(),
        SECRET_KEY_FALLBACKS=[source.get() for source in auth.fallback_secrets],
        SESSION_COOKIE_NAME=auth.cookie_name,
        SESSION_COOKIE_PATH="/",  # the token endpoint, on this origin, must receive it
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=auth.max_age),
    )
    app.session_interface = ServiceCompatibleSessions(auth)
    app.extensions[EXTENSION] = Demo(
        workspace=workspace,
        auth=auth,
        database=database_file,
        widget_url=widget_url,
        real_widget=widget_url != STAND_IN_WIDGET_URL,
        secret_files={
            "Messenger secret": describe_secret(workspace.secret_for("web")),
            "session key": describe_secret(auth.secret),
        },
        idp_key=idp.signing_key(settings.service.instance_path)
        if uses_demo_idp(workspace)
        else None,
    )
    app.register_blueprint(bp)
    app.jinja_env.globals["csrf_token"] = csrf_token
    return app


def uses_demo_idp(workspace: WorkspaceSettings) -> bool:
    """Whether `identity-service demo` pointed this workspace's bearer method at the demo IdP."""
    return any(
        isinstance(method, BearerAuthSettings) and method.issuer == idp.ISSUER
        for method in workspace.auth
    )


def shown_path(path: Path | str) -> str:
    """`path` relative to the working directory when it is below it (shorter on the page)."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def describe_secret(source: SecretSource) -> str:
    """Where a secret comes from, for the page (never its value)."""
    if source.kind == "dev":
        return f"generated development file {shown_path(source.reference)}"
    if source.kind == "file":
        return f"file {shown_path(source.reference)}"
    return source.describe()


class OneOrigin:
    """One WSGI app for one origin: paths Pete routes go to Pete, all others to the service.

    Pete's own URL map decides, so new service endpoints need no change here,
    and the service's paths are served unchanged (no prefix is stripped).
    """

    def __init__(self, product: Flask, service: Flask) -> None:
        self.product = product
        self.service = service

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target: WSGIApplication = self.product if self.routes_to_product(environ) else self.service
        return target(environ, start_response)

    def routes_to_product(self, environ: WSGIEnvironment) -> bool:
        """Whether Pete's URL map knows this path (with any method)."""
        adapter = self.product.url_map.bind_to_environ(environ)
        try:
            adapter.match()
        except NotFound:
            return False
        except HTTPException:
            return True  # Pete's path with another method, or a redirect: Pete answers
        return True


def create_demo_app(
    settings: Settings, database_file: Path, *, widget_url: str = STAND_IN_WIDGET_URL
) -> OneOrigin:
    """Pete and the identity service on one origin, as one WSGI application."""
    product = create_product(settings, database_file, widget_url=widget_url)
    return OneOrigin(product, create_app(settings))


# -- views ------------------------------------------------------------------------------


def demo() -> Demo:
    current: Demo = current_app.extensions[EXTENSION]
    return current


def csrf_token() -> str:
    """This session's CSRF token (created on first use); forms echo it back."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def csrf_ok() -> bool:
    """Whether the form carries this session's CSRF token (double submit: cookie and form)."""
    expected = session.get(CSRF_KEY)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())


def current_user() -> dict[str, Any] | None:
    """The logged-in user's profile row, or None (a deleted account logs its session out)."""
    user_id = session.get(demo().auth.user_id_key)
    if not isinstance(user_id, str):
        return None
    profile = database.load_profile(demo().database, user_id)
    if profile is None:
        session.clear()
    return profile


@bp.before_app_request
def make_nonce() -> None:
    g.csp_nonce = secrets.token_urlsafe(16)


@bp.after_app_request
def page_headers(response: Response) -> Response:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["X-Frame-Options"] = "DENY"
    if response.mimetype == "text/html":
        # Pages show a user's profile: never cache them.
        headers["Cache-Control"] = "no-store"
        nonce = g.get("csp_nonce") or secrets.token_urlsafe(16)
        headers["Content-Security-Policy"] = content_security_policy(
            nonce, real_widget=demo().real_widget
        )
    return response


def content_security_policy(nonce: str, *, real_widget: bool) -> str:
    """A strict nonce-based policy; Intercom's own hosts are left open with the real widget."""
    common = "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    if real_widget:
        # Intercom's widget loads scripts, frames, fonts, images and websockets from
        # many hosts it changes over time; that list is the product's to maintain.
        return common
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; "
        f"style-src 'self'; img-src 'self' data:; connect-src 'self'; {common}"
    )


def messenger_snippet() -> Markup:
    """The generated embed: messenger.js from the service (SRI-pinned), then startMessenger."""
    current = demo()
    config = MessengerConfig.for_workspace(current.workspace, TOKEN_PATH, current.widget_url)
    options = messenger_options(config)
    return Markup(embed_html(options, script_url=SCRIPT_PATH, nonce=g.csp_nonce))  # noqa: S704 (escaped by the helpers)


def login_page(error: str | None = None, email: str = "", status: int = 200) -> Response:
    html = render_template(
        "login.html",
        users=database.DEMO_USERS,
        password=database.DEMO_PASSWORD,
        error=error,
        email=email,
        nonce=g.csp_nonce,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.get("/")
def home() -> Response:
    """The signed-in page with the Messenger, or the login form."""
    user = current_user()
    if user is None:
        return login_page()
    current = demo()
    html = render_template(
        "home.html",
        user=user,
        snippet=messenger_snippet(),
        nonce=g.csp_nonce,
        real_widget=current.real_widget,
        database=shown_path(current.database),
        secret_files=current.secret_files,
        workspace=current.workspace,
        token_path=TOKEN_PATH,
        script_path=SCRIPT_PATH,
    )
    return Response(html, mimetype="text/html")


@bp.post("/login")
def login() -> BaseResponse:
    """Check the CSRF token, then the email and password; start a fresh session."""
    email = request.form.get("email", "")
    if not csrf_ok():
        return login_page(CSRF_FAILED, email, status=400)
    user = database.authenticate(demo().database, email, request.form.get("password", ""))
    if user is None:
        # One message and one status for an unknown email and a wrong password.
        return login_page(LOGIN_FAILED, email, status=401)
    # A new session on login: nothing from before (a planted CSRF token) carries over.
    session.clear()
    session[demo().auth.user_id_key] = user["id"]
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    return redirect(url_for(".home"), 303)


@bp.post("/logout")
def logout() -> BaseResponse:
    """End the session (the page has already shut the Messenger down)."""
    if not csrf_ok():
        return Response(CSRF_FAILED, status=400, mimetype="text/plain")
    session.clear()  # Flask then deletes the cookie
    return redirect(url_for(".home"), 303)


# -- the development identity provider (DEVELOPMENT ONLY, see idp.py) ---------------------


def idp_key() -> EllipticCurvePrivateKey:
    key = demo().idp_key
    if key is None:  # the configuration has its own bearer method: no demo IdP
        raise NotFound()
    return key


@bp.get(idp.JWKS_PATH)
def idp_jwks() -> Response:
    """The demo IdP's public key, which the service fetches like any IdP's JWKS."""
    response = jsonify(idp.jwks(idp_key()))
    response.headers["Cache-Control"] = "max-age=60"
    return response


def idp_error(status: int, error: str, description: str) -> Response:
    response = jsonify({"error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post(idp.TOKEN_PATH)
def idp_token() -> Response:
    """A bearer token for a demo user, for JSON `{"email", "password"}` (or the same as a form).

    No cookie is read or set, so there is nothing for a cross-site form to ride on.
    """
    key = idp_key()
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        return idp_error(400, "invalid_request", 'send {"email": ..., "password": ...}')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        return idp_error(400, "invalid_request", "email and password must be strings")
    user = database.authenticate(demo().database, email, password) if email and password else None
    if user is None:
        return idp_error(401, "invalid_grant", idp.REFUSED)
    token = idp.issue(key, user["id"], user["email"], user["name"], int(time.time()))
    response = jsonify(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": idp.TOKEN_LIFETIME,
            "warning": idp.WARNING,
        }
    )
    response.headers["Cache-Control"] = "no-store"
    return response
