"""The server-rendered snippet in Chromium: hostile values, a strict CSP, and the CSP hash."""

from __future__ import annotations

import secrets
import time
import urllib.request

import jwt
import pytest

from identity_service.auth import Identity
from identity_service.frontend.embed import embed_html, inline_script, messenger_options
from identity_service.frontend.public_config import MessengerConfig
from identity_service.frontend.script import csp_hash_source
from identity_service.tokens import mint
from tests.browser.harness import Browsing, Stack

pytestmark = pytest.mark.browser

# Closes the script element, opens a new one, starts an HTML comment, and holds the
# two characters that end a line in older JavaScript engines.
HOSTILE = "</script><script>alert(1)</script>\u2028<!--<script>\u2029&amp; 'q\" \\ </SCRIPT >"
VIOLATIONS = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>rendered</title></head>
<body><h1>Server-rendered product page</h1>
{{ render_messenger_tag(user, nonce=nonce, settings=settings) }}
{{ extra | safe }}
</body></html>"""


def user(plan: str = "pro") -> Identity:
    # The product has verified its user; the tag mints for this identity.
    claims = {"email": "ada@example.test", "plan": plan, "teammates": 4}
    return Identity(user_id="u-42", method="session", claims=claims)


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        text: str = response.read().decode("utf-8")
    return text


def test_hostile_values_do_not_execute_and_round_trip(stack: Stack, browsing: Browsing) -> None:
    url = stack.add_rendered(
        PAGE, {"user": user(HOSTILE), "nonce": None, "settings": {"greeting": HOSTILE}, "extra": ""}
    )
    browsing.page.goto(url)
    boot = browsing.wait_for_call("boot")

    assert browsing.dialogs == []
    assert browsing.token_requests == []  # booted with the token rendered into the page
    assert browsing.page.evaluate("document.querySelectorAll('script').length") == 3
    # Exactly the same string reached the widget, through HTML and JavaScript parsing...
    assert boot["data"]["greeting"] == HOSTILE
    # ... and the signed attribute carries it too, inside the JWT.
    claims = jwt.decode(boot["data"]["intercom_user_jwt"], stack.secret(), algorithms=["HS256"])
    assert claims["plan"] == HOSTILE
    assert set(boot["data"]) == {"app_id", "api_base", "intercom_user_jwt", "greeting"}
    source = fetch_text(url)
    assert "<script>alert" not in source
    assert "\u2028" not in source and "\u2029" not in source
    assert "u-42" not in source  # the user id is only inside the signed token


def test_strict_nonce_csp_runs_the_snippet(stack: Stack, browsing: Browsing) -> None:
    nonce = secrets.token_urlsafe(18)
    csp = f"script-src 'nonce-{nonce}'; object-src 'none'; base-uri 'none'"
    # A script without the nonce proves the policy is enforced on this page.
    extra = "<script>window.__unnonced = true;</script>"
    url = stack.add_rendered(
        PAGE,
        {"user": user(), "nonce": nonce, "settings": {}, "extra": extra},
        headers={"Content-Security-Policy": csp},
    )
    browsing.page.add_init_script(VIOLATIONS)
    browsing.page.goto(url)

    boot = browsing.wait_for_call("boot")  # the widget <script> got the nonce as well
    jwt.decode(boot["data"]["intercom_user_jwt"], stack.secret(), algorithms=["HS256"])
    assert browsing.page.evaluate("window.__unnonced === undefined")
    violations = browsing.page.evaluate("window.__violations")
    assert violations == ["script-src-elem inline"]


def test_csp_hash_of_the_generated_inline_script_is_what_chromium_computes(
    stack: Stack, browsing: Browsing
) -> None:
    log_in_cookie = {
        "name": "session",
        "value": stack.session_cookie({"user_id": "u-42", "plan": "pro"}),
        "url": stack.identity_url,
    }
    browsing.page.context.add_cookies([log_in_cookie])  # type: ignore[list-item]
    config = MessengerConfig.for_workspace(
        stack.settings.workspace("main"), stack.token_url, stack.widget_url
    )
    options = messenger_options(config, settings={"note": HOSTILE})
    # Hash-based policy: no nonce at all, the inline script is allowed by its sha256 only.
    csp = (
        f"script-src {csp_hash_source(inline_script(options))} "
        f"{stack.identity_url} {stack.product_url}; object-src 'none'"
    )
    url = stack.add_page(
        "", prelude=embed_html(options, script_url=stack.script_url), loader=False,
        headers={"Content-Security-Policy": csp},
    )  # fmt: skip
    browsing.page.add_init_script(VIOLATIONS)
    browsing.page.goto(url)

    boot = browsing.wait_for_call("boot")
    assert boot["data"]["note"] == HOSTILE
    assert browsing.page.evaluate("window.__violations") == []


def test_a_stale_rendered_token_is_replaced_not_booted(stack: Stack, browsing: Browsing) -> None:
    # A page from a cache: its token expired long ago, but the user is still logged in.
    cookie = {
        "name": "session",
        "value": stack.session_cookie({"user_id": "u-42", "plan": "pro"}),
        "url": stack.identity_url,
    }
    browsing.page.context.add_cookies([cookie])  # type: ignore[list-item]
    workspace = stack.settings.workspace("main")
    stale = mint("u-42", {"plan": "old"}, workspace, int(time.time()) - 7200)
    config = MessengerConfig.for_workspace(workspace, stack.token_url, stack.widget_url)
    options = messenger_options(config, token=stale)
    url = stack.add_page("", prelude=embed_html(options, script_url=stack.script_url), loader=False)
    browsing.page.goto(url)

    boot = browsing.wait_for_call("boot")
    assert browsing.token_requests == ["POST"]
    assert boot["data"]["intercom_user_jwt"] != stale.token
    claims = jwt.decode(boot["data"]["intercom_user_jwt"], stack.secret(), algorithms=["HS256"])
    assert claims["plan"] == "pro"
    assert [c["method"] for c in browsing.calls()] == ["boot"]
