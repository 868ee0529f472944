"""The command line: check-config and mint, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
from click.testing import CliRunner

from identity_service.cli.main import main
from tests.support.service import MESSENGER_SECRET, make_service


def test_check_config_summarises_each_workspace_and_the_admin_checklist(tmp_path: Path) -> None:
    make_service(tmp_path)
    result = CliRunner().invoke(main, ["check-config", "--config", str(tmp_path / "service.toml")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "workspace main (default)" in out
    assert "eu -> https://api-iam.eu.intercom.io" in out
    assert "token lifetime:  3600 s" in out
    assert "plan (string, CDA)" in out and "email (string, standard)" in out
    created = out.split("Create attribute")[1].split("[ ] 2.")[0]
    assert "plan" in created and "teammates" in created and "last_order_at" in created
    assert "email" not in created  # standard attributes are not CDAs
    assert "Prevent updates via the Messenger" in out
    assert "Enforce messenger security" in out
    assert MESSENGER_SECRET not in out


def test_check_config_fails_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[workspaces.eu]\napp_id = "abc"\nregion = "mars"\nsecret_env = "NOPE_NOT_SET"\n'
        "token_lifetime = 10\n"
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output
    for path in (
        "workspaces.eu.region",
        "workspaces.eu.secret_env",
        "workspaces.eu.token_lifetime",
    ):
        assert path in result.output
    assert "Traceback" not in result.output


def test_mint_prints_a_token_and_its_claims(tmp_path: Path) -> None:
    make_service(tmp_path)
    result = CliRunner().invoke(
        main,
        ["mint", "--config", str(tmp_path / "service.toml"), "--user-id", "42",
         "--attr", "plan=pro", "--attr", "teammates=3", "--attr", "color=red",
         "--attr", "last_order_at=1700000000000"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    token, rest = result.stdout.split("\n", 1)
    claims = jwt.decode(token, MESSENGER_SECRET, algorithms=["HS256"])
    assert claims["user_id"] == "42" and claims["plan"] == "pro" and claims["teammates"] == 3
    assert "color" not in claims and "last_order_at" not in claims
    assert json.loads(rest)["plan"] == "pro"
    assert "milliseconds" in result.stderr
    assert "'color' is not whitelisted" in result.stderr


def test_mint_unknown_workspace_is_a_clear_error(tmp_path: Path) -> None:
    make_service(tmp_path)
    result = CliRunner().invoke(
        main,
        ["mint", "--config", str(tmp_path / "service.toml"), "--workspace", "x", "--user-id", "1"],
    )
    assert result.exit_code == 1
    assert "no workspace named 'x'" in result.output


def test_check_config_finds_problems_that_only_show_when_the_service_starts(
    tmp_path: Path,
) -> None:
    make_service(tmp_path)
    config = tmp_path / "service.toml"
    (tmp_path / "idp-public.pem").write_text("not a key\n")
    config.write_text(config.read_text().replace("sqlite:///profiles.db", "mysql://db/pete"))
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 2
    assert "workspaces.main.auth[0].key_file: cannot use" in result.output
    assert "workspaces.main.profile: " in result.output and "mysql" in result.output


def test_workspace_names_must_be_usable_in_requests(tmp_path: Path) -> None:
    make_service(tmp_path)
    config = tmp_path / "service.toml"
    config.write_text(config.read_text().replace("workspaces.main", 'workspaces."eu.main"'))
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 2
    assert (
        'workspaces."eu.main": workspace names use letters, digits, _ and - only' in result.output
    )
