"""The security report: configurations in, findings (id, severity, key path) out; the CLI on top.

Every case is a real TOML file loaded by `load_settings` and graded by
`assess`. The table states what each change adds to (and removes from) the
findings of a clean, production-like baseline, so a check that stops firing,
fires on the wrong key, or changes severity fails its row.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import time_machine
from click.testing import CliRunner

from identity_service.auth.bearer import BearerAuthenticator
from identity_service.cli.main import main
from identity_service.config import INSTANCE_ENV, load_settings
from identity_service.errors import ConfigError
from identity_service.security_report import SEVERITIES, SecurityReport, assess
from identity_service.settings import BearerAuthSettings, Settings, WorkspaceSettings
from tests.support.service import MESSENGER_SECRET, SESSION_SECRET, make_service

Row = tuple[str, str, str]  # (severity, id, path)

ENV_SECRET = "e" * 48
DB_PASSWORD = "hunter2-db-password"
SESSION_BLOCK = """
[[workspaces.main.auth]]
method = "session"
{session_secret}
{session_extra}
allowed_origins = {allowed_origins}
"""
TEMPLATE = """
[service]
cors_origins = {cors}
hsts = {hsts}
proxy_hops = {proxy_hops}

[service.rate_limit]
{rate_limit}

[workspaces.main]
app_id = "abc123"
region = "eu"
{messenger_secret}
token_lifetime = {lifetime}

[[workspaces.main.attributes]]
name = "email"
type = "string"
claim = "email"

[[workspaces.main.attributes]]
name = "plan"
type = "string"
claim = "https://pete.example/plan"
profile = "plan"

{bearer}
{session}

[workspaces.main.profile]
url = "{profile_url}"
query = "SELECT id, plan FROM users WHERE id = :user_id"
id_column = "id"
on_unavailable = "{on_unavailable}"
"""
BEARER_BLOCK = """
[[workspaces.main.auth]]
method = "bearer"
issuer = "https://idp.pete.example/"
audience = "identity-service"
algorithms = {algorithms}
{key_source}
leeway = {leeway}
"""
DEFAULTS: Mapping[str, Any] = {
    "cors": '["https://app.pete.example"]',
    "hsts": "false",
    "proxy_hops": 0,
    "rate_limit": 'storage_url = "redis://127.0.0.1:6379/0"\non_storage_error = "closed"',
    "messenger_secret": 'secret_file = "messenger.secret"',
    "lifetime": 3600,
    "algorithms": '["RS256"]',
    "key_source": 'key_file = "idp-public.pem"',
    "leeway": 30,
    "session_secret": 'secret_file = "session.secret"',
    "session_extra": "",
    "allowed_origins": '["https://app.pete.example"]',
    "profile_url": "sqlite:///profiles.db",
    "on_unavailable": "fail",
    "with_session": True,
    "with_bearer": True,
}
# What the baseline itself reports: reminders only, nothing to fix.
BASELINE: set[Row] = {
    ("info", "intercom-enforce-security", "workspaces.main"),
    ("info", "cda-prevent-updates", "workspaces.main.attributes[1]"),  # plan; email is standard
    ("info", "profile-on-unavailable", "workspaces.main.profile.on_unavailable"),
}
AUTH0 = "workspaces.main.auth[0]"
AUTH1 = "workspaces.main.auth[1]"


def render(**overrides: Any) -> str:
    values = {**DEFAULTS, **overrides}
    values["bearer"] = BEARER_BLOCK.format(**values) if values["with_bearer"] else ""
    values["session"] = SESSION_BLOCK.format(**values) if values["with_session"] else ""
    return TEMPLATE.format(**values)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Real key, secret (mode 0600) and database files, made by the shared test service."""
    make_service(tmp_path)
    (tmp_path / "session.old.secret").write_text("o" * 40)
    (tmp_path / "session.old.secret").chmod(0o600)
    return tmp_path


def grade(
    root: Path, workers: int = 1, chmod: int | None = None, **overrides: Any
) -> SecurityReport:
    if chmod is not None:
        (root / "messenger.secret").chmod(chmod)
    config = root / "graded.toml"
    config.write_text(render(**overrides))
    environ = {
        INSTANCE_ENV: str(root / "instance"),
        "MESSENGER_SECRET_ENV": ENV_SECRET,
        "OLD_SESSION_KEY": "p" * 40,
    }
    return assess(load_settings(config, environ), workers=workers)


