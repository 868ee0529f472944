"""Two live servers on 127.0.0.1 and a page driver for the browser tests.

- The identity service: the real app (`create_app(load_settings(toml))`), with
  session-cookie and bearer authentication, two workspaces (one with 60 s tokens).
- A product site on another port: serves the host pages, the fake Intercom
  widget, and server-rendered pages whose `render_messenger_tag` comes from the
  `IdentityService` extension on the product's own Flask app (its own issuer,
  built from the same configuration), as docs/embedding.md shows.

Product and service are different origins, as in production, so CORS, the
session authenticator's Origin check and SRI on a cross-origin script are all
exercised for real.
"""

from __future__ import annotations

import itertools
import json
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, render_template_string
from playwright.sync_api import ConsoleMessage, Dialog, Page
from werkzeug.serving import BaseWSGIServer, make_server

from identity_service import IdentityService, create_app, load_settings
from identity_service.frontend.embed import loader_tag, messenger_options
from identity_service.frontend.public_config import MessengerConfig
from identity_service.http.paths import SCRIPT_PATH, TOKEN_PATH
from identity_service.settings import Settings
from tests.support.product import product_cookie

HERE = Path(__file__).parent
_slots = itertools.count()
FAKE_WIDGET = HERE / "fake_widget.js"
MESSENGER_SECRET = "browser-tests-messenger-secret-0123456789abcdef"
SESSION_KEY = "browser-tests-product-session-key"
IDP_ISSUER = "https://idp.product.test/"
IDP_AUDIENCE = "identity-service"

CONFIG = """
default_workspace = "main"

[service]
cors_origins = ["{product}"]

[service.rate_limit]
per_client = "10000/minute"
per_user = "10000/minute"

[workspaces.main]
app_id = "fakeapp1"
region = "eu"
secret_file = "messenger.secret"
token_lifetime = 3600
{attributes_main}
{auth_main}

[workspaces.short]
app_id = "fakeapp2"
region = "us"
secret_file = "messenger.secret"
token_lifetime = 60
{attributes_short}
{auth_short}
"""

ATTRIBUTES = """
[[workspaces.{ws}.attributes]]
name = "email"
type = "string"
claim = "email"

[[workspaces.{ws}.attributes]]
name = "plan"
type = "string"
claim = "plan"

[[workspaces.{ws}.attributes]]
name = "teammates"
type = "integer"
claim = "teammates"
"""

AUTH = """
[[workspaces.{ws}.auth]]
method = "session"
secret_file = "session.secret"
allowed_origins = ["{product}"]

[[workspaces.{ws}.auth]]
method = "bearer"
issuer = "{issuer}"
audience = "{audience}"
algorithms = ["RS256"]
key_file = "idp-public.pem"
"""


class LiveServer:
    """A WSGI app served by werkzeug on an ephemeral 127.0.0.1 port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


@dataclass
class ProductSite:
    """The product's own pages, registered by tests at run time."""

    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    rendered: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=dict)
    assets: dict[str, bytes] = field(default_factory=dict)  # scripts, such as npm bundles
    widget_requests: int = 0
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> Flask:
        product = Flask("product")

        @product.get("/widget/<app_id>")
        def widget(app_id: str) -> Response:
            self.widget_requests += 1
            return Response(FAKE_WIDGET.read_bytes(), mimetype="text/javascript")

        @product.get("/page/<name>")
        def page(name: str) -> Response:
            html, headers = self.pages[name]
            return Response(html, mimetype="text/html", headers=headers)

        @product.get("/asset/<name>")
        def asset(name: str) -> Response:
            return Response(self.assets[name], mimetype="text/javascript")

        @product.get("/rendered/<name>")
        def rendered(name: str) -> Response:
            template, context, headers = self.rendered[name]
            return Response(
                render_template_string(template, **context), mimetype="text/html", headers=headers
            )

        return product


