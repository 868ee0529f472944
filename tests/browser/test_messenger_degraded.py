"""messenger.js on pages it cannot fully guard, and with a widget that starts late (issue 11).

A top-level `var intercomSettings` / `var Intercom` (a common legacy install) makes a
window property that cannot be redefined; a page may also freeze its settings or
put a non-function in window.Intercom. The documented degradation: clean what can
be cleaned, log an error, keep the Messenger booted and refreshing, and never throw
out of the script. And a widget that initialises after its script's load event
must be booted exactly once.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.browser.harness import Browsing, Stack, start_script
from tests.browser.test_messenger import decode, log_in, protected_warnings, settings_json

pytestmark = pytest.mark.browser

LEGACY_SETTINGS = (
    "<script>var intercomSettings = {color: 'red', user_id: 'mallory', plan: 'gold',"
    " custom_attributes: {tier: 2, teammates: 99}};</script>"
)
LEGACY_INTERCOM = "<script>var Intercom;</script>"
FROZEN_LEGACY_SETTINGS = (
    "<script>var intercomSettings = Object.freeze({color: 'red', user_id: 'mallory',"
    " plan: 'gold', custom_attributes: Object.freeze({tier: 2, teammates: 99})});</script>"
)


def start(
    stack: Stack, browsing: Browsing, prelude: str, workspace: str = "short", **options: Any
) -> list[str]:
    """Log Ada in and open a page with `prelude` before messenger.js; the page's errors."""
    errors: list[str] = []
    browsing.page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(stack, browsing)
    body = start_script(stack.options(workspace, **options))
    browsing.page.goto(stack.add_page(body, prelude=prelude))
    return errors


def console_errors(browsing: Browsing) -> list[str]:
    return [text for kind, text in browsing.console if kind == "error"]


def jwt_boots(browsing: Browsing) -> list[dict[str, Any]]:
    """Every boot the widget received, from the queue, a call or intercomSettings."""
    return [c for c in browsing.calls() if c["method"] == "boot"]


def refresh_twice(stack: Stack, browsing: Browsing, first: str) -> list[str]:
    """Move page time past two refreshes of a 60 s token; the tokens the widget got."""
    started = browsing.page.evaluate("Date.now()")
    browsing.page.clock.pause_at((started + 1_000) / 1000)
    tokens = [first]
    for _ in range(2):
        browsing.page.clock.fast_forward(50_000)  # past 80 % of the lifetime
        update = browsing.wait_for_call(
            "update", lambda c, seen=tuple(tokens): c["data"]["intercom_user_jwt"] not in seen
        )
        tokens.append(update["data"]["intercom_user_jwt"])
        assert decode(stack, tokens[-1], "short")["user_id"] == "u-42"
        browsing.wait_until(f"window.intercomSettings.intercom_user_jwt === {tokens[-1]!r}")
    return tokens


@pytest.mark.parametrize(
    "prelude",
    [LEGACY_SETTINGS, LEGACY_SETTINGS + LEGACY_INTERCOM, FROZEN_LEGACY_SETTINGS],
    ids=["var-settings", "var-settings-and-intercom", "var-frozen-settings"],
)
def test_a_var_declared_intercom_settings_is_cleaned_and_the_messenger_keeps_refreshing(
    stack: Stack, browsing: Browsing, prelude: str
) -> None:
    browsing.page.clock.install()
    errors = start(stack, browsing, prelude)

    assert browsing.settle("window.messenger.ready") == "identified"
    boot = browsing.wait_for_call("boot")
    assert [c["how"] for c in jwt_boots(browsing)] == ["queue"]
    # The page's own settings are kept, cleaned, with ours added once the widget is up.
    browsing.wait_until("window.intercomSettings.intercom_user_jwt")
    assert settings_json(browsing) == {
        **boot["data"],
        "color": "red",
        "custom_attributes": {"tier": 2},
    }
    assert browsing.page.evaluate("window.__widgetSettingsAtLoad") == {
        "color": "red",
        "custom_attributes": {"tier": 2},
    }
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["plan", "teammates", "user_id"]
    assert any("declared with var" in text for text in console_errors(browsing))

    tokens = refresh_twice(stack, browsing, boot["data"]["intercom_user_jwt"])
    assert len(set(tokens)) == 3
    assert browsing.page.evaluate("window.messenger.state") == "identified"
    assert errors == []


def test_an_object_assigned_to_a_var_declared_settings_is_cleaned_at_the_next_refresh(
    stack: Stack, browsing: Browsing
) -> None:
    browsing.page.clock.install()
    errors = start(stack, browsing, LEGACY_SETTINGS)
    assert browsing.settle("window.messenger.ready") == "identified"
    boot = browsing.wait_for_call("boot")
    browsing.wait_until("window.intercomSettings.intercom_user_jwt")

    # A plain assignment to the var: the documented gap, until messenger.js's next use.
    browsing.page.evaluate("intercomSettings = {email: 'mallory@example.test', size: 2}")
    refresh_twice(stack, browsing, boot["data"]["intercom_user_jwt"])

    settings = settings_json(browsing)
    assert "email" not in settings and settings["size"] == 2
    assert errors == []


