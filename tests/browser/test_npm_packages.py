"""messenger.js with the real `@intercom/messenger-js-sdk` and `react-use-intercom`, in Chromium.

Both packages come from the npm registry (tests/browser/packages.py installs the
pinned versions and bundles each entry of tests/browser/npm/ with esbuild, as a
product's bundler would: an ES module, strict mode). What their source shows:

- Every method of both packages (boot, update, shutdown, trackEvent, show, ...)
  calls `window.Intercom(...)`: messenger.js's guard sees each call.
- Both assign `window.intercomSettings` wholesale (`Intercom({...})` of the SDK,
  react-use-intercom's boot and update): the guarded accessor cleans each object.
- Both create their own loader stub and load the widget only when
  `window.Intercom` is not a function yet; once messenger.js has started they
  call `Intercom('update', window.intercomSettings)` instead.
- react-use-intercom maps camelCase (`userId`, `customAttributes`) to Intercom's
  keys before calling `window.Intercom`, so the guard sees `user_id` and the custom
  attributes at the top level, as the widget does.
- react-use-intercom's shutdown() and hardShutdown() `delete window.intercomSettings`
  (and `window.Intercom`), which messenger.js guards with non-configurable accessors:
  in strict-mode code that throws a TypeError after the shutdown went through. The
  documented wiring logs out with messenger.js's logout() instead.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.browser.harness import Browsing, Stack, start_script
from tests.browser.packages import bundle
from tests.browser.test_messenger import decode, log_in, settings_json

pytestmark = pytest.mark.browser

PROTECTED = {"user_id", "email", "user_hash", "plan", "teammates"}


def leaked(browsing: Browsing) -> list[tuple[str, str]]:
    """(method, key) for every protected key any widget call or intercomSettings carried."""
    found = []
    for call in browsing.calls():
        for view in ("data", "keys"):
            data = call[view] if isinstance(call[view], dict) else {}
            nested = data.get("custom_attributes")
            keys = set(data) | (set(nested) if isinstance(nested, dict) else set())
            found += [(call["method"], key) for key in sorted(keys & PROTECTED)]
    found += [("intercomSettings", key) for key in sorted(set(settings_json(browsing)) & PROTECTED)]
    return found


def jwts(browsing: Browsing, method: str) -> list[str]:
    return [
        c["data"].get("intercom_user_jwt", "")
        for c in browsing.calls()
        if c["method"] == method and isinstance(c["data"], dict)
    ]


# -- @intercom/messenger-js-sdk ------------------------------------------------------------


def sdk_page(stack: Stack, browsing: Browsing, **options: Any) -> str:
    """messenger.js started from its script tag, then the product's bundle using the SDK."""
    log_in(stack, browsing)
    url = stack.add_asset("sdk_app.js", bundle("sdk_app.js"))
    body = start_script(stack.options(**options)) + f"<script type='module' src='{url}'></script>"
    browsing.page.goto(stack.add_page(body))
    browsing.wait_until("window.sdk")
    assert browsing.settle("window.messenger.ready") == "identified"
    boot = browsing.wait_for_call("boot")
    token: str = boot["data"]["intercom_user_jwt"]
    return token


def test_sdk_update_and_other_methods_pass_the_guard(stack: Stack, browsing: Browsing) -> None:
    token = sdk_page(stack, browsing)

    browsing.page.evaluate(
        "sdk.update({user_id: 'u-1', email: 'mallory@example.test', plan: 'free', color: 'red',"
        " custom_attributes: {teammates: 99, tier: 2}})"
    )
    browsing.page.evaluate("sdk.trackEvent('viewed-pricing', {plan: 'free'})")
    browsing.page.evaluate("sdk.show()")

    update = browsing.wait_for_call("update")
    assert update["data"] == {
        "color": "red",
        "custom_attributes": {"tier": 2},
        "intercom_user_jwt": token,
    }
    assert [c["method"] for c in browsing.calls()] == ["boot", "update", "trackEvent", "show"]
    assert leaked(browsing) == []


def test_sdk_initialiser_as_its_readme_shows_it_leaks_nothing_and_loads_no_second_widget(
    stack: Stack, browsing: Browsing
) -> None:
    token = sdk_page(stack, browsing)
    widget_loads = stack.site.widget_requests

    # The SDK's README: Intercom({app_id, user_id, name, email, created_at}) on every page.
    browsing.page.evaluate(
        f"""sdk.Intercom({{app_id: 'fakeapp1', user_id: 'u-42', name: 'Ada',
            email: 'ada@example.test', created_at: 1700000000, plan: 'pro', region: 'eu',
            widgetUrl: {json.dumps(stack.widget_url.replace("{app_id}", "fakeapp1"))}}})"""
    )

    update = browsing.wait_for_call("update")
    assert update["data"]["intercom_user_jwt"] == token
    assert update["data"]["name"] == "Ada" and update["data"]["created_at"] == 1700000000
    assert leaked(browsing) == []
    assert stack.site.widget_requests == widget_loads  # window.Intercom was already ours
    assert browsing.page.evaluate("window.__widgetLoads") == 1


def test_sdk_boot_gets_the_jwt_and_loses_identity(stack: Stack, browsing: Browsing) -> None:
    token = sdk_page(stack, browsing)

    browsing.page.evaluate(
        "sdk.boot({app_id: 'fakeapp1', user_id: 'u-1', email: 'm@example.test', name: 'M'})"
    )

    boot = browsing.wait_for_call("boot", lambda c: c["data"].get("name") == "M")
    assert boot["data"] == {"app_id": "fakeapp1", "name": "M", "intercom_user_jwt": token}
    assert leaked(browsing) == []


