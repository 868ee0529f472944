"""`identity-service demo` end to end in Chromium: log in, boot, the guard, log out.

Everything the page shows is checked against sources the page cannot fake:
the user's row read straight from the demo's SQLite file, and the Messenger
JWT verified with pyjwt and the development secret from the instance folder.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.demo.conftest import REPO, DemoServer, Watched

pytestmark = pytest.mark.browser

EMAIL = "zoe@pete.example"  # a non-ASCII name: the stand-in must decode UTF-8 claims
PASSWORD = "pete-demo-password"
ATTEMPT = {"plan": "enterprise", "teammates": 999, "color": "red"}
SCREENSHOT = REPO / "docs" / "demo.png"
# Recorded from the first script on: any CSP violation on the demo's pages.
VIOLATIONS = (
    "window.__violations = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
)
TOKEN_STATUS = (
    "fetch('/v1/messenger/token', {method: 'POST', credentials: 'same-origin'}).then(r => r.status)"
)


def row_for(database: Path, email: str) -> dict[str, Any]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM users WHERE email = ?", (email,)).fetchone()
    assert row is not None, f"{email} is not in {database}"
    return dict(row)


def unix(iso: str | None) -> int | None:
    if iso is None:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def verify(server: DemoServer, token: str) -> dict[str, Any]:
    """Verify the JWT as Intercom would: HS256 with the workspace's Messenger secret."""
    secret = (server.instance / "dev-workspaces-default.secret").read_text("utf-8").strip()
    claims: dict[str, Any] = jwt.decode(
        token, secret, algorithms=["HS256"], options={"require": ["exp", "iat", "user_id"]}
    )
    return claims


def shown(watched: Watched, method: str, role: str, index: int = -1) -> Any:
    """The JSON the stand-in widget displays for a call (the last one of `method` by default)."""
    entries = watched.page.locator(f'#intercom-stand-in [data-method="{method}"]')
    entries.last.wait_for()
    entry = entries.nth(index) if index >= 0 else entries.last
    block = entry.locator(f'pre[data-role="{role}"]')
    value = json.loads(block.get_attribute("data-json") or "null")
    # The visible text is the same JSON, with any JWT shortened for reading.
    visible = json.loads(block.inner_text())
    if isinstance(value, dict) and "intercom_user_jwt" in value:
        jwt_text = visible.pop("intercom_user_jwt")
        token = value["intercom_user_jwt"]
        assert jwt_text.startswith(token[:20] + "…") and f"({len(token)} characters)" in jwt_text
        assert visible == {k: v for k, v in value.items() if k != "intercom_user_jwt"}
    else:
        assert visible == value
    return value


