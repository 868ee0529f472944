"""messenger.js in Chromium against the real service: boot, guard, refresh, failure, logout."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from tests.browser.harness import Browsing, Stack, free_port, start_script

pytestmark = pytest.mark.browser

ADA = {"user_id": "u-42", "email": "ada@example.test", "plan": "pro", "teammates": 3}
GRACE = {"user_id": "u-77", "email": "grace@example.test", "plan": "team", "teammates": 9}
PROTECTED_ALWAYS = {"user_id", "email", "user_hash"}
# The official Intercom loader stub, as a product page may already have it.
INTERCOM_STUB = (
    "(function(){var w=window;var i=function(){i.c(arguments);};i.q=[];"
    "i.c=function(args){i.q.push(args);};w.Intercom=i;})();"
)


def log_in(stack: Stack, browsing: Browsing, user: dict[str, Any] = ADA) -> None:
    """Give the browser the product's session cookie (Flask-signed) for `user`."""
    cookie = {"name": "session", "value": stack.session_cookie(user), "url": stack.identity_url}
    browsing.page.context.add_cookies([cookie])  # type: ignore[list-item]


def decode(stack: Stack, token: str, workspace: str = "main") -> dict[str, Any]:
    """Verify a Messenger JWT as Intercom would: HS256 with the workspace secret."""
    claims: dict[str, Any] = jwt.decode(
        token,
        stack.secret(workspace),
        algorithms=["HS256"],
        options={"require": ["exp", "iat", "user_id"]},
    )
    return claims


def protected_warnings(browsing: Browsing) -> list[str]:
    return [w for w in browsing.warnings() if "removed protected key" in w]


def settings_json(browsing: Browsing) -> dict[str, Any]:
    text = browsing.page.evaluate("JSON.stringify(window.intercomSettings || null)")
    value: dict[str, Any] = json.loads(text)
    return value


def boot_page(stack: Stack, browsing: Browsing, **options: Any) -> dict[str, Any]:
    """Log Ada in, open a page that starts the messenger, wait for the identified boot."""
    log_in(stack, browsing)
    browsing.page.goto(stack.add_page(start_script(stack.options(**options))))
    assert browsing.settle("window.messenger.ready") == "identified"
    return browsing.wait_for_call("boot")


def test_boot_carries_the_jwt_and_no_protected_key(stack: Stack, browsing: Browsing) -> None:
    boot = boot_page(stack, browsing, settings={"alignment": "left"})

    data = boot["data"]
    assert set(data) == {"app_id", "api_base", "intercom_user_jwt", "alignment"}
    assert data["app_id"] == "fakeapp1"
    assert data["api_base"] == "https://api-iam.eu.intercom.io"
    assert data["alignment"] == "left"
    claims = decode(stack, data["intercom_user_jwt"])
    assert claims["user_id"] == "u-42"
    assert (claims["email"], claims["plan"], claims["teammates"]) == ("ada@example.test", "pro", 3)
    # The same settings are left in window.intercomSettings, equally clean, once the
    # widget has taken over (not before: it would boot from them a second time).
    browsing.wait_until("window.intercomSettings && window.intercomSettings.app_id")
    assert settings_json(browsing) == data
    assert browsing.token_requests == ["POST"]
    assert protected_warnings(browsing) == []


def test_update_from_page_code_loses_protected_keys(stack: Stack, browsing: Browsing) -> None:
    boot = boot_page(stack, browsing)
    jwt_now = boot["data"]["intercom_user_jwt"]

    browsing.page.evaluate("Intercom('update', {plan: 'free', teammates: 99, color: 'red'})")

    update = browsing.wait_for_call("update")
    assert update["data"] == {"color": "red", "intercom_user_jwt": jwt_now}
    warnings = protected_warnings(browsing)
    assert len(warnings) == 2
    assert any('"plan"' in w for w in warnings)
    assert any('"teammates"' in w for w in warnings)


