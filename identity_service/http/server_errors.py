"""gunicorn's refusals of a request it cannot parse, as problems: status, title, detail, slug.

gunicorn raises these while it reads a request line and headers (before the
app runs: its worker's `handle_error` answers) and while the app reads the
body (a malformed chunk or trailer, a body cut short: the app's error
handlers answer). Both answer from this one table. Each detail is fixed
text: gunicorn's own messages quote the input (a request line with its query
string, a header line with its credential), so none of it is ever shown or
logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from gunicorn.http import errors
from werkzeug.http import HTTP_STATUS_CODES


@dataclass(frozen=True)
class Refusal:
    """What the client is told about a request the server could not parse."""

    status: int
    detail: str

    @property
    def title(self) -> str:
        return HTTP_STATUS_CODES[self.status]

    @property
    def slug(self) -> str:
        # As problems.py derives it from werkzeug's exception names: the same
        # status gets the same `type` whichever layer refused the request.
        return self.title.lower().replace(" ", "-")


MALFORMED_BODY = Refusal(400, "the request body's framing is malformed (chunked encoding)")
TRUNCATED_BODY = Refusal(400, "the request body ended before its declared length")

# Most specific first: InvalidResponseHeader is an InvalidHeader subclass, and
# the app's own bad header is the app's fault (a 500), not the client's.
_REFUSALS: tuple[tuple[type[BaseException], Refusal | None], ...] = (
    (errors.InvalidResponseHeader, None),
    (errors.InvalidResponseHeaderName, None),
    (errors.ConfigurationProblem, None),  # the server's own setup: a 500
    (errors.LimitRequestLine, Refusal(414, "the request line is too long")),
    (errors.LimitRequestHeaders, Refusal(431, "the request's header fields are too large")),
    (errors.InvalidRequestLine, Refusal(400, "the request line is malformed")),
    (errors.InvalidRequestMethod, Refusal(400, "the request method is malformed")),
    (errors.InvalidHTTPVersion, Refusal(400, "the HTTP version is malformed or unsupported")),
    (errors.InvalidHeaderName, Refusal(400, "a header name is malformed or not allowed")),
    (errors.ObsoleteFolding, Refusal(400, "a header is folded over several lines")),
    (errors.InvalidHeader, Refusal(400, "a header is malformed, repeated or in conflict")),
    # RFC 9112 section 6.1 suggests 501 for an unknown transfer coding; the
    # service answers 400 as for any other framing it refuses: bad input is
    # never a 5xx here, and only `chunked` is a coding a client may send.
    (
        errors.UnsupportedTransferCoding,
        Refusal(400, "only the chunked transfer coding is supported"),
    ),
    (errors.InvalidChunkSize, MALFORMED_BODY),
    (errors.ChunkMissingTerminator, MALFORMED_BODY),
    (errors.InvalidChunkExtension, MALFORMED_BODY),
    (errors.ExpectationFailed, Refusal(417, "only `Expect: 100-continue` is supported")),
    (errors.ForbiddenProxyRequest, Refusal(403, "the request is not allowed from this address")),
    (errors.InvalidSchemeHeaders, Refusal(400, "the forwarded scheme headers disagree")),
    (errors.ParseException, Refusal(400, "the request is malformed")),
    # The client closed its side before the body was complete (gunicorn's
    # NoMoreData is an IOError, not a ParseException).
    (errors.NoMoreData, TRUNCATED_BODY),
)

# What the app's error handlers catch: the errors reading a body can raise.
BODY_ERRORS: tuple[type[Exception], ...] = (errors.ParseException, errors.NoMoreData)


def refusal(error: BaseException) -> Refusal | None:
    """The client's refusal for gunicorn's parse error `error`; None when it is not the client's."""
    for kind, answer in _REFUSALS:
        if isinstance(error, kind):
            return answer
    return None