def widget_calls(watched: Watched, method: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = watched.page.evaluate("window.__widgetCalls || []")
    return [call for call in calls if call["method"] == method]


# True when the element is inside the stand-in's scroll box and the window: what a person sees.
IN_VIEW = """element => {
    const box = element.getBoundingClientRect();
    const panel = document.getElementById('intercom-stand-in').getBoundingClientRect();
    return box.height > 0 && box.top >= panel.top && box.bottom <= panel.bottom
        && box.top >= 0 && box.bottom <= window.innerHeight;
}"""


def assert_signed_out(watched: Watched, token: str, name: str) -> None:
    """After logout: the header says so, and the stand-in shows no trace of the old session."""
    page = watched.page
    # The header: no "Signed in as", no Log out button, a way to log in again.
    page.locator("#signed-out").wait_for()
    assert not page.locator("#signed-in-as").is_visible()
    assert not page.locator("#logout").is_visible()
    assert "Signed in" not in page.locator("header").inner_text()
    assert "Signed out" in page.locator("header").inner_text()
    # The stand-in forgot the token, its claims and the user, as the Messenger did.
    panel = page.locator("#intercom-stand-in")
    assert token[:20] not in panel.inner_html()
    assert name not in panel.inner_text()
    assert panel.locator('[data-role="claims"]').count() == 0
    # The shutdown entry the page points at is on screen, not below the panel's fold.
    shutdown = panel.locator('[data-method="shutdown"]')
    assert shutdown.count() == 1
    assert shutdown.evaluate(IN_VIEW), "the shutdown entry is scrolled out of view"


def test_the_whole_flow_in_a_browser(demo_server: DemoServer, watched: Watched) -> None:
    page = watched.page
    page.add_init_script(VIOLATIONS)

    # The login form, with the demo accounts listed.
    page.goto(demo_server.url)
    hint = page.locator("#demo-accounts").inner_text()
    assert EMAIL in hint and "ada@pete.example" in hint and PASSWORD in hint
    assert page.evaluate("window.__violations") == []

    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    assert page.locator("#signed-in-as").inner_text() == "Zoë Lindqvist"

    # The stand-in reports the boot: settings and the claims it decoded client-side.
    boot_settings = shown(watched, "boot", "data")
    boot_claims = shown(watched, "boot", "claims")
    token = boot_settings["intercom_user_jwt"]
    assert set(boot_settings) == {"app_id", "api_base", "intercom_user_jwt"}
    assert boot_settings["app_id"] == "demo0app"
    assert boot_settings["api_base"] == "https://api-iam.intercom.io"
    # What is displayed is what the widget received.
    assert [call["data"] for call in widget_calls(watched, "boot")] == [boot_settings]

    claims = verify(demo_server, token)
    assert boot_claims == claims
    row = row_for(demo_server.instance / "demo.db", EMAIL)
    expected = {
        "user_id": row["id"],
        "email": row["email"],
        "name": row["name"],
        "created_at": unix(row["signed_up_at"]),
        "plan": row["plan"],
        "teammates": row["teammates"],
        "last_order_at": unix(row["last_order_at"]),
    }
    assert {key: claims.get(key) for key in expected} == expected
    assert set(claims) == {*expected, "iat", "exp", "jti"}
    assert page.locator("#messenger-state").inner_text() == "identified"

    # The session cookie is what authenticates the token endpoint (positive control).
    assert page.evaluate(TOKEN_STATUS) == 200

    # Page code tries to rewrite signed attributes: they never reach Intercom.
    page.click("#insecure-update")
    page.locator("#insecure-removed").filter(has_text="teammates").wait_for()
    update = shown(watched, "update", "data")
    assert update == {"color": "red", "intercom_user_jwt": token}
    assert [call["data"] for call in widget_calls(watched, "update")] == [update]
    assert json.loads(page.locator("#insecure-sent").inner_text()) == ATTEMPT
    assert json.loads(page.locator("#insecure-received").get_attribute("data-json") or "") == update
    assert page.locator("#insecure-removed").inner_text() == "plan, teammates"
    assert verify(demo_server, update["intercom_user_jwt"])["plan"] == row["plan"]

    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        # Tall enough that the stand-in's panel (at most one screen high) shows every call.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": 1100, "height": max(900, height)})
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

    # Log out: the snippet shuts the Messenger down and Pete clears the session. In a
    # narrow window the stand-in's panel sits below the product's content.
    page.set_viewport_size({"width": 800, "height": 600})
    page.click("#logout")
    page.locator('#intercom-stand-in [data-method="shutdown"]').wait_for()
    page.locator("#token-status-after-logout").filter(has_text="401").wait_for()
    assert len(widget_calls(watched, "shutdown")) == 1
    assert_signed_out(watched, token, row["name"])
    assert page.evaluate(TOKEN_STATUS) == 401
    assert [c for c in page.context.cookies() if c["name"] == "session" and c["value"]] == []
    assert page.evaluate("window.__violations") == []
    page.reload()
    assert page.locator("#login-form").is_visible()
    assert page.evaluate("window.__violations") == []

    # Only the two deliberate 401s after logout may show up as errors.
    errors = [
        text
        for kind, text in watched.console
        if kind in {"error", "pageerror"} and "status of 401" not in text
    ]
    assert errors == []


def test_the_frontend_fetch_example_works_in_the_demo_page(
    demo_server: DemoServer, watched: Watched
) -> None:
    """docs/frontend.md's console example, as copied, on the signed-in page (cookie and bearer)."""
    text = (REPO / "docs" / "frontend.md").read_text("utf-8")
    found = re.search(r"<!-- first-hour: fetch -->\n```js\n(.*?)^```", text, re.S | re.M)
    assert found is not None
    page = watched.page
    page.goto(demo_server.url)
    page.fill("input[name=email]", "ada@pete.example")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    # The console runs top-level await; evaluate() needs the block wrapped in a function.
    answers = page.evaluate(f"async () => {{ {found.group(1)}; return {{byCookie, byBearer}}; }}")
    for name in ("byCookie", "byBearer"):
        assert answers[name]["user_id"] == "1001", answers
        assert verify(demo_server, answers[name]["token"])["plan"] == "pro"
