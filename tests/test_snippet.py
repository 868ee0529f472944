"""snippet.py: escaping, nonce, SRI and CSP hashes, options, the Jinja global, the CLI."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from flask import Flask, render_template_string
from hypothesis import given
from hypothesis import strategies as st

from identity_service import create_app
from identity_service.auth import Identity
from identity_service.checklist import admin_checklist
from identity_service.cli import frontend as frontend_cli
from identity_service.errors import UnsafeSnippetError
from identity_service.frontend.embed import (
    embed_html,
    inline_script,
    loader_tag,
    messenger_options,
    render_messenger_tag,
)
from identity_service.frontend.escaping import (
    check_nonce,
    check_script_url,
    inline_json,
)
from identity_service.frontend.jinja import register_jinja
from identity_service.frontend.public_config import MessengerConfig
from identity_service.frontend.script import (
    MODULE_FOOTER,
    csp_hash_source,
    messenger_integrity,
    messenger_js,
    messenger_module,
    sri_sha384,
)
from identity_service.issuer import TokenIssuer
from identity_service.secrets import SecretSource
from identity_service.settings import IntercomApiSettings, WorkspaceSettings
from identity_service.tokens import mint
from tests.support.service import STATIC_JS, ServiceFixture, make_service

TOKEN_URL = "https://id.pete.example/v1/messenger/token"
_INLINE = re.compile(
    r"<script(?: nonce=\"[^\"]*\")?>IdentityServiceMessenger\.startMessenger\((.*)\);</script>"
)


def independent_digest(algorithm: hashes.HashAlgorithm, data: bytes) -> str:
    """A second implementation (OpenSSL through `cryptography`), not hashlib."""
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return base64.b64encode(digest.finalize()).decode()


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service(tmp_path)


@pytest.fixture
def workspace(service: ServiceFixture) -> WorkspaceSettings:
    return service.settings.workspace(None)


@pytest.fixture
def config(workspace: WorkspaceSettings) -> MessengerConfig:
    return MessengerConfig.for_workspace(workspace, TOKEN_URL)


def options_in(html: str) -> dict[str, Any]:
    """The JSON handed to startMessenger(...) in rendered HTML, parsed back."""
    match = _INLINE.search(html)
    assert match is not None, html
    value: dict[str, Any] = json.loads(match.group(1))
    return value


# -- escaping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("é", "\\u00e9"),  # ASCII-only output, whatever the page's charset
        ("'", "'"),  # harmless inside <script> text: left alone
        ("/", "/"),
    ],
)
def test_inline_json_escapes(raw: str, escaped: str) -> None:
    assert inline_json(raw) == f'"{escaped}"'


def test_inline_json_defuses_script_breakouts() -> None:
    hostile = "</script><script>alert(1)</script><!-- \u2028 </SCRIPT >"
    text = inline_json({"a": hostile, hostile: [hostile]})
    assert "<" not in text and ">" not in text
    assert "\u2028" not in text
    assert json.loads(text) == {"a": hostile, hostile: [hostile]}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_inline_json_round_trips_and_never_holds_special_characters(value: Any) -> None:
    text = inline_json(value)
    assert json.loads(text) == value
    assert not set(text) & set("<>&\u2028\u2029")
    assert text.isascii()


def test_inline_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        inline_json(float("nan"))


# -- nonce and URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "nonce",
    ["rAnd0m-NONCE_value", "abc+def/ghi=", "YWJjZGVmZ2hpams=", "YWJjZGVmZ2hpamtsbQ=="],
)
def test_nonce_accepted(nonce: str) -> None:
    assert check_nonce(nonce) == nonce
    assert f' nonce="{nonce}"' in loader_tag(nonce=nonce)


@pytest.mark.parametrize(
    "nonce",
    [
        "",
        "short",  # under 8 characters: not a real nonce
        'abcdefgh" onload="alert(1)',
        "abcdefgh ijklmnop",
        "abcdefgh<ijklmnop",
        "abc=defghijk",  # padding only at the end
        "a" * 257,
        "abcdefgh\n",
    ],
)
def test_nonce_refused(nonce: str) -> None:
    with pytest.raises(UnsafeSnippetError, match="nonce"):
        check_nonce(nonce)
    with pytest.raises(UnsafeSnippetError):
        embed_html({}, nonce=nonce)


def test_nonce_must_be_a_string() -> None:
    with pytest.raises(UnsafeSnippetError):
        check_nonce(12345678)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://id.example/v1/messenger/messenger.js", True),
        ("http://127.0.0.1:8000/v1/messenger/messenger.js", True),
        ("/v1/messenger/messenger.js", True),
        ("//evil.example/x.js", False),
        ("javascript:alert(1)", False),
        ("data:text/javascript,alert(1)", False),
        ("messenger.js", False),
        ("https:///nohost.js", False),
        # Browsers read "\\" as "/" in http(s) URLs: "/\\evil.example/m.js" is
        # https://evil.example/m.js, however the server-side parser splits it.
        ("/\\evil.example/m.js", False),
        ("\\\\evil.example/m.js", False),
        ("/\\/evil.example/m.js", False),
        ("https:\\\\evil.example/m.js", False),
        ("https://id.example\\@evil.example/m.js", False),
        ("/v1/messenger\\messenger.js", False),
        # Tabs and newlines are dropped by the URL parser, so "/\t/evil" is "//evil".
        ("/\t/evil.example/m.js", False),
        ("/\n/evil.example/m.js", False),
        ("/\r/evil.example/m.js", False),
        ("/\x00/evil.example/m.js", False),
        ("/\x7f/evil.example/m.js", False),
        (" //evil.example/m.js", False),
        ("\x01https://evil.example/m.js", False),
        ("https://id.example/v1/messenger/messenger.js ", False),
        ("https://id.example/v1/messenger/messenger js", False),
        ("https://id.example/v1/\u00a0messenger.js", False),
        ("///evil.example/m.js", False),
        ("https://id.example/v1/messenger/messenger.js?v=1#top", True),
    ],
)
def test_script_url(url: str, ok: bool) -> None:
    if ok:
        assert check_script_url(url) == url
    else:
        with pytest.raises(UnsafeSnippetError):
            check_script_url(url)


@pytest.mark.parametrize(
    "widget_url",
    ["/\\evil.example/widget/{app_id}", "//evil.example/{app_id}", "/\t/evil/{app_id}"],
)
def test_widget_url_is_checked_like_a_script_url(
    workspace: WorkspaceSettings, widget_url: str
) -> None:
    with pytest.raises(UnsafeSnippetError):
        MessengerConfig.for_workspace(workspace, TOKEN_URL, widget_url)


def test_loader_tag_escapes_the_url() -> None:
    tag = loader_tag('https://id.example/m.js?a=1&b="2"')
    assert 'src="https://id.example/m.js?a=1&amp;b=&quot;2&quot;"' in tag


# -- hashes -------------------------------------------------------------------------------


def test_integrity_is_the_sha384_of_the_shipped_file() -> None:
    data = STATIC_JS.read_bytes()
    assert messenger_js() == data
    assert messenger_integrity() == "sha384-" + independent_digest(hashes.SHA384(), data)
    assert f'integrity="{messenger_integrity()}"' in loader_tag()
    assert 'crossorigin="anonymous"' in loader_tag()


def test_sri_of_known_bytes() -> None:
    # Value from `printf abc | openssl dgst -sha384 -binary | base64`.
    expected = "sha384-ywB1P0WjXou1oD1pmsZQBycsMqsO3tFjGotgWkP/W+2AhgcroefMI1i67KE0yCWn"
    assert sri_sha384(b"abc") == expected


def test_module_is_the_script_plus_exports() -> None:
    module = messenger_module()
    assert module == STATIC_JS.read_bytes() + MODULE_FOOTER
    assert b"export const startMessenger" in module


@pytest.mark.parametrize("script", ["alert(1);", "var s = 'é\u2028';", ""])
def test_csp_hash_source(script: str) -> None:
    expected = independent_digest(hashes.SHA256(), script.encode("utf-8"))
    assert csp_hash_source(script) == f"'sha256-{expected}'"


def test_csp_hash_of_empty_script_matches_the_well_known_value() -> None:
    assert csp_hash_source("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"


# -- options and the rendered tag ------------------------------------------------------------


def test_config_protects_identity_and_every_signed_attribute(config: MessengerConfig) -> None:
    assert config.protected_keys == (
        "user_id", "email", "user_hash", "plan", "teammates", "last_order_at",
    )  # fmt: skip
    document = config.as_json()
    assert document["token_url"] == TOKEN_URL
    assert document["widget_url"] == "https://widget.intercom.io/widget/{app_id}"


@pytest.mark.parametrize(
    "key", ["user_id", "email", "user_hash", "plan", "app_id", "intercom_user_jwt"]
)
def test_options_refuse_protected_or_owned_settings(config: MessengerConfig, key: str) -> None:
    with pytest.raises(UnsafeSnippetError, match=key):
        messenger_options(config, settings={key: "x", "alignment": "left"})


def test_options_refuse_unknown_failure_mode(config: MessengerConfig) -> None:
    with pytest.raises(UnsafeSnippetError, match="on_failure"):
        messenger_options(config, on_failure="identified")  # type: ignore[arg-type]


def test_rendered_tag_carries_the_token_but_no_identity_in_clear(
    service: ServiceFixture, workspace: WorkspaceSettings, config: MessengerConfig
) -> None:
    hostile = "</script><script>alert(1)</script>\u2028"
    minted = mint(
        "user-42", {"email": "ada@pete.example", "plan": hostile}, workspace, 1_700_000_000
    )
    html = str(
        render_messenger_tag(
            minted, config, nonce="n0nce-value", settings={"alignment": "left", "note": hostile}
        )
    )

    assert html.count("<script") == 2 and html.count("</script>") == 2
    assert html.count('nonce="n0nce-value"') == 2
    assert "user-42" not in html and "ada@pete.example" not in html
    options = options_in(html)
    assert options["settings"] == {"alignment": "left", "note": hostile}
    assert options["token"] == {
        "token": minted.token,
        "expires_at": minted.expires_at,
        "app_id": "abc123",
        "api_base": "https://api-iam.eu.intercom.io",
        "attributes": ["email", "plan"],
    }
    assert options["protectedKeys"] == list(config.protected_keys)
    claims = jwt.decode(
        minted.token,
        service.messenger_secret,
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert claims["plan"] == hostile


def test_rendered_tag_refuses_a_token_of_another_app(
    workspace: WorkspaceSettings, config: MessengerConfig
) -> None:
    minted = mint("user-42", {}, workspace, 1_700_000_000)
    other = MessengerConfig(**{**config.__dict__, "app_id": "other1"})
    with pytest.raises(UnsafeSnippetError, match="minted for app"):
        render_messenger_tag(minted, other)


def test_inline_script_hash_matches_the_embed(config: MessengerConfig) -> None:
    options = messenger_options(config)
    html = embed_html(options, script_url="https://id.pete.example/v1/messenger/messenger.js")
    script = inline_script(options)
    assert f"<script>{script}</script>" in html
    assert options_in(html) == options


# -- the Jinja global -----------------------------------------------------------------------

TEMPLATE = (
    "<main>{{ render_messenger_tag(user, nonce=nonce, settings={'alignment': 'left'}) }}</main>"
)


def _render(app: Flask, **context: Any) -> str:
    with app.test_request_context():
        return render_template_string(TEMPLATE, **context)


def test_jinja_global_mints_through_the_apps_issuer(service: ServiceFixture) -> None:
    app = create_app(service.settings)
    register_jinja(app, clock=lambda: 1_700_000_000.0)  # the issuer is found in app.extensions
    user = Identity(
        "user-7", "bearer", {"email": "ada@pete.example", "https://pete.example/plan": "pro"}
    )

    html = _render(app, user=user, nonce="abcdefgh12")

    options = options_in(html)
    claims = jwt.decode(
        options["token"]["token"],
        service.messenger_secret,
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert (claims["user_id"], claims["plan"], claims["iat"]) == ("user-7", "pro", 1_700_000_000)
    assert options["tokenUrl"] == "/v1/messenger/token"
    assert options["settings"] == {"alignment": "left"}
    assert 'nonce="abcdefgh12"' in html
    assert "user-7" not in html


def test_jinja_global_with_an_explicit_issuer_on_another_app(service: ServiceFixture) -> None:
    product = Flask("product")
    issuer = TokenIssuer(service.settings, {})
    register_jinja(
        product,
        issuer,
        service_settings=service.settings,
        token_url=TOKEN_URL,
        script_url="https://id.pete.example/v1/messenger/messenger.js",
    )

    html = _render(product, user=Identity("user-8", "session", {}), nonce="abcdefgh12")

    assert 'src="https://id.pete.example/v1/messenger/messenger.js"' in html
    assert options_in(html)["tokenUrl"] == TOKEN_URL


def test_jinja_global_refuses_anything_but_a_verified_identity(service: ServiceFixture) -> None:
    app = create_app(service.settings)
    register_jinja(app)
    with pytest.raises(TypeError, match="Identity"):
        _render(app, user="user-7", nonce="abcdefgh12")


def test_jinja_global_refuses_a_bad_nonce(service: ServiceFixture) -> None:
    app = create_app(service.settings)
    register_jinja(app)
    with pytest.raises(UnsafeSnippetError):
        _render(app, user=Identity("user-7", "bearer", {}), nonce='x" onload="alert(1)')


# -- the admin checklist and the CLI ------------------------------------------------------------


def test_admin_checklist(workspace: WorkspaceSettings, service: ServiceFixture) -> None:
    text = admin_checklist(workspace)
    assert re.search(r"^\s+plan\s+Text$", text, re.M)
    assert re.search(r"^\s+teammates\s+Number$", text, re.M)
    assert re.search(r"^\s+last_order_at\s+Date$", text, re.M)
    assert not re.search(r"^\s+email\s+Text$", text, re.M)  # standard: no CDA to create
    assert '"Prevent updates via the Messenger"' in text
    assert '"Enforce messenger security"' in text
    assert "messenger.secret" in text  # where the secret is, never what it is
    assert service.messenger_secret not in text
    # Steps 1-2 are provable: the checklist names the command that proves them.
    assert f"identity-service intercom check --workspace {workspace.key}" in text
    assert f"[workspaces.{workspace.key}.intercom_api]" in text  # none configured here


def test_admin_checklist_with_a_rest_token_says_how_to_prove_and_fix(
    workspace: WorkspaceSettings,
) -> None:
    api = IntercomApiSettings(
        token=SecretSource("env", "INTERCOM_TOKEN", "intercom token"),
        rest_base="https://api.intercom.io",
    )
    text = admin_checklist(dataclasses.replace(workspace, intercom_api=api))
    assert f"`identity-service intercom check --workspace {workspace.key}`" in text
    assert f"intercom sync --workspace {workspace.key} --apply" in text
    assert "intercom_api]" not in text  # nothing left to configure


def _cli() -> click.Group:
    group = click.Group("identity-service")
    frontend_cli.register(group)
    return group


def test_snippet_command_writes_the_bundle(service: ServiceFixture, tmp_path: Path) -> None:
    out = tmp_path / "embed"
    config_path = str(service.root / "service.toml")
    result = CliRunner().invoke(
        _cli(), ["snippet", "--config", config_path, "--token-url", TOKEN_URL, "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    written = (out / "messenger.js").read_bytes()
    assert written == STATIC_JS.read_bytes()
    assert (out / "messenger.mjs").read_bytes() == written + MODULE_FOOTER
    integrity = "sha384-" + independent_digest(hashes.SHA384(), written)
    assert f"integrity (messenger.js): {integrity}" in result.stdout
    html = (out / "intercom-messenger.html").read_text()
    assert 'src="https://id.pete.example/v1/messenger/messenger.js"' in html
    assert f'integrity="{integrity}"' in html
    assert options_in(html)["tokenUrl"] == TOKEN_URL
    assert "Prevent updates via the Messenger" in result.stdout
    assert "Enforce messenger security" in result.stdout
    assert service.messenger_secret not in result.output + html


def test_snippet_command_prints_clean_html_to_stdout(service: ServiceFixture) -> None:
    config_path = str(service.root / "service.toml")
    result = CliRunner().invoke(
        _cli(),
        ["snippet", "--config", config_path, "--token-url", TOKEN_URL,
         "--script-url", "https://cdn.pete.example/messenger.js", "--on-failure", "anonymous"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('<script src="https://cdn.pete.example/messenger.js"')
    assert options_in(result.stdout)["onFailure"] == "anonymous"
    assert "Enforce messenger security" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--token-url", "/v1/messenger/token"], 2, "absolute"),
        (["--token-url", TOKEN_URL, "--workspace", "nope"], 1, "no workspace named"),
    ],
)
def test_snippet_command_errors(
    service: ServiceFixture, args: list[str], code: int, message: str
) -> None:
    config_path = str(service.root / "service.toml")
    result = CliRunner().invoke(_cli(), ["snippet", "--config", config_path, *args])
    assert result.exit_code == code
    assert message in result.output


def test_snippet_command_reports_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[workspaces.main]\napp_id = 'x.y'\n")
    result = CliRunner().invoke(_cli(), ["snippet", "--config", str(bad), "--token-url", TOKEN_URL])
    assert result.exit_code == 2
    assert "configuration problem" in result.stderr
