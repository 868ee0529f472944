"""The Flask extension: one `app.extensions` entry, one wiring path, a product's own app.

docs/embedding.md's Flask example is run as written, on a product app with the
real configuration, issuer and SQL profile source, and the tag it renders is
checked down to the signed token.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from flask import Flask, g, request
from jinja2 import DictLoader

from identity_service import IdentityService, create_app, service_state
from identity_service.http.health import start_draining
from identity_service.http.paths import TOKEN_PATH
from tests.support.service import ServiceFixture, make_service
from tests.test_docs import sections
from tests.test_snippet import options_in

EMBEDDING = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service(tmp_path)


def documented_example() -> tuple[list[str], str]:
    """The Python blocks and the Jinja template of the server-rendered pages section."""
    (body,) = [
        text for title, text in sections(EMBEDDING.read_text()) if title.startswith("Server-")
    ]
    blocks = _BLOCK.findall(body)
    python = [code for lang, code in blocks if lang == "python"]
    (template,) = [code for lang, code in blocks if lang == "jinja"]
    return python, template


def test_the_documented_example_renders_a_tag_with_a_token_of_the_real_issuer(
    service: ServiceFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.add_profile("9", email="ada@pete.example", plan="enterprise", teammates=3)
    monkeypatch.chdir(service.root)  # the example loads "service.toml"
    monkeypatch.setenv("IDENTITY_SERVICE_INSTANCE", str(service.root / "instance"))
    python, template = documented_example()
    assert all("identity_service." not in code for code in python)  # top-level imports only
    user = SimpleNamespace(id=9, email="ada@pete.example", name="Ada")
    namespace: dict[str, Any] = {"__name__": "product", "current_user": lambda: user}
    for code in python:
        exec(compile(code, str(EMBEDDING), "exec"), namespace)  # noqa: S102 (our own docs)
    app: Flask = namespace["app"]
    app.jinja_loader = DictLoader({"page.html": template})
    app.before_request(lambda: setattr(g, "csp_nonce", "abcdefgh12"))

    response = app.test_client().get("/account")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert 'src="https://id.pete.example/v1/messenger/messenger.js"' in html
    assert 'nonce="abcdefgh12"' in html
    options = options_in(html)
    assert options["tokenUrl"] == "https://id.pete.example/v1/messenger/token"
    claims = jwt.decode(options["token"]["token"], service.messenger_secret, algorithms=["HS256"])
    # Plan and teammates are in no claim: they come from user 9's row of the workspace's
    # SQL profile, the source the extension built (the old example built it by hand).
    assert (claims["user_id"], claims["email"], claims["plan"], claims["teammates"]) == (
        "9",
        "ada@pete.example",
        "enterprise",
        3,
    )
    assert "enterprise" not in html.replace(options["token"]["token"], "")
    assert not app.url_map.bind("").test(TOKEN_PATH, method="POST")  # no service routes


def test_the_service_app_keeps_one_extensions_entry(service: ServiceFixture) -> None:
    app = create_app(service.settings)
    ours = [key for key in app.extensions if key.startswith("identity_service")]
    assert ours == ["identity_service"]
    state = service_state(app)
    assert state.settings is service.settings
    assert state.issuer is state.runtime.issuer
    start_draining(app)
    assert state.draining.is_set()
    assert app.extensions == {"identity_service": state}


def test_one_extension_object_serves_two_apps_with_their_own_state(
    service: ServiceFixture,
) -> None:
    messenger = IdentityService(settings=service.settings)
    first, second = Flask("first"), Flask("second")
    messenger.init_app(first)
    messenger.init_app(second)
    assert service_state(first).runtime is not service_state(second).runtime
    assert not hasattr(messenger, "app")  # no app-specific state on the extension object
    with pytest.raises(RuntimeError, match="already initialised"):
        messenger.init_app(first)


def test_an_app_without_the_extension_is_told_how_to_add_it() -> None:
    with pytest.raises(RuntimeError, match=r"IdentityService\(app, settings\)"):
        service_state(Flask("bare"))


def test_without_routes_the_product_app_keeps_its_own_answers(service: ServiceFixture) -> None:
    app = Flask("product")
    IdentityService(app, service.settings)

    @app.get("/")
    def home() -> str:
        return "home"

    client = app.test_client()
    page = client.get("/")
    assert "X-Frame-Options" not in page.headers  # no service header on the product's pages
    missing = client.post(TOKEN_PATH)
    assert missing.status_code == 404
    assert missing.mimetype == "text/html"  # Flask's own 404, not the service's problem+json


def test_with_routes_the_token_endpoint_runs_in_front_of_the_products_hooks(
    service: ServiceFixture,
) -> None:
    app = Flask("product")
    IdentityService(app, service.settings, routes=True)
    seen: list[str] = []

    @app.before_request
    def remember() -> None:
        seen.append(request.path)

    @app.get("/")
    def home() -> str:
        return "home"

    client = app.test_client()
    token = client.post(TOKEN_PATH, headers=service.bearer_headers(), json={})
    page = client.get("/")

    assert token.status_code == 200
    assert token.get_json()["token"]
    assert seen == ["/"]  # the product's hook ran for its page only
    assert page.headers["X-Frame-Options"] == "DENY"  # the product's pages get the service's
    assert client.get("/nowhere").mimetype == "application/problem+json"
