"""The token endpoint: authenticate -> gather facts -> validate -> mint. Views stay thin."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, Request, Response, current_app, request
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wsgi import get_content_length

from identity_service.auth import RequestView, authenticate, presented
from identity_service.errors import (
    AttributeProblem,
    AuthenticationError,
    ForbiddenOriginError,
    InvalidRequestError,
    RateLimitedError,
)
from identity_service.http.paths import TOKEN_PATH
from identity_service.http.schemas import TokenRequestSchema
from identity_service.http.server_errors import TRUNCATED_BODY
from identity_service.observability import REQUEST_ID_KEY, audit, note
from identity_service.runtime import EXTENSION, Runtime

bp = Blueprint("api", __name__)
_request_schema = TokenRequestSchema()
# A token is a bearer credential for the Messenger: never cache it anywhere.
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def current_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions[EXTENSION]
    return runtime


def request_view(req: BaseRequest) -> RequestView:
    """The parts of the request an authenticator may see.

    Read straight from the WSGI environ: werkzeug's header views translate
    every name on every lookup, a measurable cost on the token hot path.
    """
    environ = req.environ
    origin = environ.get("HTTP_ORIGIN")
    return RequestView(
        authorization=environ.get("HTTP_AUTHORIZATION"),
        # Parsing cookies costs a little on every bearer request; skip it when none came.
        cookies=req.cookies if "HTTP_COOKIE" in environ else {},
        origin=origin,
        sec_fetch_site=environ.get("HTTP_SEC_FETCH_SITE"),
        # Only compared with Origin, so only built when one came.
        host_origin=f"{req.scheme}://{req.host}" if origin is not None else None,
    )


def token_request(req: BaseRequest) -> dict[str, Any]:
    """The validated body; an empty body asks for the default workspace."""
    environ = req.environ
    length = get_content_length(environ)
    if length == 0 or (
        # werkzeug's own rule for "no body": no length, and a server that does
        # not vouch for the end of the stream (gunicorn always does).
        length is None and "wsgi.input_terminated" not in environ
    ):
        return {"workspace": None}  # nothing to read: skip building the input stream
    raw = req.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH -> 413
    limit = req.max_content_length
    # A body without a length (chunked) is cut at the limit by werkzeug's
    # stream, not refused: one byte more from the server's stream tells.
    if length is None and limit is not None and len(raw) >= limit and environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    # The server vouches for the end of the stream, and gunicorn ends it
    # early, without an error, when the client stops sending: a body shorter
    # than its Content-Length was cut short, not complete.
    if length is not None and len(raw) < length:
        raise BadRequest(TRUNCATED_BODY.detail)
    if not raw:
        return {"workspace": None}
    if not req.is_json:
        raise UnsupportedMediaType("send the body as application/json, or send no body")
    try:
        # The stdlib parser, as Flask's `get_json` uses; its error text stays in the server.
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack allows
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError([AttributeProblem("<body>", "must be a JSON object")])
    try:
        loaded: dict[str, Any] = _request_schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"<body>": exc.messages}
        raise InvalidRequestError(
            [AttributeProblem(str(k), "; ".join(map(str, v))) for k, v in messages.items()]
        ) from None
    return loaded


def limited(runtime: Runtime, check: Callable[[], None]) -> None:
    """Run a rate-limit check, counting refusals by scope."""
    try:
        check()
    except RateLimitedError as exc:
        runtime.metrics.rate_limited.labels(exc.scope).inc()
        raise


@bp.post(TOKEN_PATH)
def messenger_token() -> Response:
    """Mint a Messenger token for the logged-in user making this request.

    In the app, `TokenRoute` answers these requests before Flask routes them;
    this view is the same endpoint for a Flask app without that layer.
    """
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    body = token_response_body(current_runtime(), req)
    return Response(body, content_type="application/json", headers=NO_STORE)


def token_response_body(runtime: Runtime, req: BaseRequest) -> bytes:
    """The token endpoint's work: authenticate -> gather facts -> validate -> mint.

    Returns the 200 response's JSON body; every refusal is an exception that
    `problems` turns into problem+json.
    """
    environ = req.environ
    client = req.remote_addr  # ProxyFix has already applied X-Forwarded-For when configured
    # Per-address limit first: it is cheap and shields the verification work behind it.
    limited(runtime, lambda: runtime.limiter.check_client(client))
    workspace = runtime.settings.workspace(token_request(req)["workspace"])
    note(environ, workspace=workspace.key)
    view = request_view(req)
    now = runtime.clock()
    authenticators = runtime.authenticators[workspace.key]
    try:
        identity = authenticate(
            view, authenticators, now, runtime.session_cookies, workspace.user_id_pattern
        )
    except (AuthenticationError, ForbiddenOriginError) as exc:
        method = presented(view, authenticators, runtime.session_cookies)[0]
        runtime.metrics.auth_failures.labels(workspace.key, method, exc.reason).inc()
        audit(
            "auth_failure",
            workspace=workspace.key,
            method=method,
            reason=exc.reason,
            status=exc.status,
            client=client,
            request_id=environ.get(REQUEST_ID_KEY),
        )
        raise
    note(environ, user_id=identity.user_id)
    limited(runtime, lambda: runtime.limiter.check_user(workspace.key, identity.user_id))
    issued = runtime.issuer.issue_detailed(identity, workspace, int(now))
    minted = issued.minted
    runtime.metrics.tokens_minted.labels(workspace.key).inc()
    for problem in issued.dropped:
        runtime.metrics.attributes_dropped.labels(workspace.key, problem.name, problem.kind).inc()
    if issued.profile not in ("found", "none"):
        runtime.metrics.count_profile(workspace.key, issued.profile)
    audit(
        "mint",
        workspace=workspace.key,
        user_id=minted.user_id,
        method=identity.method,
        attributes=list(minted.attributes),
        dropped=[p.name for p in issued.dropped],
        jti=minted.jti,
        exp=minted.expires_at,
        client=client,
        request_id=environ.get(REQUEST_ID_KEY),
    )
    # The shape is TokenResponseSchema's (it feeds /openapi.json, and the
    # schemathesis test holds this body to it); built directly on the hot path.
    body = {
        "token": minted.token,
        "expires_at": minted.expires_at,
        "app_id": minted.app_id,
        "api_base": minted.api_base,
        "user_id": minted.user_id,
        "attributes": list(minted.attributes),
        "warnings": list(minted.warnings),
    }
    return orjson.dumps(body)