def test_identity_keys_are_always_removed(stack: Stack, browsing: Browsing) -> None:
    boot = boot_page(stack, browsing)

    browsing.page.evaluate(
        """Intercom('update', {user_id: 'u-1', email: 'mallory@example.test', user_hash: 'ab',
                               name: 'Mallory', custom_attributes: {plan: 'gold', tier: 2}})"""
    )
    browsing.page.evaluate("Intercom('update')")  # the "check for new messages" ping

    updates = [c for c in browsing.calls() if c["method"] == "update"]
    jwt_now = boot["data"]["intercom_user_jwt"]
    assert updates[0]["data"] == {
        "name": "Mallory",  # not whitelisted in this workspace, so not protected
        "custom_attributes": {"tier": 2},
        "intercom_user_jwt": jwt_now,
    }
    assert updates[1]["data"] == {"intercom_user_jwt": jwt_now}
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["email", "plan", "user_hash", "user_id"]


def test_calls_queued_before_the_widget_loaded_are_guarded(
    stack: Stack, browsing: Browsing
) -> None:
    log_in(stack, browsing)
    body = start_script(stack.options()) + (
        "<script>Intercom('update', {email: 'mallory@example.test', plan: 'free', color: 'blue'});"
        "Intercom('trackEvent', 'viewed-pricing');</script>"
    )
    browsing.page.goto(stack.add_page(body))
    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_for_call("trackEvent")

    calls = browsing.calls()
    assert [(c["method"], c["how"]) for c in calls] == [
        ("boot", "queue"),  # ours first, so the page's calls reach an identified Messenger
        ("update", "queue"),
        ("trackEvent", "queue"),
    ]
    jwt_now = calls[0]["data"]["intercom_user_jwt"]
    assert calls[1]["data"] == {"color": "blue", "intercom_user_jwt": jwt_now}
    assert len(protected_warnings(browsing)) == 2


def test_a_queue_filled_before_messenger_js_loaded_is_guarded(
    stack: Stack, browsing: Browsing
) -> None:
    log_in(stack, browsing)
    prelude = (
        f"<script>{INTERCOM_STUB}"
        "Intercom('update', {user_id: 'mallory', plan: 'enterprise', color: 'green'});</script>"
    )
    browsing.page.goto(stack.add_page(start_script(stack.options()), prelude=prelude))
    assert browsing.settle("window.messenger.ready") == "identified"
    update = browsing.wait_for_call("update")

    boot = browsing.wait_for_call("boot")
    assert update["how"] == "queue"
    # The JWT did not exist when the page queued this; it is added as the queue drains.
    assert update["data"] == {
        "color": "green",
        "intercom_user_jwt": boot["data"]["intercom_user_jwt"],
    }
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["plan", "user_id"]


def test_intercom_settings_written_before_messenger_js_are_stripped(
    stack: Stack, browsing: Browsing
) -> None:
    log_in(stack, browsing)
    prelude = (
        "<script>window.intercomSettings = {app_id: 'fakeapp1', user_id: 'mallory', "
        "email: 'mallory@example.test', teammates: 500, color: 'red'};</script>"
    )
    browsing.page.goto(stack.add_page(start_script(stack.options()), prelude=prelude))
    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_until("window.__widgetLoads === 1")

    # What the widget saw when it loaded: clean, and no app_id while our boot was queued,
    # so it booted once, from the queue, identified (not a second time from the settings).
    assert browsing.page.evaluate("window.__widgetSettingsAtLoad") == {"color": "red"}
    assert [(c["method"], c["how"]) for c in browsing.calls()] == [("boot", "queue")]
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["email", "teammates", "user_id"]


def test_intercom_settings_written_after_boot_are_stripped(
    stack: Stack, browsing: Browsing
) -> None:
    boot_page(stack, browsing)
    browsing.wait_until("window.intercomSettings && window.intercomSettings.intercom_user_jwt")

    browsing.page.evaluate(
        """() => {
            window.intercomSettings = {user_id: 'mallory', color: 'blue'};
            window.intercomSettings.teammates = 1000;
            Object.assign(window.intercomSettings, {email: 'mallory@example.test', size: 2});
            window.intercomSettings['user_hash'] = 'ab';
        }"""
    )

    assert settings_json(browsing) == {"color": "blue", "size": 2}
    assert "user_id" not in browsing.page.evaluate("Object.keys(window.intercomSettings)")
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["email", "teammates", "user_hash", "user_id"]


