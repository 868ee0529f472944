"""messenger.js: a CORS-looking failure after the origin proved allowed is not a refusal (issue 11).

A front proxy's own error page (the shipped nginx answers 502/503 while the
service restarts) carries no Access-Control-Allow-Origin, so the browser refuses
to let the page read it, exactly as it refuses a misconfigured origin: "Failed to
fetch", while a no-cors probe shows the host answered. messenger.js calls that
CORS and stops after one retry, which is right for a page whose origin was never
allowed, but broke the variant where this same page already got a token from the
endpoint: a refresh that met two such answers in a row (a restart of a couple of
seconds) logged the user out of the Messenger. An origin that a token came back
to is allowed, so later failures of the same kind are retried as the network's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.harness import Browsing, LiveServer, Stack, start_script
from tests.browser.test_messenger import log_in

pytestmark = pytest.mark.browser


class FrontProxy:
    """The identity service behind a proxy that can answer 502 itself, without CORS headers."""

    def __init__(self, stack: Stack) -> None:
        self.app = stack.identity.server.app
        self.down = False
        self.refused = 0
        self.server = LiveServer(self)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.down and environ["REQUEST_METHOD"] == "POST":
            self.refused += 1
            start_response("502 Bad Gateway", [("Content-Type", "application/problem+json")])
            return [b'{"status": 502, "title": "Bad Gateway"}']
        return self.app(environ, start_response)


@pytest.fixture
def proxy(stack: Stack) -> Iterator[FrontProxy]:
    front = FrontProxy(stack)
    yield front
    front.server.stop()


def test_a_refresh_through_a_restarting_proxy_keeps_the_user(
    stack: Stack, browsing: Browsing, proxy: FrontProxy
) -> None:
    log_in(stack, browsing)
    options = stack.options(
        "short",
        tokenUrl=proxy.server.url + "/v1/messenger/token",
        retry={"attempts": 5, "baseDelayMs": 20, "maxDelayMs": 50},
    )
    browsing.page.goto(stack.add_page(start_script(options)))
    assert browsing.settle("window.messenger.ready") == "identified"
    # ready settles when our boot is queued; the widget script may still be loading.
    first = browsing.wait_for_call("boot")["data"]["intercom_user_jwt"]

    proxy.down = True
    browsing.page.evaluate("() => { window.__refreshed = window.messenger.refresh(); }")
    deadline = time.monotonic() + 5
    while proxy.refused < 3 and time.monotonic() < deadline:  # three proxy answers in a row
        time.sleep(0.05)
    proxy.down = False

    assert browsing.settle("window.__refreshed") == "identified"
    methods = [c["method"] for c in browsing.calls()]
    assert "shutdown" not in methods, methods
    update = browsing.wait_for_call("update", lambda c: c["data"]["intercom_user_jwt"] != first)
    assert update["data"]["intercom_user_jwt"] != first
    assert proxy.refused >= 3


def test_control_a_page_whose_origin_never_got_a_token_still_stops(
    stack: Stack, browsing: Browsing, proxy: FrontProxy
) -> None:
    # The first request already meets the proxy's answer: indistinguishable from an
    # origin missing from cors_origins, so it is named and not retried for ever.
    proxy.down = True
    log_in(stack, browsing)
    options = stack.options(
        tokenUrl=proxy.server.url + "/v1/messenger/token",
        retry={"attempts": 5, "baseDelayMs": 20, "maxDelayMs": 50},
    )
    browsing.page.goto(stack.add_page(start_script(options)))
    assert browsing.settle("window.messenger.ready") == "failed"
    assert proxy.refused == 2
