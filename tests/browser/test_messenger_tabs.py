"""One token for all of a user's tabs: pages of one Chromium context, token requests counted.

Every tab of one origin that runs messenger.js for the same token endpoint and workspace
shares its token over a BroadcastChannel, and a Web Lock lets only one of them fetch at a
time. The figure these tests hold to is the issue's target: one token request per
refresh period, whatever the number of tabs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from identity_service.http.paths import TOKEN_PATH
from tests.browser.harness import Stack, start_script
from tests.browser.test_messenger import ADA, GRACE, decode

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REFRESH_MS = 48_000  # 80 % of the "short" workspace's 60 s tokens


@dataclass
class Tabs:
    """One browser context (one profile's cookie jar) and its tabs, token requests counted."""

    stack: Stack
    context: BrowserContext
    pages: list[Page] = field(default_factory=list)
    token_requests: int = 0

    def __post_init__(self) -> None:
        def count(request: Any) -> None:
            if request.method == "POST" and request.url.endswith(TOKEN_PATH):
                self.token_requests += 1

        self.context.on("request", count)

    def log_in(self, user: dict[str, Any]) -> None:
        cookie = {"name": "session", "value": self.stack.session_cookie(user)}
        self.context.add_cookies([{**cookie, "url": self.stack.identity_url}])  # type: ignore[list-item]

    def open(self, user_key: str | None = "u-42", prelude: str = "", **options: Any) -> Page:
        """A new tab on a product page that starts the messenger; waits for its outcome."""
        if user_key is not None:
            options["userKey"] = user_key
        page = self.context.new_page()
        page.goto(
            self.stack.add_page(
                start_script(self.stack.options(workspace="short", **options)), prelude=prelude
            )
        )
        wait(page, "window.messenger && window.messenger.state !== 'starting'")
        if page.evaluate("window.messenger.state") == "identified":  # and the widget has it
            wait(page, "(window.__widgetCalls || []).some(c => c.method === 'boot')")
        self.pages.append(page)
        return page

    def jwt(self, page: Page) -> str:
        """The JWT of the latest boot or update the page's widget received."""
        jwts = [
            c["data"]["intercom_user_jwt"]
            for c in calls(page)
            if c["method"] in ("boot", "update") and "intercom_user_jwt" in (c["data"] or {})
        ]
        return jwts[-1] if jwts else ""


def calls(page: Page) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = page.evaluate("window.__widgetCalls || []")
    return value


def wait(page: Page, predicate_js: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(predicate_js)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {predicate_js}")
        time.sleep(0.05)


def settle_all(tabs: Tabs, predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(predicate(page) for page in tabs.pages):
        if time.monotonic() > deadline:
            raise AssertionError([calls(page) for page in tabs.pages])
        time.sleep(0.05)


@pytest.fixture
def tabs(browser: Browser, stack: Stack) -> Generator[Tabs, None, None]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield Tabs(stack, context)
    context.close()


def start_paused(tabs: Tabs, count: int) -> str:
    """`count` tabs of Ada's, the page clocks paused; returns the JWT they all booted with."""
    tabs.context.clock.install()
    tabs.log_in(ADA)
    for _ in range(count):
        assert tabs.open().evaluate("window.messenger.state") == "identified"
    started = tabs.pages[0].evaluate("Date.now()")
    tabs.context.clock.pause_at((started + 1_000) / 1000)
    first = tabs.jwt(tabs.pages[0])
    assert [tabs.jwt(page) for page in tabs.pages] == [first] * count
    return first


def requests_per_refresh_period(tabs: Tabs, periods: int) -> list[int]:
    """Token requests in each of `periods` refresh periods, every tab's widget updated in each."""
    per_period = []
    for _ in range(periods):
        before = tabs.token_requests
        previous = {id(page): tabs.jwt(page) for page in tabs.pages}
        tabs.context.clock.fast_forward(REFRESH_MS)
        settle_all(tabs, lambda page, p=previous: tabs.jwt(page) not in ("", p[id(page)]))
        time.sleep(0.3)  # a second request, if any tab were to send one, has time to show
        fresh = {tabs.jwt(page) for page in tabs.pages}
        assert len(fresh) == 1, "every tab carries the same, fresh token"
        per_period.append(tabs.token_requests - before)
    return per_period


@pytest.mark.parametrize("count", [1, 3, 10])
def test_one_token_request_per_refresh_period_whatever_the_number_of_tabs(
    tabs: Tabs, stack: Stack, count: int
) -> None:
    start_paused(tabs, count)
    assert tabs.token_requests == 1  # the tabs opened later took the first tab's token

    per_period = requests_per_refresh_period(tabs, periods=2)

    assert per_period == [1, 1]
    final = tabs.jwt(tabs.pages[-1])
    assert decode(stack, final, "short")["user_id"] == "u-42"
    for page in tabs.pages:
        update = [c for c in calls(page) if c["method"] == "update"][-1]
        assert update["data"] == {"intercom_user_jwt": final}
    ARTIFACTS.mkdir(exist_ok=True)
    figure = {"tabs": count, "first_load": 1, "per_refresh_period": per_period}
    (ARTIFACTS / f"tabs-token-requests-{count}.json").write_text(json.dumps(figure))


def test_a_tab_opened_later_reuses_the_fresh_token_without_a_request(
    tabs: Tabs, stack: Stack
) -> None:
    tabs.log_in(ADA)
    first = tabs.open()
    assert tabs.token_requests == 1

    later = tabs.open()

    assert later.evaluate("window.messenger.state") == "identified"
    assert tabs.token_requests == 1
    boot = next(c for c in calls(later) if c["method"] == "boot")
    assert boot["data"]["intercom_user_jwt"] == tabs.jwt(first)
    assert set(boot["data"]) == {"app_id", "api_base", "intercom_user_jwt"}


def test_the_refresh_goes_on_when_the_tab_that_fetched_is_closed(tabs: Tabs) -> None:
    start_paused(tabs, 3)
    tabs.pages.pop(0).close()  # the tab that fetched the first token
    # Until the browser has released the closed tab's locks, the others would wait
    # ASK_TIMEOUT_MS for its answer: on the paused clock, for ever.
    held = "navigator.locks.query().then(s => s.held.filter(l => l.name.includes(' tab ')).length)"
    wait(tabs.pages[0], f"{held}.then(n => n === {len(tabs.pages)})")

    assert requests_per_refresh_period(tabs, periods=1) == [1]


def test_logout_in_one_tab_shuts_the_messenger_down_in_all(tabs: Tabs) -> None:
    start_paused(tabs, 3)

    tabs.pages[1].evaluate("window.messenger.logout()")

    settle_all(tabs, lambda page: page.evaluate("window.messenger.state") == "stopped")
    for page in tabs.pages:
        assert [c["method"] for c in calls(page)][-1] == "shutdown"
        assert page.evaluate("JSON.stringify(window.intercomSettings)").find("jwt") < 0
    tabs.context.clock.fast_forward(3 * REFRESH_MS)
    time.sleep(0.3)
    assert tabs.token_requests == 1  # nobody refreshes a logged-out session


def test_page_code_shutting_intercom_down_logs_out_every_tab(tabs: Tabs) -> None:
    tabs.log_in(ADA)
    tabs.open()
    tabs.open()

    tabs.pages[0].evaluate("Intercom('shutdown')")

    wait(tabs.pages[1], "window.messenger.state === 'stopped'")
    assert [c["method"] for c in calls(tabs.pages[1])] == ["boot", "shutdown"]


def test_a_new_user_after_logout_never_gets_the_previous_users_token(
    tabs: Tabs, stack: Stack
) -> None:
    tabs.log_in(ADA)
    ada = tabs.open()
    ada.evaluate("window.messenger.logout()")
    tabs.log_in(GRACE)

    grace = tabs.open(user_key="u-77")

    assert tabs.token_requests == 2
    assert decode(stack, tabs.jwt(grace), "short")["user_id"] == "u-77"


def test_a_tab_the_previous_user_left_open_never_hands_over_their_token(
    tabs: Tabs, stack: Stack
) -> None:
    # Ada's tab stays open and identified; someone logs in as Grace without logging out.
    tabs.log_in(ADA)
    ada = tabs.open()
    tabs.log_in(GRACE)

    grace = tabs.open(user_key="u-77")
    unnamed = tabs.open(user_key=None)  # a page that does not name its user never reuses

    assert tabs.token_requests == 3
    assert decode(stack, tabs.jwt(grace), "short")["user_id"] == "u-77"
    assert decode(stack, tabs.jwt(unnamed), "short")["user_id"] == "u-77"
    # Grace's tokens, announced to the group, are not taken by Ada's tab either.
    assert decode(stack, tabs.jwt(ada), "short")["user_id"] == "u-42"
    assert [c["method"] for c in calls(ada)] == ["boot"]


def test_two_users_in_two_browser_profiles_never_share(browser: Browser, stack: Stack) -> None:
    contexts = [browser.new_context(), browser.new_context()]
    try:
        ada, grace = Tabs(stack, contexts[0]), Tabs(stack, contexts[1])
        ada.log_in(ADA)
        grace.log_in(GRACE)
        # The same userKey on purpose: profiles share nothing, whatever the page says.
        pages = [ada.open(user_key="same"), grace.open(user_key="same")]
        pages += [ada.open(user_key="same"), grace.open(user_key="same")]

        assert (ada.token_requests, grace.token_requests) == (1, 1)
        users = [decode(stack, Tabs.jwt(ada, page), "short")["user_id"] for page in pages]
        assert users == ["u-42", "u-77", "u-42", "u-77"]
    finally:
        for context in contexts:
            context.close()


NO_SHARING = "<script>delete window.BroadcastChannel;</script>"


def test_without_broadcast_channel_each_tab_fetches_and_refreshes_alone(tabs: Tabs) -> None:
    tabs.context.clock.install()
    tabs.log_in(ADA)
    for _ in range(3):
        tabs.open(prelude=NO_SHARING)
    started = tabs.pages[0].evaluate("Date.now()")
    tabs.context.clock.pause_at((started + 1_000) / 1000)
    assert tabs.token_requests == 3
    assert len({tabs.jwt(page) for page in tabs.pages}) == 3

    before = {id(page): tabs.jwt(page) for page in tabs.pages}
    tabs.context.clock.fast_forward(REFRESH_MS)
    settle_all(tabs, lambda page: tabs.jwt(page) != before[id(page)])

    assert tabs.token_requests == 6  # the fallback: as before sharing, one per tab


def test_share_tabs_false_keeps_a_tab_to_itself(tabs: Tabs) -> None:
    tabs.log_in(ADA)
    tabs.open()
    tabs.open(shareTabs=False)

    assert tabs.token_requests == 2


def test_a_peer_that_never_answers_delays_the_first_token_but_does_not_stop_it(
    tabs: Tabs, stack: Stack
) -> None:
    tabs.log_in(ADA)
    first = tabs.open()
    # A tab of the group that holds its lock but whose page no longer answers (hung).
    name = "identity-service-messenger " + stack.token_url + " short tab silent"
    never = "() => new Promise(() => {})"
    hold = f"() => {{ navigator.locks.request({json.dumps(name)}, {never}); }}"
    first.evaluate(hold)

    later = tabs.open()

    # The first tab answered, the silent one did not: after ASK_TIMEOUT_MS the answer counts.
    assert later.evaluate("window.messenger.state") == "identified"
    assert tabs.token_requests == 1
    assert tabs.jwt(later) == tabs.jwt(first)