def test_nested_custom_attributes_changed_in_place_are_stripped(
    stack: Stack, browsing: Browsing
) -> None:
    # Written after messenger.js, before the widget loads: the widget boots from it.
    log_in(stack, browsing)
    body = start_script(stack.options()) + (
        "<script>window.intercomSettings = {app_id: 'fakeapp1', color: 'red',"
        " custom_attributes: {tier: 2}};"
        "window.intercomSettings.custom_attributes.plan = 'enterprise';"
        "window.intercomSettings.custom_attributes['email'] = 'mallory@example.test';</script>"
    )
    browsing.page.goto(stack.add_page(body))
    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_until("window.__widgetLoads === 1")

    clean = {"color": "red", "custom_attributes": {"tier": 2}}  # app_id held: one boot
    assert browsing.page.evaluate("window.__widgetSettingsAtLoad") == clean
    assert [(c["method"], c["how"]) for c in browsing.calls()] == [("boot", "queue")]

    # And after boot, on the object page code holds.
    browsing.wait_until("window.intercomSettings.intercom_user_jwt")
    refused = browsing.page.evaluate(
        """() => {
            const attributes = window.intercomSettings.custom_attributes;
            attributes.teammates = 500;
            try {
                Object.defineProperty(attributes, 'plan', {value: 'gold', enumerable: true});
                return false;
            } catch (error) {
                return error instanceof TypeError;  // refused, as at the top level
            }
        }"""
    )
    assert refused
    assert settings_json(browsing)["custom_attributes"] == {"tier": 2}
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["email", "plan", "plan", "teammates"]


def test_custom_attributes_defined_with_define_property_are_stripped(
    stack: Stack, browsing: Browsing
) -> None:
    log_in(stack, browsing)
    body = start_script(stack.options()) + (
        "<script>window.intercomSettings = {app_id: 'fakeapp1', color: 'red'};"
        "Object.defineProperty(window.intercomSettings, 'custom_attributes', {value:"
        " {plan: 'gold', tier: 3}, writable: true, enumerable: true, configurable: true});"
        "window.intercomSettings.custom_attributes.teammates = 500;</script>"
    )
    browsing.page.goto(stack.add_page(body))
    assert browsing.settle("window.messenger.ready") == "identified"
    browsing.wait_until("window.__widgetLoads === 1")

    clean = {"color": "red", "custom_attributes": {"tier": 3}}  # app_id held: one boot
    assert browsing.page.evaluate("window.__widgetSettingsAtLoad") == clean
    assert [(c["method"], c["how"]) for c in browsing.calls()] == [("boot", "queue")]

    # After boot too, and what page code passes on to Intercom stays clean.
    browsing.wait_until("window.intercomSettings.intercom_user_jwt")
    browsing.page.evaluate(
        """() => {
            Object.defineProperty(window.intercomSettings, 'custom_attributes',
                                  {value: {plan: 'free', size: 1}, enumerable: true,
                                   writable: true, configurable: true});
            Intercom('update', {custom_attributes: window.intercomSettings.custom_attributes});
        }"""
    )
    assert settings_json(browsing)["custom_attributes"] == {"size": 1}
    update = browsing.wait_for_call("update")
    assert update["data"]["custom_attributes"] == {"size": 1}
    refused = browsing.page.evaluate(
        """() => {
            try {
                Object.defineProperty(window.intercomSettings, 'custom_attributes',
                                      {get: () => ({plan: 'gold'}), configurable: true});
                return false;
            } catch (error) {
                return error instanceof TypeError;
            }
        }"""
    )
    assert refused
    assert settings_json(browsing)["custom_attributes"] == {"size": 1}
    named = sorted(w.split('"')[1] for w in protected_warnings(browsing))
    assert named == ["plan", "plan", "teammates"]


def test_keys_learnt_later_are_removed_from_nested_custom_attributes(
    stack: Stack, browsing: Browsing
) -> None:
    browsing.page.goto(stack.add_page(""))  # messenger.js only, not started
    browsing.page.evaluate(
        """() => {
            IdentityServiceMessenger.installGuard([]);
            window.intercomSettings = {color: 'red', custom_attributes: {tier: 2, size: 1}};
            IdentityServiceMessenger.installGuard(['tier']);
        }"""
    )
    assert settings_json(browsing) == {"color": "red", "custom_attributes": {"size": 1}}
    named = [w.split('"')[1] for w in protected_warnings(browsing)]
    assert named == ["tier"]