def rows(report: SecurityReport) -> set[Row]:
    return {(f.severity, f.id, f.path) for f in report.findings}


def test_the_baseline_reports_only_reminders_and_passes(root: Path) -> None:
    report = grade(root)
    assert rows(report) == BASELINE
    assert report.passed
    assert report.summary() == {
        "high": 0, "medium": 0, "low": 0, "info": 3, "total": 3, "passed": True,
    }  # fmt: skip


CASES: list[tuple[str, dict[str, Any], set[Row], set[Row]]] = [
    # (name, overrides, added to the baseline, removed from it)
    ("lifetime 1 h", {"lifetime": 3600}, set(), set()),
    ("lifetime 1 h + 1 s", {"lifetime": 3601},
     {("low", "token-lifetime-long", "workspaces.main.token_lifetime")}, set()),
    ("lifetime 4 h", {"lifetime": 14400},
     {("low", "token-lifetime-long", "workspaces.main.token_lifetime")}, set()),
    ("lifetime 4 h + 1 s", {"lifetime": 14401},
     {("medium", "token-lifetime-long", "workspaces.main.token_lifetime")}, set()),
    ("lifetime 24 h", {"lifetime": 86400},
     {("medium", "token-lifetime-long", "workspaces.main.token_lifetime")}, set()),
    ("leeway 60 s", {"leeway": 60}, set(), set()),
    ("leeway 61 s", {"leeway": 61}, {("low", "bearer-leeway-large", f"{AUTH0}.leeway")}, set()),
    ("leeway 120 s", {"leeway": 120}, {("low", "bearer-leeway-large", f"{AUTH0}.leeway")}, set()),
    ("leeway 121 s", {"leeway": 121},
     {("medium", "bearer-leeway-large", f"{AUTH0}.leeway")}, set()),
    ("RSA family only", {"algorithms": '["RS256", "PS256", "RS512"]'}, set(), set()),
    ("RSA and EC", {"algorithms": '["RS256", "ES256"]'},
     {("medium", "bearer-algorithms-mixed", f"{AUTH0}.algorithms")}, set()),
    # From a JWKS: the fixture's pinned key file holds an RSA key, which these cannot use.
    ("EC and EdDSA", {"algorithms": '["ES256", "EdDSA"]',
                      "key_source": 'jwks_url = "https://idp.pete.example/jwks.json"'},
     {("medium", "bearer-algorithms-mixed", f"{AUTH0}.algorithms")}, set()),
    ("jwks over https", {"key_source": 'jwks_url = "https://idp.pete.example/jwks.json"'},
     set(), set()),
    ("jwks over http", {"key_source": 'jwks_url = "http://127.0.0.1:9/jwks.json"'},
     {("medium", "jwks-http", f"{AUTH0}.jwks_url")}, set()),
    ("cors * without cookies", {"cors": '["*"]', "with_session": False},
     {("medium", "cors-wildcard", "service.cors_origins[0]")}, set()),
    ("cors remote http", {"cors": '["https://a.pete.example", "http://app.pete.example"]'},
     {("medium", "cors-http-origin", "service.cors_origins[1]")}, set()),
    ("cors loopback http", {"cors": '["http://127.0.0.1:3000", "http://[::1]:3000"]'},
     {("low", "cors-http-origin", "service.cors_origins[0]"),
      ("low", "cors-http-origin", "service.cors_origins[1]")}, set()),
    ("no cors at all", {"cors": "[]"}, set(), set()),
    ("cookie origin remote http", {"allowed_origins": '["http://app.pete.example"]'},
     {("high", "session-origin-http", f"{AUTH1}.allowed_origins[0]")}, set()),
    ("cookie origin localhost http", {"allowed_origins": '["http://localhost:8000"]'},
     {("low", "session-origin-http", f"{AUTH1}.allowed_origins[0]")}, set()),
    ("cookie without allowed origins", {"allowed_origins": "[]"},
     {("info", "session-same-origin-only", f"{AUTH1}.allowed_origins")}, set()),
    ("messenger secret from env", {"messenger_secret": 'secret_env = "MESSENGER_SECRET_ENV"'},
     {("low", "secret-env", "workspaces.main.secret_env")}, set()),
    ("messenger secret dev", {"messenger_secret": "secret_dev = true"},
     {("high", "secret-dev", "workspaces.main.secret_dev")}, set()),
    ("session key dev", {"session_secret": "secret_dev = true"},
     {("high", "secret-dev", f"{AUTH1}.secret_dev")}, set()),
    ("session key from env", {"session_secret": 'secret_env = "MESSENGER_SECRET_ENV"'},
     {("low", "secret-env", f"{AUTH1}.secret_env")}, set()),
    ("previous session key in a file",
     {"session_extra": 'fallback_secret_files = ["session.old.secret"]'},
     {("info", "session-fallback-key", f"{AUTH1}.fallback_secret_files[0]")}, set()),
    ("previous session key in env",
     {"session_extra": 'fallback_secret_envs = ["OLD_SESSION_KEY"]'},
     {("info", "session-fallback-key", f"{AUTH1}.fallback_secret_envs[0]"),
      ("low", "secret-env", f"{AUTH1}.fallback_secret_envs[0]")}, set()),
    ("rate limits off", {"rate_limit": "enabled = false"},
     {("medium", "rate-limit-disabled", "service.rate_limit.enabled")}, set()),
    ("no per-client limit", {"rate_limit": 'per_client = ""\nstorage_url = "memory://"'},
     {("medium", "rate-limit-scope-off", "service.rate_limit.per_client")}, set()),
    ("no per-user limit", {"rate_limit": 'per_user = ""\nstorage_url = "memory://"'},
     {("medium", "rate-limit-scope-off", "service.rate_limit.per_user")}, set()),
    ("memory, one worker", {"rate_limit": 'storage_url = "memory://"'}, set(), set()),
    ("redis failing open", {"rate_limit": 'storage_url = "redis://127.0.0.1:6379/0"'},
     {("info", "rate-limit-fails-open", "service.rate_limit.on_storage_error")}, set()),
    ("proxy without hsts", {"proxy_hops": 1},
     {("medium", "hsts-off-behind-proxy", "service.hsts")}, set()),
    ("proxy with hsts", {"proxy_hops": 1, "hsts": "true"}, set(), set()),
    ("profile omitted when down", {"on_unavailable": "omit"},
     {("low", "profile-on-unavailable", "workspaces.main.profile.on_unavailable")},
     {("info", "profile-on-unavailable", "workspaces.main.profile.on_unavailable")}),
    ("password in the profile url",
     {"profile_url": f"postgresql+psycopg://reader:{DB_PASSWORD}@db.internal/pete"},
     {("high", "profile-url-password", "workspaces.main.profile.url")}, set()),
    ("password in the profile url's query (libpq)",
     {"profile_url": f"postgresql+psycopg://reader@db.internal/pete?password={DB_PASSWORD}"},
     {("high", "profile-url-password", "workspaces.main.profile.url")}, set()),
    ("password-less profile url", {"profile_url": "postgresql+psycopg://reader@db.internal/pete"},
     set(), set()),
    ("no auth method", {"with_bearer": False, "with_session": False},
     {("info", "config-warning", "workspaces.main")}, set()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "added", "removed"),
    [pytest.param(o, a, r, id=name) for name, o, a, r in CASES],
)
def test_each_setting_adds_exactly_its_findings(
    root: Path, overrides: dict[str, Any], added: set[Row], removed: set[Row]
) -> None:
    report = grade(root, **overrides)
    found = rows(report)
    assert found - BASELINE == added
    assert BASELINE - found == removed
    assert report.passed == all(severity != "high" for severity, _, _ in added)
    for finding in report.findings:
        assert finding.reason
    assert_no_secret(report.to_text() + report.to_json())


