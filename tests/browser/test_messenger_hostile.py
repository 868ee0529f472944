"""messenger.js against page objects that answer differently on every read (issue 11, item 5).

The guard must read each page-supplied value exactly once and clean that snapshot:
a getter or a Proxy that answers `null` first and `{plan: ...}` later, a `toJSON`
that substitutes other keys, a method name that is an object, keys Intercom would
rename into a protected one, arrays and functions carrying keys, getters that throw
and Proxies whose traps throw. Every case runs on the classic script and on the ES
module, and what reached the (fake) widget is checked both as JSON and as a
for...in walk, so neither way of reading it shows a protected key.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.browser.harness import Browsing, Stack, start_script
from tests.browser.test_messenger import INTERCOM_STUB, log_in

pytestmark = pytest.mark.browser

PROTECTED = {"user_id", "email", "user_hash", "plan", "teammates"}
# Intercom replaces these characters in an attribute name with "_" (reference, CDA names).
RENAMED = re.compile(r"[.$~`!@#%^&*'{}\[\]|\\\"\x00]")
# A getter / Proxy that answers null on the first read and protected keys afterwards.
FLIP = "(() => { let reads = 0; return () => (reads++ === 0 ? null : {plan: 'gold', tier: 2}); })()"


def refused(statement: str) -> str:
    """A statement the guard refuses as defineProperty refuses: with a TypeError, nothing else."""
    return (
        f"try {{ {statement} }} catch (error) {{ if (!(error instanceof TypeError)) throw error; }}"
    )


# Run after the Messenger is identified and the widget has loaded.
AFTER = {
    "getter-null-then-object": (
        f"const flip = {FLIP};"
        "Intercom('update', {color: 'red', get custom_attributes() { return flip(); }});"
    ),
    "proxy-null-then-object": (
        f"const flip = {FLIP};"
        "Intercom('update', new Proxy({color: 'red', custom_attributes: null},"
        " {get: (target, key) => key === 'custom_attributes' ? flip() : target[key]}));"
    ),
    "controller-update-getter": (
        f"const flip = {FLIP};"
        "window.messenger.update({color: 'red', get custom_attributes() { return flip(); }});"
    ),
    "settings-getter-then-update": (
        f"const flip = {FLIP};"
        "window.intercomSettings = {color: 'red', get custom_attributes() { return flip(); }};"
        "Intercom('update', window.intercomSettings);"
    ),
    "to-json-top-level": (
        "Intercom('update', {color: 'red', toJSON() { return {plan: 'gold', user_id: 'm'}; }});"
    ),
    "to-json-nested": (
        "Intercom('update', {custom_attributes: {tier: 2, toJSON() { return {plan: 'gold'}; }}});"
    ),
    "to-json-in-settings": (
        "window.intercomSettings.toJSON = () => ({user_id: 'mallory', plan: 'gold'});"
        "window.intercomSettings.custom_attributes = {tier: 1, toJSON: () => ({plan: 'x'})};"
        + refused(
            "Object.defineProperty(window.intercomSettings, 'toJSON',"
            " {value: () => ({email: 'm@example.test'}), enumerable: true, configurable: true});"
        )
    ),
    "method-to-primitive": (
        "Intercom({[Symbol.toPrimitive]: () => 'update'}, {plan: 'gold', color: 'red'});"
        "Intercom(new String('update'), {teammates: 5, color: 'red'});"
    ),
    "keys-intercom-renames": (
        "Intercom('update', {'user.id': 'mallory', 'user$hash': 'ab', color: 'red',"
        " custom_attributes: {'user@id': 'm'}});"
    ),
    "array-and-function-carriers": (
        "Intercom('update', {color: 'red', custom_attributes: Object.assign([], {plan: 'gold'})});"
        "Intercom('update', Object.assign([], {plan: 'gold'}));"
        "Intercom('update', Object.assign(function () {}, {user_id: 'mallory'}));"
    ),
    "settings-prototype": (
        refused("Object.setPrototypeOf(window.intercomSettings, {plan: 'gold'});")
        + "window.intercomSettings.custom_attributes = {tier: 1};"
        + refused(
            "Object.setPrototypeOf(window.intercomSettings.custom_attributes, {teammates: 9});"
        )
        + refused(
            "Reflect.setPrototypeOf(window.intercomSettings, {user_id: 'm'}) || (() => {"
            " throw new TypeError('refused'); })();"
        )
    ),
    "inherited-and-hidden-keys": (
        "Intercom('update', Object.create({plan: 'gold'},"
        " {color: {value: 'red', enumerable: true}}));"
        "Intercom('update', new Proxy({plan: 'gold', color: 'red'}, {getOwnPropertyDescriptor:"
        " (t, k) => ({value: t[k], enumerable: k !== 'plan',"
        " configurable: true, writable: true})}));"
    ),
    "getter-that-throws": (
        "Intercom('update', {color: 'red', get tier() { throw new Error('boom'); },"
        " custom_attributes: {get size() { throw new Error('boom'); }, plan: 'gold'}});"
    ),
    "proxy-traps-that-throw": (
        "Intercom('update', new Proxy({plan: 'gold'}, {ownKeys() { throw new Error('boom'); }}));"
        "window.intercomSettings = new Proxy({user_id: 'm'},"
        " {ownKeys() { throw new Error('b'); }});"
    ),
}

# Run before messenger.js loads (the page's own legacy install).
BEFORE = {
    "settings-with-throwing-getter": (
        "window.intercomSettings = {color: 'red', user_id: 'mallory',"
        " get tier() { throw new Error('boom'); }};"
    ),
    "settings-proxy-that-throws": (
        "window.intercomSettings = new Proxy({user_id: 'mallory'},"
        " {ownKeys() { throw new Error('boom'); }});"
    ),
    "settings-getter-null-then-object": (
        f"const flip = {FLIP};"
        "window.intercomSettings = {color: 'red', get custom_attributes() { return flip(); }};"
    ),
    "queue-entry-getter": (
        INTERCOM_STUB + "let reads = 0;"
        "Object.defineProperty(Intercom.q, 0, {enumerable: true, configurable: false,"
        " get: () => (reads++ === 0 ? ['trackEvent', 'x'] : ['update', {plan: 'gold'}])});"
    ),
    "queue-entry-without-length": (
        INTERCOM_STUB + "Intercom.q.push({0: 'update', 1: {user_id: 'mallory', color: 'red'}});"
    ),
}

# The same for...in walk as the fake widget's, for window.intercomSettings.
SETTINGS_VIEWS = """() => {
    const walk = (value, depth) => {
        if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
            return value === undefined ? null : value;
        }
        const out = {};
        for (const key in value) {
            out[key] = depth > 3 ? '(deeper)' : walk(value[key], depth + 1);
        }
        return out;
    };
    const settings = window.intercomSettings;
    let json;
    try { json = JSON.parse(JSON.stringify(settings === undefined ? null : settings)); }
    catch (error) { json = {unserialisable: String(error)}; }
    return {json: json, keys: walk(settings, 0)};
}"""


def leaks(value: Any, where: str = "") -> list[str]:
    """Protected keys at the top level or inside custom_attributes, wherever they hide."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if RENAMED.sub("_", key) in PROTECTED:
                found.append(f"{where}{key}")
            if key == "custom_attributes":
                found += leaks(inner, f"{where}{key}.")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += leaks(inner, f"{where}[{index}].")
    return found