def test_token_is_refreshed_before_it_expires(stack: Stack, browsing: Browsing) -> None:
    browsing.page.clock.install()
    boot = boot_page(stack, browsing, workspace="short")  # 60 s tokens
    first = boot["data"]["intercom_user_jwt"]
    started = browsing.page.evaluate("Date.now()")
    # From 2 s on, page time moves only when the test moves it (Python takes seconds).
    browsing.page.clock.pause_at((started + 2_000) / 1000)

    browsing.page.clock.fast_forward(44_000)  # 46 s, before 80 % of the lifetime: nothing yet
    time.sleep(0.3)
    assert browsing.token_requests == ["POST"]

    browsing.page.clock.fast_forward(3_000)  # 49 s, past 48 s: the refresh timer fires
    update = browsing.wait_for_call("update", lambda c: c["data"]["intercom_user_jwt"] != first)

    fresh = update["data"]["intercom_user_jwt"]
    assert update["data"] == {"intercom_user_jwt": fresh}
    assert 46_000 < update["at"] - started < 50_000  # at ~80 %, well before expiry
    assert browsing.token_requests == ["POST", "POST"]
    old_claims, new_claims = decode(stack, first, "short"), decode(stack, fresh, "short")
    assert new_claims["jti"] != old_claims["jti"]
    assert new_claims["user_id"] == "u-42"
    assert settings_json(browsing)["intercom_user_jwt"] == fresh
    # Page code's updates now carry the fresh token.
    browsing.page.evaluate("Intercom('update', {color: 'red'})")
    last = browsing.wait_for_call("update", lambda c: c["data"].get("color") == "red")
    assert last["data"]["intercom_user_jwt"] == fresh


