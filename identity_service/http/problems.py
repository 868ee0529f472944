"""The only bridge from errors to HTTP: every error becomes application/problem+json (RFC 9457).

No response carries a stack trace, a secret, a token or a cookie: domain errors
bring their own client-safe `detail`, HTTP errors get Werkzeug's generic text
or a fixed text of ours (never a parser's message, which may quote the input),
and anything unexpected becomes a bare 500 whose detail is only the request id.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from identity_service.errors import IdentityServiceError
from identity_service.http.middleware import request_id
from identity_service.http.server_errors import BODY_ERRORS, refusal

log = logging.getLogger(__name__)

PROBLEM_MIME = "application/problem+json"
TYPE_BASE = "https://identity-service.dev/problems/"


def problem_body(
    status: int,
    title: str,
    detail: str,
    slug: str,
    rid: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem document; `type` is a stable URI per kind of problem."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if rid:
        body["request_id"] = rid
    body.update(extra or {})
    return body


@dataclass(frozen=True)
class Problem:
    """A problem+json answer as plain data: the token endpoint sends it, Flask wraps it."""

    status: int
    headers: list[tuple[str, str]]  # after Content-Type and Content-Length
    body: bytes

    def wsgi_headers(self) -> list[tuple[str, str]]:
        """Every header, in the order a Flask `Response` of this problem sends them."""
        return [
            ("Content-Type", PROBLEM_MIME),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def problem_response(
    status: int,
    title: str,
    detail: str,
    slug: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
    *,
    rid: str | None,
) -> Problem:
    """A problem+json answer for the request with id `rid`."""
    body = problem_body(status, title, detail, slug, rid, extra)
    # As Flask's JSON provider writes it (sorted keys, ASCII only), so that
    # every problem reads the same whichever way it was answered.
    data = json.dumps(body, ensure_ascii=True, sort_keys=True).encode()
    return Problem(status, [("Cache-Control", "no-store"), *(headers or {}).items()], data)


def _domain(error: IdentityServiceError, rid: str | None) -> Problem:
    # Every kind of domain error states its own answer (errors.py); a 5xx one is
    # the operators' to fix, so its detail goes to the log as well.
    if error.status >= 500:
        log.error("%s: %s", type(error).__name__, error)
    return problem_response(
        error.status,
        error.title,
        error.public_detail,
        error.slug,
        error.headers,
        error.members,
        rid=rid,
    )


def _http(error: HTTPException, rid: str | None) -> Problem:
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() not in {"content-type"}}
    slug = (error.name or "error").lower().replace(" ", "-")
    detail = error.description or error.name
    return problem_response(status, error.name, detail, slug, headers, rid=rid)


def _body_framing(error: Exception, rid: str | None) -> Problem:
    # Raised by the server's input stream while a view reads the body: the
    # client's malformed framing, answered without a stack (the access line
    # records the 400). The server closes the connection afterwards.
    answer = refusal(error)
    if answer is None:  # not the client's fault after all
        return _unexpected(error, rid)
    return problem_response(answer.status, answer.title, answer.detail, answer.slug, rid=rid)


# A bug's answer: the client learns only the request id (the server's own
# last-resort answer, in server.py, says the same).
INTERNAL_ERROR = (
    500,
    "Internal error",
    "the service failed to handle this request; quote the request id to the operators",
    "internal-error",
)


def _unexpected(error: Exception, rid: str | None) -> Problem:
    # The server log gets the exception's type and its stack (files, lines, code)
    # but not its message: a message can quote anything the failing code held,
    # secrets and tokens included. The client learns only the request id.
    log.error(
        "unhandled error: %s",
        type(error).__name__,
        extra={
            "fields": {
                "exception_type": f"{type(error).__module__}.{type(error).__qualname__}",
                "stack": "".join(traceback.format_tb(error.__traceback__)),
            }
        },
    )
    return problem_response(*INTERNAL_ERROR, rid=rid)


# Each kind of error's renderer; an error takes the one of the nearest class in
# its MRO, as Flask picks an error handler.
Renderer = Callable[[Any, str | None], Problem]
RENDERERS: dict[type[Exception], Renderer] = {
    IdentityServiceError: _domain,
    HTTPException: _http,
    **dict.fromkeys(BODY_ERRORS, _body_framing),
    Exception: _unexpected,
}


def answer(error: Exception, rid: str | None) -> Problem:
    """The problem+json answer to `error`, for the request with id `rid`."""
    for cls in type(error).__mro__:
        renderer = RENDERERS.get(cls)
        if renderer is not None:
            return renderer(error, rid)
    return _unexpected(error, rid)  # not reached: every exception is an Exception


def last_resort(error: Exception, rid: str | None) -> Problem:
    """The answer when rendering `error`'s problem failed itself: a bare 500, never a stack."""
    return _unexpected(error, rid)


def _flask_response(problem: Problem) -> Response:
    response = Response(problem.body, status=problem.status, mimetype=PROBLEM_MIME)
    for name, value in problem.headers:
        response.headers[name] = value
    return response


def view_problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """A problem+json response for a Flask view to return, for the current request."""
    rid = request_id(request.environ)
    return _flask_response(problem_response(status, title, detail, slug, headers, extra, rid=rid))


def register(app: Flask) -> None:
    """Route every error of a Flask route through problem+json (the same answers as `answer`)."""
    for cls, renderer in RENDERERS.items():

        def handler(
            error: Exception, renderer: Callable[[Any, str | None], Problem] = renderer
        ) -> Response:
            return _flask_response(renderer(error, request_id(request.environ)))

        app.register_error_handler(cls, handler)