@pytest.mark.parametrize(
    ("workers", "expected"),
    [
        (1, set()),
        (2, {("medium", "rate-limit-memory-workers", "service.rate_limit.storage_url")}),
        (8, {("medium", "rate-limit-memory-workers", "service.rate_limit.storage_url")}),
    ],
)
def test_memory_rate_limits_with_several_workers(
    root: Path, workers: int, expected: set[Row]
) -> None:
    report = grade(root, workers=workers, rate_limit='storage_url = "memory://"')
    assert rows(report) - BASELINE == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o600, set()),
        (0o400, set()),
        (0o640, {("medium", "secret-file-permissions", "workspaces.main.secret_file")}),
        (0o604, {("medium", "secret-file-permissions", "workspaces.main.secret_file")}),
    ],
)
def test_secret_file_readable_by_others(root: Path, mode: int, expected: set[Row]) -> None:
    report = grade(root, chmod=mode)
    assert rows(report) - BASELINE == expected


def test_every_signed_custom_attribute_gets_a_reminder(tmp_path: Path) -> None:
    service = make_service(tmp_path)  # email (standard), plan, teammates, last_order_at
    report = assess(service.settings, workers=1)
    reminders = {f.path: f.reason for f in report.findings if f.id == "cda-prevent-updates"}
    assert sorted(reminders) == [f"workspaces.main.attributes[{i}]" for i in (1, 2, 3)]
    assert '"teammates"' in reminders["workspaces.main.attributes[2]"]
    assert all("Prevent updates via the Messenger" in r for r in reminders.values())