def test_a_tab_becoming_visible_refreshes_a_due_token(stack: Stack, browsing: Browsing) -> None:
    browsing.page.clock.install()
    boot = boot_page(stack, browsing, workspace="short")
    first = boot["data"]["intercom_user_jwt"]
    now = browsing.page.evaluate("Date.now()")
    browsing.page.clock.pause_at((now + 2_000) / 1000)

    # A hidden tab's timers are throttled: the clock moves on, the timer has not fired.
    browsing.page.clock.set_system_time((now + 50_000) / 1000)
    time.sleep(0.3)
    assert browsing.token_requests == ["POST"]

    browsing.page.evaluate(
        """() => {
            Object.defineProperty(document, 'visibilityState',
                                  {configurable: true, get: () => 'visible'});
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
    )
    update = browsing.wait_for_call("update", lambda c: c["data"]["intercom_user_jwt"] != first)
    assert decode(stack, update["data"]["intercom_user_jwt"], "short")["user_id"] == "u-42"
    assert browsing.token_requests == ["POST", "POST"]


def test_endpoint_down_means_no_boot_at_all(stack: Stack, browsing: Browsing) -> None:
    log_in(stack, browsing)
    down = f"http://127.0.0.1:{free_port()}/v1/messenger/token"
    options = stack.options(
        tokenUrl=down, retry={"attempts": 3, "baseDelayMs": 20, "maxDelayMs": 50}
    )
    browsing.page.goto(stack.add_page(start_script(options)))

    assert browsing.settle("window.messenger.ready") == "failed"
    assert browsing.token_requests == ["POST"] * 3  # retried with backoff, then gave up
    assert browsing.page.evaluate("window.__widgetLoads || 0") == 0
    assert browsing.calls() == []
    # Page code can still call Intercom; it only queues, and nothing identified is queued.
    browsing.page.evaluate("Intercom('update', {user_id: 'mallory'})")
    queued = browsing.page.evaluate("JSON.stringify(Array.from(Intercom.q, a => Array.from(a)))")
    assert json.loads(queued) == [["update", {}]]


def test_not_logged_in_boots_anonymously_when_configured(stack: Stack, browsing: Browsing) -> None:
    # No session cookie: the real endpoint answers 401, which is not retried.
    options = stack.options(onFailure="anonymous")
    prelude = "<script>window.intercomSettings = {user_id: 'mallory', color: 'red'};</script>"
    browsing.page.goto(stack.add_page(start_script(options), prelude=prelude))

    assert browsing.settle("window.messenger.ready") == "anonymous"
    boot = browsing.wait_for_call("boot")
    assert boot["data"] == {"app_id": "fakeapp1", "api_base": "https://api-iam.eu.intercom.io"}
    assert browsing.token_requests == ["POST"]
    assert "user_id" not in settings_json(browsing)


def test_bearer_token_from_get_access_token(stack: Stack, browsing: Browsing) -> None:
    idp = stack.idp_token(sub="u-99", email="lin@example.test", plan="enterprise")
    seen: list[dict[str, str]] = []
    browsing.page.on(
        "request",
        lambda r: (
            seen.append(r.headers) if r.url == stack.token_url and r.method == "POST" else None
        ),
    )
    extra = f"{{getAccessToken: function () {{ return Promise.resolve({json.dumps(idp)}); }}}}"
    browsing.page.goto(stack.add_page(start_script(stack.options(), extra)))

    assert browsing.settle("window.messenger.ready") == "identified"
    claims = decode(stack, browsing.wait_for_call("boot")["data"]["intercom_user_jwt"])
    assert (claims["user_id"], claims["plan"]) == ("u-99", "enterprise")
    assert seen[0]["authorization"] == f"Bearer {idp}"
    assert "cookie" not in seen[0]


def test_get_access_token_that_throws_is_retried_not_fatal(
    stack: Stack, browsing: Browsing
) -> None:
    # An IdP SDK that throws synchronously (not a rejected promise) the first time,
    # e.g. while it is still initialising: the messenger retries, then boots.
    idp = stack.idp_token(sub="u-7", email="kim@example.test", plan="pro")
    extra = (
        "{getAccessToken: (function () { var calls = 0; return function () {"
        " calls += 1; if (calls === 1) { throw new Error('sdk not ready'); }"
        f" return {json.dumps(idp)}; }}; }})(),"
        " retry: {attempts: 3, baseDelayMs: 20, maxDelayMs: 50}}"
    )
    browsing.page.goto(stack.add_page(start_script(stack.options(), extra)))

    assert browsing.settle("window.messenger.ready") == "identified"
    claims = decode(stack, browsing.wait_for_call("boot")["data"]["intercom_user_jwt"])
    assert claims["user_id"] == "u-7"
    assert browsing.token_requests == ["POST"]  # the throwing attempt sent nothing


def test_logout_shuts_down_and_stops_refreshing(stack: Stack, browsing: Browsing) -> None:
    browsing.page.clock.install()
    boot_page(stack, browsing, workspace="short")

    browsing.page.evaluate("window.messenger.logout()")
    browsing.page.evaluate("Intercom('update', {color: 'red'})")
    browsing.page.clock.fast_forward(120_000)
    time.sleep(0.3)

    methods = [c["method"] for c in browsing.calls()]
    assert methods == ["boot", "shutdown", "update"]
    assert browsing.calls()[-1]["data"] == {"color": "red"}  # no JWT after logout
    assert browsing.page.evaluate("window.messenger.state") == "stopped"
    assert "intercom_user_jwt" not in settings_json(browsing)
    assert browsing.token_requests == ["POST"]


def test_logged_out_of_the_product_ends_the_messenger_session(
    stack: Stack, browsing: Browsing
) -> None:
    boot_page(stack, browsing)
    browsing.page.context.clear_cookies()

    assert browsing.settle("window.messenger.refresh()") == "stopped"

    assert [c["method"] for c in browsing.calls()] == ["boot", "shutdown"]


def test_another_user_logging_in_gets_a_fresh_session(stack: Stack, browsing: Browsing) -> None:
    boot_page(stack, browsing)
    log_in(stack, browsing, GRACE)

    assert browsing.settle("window.messenger.refresh()") == "identified"

    calls = browsing.calls()
    assert [c["method"] for c in calls] == ["boot", "shutdown", "boot"]
    assert decode(stack, calls[2]["data"]["intercom_user_jwt"])["user_id"] == "u-77"


def test_es_module_import(stack: Stack, browsing: Browsing) -> None:
    log_in(stack, browsing)
    module_url = stack.identity_url + "/v1/messenger/messenger.mjs"
    body = (
        f"<script type='module'>import {{startMessenger}} from {json.dumps(module_url)};"
        f"window.messenger = startMessenger({json.dumps(stack.options())});</script>"
    )
    browsing.page.goto(stack.add_page(body, loader=False))  # the module alone
    browsing.wait_until("window.messenger")

    assert browsing.settle("window.messenger.ready") == "identified"
    assert (
        decode(stack, browsing.wait_for_call("boot")["data"]["intercom_user_jwt"])["user_id"]
        == "u-42"
    )
