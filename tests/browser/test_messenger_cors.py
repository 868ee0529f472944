"""messenger.js when the browser refuses the token endpoint's answer (issue 11, item 5).

A page whose origin is missing from `service.cors_origins` only ever sees
"Failed to fetch". The service did answer, so retrying cannot help: messenger.js
tells the developer the likely cause (CORS: this origin is not allowed, with the
page's origin and the token URL), retries once in case the network was at fault,
then stops. A server that is down, and a server answering 5xx, are still retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from werkzeug.wrappers import Request, Response

from identity_service.auth import Identity
from tests.browser.harness import Browsing, LiveServer, Stack, free_port, start_script
from tests.browser.test_messenger import log_in

pytestmark = pytest.mark.browser

RECORD_ERRORS = "{onError: function (error) { (window.__errors = window.__errors || []).push({"
RECORD_ERRORS += "message: error.message, cors: !!error.cors, retryable: error.retryable,"
RECORD_ERRORS += " status: error.status}); }}"


@pytest.fixture
def elsewhere(stack: Stack) -> Iterator[str]:
    """The same product pages, served from an origin the service's cors_origins lacks."""
    server = LiveServer(stack.product_app)
    yield server.url
    server.stop()


def on_origin(stack: Stack, url: str, origin: str) -> str:
    """`url` (a product page) as served from `origin`."""
    assert url.startswith(stack.product_url + "/")
    return origin + url[len(stack.product_url) :]


def test_an_origin_missing_from_cors_origins_is_named_and_not_retried(
    stack: Stack, browsing: Browsing, elsewhere: str
) -> None:
    assert elsewhere not in stack.settings.service.cors_origins
    log_in(stack, browsing)
    page = stack.add_page(start_script(stack.options()))  # the default retry: 5 attempts
    started = time.monotonic()
    browsing.page.goto(on_origin(stack, page, elsewhere))

    assert browsing.settle("window.messenger.ready") == "failed"
    elapsed = time.monotonic() - started

    assert browsing.token_requests == ["POST", "POST"]  # one retry, then it stops
    assert elapsed < 4, elapsed  # was ~11 s of retries with the default backoff
    errors = [text for kind, text in browsing.console if kind == "error"]
    named = [t for t in errors if "CORS" in t and "cors_origins" in t]
    assert named, errors
    assert elsewhere in named[-1] and stack.token_url in named[-1]
    assert browsing.page.evaluate("window.messenger.state") == "failed"
    assert browsing.page.evaluate("window.__widgetLoads || 0") == 0


def test_the_error_handed_to_on_error_says_cors_and_not_retryable(
    stack: Stack, browsing: Browsing, elsewhere: str
) -> None:
    log_in(stack, browsing)
    options = stack.options(retry={"attempts": 5, "baseDelayMs": 20, "maxDelayMs": 50})
    page = stack.add_page(start_script(options, RECORD_ERRORS))
    browsing.page.goto(on_origin(stack, page, elsewhere))

    assert browsing.settle("window.messenger.ready") == "failed"
    errors = browsing.page.evaluate("window.__errors")
    assert [(e["cors"], e["retryable"], e["status"]) for e in errors] == [
        (True, True, 0),  # the first: could still be the network, retried once
        (True, False, 0),  # the second: the service answered again, so it is CORS
    ]
    assert elsewhere in errors[-1]["message"]


def test_a_refresh_refused_by_cors_stops_instead_of_retrying_for_ever(
    stack: Stack, browsing: Browsing, elsewhere: str
) -> None:
    # The first token is rendered into the page; only the refresh meets the refusal.
    template = (
        "<!doctype html><html><body>{{ render_messenger_tag(user) }}<script>"
        "window.__errors = [];"
        "window.messenger = IdentityServiceMessenger.current();</script></body></html>"
    )
    user = Identity(user_id="u-42", method="session", claims={"plan": "pro"})
    page = stack.add_rendered(template, {"user": user})
    browsing.page.goto(on_origin(stack, page, elsewhere))
    assert browsing.settle("window.messenger.ready") == "identified"
    assert browsing.token_requests == []

    assert browsing.settle("window.messenger.refresh()", timeout=8) == "stopped"

    assert browsing.token_requests == ["POST", "POST"]
    named = [t for kind, t in browsing.console if kind == "error" and "cors_origins" in t]
    assert named and elsewhere in named[-1]
    assert [c["method"] for c in browsing.calls()] == ["boot", "shutdown"]


def test_a_server_that_is_down_is_still_retried(stack: Stack, browsing: Browsing) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1/messenger/token"
    options = stack.options(
        tokenUrl=down, retry={"attempts": 4, "baseDelayMs": 20, "maxDelayMs": 50}
    )
    browsing.page.goto(stack.add_page(start_script(options, RECORD_ERRORS)))

    assert browsing.settle("window.messenger.ready") == "failed"
    assert browsing.token_requests == ["POST"] * 4
    errors = browsing.page.evaluate("window.__errors")
    assert [(e["cors"], e["retryable"]) for e in errors] == [(False, True)] * 4
    assert not any("CORS" in text for _, text in browsing.console)


def test_a_server_answering_5xx_is_still_retried(stack: Stack, browsing: Browsing) -> None:
    @Request.application  # type: ignore[arg-type]
    def unavailable(request: Request) -> Response:
        headers = {
            "Access-Control-Allow-Origin": stack.product_url,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
        }
        if request.method == "OPTIONS":
            return Response(status=204, headers=headers)
        body = json.dumps({"type": "about:blank", "title": "down", "status": 503, "detail": "x"})
        return Response(body, 503, headers, mimetype="application/problem+json")

    server = LiveServer(unavailable)
    try:
        options = stack.options(
            tokenUrl=server.url + "/v1/messenger/token",
            retry={"attempts": 3, "baseDelayMs": 20, "maxDelayMs": 50},
        )
        browsing.page.goto(stack.add_page(start_script(options, RECORD_ERRORS)))
        assert browsing.settle("window.messenger.ready") == "failed"
    finally:
        server.stop()

    assert browsing.token_requests == ["POST"] * 3
    errors = browsing.page.evaluate("window.__errors")
    assert [(e["cors"], e["retryable"], e["status"]) for e in errors] == [(False, True, 503)] * 3
