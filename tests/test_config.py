"""Loading the TOML configuration: every problem named with its file, key path and fix."""

from __future__ import annotations

import dataclasses
import logging
import stat
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from identity_service import schema
from identity_service.config import CONFIG_ENV, INSTANCE_ENV, load_settings, read_settings
from identity_service.demo import idp
from identity_service.errors import ConfigError
from identity_service.intercom import REGIONS
from identity_service.settings import (
    BearerAuthSettings,
    IntercomApiSettings,
    ProfileSettings,
    RateLimitSettings,
    ServiceSettings,
    SessionAuthSettings,
    Settings,
    WorkspaceSettings,
)
from tests.conftest import MESSENGER_SECRET, MESSENGER_SECRET_ENV, WriteConfig

ENV = MESSENGER_SECRET_ENV
SHORT = "k" * 31


def workspace(name: str = "eu", *, drop: tuple[str, ...] = (), **fields: Any) -> str:
    """One [workspaces.<name>] table; keyword values are TOML literals, written as given."""
    values: dict[str, Any] = {"app_id": '"abc123"', "region": '"eu"', "secret_env": f'"{ENV}"'}
    values.update(fields)
    lines = "".join(f"{k} = {v}\n" for k, v in values.items() if k not in drop)
    return f"[workspaces.{name}]\n{lines}\n"


def attribute(name: str, type_: str = "string", ws: str = "eu", **fields: str) -> str:
    values = {"name": f'"{name}"', "type": f'"{type_}"', "profile": '"col"', **fields}
    lines = "".join(f"{k} = {v}\n" for k, v in values.items())
    return f"[[workspaces.{ws}.attributes]]\n{lines}\n"


# An Intercom REST token from the test's environment variable (48 bytes, over the 20 needed).
INTERCOM_API = f'[workspaces.eu.intercom_api]\nsecret_env = "{ENV}"\n'
SESSION_AUTH = f'[[workspaces.eu.auth]]\nmethod = "session"\nsecret_env = "{ENV}"\n\n'
BEARER_AUTH = (
    '[[workspaces.eu.auth]]\nmethod = "bearer"\nissuer = "https://idp.example/"\n'
    'audience = "identity"\njwks_url = "https://idp.example/jwks"\n'
)
# String formatting instead of the bound parameter: refused.
FORMATTED_QUERY_PROFILE = """[workspaces.eu.profile]
url = "sqlite:///:memory:"
query = "SELECT id, plan FROM users WHERE id = '{user_id}'"
id_column = "id"
"""
PROFILE_WITHOUT_URL = """[workspaces.eu.profile]
query = "SELECT id FROM t WHERE id = :user_id"
id_column = "id"
"""
PROFILE_WITHOUT_ID_COLUMN = """[workspaces.eu.profile]
url = "sqlite:///:memory:"
query = "SELECT plan FROM users WHERE id = :user_id"
"""
SQLITE_PROFILE = """[workspaces.eu.profile]
url = "sqlite:///:memory:"
query = "SELECT id FROM t WHERE id = :user_id"
id_column = "id"
"""
MYSQL_PROFILE = """[workspaces.eu.profile]
url = "mysql://db/pete"
query = "SELECT id FROM users WHERE id = :user_id"
id_column = "id"
"""
THREE_GOOD = attribute("plan") + attribute("teammates", "integer") + attribute("beta", "boolean")

