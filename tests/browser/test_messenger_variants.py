"""messenger.js against variants of the hostile pages of test_messenger_hostile.py (issue 11).

The re-run of the outside attack tries variants of each case. These broke the guard:

- a `__proto__` key, as `JSON.parse` makes one (an own property): copying it into
  a plain object with `clean[key] = value` set the copy's prototype instead, so its
  protected keys reached Intercom as inherited keys (a `for...in` walk sees them);
  the same through `window.intercomSettings.__proto__ = ...`, `Object.assign` and
  nested `custom_attributes`, where the Proxy's set trap assigned it onto its target;
- the widget's own, unguarded function reached through the guarded one:
  `Intercom.prototype.constructor` (every ordinary function's prototype points
  back at it), or `new Intercom(...)` (a Proxy without a construct trap passes the
  arguments to the target as they are);
- a non-configurable accessor on `window.intercomSettings` whose setter ignores
  what is assigned: the guarded value "written" there never took, so the page's
  object, protected keys and `app_id` included, reached the widget (and booted it
  a second time).

Each case runs on the classic script and the ES module, checked as JSON and as a
`for...in` walk, with the helpers of test_messenger_hostile.py.
"""

from __future__ import annotations

import pytest

from tests.browser.harness import Browsing, Stack
from tests.browser.test_messenger_hostile import assert_nothing_leaked, open_page, refused

pytestmark = pytest.mark.browser

# An own "__proto__" key, as JSON.parse makes it from a page's stored or fetched data.
PROTO_JSON = 'JSON.parse(\'{"color": "red", "__proto__": {"plan": "gold", "user_id": "m"}}\')'

# Run after the Messenger is identified and the widget has loaded.
AFTER = {
    "proto-key-in-update": f"Intercom('update', {PROTO_JSON});",
    "proto-key-in-nested-update": f"Intercom('update', {{custom_attributes: {PROTO_JSON}}});",
    "proto-key-in-boot-from-page": f"window.messenger.update({PROTO_JSON});",
    "proto-key-assigned-to-settings": f"Object.assign(window.intercomSettings, {PROTO_JSON});",
    "proto-set-on-settings": "window.intercomSettings.__proto__ = {plan: 'gold'};",
    "proto-key-in-new-settings": f"window.intercomSettings = {PROTO_JSON};",
    "proto-set-on-nested-settings": (
        "window.intercomSettings.custom_attributes = {tier: 1};"
        "window.intercomSettings.custom_attributes.__proto__ = {plan: 'gold'};"
    ),
    "proto-key-in-nested-settings": (f"window.intercomSettings.custom_attributes = {PROTO_JSON};"),
    "proto-defined-on-settings": refused(
        "Object.defineProperty(window.intercomSettings, '__proto__',"
        " {value: {plan: 'gold'}, enumerable: true, configurable: true, writable: true});"
    ),
    "widget-through-prototype-constructor": (
        "const prototype = window.Intercom.prototype;"
        "if (prototype) { prototype.constructor('update', {plan: 'gold', color: 'red'}); }"
        "const own = Object.getOwnPropertyDescriptor(window.Intercom, 'prototype');"
        "if (own && own.value) { own.value.constructor('update', {user_id: 'mallory'}); }"
    ),
    "widget-through-new": "new window.Intercom('update', {plan: 'gold', color: 'red'});",
}

# Run before messenger.js loads.
BEFORE = {
    "settings-accessor-ignoring-writes": (
        "(() => { const own = {app_id: 'fakeapp1', plan: 'gold', color: 'red',"
        " custom_attributes: {teammates: 9, tier: 1}};"
        " Object.defineProperty(window, 'intercomSettings', {get: () => own, set: () => {},"
        " enumerable: true, configurable: false}); })();"
    ),
    "proto-key-in-settings": f"window.intercomSettings = {PROTO_JSON};",
}


def run(stack: Stack, browsing: Browsing, flavour: str, prelude: str = "") -> list[str]:
    errors: list[str] = []
    browsing.page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(stack, browsing, flavour, prelude=prelude)
    return errors


@pytest.mark.parametrize("flavour", ["script", "module"])
@pytest.mark.parametrize("case", sorted(AFTER))
def test_hostile_variants_after_boot(
    stack: Stack, browsing: Browsing, flavour: str, case: str
) -> None:
    errors = run(stack, browsing, flavour)
    booted = len(browsing.calls())
    attack = f"try {{ {AFTER[case]} return null; }} catch (error) {{ return String(error); }}"
    assert browsing.page.evaluate(f"() => {{ {attack} }}") is None
    assert_nothing_leaked(browsing, errors)
    # What was harmless still went through the guard, with the JWT.
    jwt_now = browsing.calls()[0]["data"]["intercom_user_jwt"]
    for call in browsing.calls()[booted:]:
        assert call["data"]["intercom_user_jwt"] == jwt_now, call


@pytest.mark.parametrize("flavour", ["script", "module"])
@pytest.mark.parametrize("case", sorted(BEFORE))
def test_hostile_variants_before_messenger_js(
    stack: Stack, browsing: Browsing, flavour: str, case: str
) -> None:
    errors = run(stack, browsing, flavour, prelude=BEFORE[case])
    assert_nothing_leaked(browsing, errors)
    boots = [c for c in browsing.calls() if c["method"] == "boot"]
    assert len(boots) == 1, boots  # only ours, never one from the page's own settings
    assert "intercom_user_jwt" in boots[0]["data"]