@dataclass
class Stack:
    """The identity service and the product site, as a test sees them."""

    identity: LiveServer
    product: LiveServer
    site: ProductSite
    settings: Settings
    idp_key: rsa.RSAPrivateKey
    product_app: Flask

    @property
    def identity_url(self) -> str:
        return self.identity.url

    @property
    def product_url(self) -> str:
        return self.product.url

    @property
    def token_url(self) -> str:
        return self.identity.url + TOKEN_PATH

    @property
    def script_url(self) -> str:
        return self.identity.url + SCRIPT_PATH

    @property
    def widget_url(self) -> str:
        return self.product.url + "/widget/{app_id}"

    def secret(self, workspace: str = "main") -> bytes:
        return self.settings.workspaces[workspace].secret.get()

    def session_cookie(self, data: Mapping[str, Any]) -> str:
        """A session cookie exactly as Flask's SecureCookieSessionInterface would sign it."""
        return product_cookie(data, SESSION_KEY)

    def idp_token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "iat": now, "exp": now + 600, **claims}
        return jwt.encode(payload, self.idp_key, algorithm="RS256")

    def options(self, workspace: str = "main", **overrides: Any) -> dict[str, Any]:
        """startMessenger options as the real generator writes them, pointed at the fake widget."""
        config = MessengerConfig.for_workspace(
            self.settings.workspace(workspace), self.token_url, self.widget_url
        )
        options = messenger_options(config)
        options.update(overrides)
        return options

    def add_page(
        self,
        body: str,
        *,
        head: str = "",
        headers: Mapping[str, str] | None = None,
        nonce: str | None = None,
        prelude: str = "",
        loader: bool = True,
    ) -> str:
        """Register a host page: `prelude`, the SRI-pinned loader from the service, `body`."""
        name = f"p{next(self.site.counter)}"
        tag = loader_tag(self.script_url, nonce=nonce) if loader else ""
        html = (
            "<!doctype html><html><head><meta charset='utf-8'><title>host page</title>"
            f"{head}</head><body><h1>Product page</h1>{prelude}{tag}{body}</body></html>"
        )
        self.site.pages[name] = (html, dict(headers or {}))
        return f"{self.product_url}/page/{name}"

    def add_asset(self, name: str, data: bytes) -> str:
        """Serve `data` as a script of the product site; returns its URL."""
        self.site.assets[name] = data
        return f"{self.product_url}/asset/{name}"

    def add_rendered(
        self, template: str, context: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> str:
        """Register a server-rendered (Jinja) page of the product site."""
        name = f"r{next(self.site.counter)}"
        self.site.rendered[name] = (template, dict(context), dict(headers or {}))
        return f"{self.product_url}/rendered/{name}"


def start_script(options: Mapping[str, Any], extra_js: str = "") -> str:
    """An inline script that starts the messenger; `extra_js` is merged into the options."""
    merge = f"Object.assign(options, {extra_js});" if extra_js else ""
    return textwrap.dedent(
        f"""
        <script>
          var options = {json.dumps(options)};
          {merge}
          window.messenger = IdentityServiceMessenger.startMessenger(options);
        </script>
        """
    )


def free_port() -> int:
    """A port nothing listens on (bound, then released): "the token endpoint is down"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def build_stack(root: Path) -> Stack:
    """Write keys and configuration under `root`, then start product and identity servers."""
    site = ProductSite()
    product_app = site.app()
    product = LiveServer(product_app)
    idp_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (root / "idp-public.pem").write_bytes(
        idp_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for name, value in (("messenger.secret", MESSENGER_SECRET), ("session.secret", SESSION_KEY)):
        (root / name).write_text(value + "\n")
        (root / name).chmod(0o600)
    parts = {"product": product.url, "issuer": IDP_ISSUER, "audience": IDP_AUDIENCE}
    text = CONFIG.format(
        product=product.url,
        attributes_main=ATTRIBUTES.format(ws="main"),
        attributes_short=ATTRIBUTES.format(ws="short"),
        auth_main=AUTH.format(ws="main", **parts),
        auth_short=AUTH.format(ws="short", **parts),
    )
    (root / "service.toml").write_text(text)
    settings = load_settings(
        root / "service.toml", {"IDENTITY_SERVICE_INSTANCE": str(root / "instance")}
    )
    identity_app = create_app(settings)
    identity = LiveServer(identity_app)
    IdentityService(
        product_app,
        settings,
        token_url=identity.url + TOKEN_PATH,
        script_url=identity.url + SCRIPT_PATH,
        widget_url=product.url + "/widget/{app_id}",
    )
    return Stack(identity, product, site, settings, idp_key, product_app)


@dataclass
class Browsing:
    """A page plus what it said: console messages, dialogs, token-endpoint requests."""

    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    token_requests: list[str] = field(default_factory=list)

    def attach(self, token_path: str = TOKEN_PATH) -> None:
        def on_console(message: ConsoleMessage) -> None:
            self.console.append((message.type, message.text))

        def on_dialog(dialog: Dialog) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("console", on_console)
        self.page.on("dialog", on_dialog)
        self.page.on(
            "request",
            lambda request: (
                self.token_requests.append(request.method)
                if request.url.endswith(token_path) and request.method == "POST"
                else None
            ),
        )

    def warnings(self) -> list[str]:
        return [text for kind, text in self.console if kind == "warning"]

    def calls(self) -> list[dict[str, Any]]:
        """Every call the (fake) widget received, in order."""
        calls: list[dict[str, Any]] = self.page.evaluate("window.__widgetCalls || []")
        return calls

    def wait_until(self, predicate_js: str, timeout: float = 10.0) -> Any:
        """Poll from Python: the page's own timers may be faked by page.clock."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.page.evaluate(predicate_js)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {predicate_js}")
            time.sleep(0.05)

    def settle(self, promise_js: str, timeout: float = 10.0) -> Any:
        """The value a page promise resolves to, or a failure after `timeout` real seconds.

        page.evaluate would wait for ever on a promise that never settles, which is
        exactly what a broken retry loop produces; this polls instead.
        """
        slot = f"__settled{next(_slots)}"
        self.page.evaluate(
            f"""() => {{ Promise.resolve({promise_js}).then(
                value => {{ window.{slot} = {{value}}; }},
                error => {{ window.{slot} = {{error: String(error)}}; }}); }}"""
        )
        outcome: dict[str, Any] = self.wait_until(f"window.{slot}", timeout)
        if "error" in outcome:
            raise AssertionError(f"{promise_js} rejected: {outcome['error']}")
        return outcome.get("value")

    def wait_for_call(
        self, method: str, matching: Callable[[dict[str, Any]], bool] = lambda c: True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while True:
            found = [c for c in self.calls() if c["method"] == method and matching(c)]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"the widget never received {method!r}: {self.calls()}")
            time.sleep(0.05)