# (TOML text, extra environment, extra files, the one expected key path, a fragment)
BROKEN: list[Any] = [
    pytest.param(
        workspace() + THREE_GOOD + attribute("plan.tier"),
        {}, {}, "workspaces.eu.attributes[3].name", "contains ., which Intercom forbids",
        id="attribute-name-at-index-3",
    ),
    pytest.param(
        workspace() + attribute("plan", "text"),
        {}, {}, "workspaces.eu.attributes[0].type", "must be one of 'string', 'integer'",
        id="attribute-type",
    ),
    pytest.param(
        workspace() + attribute("last_order", "date"),
        {}, {}, "workspaces.eu.attributes[0].name", "must end in _at",
        id="date-without-at",
    ),
    pytest.param(
        workspace() + attribute("paid_at", "integer"),
        {}, {}, "workspaces.eu.attributes[0].name", 'declare type = "date"',
        id="at-name-not-a-date",
    ),
    pytest.param(
        workspace() + attribute("user_id"),
        {}, {}, "workspaces.eu.attributes[0].name", "reserved",
        id="reserved-attribute-name",
    ),
    pytest.param(
        workspace() + attribute("email", "integer"),
        {}, {}, "workspaces.eu.attributes[0].type", "standard attribute of type 'string'",
        id="standard-attribute-type",
    ),
    pytest.param(
        workspace() + '[[workspaces.eu.attributes]]\nname = "plan"\ntype = "string"\n',
        {}, {}, "workspaces.eu.attributes[0]", 'claim = "..." and/or profile = "..."',
        id="attribute-without-source",
    ),
    pytest.param(
        workspace(tokn_lifetime="600"),
        {}, {}, "workspaces.eu.tokn_lifetime", "unknown key; did you mean 'token_lifetime'?",
        id="unknown-key-did-you-mean",
    ),
    pytest.param(
        workspace() + "[workspace.us]\n",
        {}, {}, "workspace", "did you mean 'workspaces'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        workspace(token_lifetime="30"),
        {}, {}, "workspaces.eu.token_lifetime", "between 60 and 86400 seconds, got 30",
        id="lifetime-30",
    ),
    pytest.param(
        workspace(token_lifetime="100000"),
        {}, {}, "workspaces.eu.token_lifetime", "between 60 and 86400 seconds, got 100000",
        id="lifetime-100000",
    ),
    pytest.param(
        workspace() + '[service.rate_limit]\nper_client = "10/minute;100/hour"\n',
        {}, {}, "service.rate_limit.per_client", "holds 2 rate limits; only one is enforced",
        id="rate-limit-two-limits",
    ),
    pytest.param(
        workspace() + '[service.rate_limit]\nper_user = "5/second, 50/minute"\n',
        {}, {}, "service.rate_limit.per_user", "holds 2 rate limits; only one is enforced",
        id="rate-limit-two-limits-comma",
    ),
    pytest.param(
        workspace() + '[service.rate_limit]\nper_user = "0/minute"\n',
        {}, {}, "service.rate_limit.per_user", "allows no request at all",
        id="rate-limit-zero",
    ),
    pytest.param(
        workspace() + "[service.rate_limit]\nstorage_timeout = 30\n",
        {}, {}, "service.rate_limit.storage_timeout", "between 0.01 and 5 seconds, got 30",
        id="rate-limit-storage-timeout-30",
    ),
    pytest.param(
        workspace() + "[service.rate_limit]\nstorage_retry_interval = 0\n",
        {}, {}, "service.rate_limit.storage_retry_interval", "between 0.1 and 300 seconds, got 0",
        id="rate-limit-retry-interval-0",
    ),
    pytest.param(
        workspace(token_lifetime="3600.0"),
        {}, {}, "workspaces.eu.token_lifetime", "must be an integer, got float",
        id="lifetime-float",
    ),
    pytest.param(
        workspace(on_invalid='"ignore"'),
        {}, {}, "workspaces.eu.on_invalid", "must be one of 'drop', 'reject'",
        id="on-invalid",
    ),
    pytest.param(
        workspace(region='"mars"'),
        {}, {}, "workspaces.eu.region", "must be one of ['au', 'eu', 'us'], or set api_base",
        id="region-mars",
    ),
    pytest.param(
        workspace(api_base='"https://api-iam.eu.intercom.io"'),
        {}, {}, "workspaces.eu.api_base", "set either region or api_base, not both",
        id="region-and-api-base",
    ),
    pytest.param(
        workspace(drop=("region",), api_base='"http://intercom.example"'),
        {}, {}, "workspaces.eu.api_base", "must be an https:// URL",
        id="api-base-plain-http",
    ),
    # Review: a URL's user info is a credential (it would be printed wherever the
    # URL is named, and sent to browsers in api_base's case); the message never quotes it.
    pytest.param(
        workspace(drop=("region",), api_base=f'"https://ops:{SHORT}@api-iam.eu.intercom.io"'),
        {}, {}, "workspaces.eu.api_base", "no user info",
        id="api-base-with-user-info",
    ),
    pytest.param(
        workspace(drop=("region",), api_base='"https://"'),
        {}, {}, "workspaces.eu.api_base", "has no host",
        id="api-base-without-host",
    ),
    pytest.param(
        workspace() + INTERCOM_API + f'rest_base = "https://ops:{SHORT}@api.eu.intercom.io"\n',
        {}, {}, "workspaces.eu.intercom_api.rest_base", "no user info",
        id="rest-base-with-user-info",
    ),
    pytest.param(
        workspace() + INTERCOM_API + 'rest_base = "https:/api.eu.intercom.io"\n',
        {}, {}, "workspaces.eu.intercom_api.rest_base", "has no host",
        id="rest-base-without-host",
    ),
    pytest.param(
        workspace() + INTERCOM_API + 'rest_base = "https://api.eu.intercom.io?region=eu"\n',
        {}, {}, "workspaces.eu.intercom_api.rest_base", "no query or fragment",
        id="rest-base-with-query",
    ),
    pytest.param(
        workspace(drop=("secret_env",)),
        {}, {}, "workspaces.eu", "set exactly one of secret_env",
        id="missing-secret",
    ),
    pytest.param(
        workspace(secret_file='"messenger.secret"'),
        {}, {"messenger.secret": MESSENGER_SECRET}, "workspaces.eu",
        "found secret_env and secret_file",
        id="secret-env-and-secret-file",
    ),
    pytest.param(
        workspace(secret_env='"NOT_SET_ANYWHERE"'),
        {}, {}, "workspaces.eu.secret_env",
        "environment variable NOT_SET_ANYWHERE is not set; export it",
        id="secret-env-unset",
    ),
    pytest.param(
        workspace(secret_env='"SHORT_SECRET"'),
        {"SHORT_SECRET": SHORT}, {}, "workspaces.eu.secret_env",
        "is 31 bytes; at least 32 are required (generate one with",
        id="secret-env-too-short",
    ),
    pytest.param(
        workspace(drop=("secret_env",), secret_file='"short.secret"'),
        {}, {"short.secret": SHORT}, "workspaces.eu.secret_file",
        "is 31 bytes; at least 32 are required",
        id="secret-file-too-short",
    ),
    pytest.param(
        workspace(drop=("secret_env",), secret_file='"missing.secret"'),
        {}, {}, "workspaces.eu.secret_file", "cannot read",
        id="secret-file-missing",
    ),
    pytest.param(
        workspace(drop=("secret_env",), secret_dev="false"),
        {}, {}, "workspaces.eu.secret_dev", "can only be true; use secret_env or secret_file",
        id="secret-dev-false",
    ),
    pytest.param(
        workspace(drop=("app_id",)),
        {}, {}, "workspaces.eu.app_id", "is required",
        id="missing-app-id",
    ),
    pytest.param(
        workspace(app_id='"my app!"'),
        {}, {}, "workspaces.eu.app_id", "must be your Intercom app id",
        id="bad-app-id",
    ),
    pytest.param(
        workspace() + BEARER_AUTH + 'algorithms = ["RS256", "HS256"]\n',
        {}, {}, "workspaces.eu.auth[0].algorithms",
        "'HS256' is not allowed; use asymmetric algorithms only",
        id="hs256-bearer-algorithm",
    ),
    pytest.param(
        workspace() + BEARER_AUTH + 'algorithms = ["RS256"]\njwks_retry_max = 0\n',
        {}, {}, "workspaces.eu.auth[0].jwks_retry_max", "between 0.05 and 300 seconds, got 0",
        id="jwks-retry-max-0",
    ),
    pytest.param(
        workspace() + BEARER_AUTH + 'algorithms = ["RS256"]\njwks_read_timeout = 20\n',
        {}, {}, "workspaces.eu.auth[0].jwks_read_timeout", "between 0.05 and 10 seconds, got 20",
        id="jwks-read-timeout-20",
    ),
    pytest.param(
        workspace() + BEARER_AUTH.replace('issuer = "https://idp.example/"\n', "")
        + 'algorithms = ["RS256"]\n',
        {}, {}, "workspaces.eu.auth[0].issuer", "is required",
        id="bearer-without-issuer",
    ),
    pytest.param(
        workspace()
        + BEARER_AUTH.replace('issuer = "https://idp.example/"', f'issuer = "{idp.ISSUER}"')
        + 'algorithms = ["ES256"]\n',
        {}, {}, "workspaces.eu.auth[0].issuer",
        "is the demo's development identity provider",
        id="bearer-trusting-the-demo-idp",
    ),
    pytest.param(
        '[service]\ncors_origins = ["*"]\n\n' + workspace() + SESSION_AUTH,
        {}, {}, "service.cors_origins",
        "\"*\" is refused while cookie authentication is on (workspaces ['eu']); "
        "list the exact origins",
        id="star-cors-with-session-auth",
    ),
    pytest.param(
        '[service]\ncors_origins = ["app.example.com"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "is not an origin; write scheme://host[:port]",
        id="bad-cors-origin",
    ),
    pytest.param(
        '[service]\ncors_origins = ["https://app.example.com/"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "has a path",
        id="cors-origin-with-path",
    ),
    pytest.param(
        '[service]\ncors_origins = ["https://*.pete.example"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "list each origin exactly (no wildcards",
        id="wildcard-cors-origin",
    ),
    pytest.param(
        '[service]\ncors_origins = ["https://app.pete.example$"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "list each origin exactly",
        id="regex-cors-origin",
    ),
    pytest.param(
        '[service]\ncors_origins = ["https://App.pete.example"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "write 'https://app.pete.example'",
        id="cors-origin-not-lowercase",
    ),
    pytest.param(
        '[service]\ncors_origins = ["https://app.pete.example:443"]\n\n' + workspace(),
        {}, {}, "service.cors_origins[0]", "write 'https://app.pete.example'",
        id="cors-origin-with-default-port",
    ),
    pytest.param(
        workspace()
        + SESSION_AUTH.replace("\n\n", '\nallowed_origins = ["HTTP://localhost:80"]\n\n'),
        {}, {}, "workspaces.eu.auth[0].allowed_origins[0]", "write 'http://localhost'",
        id="session-origin-not-canonical",
    ),
    pytest.param(
        workspace() + SESSION_AUTH.replace("\n\n", '\nallowed_origins = ["ftp://x"]\n\n'),
        {}, {}, "workspaces.eu.auth[0].allowed_origins[0]", "is not an origin",
        id="bad-session-origin",
    ),
    pytest.param(
        workspace() + FORMATTED_QUERY_PROFILE,
        {}, {}, "workspaces.eu.profile.query", "must use the bound parameter :user_id",
        id="profile-query-without-user-id",
    ),
    pytest.param(
        workspace() + '[workspaces.eu.profile]\nurl = "sqlite:///:memory:"\nid_column = "id"\n',
        {}, {}, "workspaces.eu.profile.query", "is required",
        id="profile-without-query",
    ),
    pytest.param(
        workspace() + PROFILE_WITHOUT_URL,
        {}, {}, "workspaces.eu.profile.url", "is required",
        id="profile-without-url",
    ),
    pytest.param(
        workspace() + PROFILE_WITHOUT_ID_COLUMN,
        {}, {}, "workspaces.eu.profile.id_column",
        'is required: name the query\'s column holding the user\'s own id, e.g. id_column = "id"',
        id="profile-without-id-column",
    ),
    pytest.param(
        workspace() + PROFILE_WITHOUT_ID_COLUMN + 'id_column = "uid"\n',
        {}, {}, "workspaces.eu.profile.id_column", "'uid' does not appear in the query",
        id="profile-id-column-not-in-query",
    ),
    pytest.param(
        workspace(user_id_pattern="'[0-9'") + THREE_GOOD,
        {}, {}, "workspaces.eu.user_id_pattern", "is not a regular expression",
        id="user-id-pattern-not-a-regex",
    ),
    pytest.param(
        workspace(secret_env='""'),
        {}, {}, "workspaces.eu.secret_env", "must be a non-empty string",
        id="secret-env-empty",
    ),
    pytest.param(
        workspace("eu") + workspace("us", region='"us"'),
        {}, {}, "default_workspace",
        "is required when there are several workspaces (['eu', 'us'])",
        id="several-workspaces-no-default",
    ),
    pytest.param(
        'default_workspace = "au"\n' + workspace("eu"),
        {}, {}, "default_workspace", "names no workspace; choose one of ['eu']",
        id="default-workspace-unknown",
    ),
    pytest.param(
        "[service]\ncors_origins = []\n",
        {}, {}, "workspaces", "define at least one [workspaces.<name>] table",
        id="no-workspaces",
    ),
    pytest.param(
        workspace() + 'app_id = "twice"\n',
        {}, {}, "<toml>", "not valid TOML",
        id="invalid-toml",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "extra_env", "files", "key_path", "fragment"), BROKEN)