# -- checks only settings built by hand can reach (the loader refuses these) ------


def _replace_auth(settings: Settings, index: int, **changes: Any) -> Settings:
    workspace = settings.workspaces["main"]
    auth = list(workspace.auth)
    auth[index] = dataclasses.replace(auth[index], **changes)
    ws: WorkspaceSettings = dataclasses.replace(workspace, auth=tuple(auth))
    return dataclasses.replace(settings, workspaces={"main": ws})


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512", "none"])
def test_a_symmetric_idp_algorithm_never_runs_so_no_finding_grades_it(
    root: Path, tmp_path: Path, algorithm: str
) -> None:
    """The loader refuses it and so does the authenticator, for settings built in code.

    (A `bearer-algorithm-symmetric` finding once graded it: it could never fire on a
    configuration the loader accepts, nor on settings the service can run.)
    """
    with pytest.raises(ConfigError, match=rf"'{algorithm}' is not allowed"):
        grade(root, algorithms=f'["RS256", "{algorithm}"]')
    settings = make_service(tmp_path).settings
    forged = _replace_auth(settings, 0, algorithms=("RS256", algorithm))
    method = forged.workspaces["main"].auth[0]
    assert isinstance(method, BearerAuthSettings)
    with pytest.raises(ValueError, match="must be asymmetric"):
        BearerAuthenticator(method)
    assess(forged, workers=1)  # the report itself still grades such settings without failing


def test_cors_wildcard_with_cookie_authentication_is_high(tmp_path: Path) -> None:
    settings = make_service(tmp_path).settings
    wildcard = dataclasses.replace(
        settings, service=dataclasses.replace(settings.service, cors_origins=("*",))
    )
    report = assess(wildcard, workers=1)
    assert ("high", "cors-wildcard", "service.cors_origins[0]") in rows(report)
    assert not report.passed


def test_the_loader_still_refuses_cors_wildcard_with_cookies(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"service\.cors_origins"):
        grade(root, cors='["*"]')


# -- ordering and output ------------------------------------------------------------


def test_findings_are_sorted_by_severity_then_id(root: Path) -> None:
    report = grade(
        root,
        workers=4,
        messenger_secret="secret_dev = true",
        lifetime=7200,
        rate_limit='storage_url = "memory://"',
        cors='["http://localhost:1", "http://localhost:2"]',
    )
    order = [SEVERITIES.index(f.severity) for f in report.findings]
    assert order == sorted(order)
    keys = [(SEVERITIES.index(f.severity), f.id) for f in report.findings]
    assert keys == sorted(keys)  # paths within one id: see the next test
    assert report.findings[0].id == "secret-dev"


def test_attribute_paths_sort_as_numbers(tmp_path: Path) -> None:
    extra = "".join(
        f'\n[[workspaces.main.attributes]]\nname = "cda_{i}"\ntype = "string"\nclaim = "c{i}"\n'
        for i in range(10)
    )
    settings = make_service(tmp_path, extra=extra).settings
    paths = [f.path for f in assess(settings, workers=1).findings if f.id == "cda-prevent-updates"]
    assert paths == [f"workspaces.main.attributes[{i}]" for i in range(1, 14)]


# -- the command line -----------------------------------------------------------------


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["check-config", *args], env=dict(env or {}))


def write(root: Path, **overrides: Any) -> str:
    path = root / "cli.toml"
    path.write_text(render(**overrides))
    return str(path)