def open_page(stack: Stack, browsing: Browsing, flavour: str, prelude: str = "") -> None:
    """Log Ada in and start the Messenger from the classic script or the ES module."""
    log_in(stack, browsing)
    script = f"<script>{prelude}</script>" if prelude else ""
    options = stack.options()
    if flavour == "script":
        url = stack.add_page(start_script(options), prelude=script)
    else:
        module_url = stack.identity_url + "/v1/messenger/messenger.mjs"
        body = (
            f"<script type='module'>import {{startMessenger}} from {json.dumps(module_url)};"
            f"window.messenger = startMessenger({json.dumps(options)});</script>"
        )
        url = stack.add_page(body, prelude=script, loader=False)
    browsing.page.goto(url)
    browsing.wait_until("window.messenger")
    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_until("window.__widgetInitialised === 1")


def assert_nothing_leaked(browsing: Browsing, errors: list[str]) -> None:
    calls = browsing.calls()
    for call in calls:
        assert leaks(call["data"]) == [], call
        assert leaks(call["keys"]) == [], call
    views = browsing.page.evaluate(SETTINGS_VIEWS)
    assert leaks(views["json"]) == [], views
    assert leaks(views["keys"]) == [], views
    assert errors == []  # nothing escaped from messenger.js (or the attack) uncaught


@pytest.mark.parametrize("flavour", ["script", "module"])
@pytest.mark.parametrize("case", sorted(AFTER))
def test_hostile_page_objects_after_boot(
    stack: Stack, browsing: Browsing, flavour: str, case: str
) -> None:
    errors: list[str] = []
    browsing.page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(stack, browsing, flavour)
    booted = len(browsing.calls())

    attack = f"try {{ {AFTER[case]} return null; }} catch (error) {{ return String(error); }}"
    thrown = browsing.page.evaluate(f"() => {{ {attack} }}")

    assert thrown is None
    assert_nothing_leaked(browsing, errors)
    # The harmless part of each update still reached Intercom, with the JWT.
    jwt_now = browsing.calls()[0]["data"]["intercom_user_jwt"]
    for call in browsing.calls()[booted:]:
        assert call["method"] == "update", call
        assert call["data"]["intercom_user_jwt"] == jwt_now


@pytest.mark.parametrize("flavour", ["script", "module"])
@pytest.mark.parametrize("case", sorted(BEFORE))
def test_hostile_page_objects_before_messenger_js(
    stack: Stack, browsing: Browsing, flavour: str, case: str
) -> None:
    errors: list[str] = []
    browsing.page.on("pageerror", lambda error: errors.append(str(error)))

    open_page(stack, browsing, flavour, prelude=BEFORE[case])

    assert_nothing_leaked(browsing, errors)
    boots = [
        c for c in browsing.calls() if c["method"] == "boot" and "intercom_user_jwt" in c["data"]
    ]
    assert len(boots) == 1