def test_a_var_declared_intercom_still_boots_once_and_guards_page_calls(
    stack: Stack, browsing: Browsing
) -> None:
    browsing.page.clock.install()
    errors = start(stack, browsing, LEGACY_INTERCOM)

    assert browsing.settle("window.messenger.ready") == "identified"
    boot = browsing.wait_for_call("boot")
    assert [c["how"] for c in jwt_boots(browsing)] == ["queue"]
    # The widget replaced the var's value; messenger.js wrapped it again after load.
    browsing.wait_until("window.intercomSettings && window.intercomSettings.intercom_user_jwt")
    browsing.page.evaluate("Intercom('update', {plan: 'gold', color: 'red'})")
    update = browsing.wait_for_call("update", lambda c: c["data"].get("color") == "red")
    assert update["data"] == {
        "color": "red",
        "intercom_user_jwt": boot["data"]["intercom_user_jwt"],
    }

    refresh_twice(stack, browsing, boot["data"]["intercom_user_jwt"])
    assert any("declared with var" in text for text in console_errors(browsing))
    assert errors == []


def test_read_only_frozen_settings_are_reported_and_the_messenger_still_refreshes(
    stack: Stack, browsing: Browsing
) -> None:
    browsing.page.clock.install()
    prelude = (
        "<script>Object.defineProperty(window, 'intercomSettings', {value:"
        " Object.freeze({color: 'red', user_id: 'mallory'}), writable: false,"
        " enumerable: true, configurable: false});</script>"
    )
    errors = start(stack, browsing, prelude)

    assert browsing.settle("window.messenger.ready") == "identified"
    boot = browsing.wait_for_call("boot")
    assert set(boot["data"]) == {"app_id", "api_base", "intercom_user_jwt"}
    assert len(jwt_boots(browsing)) == 1
    reported = " ".join(console_errors(browsing))
    assert 'could not remove "user_id" from window.intercomSettings' in reported

    # Nothing can be written there; refreshing goes on regardless.
    started = browsing.page.evaluate("Date.now()")
    browsing.page.clock.pause_at((started + 1_000) / 1000)
    for round_ in range(2):
        browsing.page.clock.fast_forward(50_000)
        browsing.wait_until(
            f"window.__widgetCalls.filter(c => c.method === 'update').length > {round_}"
        )
    assert browsing.page.evaluate("window.messenger.state") == "identified"
    assert errors == []


@pytest.mark.parametrize(
    "prelude",
    [
        "<script>Object.defineProperty(window, 'Intercom', {value: 42, writable: false,"
        " configurable: false});</script>",
        "<script>Object.defineProperty(window, 'Intercom', {get: () => 'nope',"
        " configurable: false});</script>",
    ],
    ids=["read-only-number", "getter-only"],
)
def test_an_intercom_that_cannot_be_set_fails_cleanly(
    stack: Stack, browsing: Browsing, prelude: str
) -> None:
    errors = start(stack, browsing, prelude)

    assert browsing.settle("window.messenger.ready") == "failed"
    assert any("cannot be replaced" in text for text in console_errors(browsing))
    assert browsing.page.evaluate("window.messenger.state") == "failed"
    assert errors == []


def test_a_non_function_intercom_is_replaced_by_the_loader(
    stack: Stack, browsing: Browsing
) -> None:
    errors = start(stack, browsing, "<script>window.Intercom = {booted: false};</script>")

    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_for_call("boot")
    assert [c["how"] for c in jwt_boots(browsing)] == ["queue"]
    assert errors == []


def test_callbacks_that_throw_do_not_stop_the_messenger(stack: Stack, browsing: Browsing) -> None:
    errors: list[str] = []
    browsing.page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(stack, browsing)
    body = (
        f"<script>var options = {json.dumps(stack.options())};"
        "options.onStateChange = function () { throw new Error('page bug'); };"
        "Object.defineProperty(options, 'settings',"
        " {get: () => { throw new Error('getter bug'); }});"
        "window.messenger = IdentityServiceMessenger.startMessenger(options);</script>"
    )
    browsing.page.goto(stack.add_page(body))

    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_for_call("boot")
    assert len(jwt_boots(browsing)) == 1
    reported = " ".join(console_errors(browsing))
    assert "callback passed to startMessenger threw" in reported
    assert errors == []


@pytest.mark.parametrize(
    "prelude", ["", LEGACY_INTERCOM, LEGACY_SETTINGS], ids=["plain", "var-intercom", "var-settings"]
)
def test_a_widget_that_initialises_after_its_load_event_is_booted_once(
    stack: Stack, browsing: Browsing, prelude: str
) -> None:
    # The widget script runs, its load event fires, and only 300 ms later does it read
    # intercomSettings and the queue (as a widget fetching the rest of its code does).
    late = "<script>window.__widgetLate = 300;</script>"
    errors = start(stack, browsing, late + prelude, workspace="main")

    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_until("window.__widgetInitialised === 1")
    browsing.wait_until("window.intercomSettings && window.intercomSettings.app_id")
    time.sleep(0.3)  # nothing else arrives later

    boots = jwt_boots(browsing)
    assert [(c["how"], sorted(c["data"])) for c in boots] == [
        ("queue", ["api_base", "app_id", "intercom_user_jwt"])
    ]
    assert "app_id" not in (browsing.page.evaluate("window.__widgetSettingsAtLoad") or {})
    assert errors == []
