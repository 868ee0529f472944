"""Every command finds its configuration, and the instance folder, by one rule.

The configuration is `--config`, else $IDENTITY_SERVICE_CONFIG, else the bundled
example, for every command (lint-frontend included). Commands that only read
the configuration (check-config, the security report, snippet, lint-frontend)
never create a development secret, and the instance folder never depends on
the directory a command runs from: a web root stays empty.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from identity_service.cli.main import main
from identity_service.config import (
    CONFIG_ENV,
    INSTANCE_ENV,
    default_instance_folder,
    instance_folder,
    load_settings,
)
from identity_service.errors import SecretUnavailableError
from tests.demo.conftest import cli_path
from tests.support.processes import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
TOKEN_URL = "http://127.0.0.1:8000/v1/messenger/token"

# Commands that only read the configuration.
READ_ONLY = {
    "check-config": ["check-config"],
    "check-config --security": ["check-config", "--security"],
    "snippet": ["snippet", "--token-url", TOKEN_URL],
    "snippet --out": ["snippet", "--token-url", TOKEN_URL, "--out", "site"],
    "lint-frontend": ["lint-frontend", "."],
}


@pytest.fixture
def web_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder to run commands from, as a product's web root would be."""
    root = tmp_path / "www"
    root.mkdir()
    monkeypatch.chdir(root)
    yield root


def run(args: list[str], env: dict[str, str | None]) -> Result:
    # None removes a variable the developer running the tests may have set.
    base: dict[str, str | None] = {CONFIG_ENV: None, INSTANCE_ENV: None}
    return CliRunner().invoke(main, args, env={**base, **env})


@pytest.mark.parametrize("name", READ_ONLY)
def test_read_only_commands_create_no_secret_anywhere(
    name: str, web_root: Path, tmp_path: Path
) -> None:
    instance = tmp_path / "instance"
    result = run(READ_ONLY[name], {INSTANCE_ENV: str(instance)})
    assert result.exit_code in (0, 1), result.output  # the security report exits 1 on dev secrets
    assert not instance.exists(), "a read-only command generated development secrets"
    created = sorted(str(p.relative_to(web_root)) for p in web_root.rglob("*"))
    assert [p for p in created if not p.startswith("site")] == []