def test_broken_configuration_names_the_file_the_key_path_and_the_fix(
    *,
    tmp_path: Path,
    write_config: WriteConfig,
    environ: dict[str, str],
    text: str,
    extra_env: dict[str, str],
    files: dict[str, str],
    key_path: str,
    fragment: str,
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {**environ, **extra_env})
    error = caught.value
    assert error.source == str(path)
    assert [p.path for p in error.problems] == [key_path]
    assert fragment in error.problems[0].message
    message = str(error)
    assert message.startswith(f"{path}: 1 configuration problem:\n")
    assert f"  - {key_path}: " in message
    assert SHORT not in message  # a secret's value is never shown
    assert MESSENGER_SECRET not in message


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[workspaces.eu]\napp_id = "caf\xe9"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.source == str(path)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("<file>", "is not UTF-8 text (byte 29); save it as UTF-8")
    ]


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert str(caught.value).startswith(f"{path}: 1 configuration problem:")
    assert [p.path for p in caught.value.problems] == ["<file>"]
    assert "cannot read the file" in caught.value.problems[0].message


def test_a_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    # A reader who copies `--config service.toml` from the docs has no such file
    # yet: the error names the bundled example to start from, as a command.
    path = tmp_path / "service.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    message = caught.value.problems[0].message
    example = Path(str(resources.files("identity_service").joinpath("example.toml")))
    assert f"cp {example} {path}" in message
    assert "without --config" in message  # or leave it out: the bundled example runs
    # A file that exists but cannot be read is not told to copy the example.
    unreadable = tmp_path / "folder.toml"
    unreadable.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_settings(unreadable, {})
    assert "cp " not in caught.value.problems[0].message