def test_sdk_calls_carry_the_refreshed_jwt(stack: Stack, browsing: Browsing) -> None:
    browsing.page.clock.install()
    first = sdk_page(stack, browsing, workspace="short")  # 60 s tokens
    started = browsing.page.evaluate("Date.now()")
    browsing.page.clock.pause_at((started + 1_000) / 1000)

    browsing.page.clock.fast_forward(48_000)
    browsing.wait_for_call("update", lambda c: c["data"]["intercom_user_jwt"] != first)
    browsing.page.evaluate("sdk.update({color: 'blue', plan: 'free'})")

    update = browsing.wait_for_call("update", lambda c: c["data"].get("color") == "blue")
    fresh = update["data"]["intercom_user_jwt"]
    assert fresh != first and decode(stack, fresh, "short")["user_id"] == "u-42"
    assert update["data"] == {"color": "blue", "intercom_user_jwt": fresh}
    assert leaked(browsing) == []


def test_sdk_shutdown_ends_the_messenger_session(stack: Stack, browsing: Browsing) -> None:
    sdk_page(stack, browsing)

    browsing.page.evaluate("sdk.shutdown()")
    browsing.page.evaluate("sdk.update({color: 'red'})")

    assert browsing.page.evaluate("window.messenger.state") == "stopped"
    assert browsing.calls()[-1]["data"] == {"color": "red"}  # no JWT once logged out
    assert "intercom_user_jwt" not in settings_json(browsing)


# -- react-use-intercom --------------------------------------------------------------------


def react_page(stack: Stack, browsing: Browsing, **options: Any) -> str:
    """The React app of docs/embedding.md: messenger.mjs bundled, react-use-intercom hooks."""
    log_in(stack, browsing)
    url = stack.add_asset("react_app.js", bundle("react_app.jsx"))
    body = (
        f"<div id='root'></div><script>window.MESSENGER_OPTIONS = "
        f"{json.dumps(stack.options(**options))};</script>"
        f"<script type='module' src='{url}'></script>"
    )
    browsing.page.goto(stack.add_page(body, loader=False))  # the bundle alone
    browsing.wait_until("window.messenger")
    assert browsing.settle("window.messenger.ready") == "identified"
    # react-use-intercom's own boot, after ours: both carry the JWT, neither an identity.
    browsing.wait_until("(window.__widgetCalls || []).filter(c => c.method === 'boot').length == 2")
    boots = jwts(browsing, "boot")
    assert boots[0] == boots[1]
    return boots[0]


def test_react_use_intercom_boot_and_update_carry_the_jwt_and_no_protected_key(
    stack: Stack, browsing: Browsing
) -> None:
    token = react_page(stack, browsing)

    browsing.page.evaluate(
        """app.update({userId: 'u-1', email: 'mallory@example.test', name: 'Mallory',
                       customAttributes: {plan: 'free', teammates: 99, color: 'red'}})"""
    )
    browsing.page.evaluate("app.trackEvent('invited-teammate', {count: 2})")

    update = browsing.wait_for_call("update")
    assert update["data"] == {"name": "Mallory", "color": "red", "intercom_user_jwt": token}
    assert browsing.wait_for_call("trackEvent")["data"] == "invited-teammate"
    assert leaked(browsing) == []
    assert browsing.page.evaluate("window.__widgetLoads") == 1
    # react-use-intercom assigned window.intercomSettings wholesale: cleaned all the same.
    assert settings_json(browsing)["name"] == "Mallory"


def test_react_use_intercom_updates_carry_the_refreshed_jwt(
    stack: Stack, browsing: Browsing
) -> None:
    browsing.page.clock.install()
    first = react_page(stack, browsing, workspace="short")
    started = browsing.page.evaluate("Date.now()")
    browsing.page.clock.pause_at((started + 1_000) / 1000)

    browsing.page.clock.fast_forward(48_000)
    refresh = browsing.wait_for_call("update", lambda c: c["data"]["intercom_user_jwt"] != first)
    browsing.page.evaluate("app.update({customAttributes: {plan: 'free', color: 'blue'}})")

    update = browsing.wait_for_call("update", lambda c: c["data"].get("color") == "blue")
    fresh = refresh["data"]["intercom_user_jwt"]
    assert update["data"] == {"color": "blue", "intercom_user_jwt": fresh}
    assert decode(stack, fresh, "short")["user_id"] == "u-42"


def test_react_use_intercom_with_messenger_logout(stack: Stack, browsing: Browsing) -> None:
    react_page(stack, browsing)

    browsing.page.evaluate("window.messenger.logout()")
    browsing.page.evaluate("app.update({customAttributes: {color: 'red'}})")  # harmless
    time.sleep(0.2)

    assert browsing.page.evaluate("window.messenger.state") == "stopped"
    assert [c["method"] for c in browsing.calls()][-2:] == ["shutdown", "update"]
    assert browsing.calls()[-1]["data"] == {"color": "red"}
    assert "intercom_user_jwt" not in settings_json(browsing)


def test_react_use_intercom_shutdown_stops_the_messenger_but_throws(
    stack: Stack, browsing: Browsing
) -> None:
    # Why the documented wiring logs out with messenger.logout(): this package's
    # shutdown() deletes window.intercomSettings, which messenger.js keeps guarded.
    react_page(stack, browsing)

    outcome = browsing.page.evaluate(
        "(() => { try { app.shutdown(); return 'returned'; } catch (e) { return e.name; } })()"
    )

    assert outcome == "TypeError"
    assert browsing.calls()[-1]["method"] == "shutdown"  # it went through first
    assert browsing.page.evaluate("window.messenger.state") == "stopped"
