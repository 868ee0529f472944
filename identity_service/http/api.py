"""The token endpoint, `POST /v1/messenger/token`: authenticate -> gather facts -> validate -> mint.

It is a WSGI app of its own (werkzeug's `Request`, no Flask): the service's
hot path, where Flask's per-request machinery (contexts, URL adapter,
session, `Response`, the after-request chain) cost a third of a token
request's instructions (`bench/instructions.py`). `create_app` mounts it at
its path in front of Flask, so it is the one way into the route: every method
of that path is answered here (POST, the CORS preflight's OPTIONS, 405 for the
rest), every error through the same problem renderer as Flask's routes
(`problems.answer`), and the WSGI layers around both (request observer,
security headers, CORS) are the same. Flask's hooks, signals and
TRUSTED_HOSTS do not apply to it; its body cap and TRUSTED_HOSTS are read from
the app's config on each request, as Flask reads them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from werkzeug.exceptions import (
    BadRequest,
    MethodNotAllowed,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wsgi import get_content_length, get_host

from identity_service.auth import RequestView, authenticate, presented
from identity_service.errors import (
    AttributeProblem,
    AuthenticationError,
    ForbiddenOriginError,
    InvalidRequestError,
    RateLimitedError,
)
from identity_service.http import problems
from identity_service.http.middleware import REQUEST_ID_KEY, ROUTE_KEY, note
from identity_service.http.paths import TOKEN_PATH
from identity_service.http.schemas import TOKEN_REQUEST_FIELDS, defaults, load_body
from identity_service.http.server_errors import TRUNCATED_BODY
from identity_service.observability.audit import audit
from identity_service.runtime import Runtime
from identity_service.settings import Platform

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

# A token is a bearer credential for the Messenger: never cache it anywhere.
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


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


class DuplicateMemberError(Exception):
    """A JSON object in the body names one member twice."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The stdlib keeps the last of repeated members; a proxy, gateway or log
    # reader may keep the first and see another platform or workspace than the
    # one the token is signed for. A body means one thing, or is refused.
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        raise DuplicateMemberError(next(n for i, n in enumerate(names) if n in names[:i]))
    return members


# Built once (`json.loads(..., object_pairs_hook=...)` builds a decoder per call).
_BODY_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates)


def parse_body(raw: bytes) -> Any:
    """`json.loads(raw)`, UTF-8/16/32 detected as it does, with repeated members refused."""
    return _BODY_DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def token_request(req: BaseRequest) -> dict[str, Any]:
    """The validated body; an empty body asks for the default workspace, for the web."""
    environ = req.environ
    length = get_content_length(environ)
    if length == 0 or (
        # werkzeug's own rule for "no body": no length, and a server that does
        # not vouch for the end of the stream (gunicorn always does).
        length is None and "wsgi.input_terminated" not in environ
    ):
        return defaults(TOKEN_REQUEST_FIELDS)  # nothing to read: skip building the input stream
    limit = req.max_content_length
    if length is not None and "wsgi.input_terminated" in environ:
        # What `get_data` does here (gunicorn's case), without building its
        # stream wrapper: a length over the limit is refused before any read,
        # and the server's stream ends at the length.
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        raw = environ["wsgi.input"].read(length)
    else:
        raw = req.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH -> 413
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
        return defaults(TOKEN_REQUEST_FIELDS)
    # The common spelling first: werkzeug's `is_json` parses the header's options.
    if environ.get("CONTENT_TYPE") != "application/json" and not req.is_json:
        raise UnsupportedMediaType("send the body as application/json, or send no body")
    try:
        # The stdlib parser, as Flask's `get_json` uses; its error text stays in the server.
        data = parse_body(raw)
    except DuplicateMemberError as exc:
        raise InvalidRequestError([AttributeProblem(exc.name, "appears more than once")]) from None
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack allows
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError([AttributeProblem("<body>", "must be a JSON object")])
    loaded, refused = load_body(data, TOKEN_REQUEST_FIELDS)
    if refused:
        raise InvalidRequestError([AttributeProblem(k, v) for k, v in refused.items()])
    return loaded


# The per-client limit counts every request from an address before its body (and so
# its platform) is read: its refusals are counted under this platform label.
ANY_PLATFORM = "any"


def limited(runtime: Runtime, check: Callable[[], None], platform: str = ANY_PLATFORM) -> None:
    """Run a rate-limit check, counting refusals by scope and platform."""
    try:
        check()
    except RateLimitedError as exc:
        runtime.metrics.rate_limited.labels(exc.scope, platform).inc()
        raise