def test_cli_passing_configuration_exits_zero_with_text(root: Path) -> None:
    result = run_cli("--config", write(root), "--security", "--workers", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"security report for {root / 'cli.toml'}"
    assert "INFO    cda-prevent-updates  workspaces.main.attributes[1]" in lines
    assert lines[-1] == "summary: 0 high, 0 medium, 0 low, 3 info -> PASS"
    assert_no_secret(result.output)


def test_cli_any_high_finding_exits_one(root: Path) -> None:
    config = write(root, allowed_origins='["http://app.pete.example"]')
    result = run_cli("--config", config, "--security", "--workers", "1")
    assert result.exit_code == 1, result.output
    assert (
        "HIGH    session-origin-http  workspaces.main.auth[1].allowed_origins[0]" in result.stdout
    )
    assert result.stdout.splitlines()[-1].endswith("-> FAIL: fix every high finding")


def test_cli_medium_findings_alone_exit_zero(root: Path) -> None:
    result = run_cli("--config", write(root, rate_limit="enabled = false"), "--security")
    assert result.exit_code == 0, result.output
    assert "MEDIUM  rate-limit-disabled  service.rate_limit.enabled" in result.stdout


def test_cli_json_document(root: Path) -> None:
    config = write(root, messenger_secret="secret_dev = true", lifetime=86400)
    env = {INSTANCE_ENV: str(root / "instance")}
    result = run_cli("--config", config, "--security", "--json", env=env)
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert set(document) == {"format", "source", "summary", "findings"}
    assert document["format"] == 1
    assert document["source"] == config
    findings = document["findings"]
    assert all(set(f) == {"id", "severity", "path", "reason"} for f in findings)
    summary = document["summary"]
    assert summary["passed"] is False
    assert summary["total"] == len(findings)
    for severity in SEVERITIES:
        assert summary[severity] == sum(1 for f in findings if f["severity"] == severity)
    assert findings[0] == {
        "id": "secret-dev",
        "severity": "high",
        "path": "workspaces.main.secret_dev",
        "reason": findings[0]["reason"],
    }
    assert {"id": "token-lifetime-long", "severity": "medium"}.items() <= findings[1].items()


def test_cli_output_is_stable_across_runs_and_time(root: Path) -> None:
    config = write(root, lifetime=7200, proxy_hops=2, on_unavailable="omit")
    outputs = []
    for when in ("2020-01-01", "2031-06-30 23:59:59"):
        with time_machine.travel(when, tick=False):
            for extra in ((), ("--json",)):
                result = run_cli("--config", config, "--security", *extra)
                assert result.exit_code == 0, result.output
                outputs.append(result.stdout)
    assert outputs[0] == outputs[2]
    assert outputs[1] == outputs[3]


def test_cli_json_needs_security(root: Path) -> None:
    result = run_cli("--config", write(root), "--json")
    assert result.exit_code == 2
    assert "--security" in result.output


def test_cli_broken_configuration_is_still_exit_two(root: Path) -> None:
    result = run_cli("--config", write(root, lifetime=5), "--security", "--json")
    assert result.exit_code == 2
    assert "workspaces.main.token_lifetime" in result.stderr
    assert result.stdout == ""


def test_cli_without_security_keeps_the_summary(root: Path) -> None:
    result = run_cli("--config", write(root))
    assert result.exit_code == 0
    assert "workspace main (default)" in result.stdout
    assert "security report" not in result.stdout


def test_bundled_example_is_graded_high_for_its_development_secrets(tmp_path: Path) -> None:
    env = {INSTANCE_ENV: str(tmp_path / "instance"), "IDENTITY_SERVICE_CONFIG": ""}
    result = run_cli("--security", "--json", env=env)
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["source"] == "<bundled example.toml>"
    high = {(f["id"], f["path"]) for f in document["findings"] if f["severity"] == "high"}
    assert high == {
        ("secret-dev", "workspaces.default.secret_dev"),
        ("secret-dev", "workspaces.default.auth[0].secret_dev"),
    }
    # Grading reads the configuration only: it generates no secret, here or anywhere.
    assert not (tmp_path / "instance").exists()


def assert_no_secret(text: str) -> None:
    for secret in (MESSENGER_SECRET, SESSION_SECRET, ENV_SECRET, DB_PASSWORD, "o" * 40, "p" * 40):
        assert secret not in text


def test_the_report_and_the_checklist_name_the_same_intercom_settings_page(
    tmp_path: Path,
) -> None:
    from identity_service.checklist import admin_checklist
    from identity_service.intercom import MESSENGER_SECURITY_SETTINGS

    settings = load_settings(None, {INSTANCE_ENV: str(tmp_path / "instance")})
    report = assess(settings, workers=2).to_text()
    checklist = admin_checklist(settings.workspace(None))
    assert MESSENGER_SECURITY_SETTINGS in report and MESSENGER_SECURITY_SETTINGS in checklist