def test_the_instance_folder_does_not_depend_on_the_working_directory(
    web_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = instance_folder({})
    monkeypatch.chdir(tmp_path)
    assert instance_folder({}) == here == default_instance_folder()
    # A source checkout (this one, installed editable by make) keeps it beside the package.
    assert here == ROOT / "instance"
    assert instance_folder({INSTANCE_ENV: str(tmp_path / "x")}) == tmp_path / "x"


def test_an_installed_package_keeps_its_instance_folder_under_the_environments_prefix(
    tmp_path: Path,
) -> None:
    installed = tmp_path / "site-packages" / "identity_service"
    installed.mkdir(parents=True)
    assert default_instance_folder(installed) == Path(sys.prefix) / "var/identity_service-instance"
    checkout = tmp_path / "checkout"
    (checkout / "identity_service").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    assert default_instance_folder(checkout / "identity_service") == checkout / "instance"


def test_snippet_names_the_secret_file_the_service_uses_not_one_beside_it(
    web_root: Path,
) -> None:
    result = run(READ_ONLY["snippet"], {})
    assert result.exit_code == 0, result.output
    expected = default_instance_folder() / "dev-workspaces-default.secret"
    assert f"development file {expected}" in result.stderr
    assert not (web_root / "instance").exists()


def test_a_development_secret_is_created_by_the_service_when_first_used(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    settings = load_settings(None, {INSTANCE_ENV: str(instance)})
    assert not instance.exists()  # loading the configuration reads, never writes
    secret = settings.workspace(None).secret.get()  # as the service does to sign
    assert len(secret) >= 32
    path = instance / "dev-workspaces-default.secret"
    assert path.read_bytes() == secret
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = load_settings(None, {INSTANCE_ENV: str(instance)})
    assert again.workspace(None).secret.get() == secret  # reused, not regenerated


@pytest.fixture
def env_config(tmp_path: Path) -> Path:
    path = tmp_path / "from-env.toml"
    path.write_text(
        textwrap.dedent(
            """\
            [workspaces.envws]
            app_id = "fromenv9"
            secret_env = "FIRST_HOUR_SECRET"
            [[workspaces.envws.attributes]]
            name = "seats"
            type = "integer"
            profile = "seats"
            """
        )
    )
    return path


def test_every_command_reads_the_configuration_named_by_the_environment(
    env_config: Path, web_root: Path, tmp_path: Path
) -> None:
    env = {CONFIG_ENV: str(env_config), "FIRST_HOUR_SECRET": "x" * 40}
    (web_root / "app.js").write_text("Intercom('update', {seats: 3});\n")

    checked = run(["check-config"], env)
    minted = run(["mint", "--user-id", "7"], env)
    snippet = run(["snippet", "--token-url", TOKEN_URL], env)
    linted = run(["lint-frontend", "."], env)

    assert checked.exit_code == 0 and "workspace envws (default)" in checked.output
    assert minted.exit_code == 0 and '"user_id": "7"' in minted.stdout
    assert snippet.exit_code == 0 and "fromenv9" in snippet.stdout
    assert linted.exit_code == 1 and "protected key 'seats'" in linted.stdout


def test_lint_frontend_without_config_checks_the_bundled_examples_attributes(
    web_root: Path, tmp_path: Path
) -> None:
    # The silent false pass: the bundled example signs `plan`.
    (web_root / "app.js").write_text("Intercom('update', {plan: 'x'});\n")
    result = run(["lint-frontend", "."], {INSTANCE_ENV: str(tmp_path / "instance")})
    assert result.exit_code == 1, result.output
    assert "protected key 'plan'" in result.stdout
    assert not (tmp_path / "instance").exists()


def test_lint_frontend_needs_no_secret_even_when_the_configuration_names_one(
    env_config: Path, web_root: Path
) -> None:
    (web_root / "app.js").write_text("Intercom('update', {seats: 3});\n")
    env = {CONFIG_ENV: str(env_config)}  # FIRST_HOUR_SECRET is not set, as in a product's CI
    assert "FIRST_HOUR_SECRET" not in os.environ
    result = run(["lint-frontend", "."], env)
    assert result.exit_code == 1, result.output
    assert "protected key 'seats'" in result.stdout


def test_lint_frontend_reports_an_unreadable_configuration_as_other_commands_do(
    web_root: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    linted = run(["lint-frontend", "."], {CONFIG_ENV: str(missing)})
    checked = run(["check-config"], {CONFIG_ENV: str(missing)})
    assert linted.exit_code == checked.exit_code == 2
    assert f"error: {missing}" in linted.stderr and f"error: {missing}" in checked.stderr


def test_an_instance_folder_that_cannot_be_written_is_a_clear_secret_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the instance folder should be")
    settings = load_settings(None, {INSTANCE_ENV: str(blocked)})
    with pytest.raises(SecretUnavailableError, match="cannot generate the development secret"):
        settings.workspace(None).secret.get()


@pytest.mark.fault
def test_serve_fails_at_startup_when_it_cannot_generate_its_development_secrets(
    tmp_path: Path,
) -> None:
    """Loading the configuration no longer writes, so `serve` makes its development secrets
    itself before it starts gunicorn: a folder it cannot write is a startup error naming the
    key and the fix, not a service that answers 503 to every token request."""
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the instance folder should be")
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    process = subprocess.Popen(
        [str(cli_path()), "serve", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"],
        env={**env, INSTANCE_ENV: str(blocked)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    code = stop(process)  # still serving means it started with secrets it cannot have
    _, stderr = process.communicate(timeout=10)
    assert code == 2, stderr
    assert "workspaces.default.secret_dev" in stderr, stderr
    assert "cannot generate the development secret" in stderr
    assert "set IDENTITY_SERVICE_INSTANCE" in stderr
    assert "Traceback" not in stderr


def test_check_config_says_a_development_secret_is_not_generated_yet(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    before = run(["check-config"], {INSTANCE_ENV: str(instance)})
    load_settings(None, {INSTANCE_ENV: str(instance)}).workspace(None).secret.get()
    after = run(["check-config"], {INSTANCE_ENV: str(instance)})
    assert "not generated yet" in before.output
    assert "not generated yet" not in after.output