def test_every_problem_is_reported_at_once(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    text = (
        '[service]\ncors_origins = ["*", "example.com"]\n\n'
        + workspace(region='"mars"', token_lifetime="30", tokn="1", drop=("app_id",))
        + attribute("plan")
        + attribute("bad$name")
        + attribute("signup", "date")
        # the session secret fails too: "*" must still be reported for this workspace
        + SESSION_AUTH.replace(f'"{ENV}"', '"UNSET_SESSION_SECRET"')
        + '[workspaces.eu.profile]\nurl = "sqlite:///:memory:"\nquery = "SELECT 1"\n'
        + 'id_column = "id"\n'
    )
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    found = {p.path for p in caught.value.problems}
    assert found == {
        "service.cors_origins",
        "service.cors_origins[1]",
        "workspaces.eu.tokn",
        "workspaces.eu.app_id",
        "workspaces.eu.region",
        "workspaces.eu.token_lifetime",
        "workspaces.eu.attributes[1].name",
        "workspaces.eu.attributes[2].name",
        "workspaces.eu.auth[0].secret_env",
        "workspaces.eu.profile.query",
        "workspaces.eu.profile.id_column",
    }
    assert len(caught.value.problems) == len(found)
    assert str(caught.value).startswith(f"{path}: {len(found)} configuration problems:\n")


def test_several_broken_workspaces_are_all_reported(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    text = (
        'default_workspace = "eu"\n'
        + workspace("eu", secret_env='"UNSET_A"')
        + workspace("us", region='"us"', secret_env='"UNSET_B"')
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(text), environ)
    assert [p.path for p in caught.value.problems] == [
        "workspaces.eu.secret_env",
        "workspaces.us.secret_env",
    ]


# -- good configurations ---------------------------------------------------------------


@pytest.mark.parametrize("region", ["us", "eu", "au"])
def test_region_sets_the_api_base(
    write_config: WriteConfig, environ: dict[str, str], region: str
) -> None:
    settings = load_settings(write_config(workspace(region=f'"{region}"')), environ)
    ws = settings.workspace("eu")
    assert ws.region == region
    assert ws.api_base == REGIONS[region]
    assert (
        ws.api_base
        == {
            "us": "https://api-iam.intercom.io",
            "eu": "https://api-iam.eu.intercom.io",
            "au": "https://api-iam.au.intercom.io",
        }[region]
    )


def test_no_region_means_us(write_config: WriteConfig, environ: dict[str, str]) -> None:
    settings = load_settings(write_config(workspace(drop=("region",))), environ)
    assert settings.workspace(None).api_base == "https://api-iam.intercom.io"


def test_an_explicit_api_base_is_used_as_given(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    text = workspace(drop=("region",), api_base='"https://intercom-proxy.example/"')
    ws = load_settings(write_config(text), environ).workspace(None)
    assert ws.api_base == "https://intercom-proxy.example"
    assert ws.region is None


def test_defaults_and_the_secret_from_the_environment(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    path = write_config(workspace() + attribute("plan") + attribute("paid_at", "date"))
    settings = load_settings(path, environ)
    assert settings.source == str(path)
    assert settings.default_workspace == "eu"
    ws = settings.workspace(None)
    assert ws.app_id == "abc123"
    assert ws.token_lifetime == 3600
    assert ws.on_invalid == "drop"
    assert [(a.name, a.type) for a in ws.attributes] == [("plan", "string"), ("paid_at", "date")]
    assert ws.secret.kind == "env"
    assert ws.secret.get() == MESSENGER_SECRET.encode()


def test_jwks_timings_default_to_the_settings_and_can_each_be_set_alone(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    bearer = workspace() + BEARER_AUTH + 'algorithms = ["RS256"]\n'
    (method,) = load_settings(write_config(bearer), environ).workspace(None).auth
    assert isinstance(method, BearerAuthSettings)
    defaults = BearerAuthSettings(issuer="i", audience=("a",), algorithms=("RS256",))
    timings = [k for k in vars(defaults) if k.startswith("jwks_") and k != "jwks_url"]
    assert len(timings) == 8
    assert {k: getattr(method, k) for k in timings} == {k: getattr(defaults, k) for k in timings}

    # A key below another's default is valid alone: the fetch caps one by the other.
    text = bearer + "jwks_timeout = 0.5\njwks_retry_max = 0.1\njwks_cache_ttl = 1\n"
    (method,) = load_settings(write_config(text), environ).workspace(None).auth
    assert isinstance(method, BearerAuthSettings)
    assert (method.jwks_timeout, method.jwks_retry_max, method.jwks_cache_ttl) == (0.5, 0.1, 1.0)
    assert method.jwks_connect_timeout == defaults.jwks_connect_timeout


@pytest.mark.parametrize("lifetime", [60, 86400])
def test_lifetime_bounds_are_inclusive(
    write_config: WriteConfig, environ: dict[str, str], lifetime: int
) -> None:
    text = workspace(token_lifetime=str(lifetime))
    assert load_settings(write_config(text), environ).workspace(None).token_lifetime == lifetime


def test_a_secret_file_is_relative_to_the_configuration_file(
    tmp_path: Path, write_config: WriteConfig, environ: dict[str, str]
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "messenger.secret").write_text(MESSENGER_SECRET + "\n")
    text = workspace(drop=("secret_env",), secret_file='"messenger.secret"')
    settings = load_settings(write_config(text, "conf/identity.toml"), environ)
    secret = settings.workspace(None).secret
    assert secret.kind == "file"
    assert Path(secret.reference) == tmp_path / "conf" / "messenger.secret"
    assert secret.get() == MESSENGER_SECRET.encode()  # the trailing newline is not part of it


def test_the_configuration_file_can_come_from_the_environment(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    path = write_config(workspace(app_id='"fromenv1"'))
    settings = load_settings(None, {**environ, CONFIG_ENV: str(path)})
    assert settings.source == str(path)
    assert settings.workspace(None).app_id == "fromenv1"


def test_a_config_naming_secret_env_never_touches_the_instance_folder(
    write_config: WriteConfig, environ: dict[str, str], instance_path: Path
) -> None:
    path = write_config(workspace() + SESSION_AUTH)
    settings = load_settings(path, environ)
    assert settings.workspace(None).auth[0].method == "session"
    assert not instance_path.exists()


@pytest.mark.parametrize(
    ("other", "shared_with"),
    [
        ("eu-platforms-ios", "workspaces.eu.platforms.ios"),
        ("eu-auth-0", "workspaces.eu.auth[0]"),
    ],
)
def test_two_development_secrets_never_share_one_generated_file(
    write_config: WriteConfig, environ: dict[str, str], other: str, shared_with: str
) -> None:
    # Review: the file name is the key path with "." and "[0]" written "-", which a
    # workspace key may also hold: workspace "eu-platforms-ios"'s Messenger secret
    # was workspace eu's iOS secret (or its session key), with no same_secret_as.
    path = write_config(
        'default_workspace = "eu"\n'
        + workspace(drop=("secret_env",), secret_dev="true")
        + "[workspaces.eu.platforms.ios]\nsecret_dev = true\n\n"
        + '[[workspaces.eu.auth]]\nmethod = "session"\nsecret_dev = true\n\n'
        + workspace(other, drop=("secret_env",), secret_dev="true")
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    [problem] = caught.value.problems
    assert problem.path == f"workspaces.{other}.secret_dev"
    assert "development secret" in problem.message and shared_with in problem.message


def test_the_bundled_example_loads_with_an_empty_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = tmp_path / "instance"
    with caplog.at_level(logging.WARNING):
        settings = load_settings(None, {INSTANCE_ENV: str(instance)})
    assert settings.source == "<bundled example.toml>"
    assert not instance.exists()  # created by the first use, never by loading
    for workspace in settings.workspaces.values():
        workspace.secret.get()
        for method in workspace.auth:
            method.secret.get()  # the bundled example has session methods only
    created = sorted(instance.iterdir())
    assert [p.name for p in created] == [
        "dev-workspaces-default-auth-0.secret",
        "dev-workspaces-default.secret",
    ]
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ws = settings.workspace(None)
    assert ws.secret.kind == "dev"
    assert Path(ws.secret.reference) == (instance / "dev-workspaces-default.secret").resolve()
    secret = ws.secret.get()
    assert len(secret) >= 32
    assert "DEVELOPMENT SECRET IN USE" in caplog.text
    assert secret.decode() not in caplog.text

    again = load_settings(None, {INSTANCE_ENV: str(instance)})
    assert again.workspace(None).secret.get() == secret  # reused, not regenerated
    assert sorted(instance.iterdir()) == created


# -- reading the file, then resolving its secrets ---------------------------------------------


def test_reading_the_settings_reads_no_secret_and_writes_nothing(
    write_config: WriteConfig, instance_path: Path
) -> None:
    text = (
        workspace(secret_env='"NOT_SET_IN_CI"')
        + SESSION_AUTH.replace(f'secret_env = "{ENV}"', "secret_dev = true")
        + 'fallback_secret_files = ["missing.secret"]\n'
    )
    path = write_config(text)
    settings = read_settings(path, {INSTANCE_ENV: str(instance_path)})
    (method,) = settings.workspace(None).auth
    assert settings.workspace(None).secret.reference == "NOT_SET_IN_CI"
    assert method.secret.kind == "dev"
    assert not instance_path.exists()
    # The runtime's step reads each secret, and reports each at its key with the fix.
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {INSTANCE_ENV: str(instance_path)})
    assert [p.path for p in caught.value.problems] == [
        "workspaces.eu.secret_env",
        "workspaces.eu.auth[0].fallback_secret_files",
    ]
    assert "NOT_SET_IN_CI is not set; export it" in caught.value.problems[0].message
    assert not instance_path.exists()  # a development secret is made where it is used


def test_loading_makes_the_development_secrets_only_when_asked(
    write_config: WriteConfig, instance_path: Path
) -> None:
    path = write_config(workspace(drop=("secret_env",), secret_dev="true"))
    environ = {INSTANCE_ENV: str(instance_path)}
    load_settings(path, environ)
    assert not instance_path.exists()
    settings = load_settings(path, environ, generate_dev_secrets=True)
    assert (instance_path / "dev-workspaces-eu.secret").read_bytes() == (
        settings.workspace(None).secret.get()
    )


def test_a_key_file_without_a_usable_key_and_an_unsupported_database_are_loader_problems(
    tmp_path: Path, write_config: WriteConfig, environ: dict[str, str]
) -> None:
    """Found by reading the file, with every other problem: nothing is built to find them."""
    (tmp_path / "idp.pem").write_text("not a key\n")
    text = (
        workspace(token_lifetime="30")
        + '[[workspaces.eu.auth]]\nmethod = "bearer"\nissuer = "https://idp.example/"\n'
        + 'audience = "identity"\nalgorithms = ["RS256"]\nkey_file = "idp.pem"\n'
        + MYSQL_PROFILE
    )
    with pytest.raises(ConfigError) as caught:
        read_settings(write_config(text), environ)
    assert [(p.path, p.message.split(":")[0]) for p in caught.value.problems] == [
        ("workspaces.eu.token_lifetime", "must be between 60 and 86400 seconds, got 30"),
        (
            "workspaces.eu.auth[0].key_file",
            f"cannot use {tmp_path / 'idp.pem'} as the IdP's public key",
        ),
        ("workspaces.eu.profile", "profile url"),
    ]
    assert "'mysql' is not supported" in caught.value.problems[2].message


def test_the_settings_name_every_secret_at_its_key(
    tmp_path: Path, write_config: WriteConfig, environ: dict[str, str]
) -> None:
    """What the runtime resolves at start and re-reads before each fork (LastGoodConfig)."""
    for name in ("old-1.secret", "old-2.secret"):
        (tmp_path / name).write_text("o" * 16)
    text = (
        workspace()
        + SESSION_AUTH
        + 'fallback_secret_envs = ["OLD_SESSION_KEY"]\n'
        + 'fallback_secret_files = ["old-1.secret", "old-2.secret"]\n'
        + workspace("us", region='"us"')
    )
    path = write_config('default_workspace = "eu"\n' + text)
    settings = load_settings(path, {**environ, "OLD_SESSION_KEY": "k" * 16})
    assert [(s.key, s.kind, s.on_refused) for s in settings.secrets()] == [
        ("workspaces.eu.secret_env", "env", "keep"),
        ("workspaces.eu.auth[0].secret_env", "env", "keep"),
        ("workspaces.eu.auth[0].fallback_secret_envs", "env", "revoke"),
        ("workspaces.eu.auth[0].fallback_secret_files", "file", "revoke"),
        ("workspaces.eu.auth[0].fallback_secret_files", "file", "revoke"),
        ("workspaces.us.secret_env", "env", "keep"),
    ]
    assert [s.min_bytes for s in settings.secrets()] == [32, 16, 16, 16, 16, 32]


# -- the schema's limits are what the loader enforces -----------------------------------------

# Where each settings class is written in a file, and found in the settings.
_WHERE: dict[type, tuple[str, Callable[[Settings], object]]] = {
    ServiceSettings: ("service", lambda s: s.service),
    RateLimitSettings: ("service.rate_limit", lambda s: s.service.rate_limit),
    WorkspaceSettings: ("workspaces.eu", lambda s: s.workspace(None)),
    BearerAuthSettings: ("workspaces.eu.auth[0]", lambda s: s.workspace(None).auth[0]),
    SessionAuthSettings: ("workspaces.eu.auth[1]", lambda s: s.workspace(None).auth[1]),
    ProfileSettings: ("workspaces.eu.profile", lambda s: s.workspace(None).profile),
    IntercomApiSettings: ("workspaces.eu.intercom_api", lambda s: s.workspace(None).intercom_api),
}
BOUNDED = [
    pytest.param(cls, spec.name, id=f"{cls.__name__}.{spec.name}")
    for cls in schema.tables(Settings)
    for spec in dataclasses.fields(cls)
    if schema.field_rule(spec).low is not None
]


def every_table(extra: dict[type, str]) -> str:
    """A file with one table of each settings class; `extra` lines go into the named ones."""
    return (
        "[service]\n" + extra.get(ServiceSettings, "")
        + "[service.rate_limit]\n" + extra.get(RateLimitSettings, "")
        + workspace() + extra.get(WorkspaceSettings, "")
        + BEARER_AUTH + 'algorithms = ["RS256"]\n' + extra.get(BearerAuthSettings, "")
        + SESSION_AUTH + extra.get(SessionAuthSettings, "")
        + SQLITE_PROFILE + extra.get(ProfileSettings, "")
        + '[workspaces.eu.intercom_api]\nsecret_env = "TEST_INTERCOM_TOKEN"\n'
        + extra.get(IntercomApiSettings, "")
    )  # fmt: skip


@pytest.mark.parametrize(("cls", "name"), BOUNDED)
def test_each_limit_of_the_schema_is_the_loaders_inclusive_range(
    write_config: WriteConfig, environ: dict[str, str], cls: type, name: str
) -> None:
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    rule = schema.field_rule(spec)
    assert rule.low is not None and rule.high is not None
    kind = int if isinstance(spec.default, int) else float
    where, find = _WHERE[cls]
    env = {**environ, "TEST_INTERCOM_TOKEN": "t" * 40}
    for bound in (rule.low, rule.high):
        text = every_table({cls: f"{name} = {kind(bound)!r}\n"})
        assert getattr(find(load_settings(write_config(text), env)), name) == bound
    above = kind(rule.high + 1)
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(every_table({cls: f"{name} = {above!r}\n"})), env)
    assert [p.path for p in caught.value.problems] == [f"{where}.{name}"]
    assert f"must be between {schema.number(rule.low)} and " in caught.value.problems[0].message
