"""The exception tree: one module, one handler, closed sets of refusal reasons, kept in the docs."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import identity_service
from identity_service import errors
from identity_service.cli.errors import fail_clearly
from identity_service.errors import (
    ATTRIBUTE_RULES,
    AUTH_REASONS,
    ORIGIN_REASONS,
    REFUSAL_REASONS,
    AttributeProblem,
    AuthenticationError,
    ConfigError,
    ConfigProblem,
    ForbiddenOriginError,
    IdentityServiceError,
    IntercomApiError,
    IntercomOutcomeUnknownError,
    IntercomResponseError,
    IntercomUnreachableError,
    InvalidAttributesError,
    InvalidRequestError,
    InvalidUserIdError,
    KeySourceUnavailableError,
    PlatformNotServedError,
    ProfileUnavailableError,
    RateLimitedError,
    SecretUnavailableError,
    UnknownWorkspaceError,
    UnsafeSnippetError,
)
from identity_service.http import problems
from identity_service.http.openapi import build_openapi

ROOT = Path(__file__).resolve().parent.parent
TYPE = problems.TYPE_BASE

# One instance of every error the package raises on purpose, and what its answer carries:
# status, problem type, headers and extra members (beyond type/title/status/detail).
ANSWERS: list[tuple[IdentityServiceError, int, str, dict[str, str], dict[str, Any]]] = [
    (
        AuthenticationError("missing_credentials", "no credentials: send a bearer token"),
        401,
        "unauthenticated",
        {"WWW-Authenticate": 'Bearer realm="identity_service", error="invalid_request"'},
        {"reason": "missing_credentials"},
    ),
    (
        AuthenticationError("expired", "the token has expired"),
        401,
        "unauthenticated",
        {"WWW-Authenticate": 'Bearer realm="identity_service", error="invalid_token"'},
        {"reason": "expired"},
    ),
    (
        ForbiddenOriginError("cookie authentication needs ...", reason="fetch_site"),
        403,
        "forbidden-origin",
        {},
        {"reason": "fetch_site"},
    ),
    (UnknownWorkspaceError("no workspace named 'x'"), 404, "unknown-workspace", {}, {}),
    (
        PlatformNotServedError("workspace 'x' does not serve ios", "ios", ("web",)),
        404,
        "platform-not-served",
        {},
        {"platforms": ["web"]},
    ),
    (
        AuthenticationError("browser_credential", "the session cookie is a browser credential"),
        401,
        "unauthenticated",
        {"WWW-Authenticate": 'Bearer realm="identity_service", error="invalid_token"'},
        {"reason": "browser_credential"},
    ),
    (
        InvalidRequestError([AttributeProblem("workspace", "Not a valid string.")]),
        422,
        "invalid-request",
        {},
        {"errors": [{"name": "workspace", "reason": "Not a valid string."}]},
    ),
    (
        InvalidAttributesError([AttributeProblem("plan", "must be a string, got int", "type")]),
        422,
        "invalid-attributes",
        {},
        {"errors": [{"name": "plan", "reason": "must be a string, got int"}]},
    ),
    (InvalidUserIdError("user id must not be empty"), 422, "invalid-user-id", {}, {}),
    (
        RateLimitedError("too many token requests for this user", retry_after=7, scope="user"),
        429,
        "rate-limited",
        {"Retry-After": "7"},
        {},
    ),
    # 5xx: the operators' problems; a ConfigError's list stays in the log, not in the answer.
    (
        ConfigError("service.toml", [ConfigProblem("service.port", "must be an integer")]),
        500,
        "configuration-error",
        {},
        {},
    ),
    (UnsafeSnippetError("CSP nonce refused"), 500, "internal-error", {}, {}),
    (SecretUnavailableError("messenger secret: unreadable"), 503, "secret-unavailable", {}, {}),
    (ProfileUnavailableError("profile database down"), 503, "profile-unavailable", {}, {}),
    (KeySourceUnavailableError("no IdP keys"), 503, "idp-keys-unavailable", {}, {}),
    # The intercom commands' errors: printed by the CLI, a plain 500 if a request met one.
    (IntercomApiError("Intercom refused"), 500, "internal-error", {}, {}),
    (IntercomUnreachableError("no answer"), 500, "internal-error", {}, {}),
    (IntercomOutcomeUnknownError("sent, no answer"), 500, "internal-error", {}, {}),
    (IntercomResponseError("not a list"), 500, "internal-error", {}, {}),
]


def _every_module() -> list[str]:
    names = [identity_service.__name__]
    for info in pkgutil.walk_packages(identity_service.__path__, f"{identity_service.__name__}."):
        names.append(info.name)
    return names


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


@pytest.fixture(scope="module")
def every_module_imported() -> None:
    for name in _every_module():
        importlib.import_module(name)


@pytest.mark.usefixtures("every_module_imported")
def test_every_domain_error_is_defined_in_errors_py() -> None:
    elsewhere = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in _subclasses(IdentityServiceError)
        if c.__module__ != errors.__name__
    )
    assert elsewhere == []


@pytest.mark.usefixtures("every_module_imported")
def test_the_answer_table_covers_every_error() -> None:
    covered = {type(error) for error, *_ in ANSWERS}
    assert _subclasses(IdentityServiceError) - covered == set()


@pytest.fixture(scope="module")
def raising_app() -> Flask:
    """An app with nothing but the problem handlers and one route raising the error it is told."""
    app = Flask(__name__)
    problems.register(app)

    @app.post("/raise/<int:index>")
    def raise_error(index: int) -> str:
        raise ANSWERS[index][0]

    return app


@pytest.mark.parametrize(
    ("index", "status", "slug", "headers", "members"),
    [(i, *row[1:]) for i, row in enumerate(ANSWERS)],
    ids=[f"{type(row[0]).__name__}-{row[1]}" for row in ANSWERS],
)
def test_each_error_is_answered_from_its_own_data(
    raising_app: Flask,
    index: int,
    status: int,
    slug: str,
    headers: dict[str, str],
    members: dict[str, Any],
) -> None:
    error = ANSWERS[index][0]
    response = raising_app.test_client().post(f"/raise/{index}")
    assert response.status_code == status
    assert response.mimetype == problems.PROBLEM_MIME
    assert response.headers["Cache-Control"] == "no-store"
    for name in ("WWW-Authenticate", "Retry-After"):
        assert response.headers.get(name) == headers.get(name)
    body = response.get_json()
    assert body == {
        "type": TYPE + slug,
        "title": error.title,
        "status": status,
        "detail": error.public_detail,
        **members,
    }


def test_the_handler_knows_no_kind_of_error() -> None:
    """problems.py asks the error for its answer: no isinstance chain, no getattr."""
    source = (ROOT / "identity_service" / "http" / "problems.py").read_text("utf-8")
    assert "getattr(" not in source
    assert "isinstance(" not in source


# -- the closed sets of reasons, as documented -----------------------------------------


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


def _without_parentheses(text: str) -> str:
    return re.sub(r"\([^)]*\)", "", text)


def _doc(name: str) -> str:
    return (ROOT / "docs" / name).read_text("utf-8")


def test_the_documented_401_reasons_are_the_set() -> None:
    listed = re.search(r"`reason` on a 401 is one of:(.*?)\.", _doc("frontend.md"), re.DOTALL)
    assert listed is not None
    assert _backticked(listed.group(1)) == AUTH_REASONS


def test_the_documented_session_reasons_are_among_the_set() -> None:
    listed = re.search(r"A session cookie can fail with(.*?)\.", _doc("frontend.md"), re.DOTALL)
    assert listed is not None
    assert _backticked(_without_parentheses(listed.group(1))) <= AUTH_REASONS


def test_the_documented_403_reasons_are_the_set() -> None:
    listed = re.search(r"A 403 body's\s+`reason` is(.*?);", _doc("frontend.md"), re.DOTALL)
    assert listed is not None
    assert _backticked(_without_parentheses(listed.group(1))) == ORIGIN_REASONS


def test_the_metrics_reference_lists_the_same_reasons() -> None:
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in _doc("operations.md").splitlines()
        if line.startswith("| `identity_")
    }
    auth = re.search(r"or (`[^|]*) for 403", rows["identity_auth_failures_total"])
    assert auth is not None
    assert _backticked(auth.group(1)) == ORIGIN_REASONS
    dropped = re.search(r"`reason` \(([^:]*):", rows["identity_attributes_dropped_total"])
    assert dropped is not None
    assert _backticked(dropped.group(1)) == ATTRIBUTE_RULES
    scope = re.search(r"`scope` \(([^)]*)\)", rows["identity_rate_limited_total"])
    assert scope is not None
    assert _backticked(scope.group(1)) == {"client", "user"}


def test_the_openapi_document_lists_the_reasons() -> None:
    problem = build_openapi("test")["components"]["schemas"]["Problem"]
    assert set(problem["properties"]["reason"]["enum"]) == REFUSAL_REASONS


# -- layering ------------------------------------------------------------------------------


def test_importing_bearer_authentication_does_not_load_the_rate_limit_library() -> None:
    # Through the configuration loader (which checks rate limits with `limits`) it did.
    code = "import sys, identity_service.auth.bearer; print(*sorted(sys.modules), sep='\\n')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = done.stdout.splitlines()
    assert "identity_service.auth.bearer" in loaded
    assert not [name for name in loaded if name == "limits" or name.startswith("limits.")]


def test_a_refused_snippet_value_is_logged_not_answered(
    raising_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    # The message quotes the refused value (a URL or setting from the host's code);
    # a visitor of a page that failed to render learns only that it failed.
    index = next(i for i, row in enumerate(ANSWERS) if isinstance(row[0], UnsafeSnippetError))
    response = raising_app.test_client().post(f"/raise/{index}")
    assert "CSP nonce refused" not in response.get_data(as_text=True)
    assert "CSP nonce refused" in caplog.text


def test_the_command_line_still_says_why_a_snippet_value_was_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The operator running `snippet` is owed the reason the HTTP answer withholds.
    with pytest.raises(SystemExit) as exit_info, fail_clearly():
        raise UnsafeSnippetError("CSP nonce refused")
    assert exit_info.value.code == 1
    assert "error: CSP nonce refused" in capsys.readouterr().err