def token_response_body(runtime: Runtime, req: BaseRequest) -> bytes:
    """The token endpoint's work: authenticate -> gather facts -> validate -> mint.

    Returns the 200 response's JSON body; every refusal is an exception that
    `problems` turns into problem+json.
    """
    environ = req.environ
    client = req.remote_addr  # ProxyFix has already applied X-Forwarded-For when configured
    # Per-address limit first: it is cheap and shields the verification work behind it.
    limited(runtime, lambda: runtime.limiter.check_client(client))
    asked = token_request(req)
    workspace = runtime.settings.workspace(asked["workspace"])
    platform: Platform = asked["platform"]
    note(environ, workspace=workspace.key)
    # Before any credential is verified: a platform without a secret is a 404, as an
    # unknown workspace is.
    workspace.secret_for(platform)
    view = request_view(req)
    now = runtime.clock()
    authenticators = runtime.authenticators[workspace.key]
    try:
        identity = authenticate(
            view,
            authenticators,
            now,
            runtime.session_cookies,
            workspace.user_id_pattern,
            platform=platform,
        )
    except (AuthenticationError, ForbiddenOriginError) as exc:
        method = presented(view, authenticators, runtime.session_cookies)[0]
        runtime.metrics.auth_failures.labels(workspace.key, platform, method, exc.reason).inc()
        audit(
            "auth_failure",
            workspace=workspace.key,
            platform=platform,
            method=method,
            reason=exc.reason,
            status=exc.status,
            client=client,
            request_id=environ.get(REQUEST_ID_KEY),
        )
        raise
    note(environ, user_id=identity.user_id)
    limited(
        runtime,
        lambda: runtime.limiter.check_user(workspace.key, identity.user_id, platform),
        platform,
    )
    issued = runtime.issuer.issue_detailed(identity, workspace, int(now), platform)
    minted = issued.minted
    runtime.metrics.tokens_minted.labels(workspace.key, platform).inc()
    for problem in issued.dropped:
        runtime.metrics.attributes_dropped.labels(workspace.key, problem.name, problem.kind).inc()
    if issued.profile not in ("found", "none"):
        runtime.metrics.count_profile(workspace.key, issued.profile)
    audit(
        "mint",
        workspace=workspace.key,
        platform=platform,
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
        "platform": minted.platform,
        "expires_at": minted.expires_at,
        "app_id": minted.app_id,
        "api_base": minted.api_base,
        "user_id": minted.user_id,
        "attributes": list(minted.attributes),
        "warnings": list(minted.warnings),
    }
    return orjson.dumps(body)


# The methods of the token path: POST, and OPTIONS for CORS preflights.
ALLOWED = ("OPTIONS", "POST")


class TokenEndpoint:
    """The WSGI app of `TOKEN_PATH`: every request to that path, whatever its method."""

    def __init__(self, runtime: Runtime, config: Mapping[str, Any]) -> None:
        """`config`: the Flask app's config, for MAX_CONTENT_LENGTH and TRUSTED_HOSTS."""
        self.runtime = runtime
        self.config = config

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[ROUTE_KEY] = TOKEN_PATH
        method = environ.get("REQUEST_METHOD")
        try:
            trusted = self.config.get("TRUSTED_HOSTS")
            if trusted is not None:
                # Before the method, as Flask checks it before routing: an untrusted
                # Host gets its 400 for a preflight or a 405 too, never a CORS grant.
                get_host(environ, trusted)
            if method == "POST":
                body = self.token(environ)
                # In the order a Flask `Response` would send them.
                status, headers = (
                    "200 OK",
                    [
                        *NO_STORE,
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                    ],
                )
            elif method == "OPTIONS":  # a CORS preflight: the Cors layer adds the grant
                status, body = "200 OK", b""
                headers = [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", "0"),
                    ("Allow", ", ".join(ALLOWED)),
                ]
            else:
                raise MethodNotAllowed(valid_methods=list(ALLOWED))
        except Exception as error:
            problem = self.problem(error, environ)
            status = f"{problem.status} {HTTP_STATUS_CODES[problem.status].upper()}"  # werkzeug's
            headers, body = problem.wsgi_headers(), problem.body
        start_response(status, headers)
        return [b""] if method == "HEAD" else [body]

    def token(self, environ: WSGIEnvironment) -> bytes:
        """The 200 answer's body; every refusal is an exception."""
        req = BaseRequest(environ)
        req.max_content_length = self.config["MAX_CONTENT_LENGTH"]  # -> 413
        trusted = self.config.get("TRUSTED_HOSTS")
        if trusted is not None:  # checked already (__call__); req.host checks it again
            req.trusted_hosts = trusted
        return token_response_body(self.runtime, req)

    @staticmethod
    def problem(error: Exception, environ: WSGIEnvironment) -> problems.Problem:
        rid = environ.get(REQUEST_ID_KEY)
        try:
            return problems.answer(error, rid)
        except Exception as unhandled:  # the renderer failed: a bare 500, never a stack
            return problems.last_resort(unhandled, rid)
