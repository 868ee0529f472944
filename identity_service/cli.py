"""The `identity-service` command line (click)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import jwt

from identity_service.attributes import AttributePolicy
from identity_service.config import CONFIG_ENV, load_settings
from identity_service.errors import ConfigError, IdentityServiceError
from identity_service.settings import Settings, WorkspaceSettings
from identity_service.tokens import ALGORITHM, mint

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"TOML configuration file (default: ${CONFIG_ENV}, else the bundled example).",
)


@contextmanager
def _fail_clearly() -> Iterator[None]:
    """Turn domain errors into a readable message and a non-zero exit, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    except IdentityServiceError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)


def _load(config_path: str | None) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return load_settings(config_path)


@click.group()
def main() -> None:
    """Mint signed Intercom Messenger tokens for a product's logged-in users."""


def describe_workspace(workspace: WorkspaceSettings, default: bool) -> list[str]:
    """A readable summary of one workspace for check-config."""
    where = workspace.region or "custom api_base"
    lines = [
        f"workspace {workspace.key}{' (default)' if default else ''}",
        f"  app_id:          {workspace.app_id}",
        f"  region:          {where} -> {workspace.api_base}",
        f"  secret:          {workspace.secret.describe()}",
        f"  token lifetime:  {workspace.token_lifetime} s",
        f"  invalid values:  {workspace.on_invalid}",
        f"  authentication:  {', '.join(a.method for a in workspace.auth) or 'none'}",
        f"  profile source:  {'SQL' if workspace.profile else 'none (claims only)'}",
        "  attributes:",
    ]
    for spec in workspace.attributes:
        kind = "standard" if spec.is_standard else "CDA"
        sources = ", ".join(
            s for s in (f"claim {spec.claim}" if spec.claim else "",
                        f"profile {spec.profile}" if spec.profile else "") if s
        )  # fmt: skip
        lines.append(f"    - {spec.name} ({spec.type}, {kind}) from {sources}")
    return lines


def admin_checklist(workspace: WorkspaceSettings) -> list[str]:
    """What the Intercom admin must set up so that signed attributes are really protected."""
    lines = [f"  Intercom admin checklist for app {workspace.app_id}:"]
    lines.append('    [ ] Settings > Messenger > Security: turn on "Enforce messenger security"')
    for spec in workspace.custom_attributes:
        lines.append(
            f'    [ ] create CDA "{spec.name}" of type {spec.type} and turn on '
            '"Prevent updates via the Messenger"'
        )
    return lines


@main.command("check-config")
@config_option
def check_config(config_path: str | None) -> None:
    """Validate the configuration and print a summary per workspace."""
    with _fail_clearly():
        settings = _load(config_path)
    click.echo(f"configuration: {settings.source}: OK")
    for warning in settings.warnings:
        click.echo(f"warning: {warning}")
    for key, workspace in settings.workspaces.items():
        click.echo("")
        click.echo("\n".join(describe_workspace(workspace, key == settings.default_workspace)))
        click.echo("\n".join(admin_checklist(workspace)))


def _parse_attr(raw: str) -> tuple[str, Any]:
    name, sep, value = raw.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{raw!r}: write NAME=VALUE")
    try:
        # JSON first so that 3, true, null and 1.5 keep their types; anything else is a string.
        return name, json.loads(value)
    except ValueError:
        return name, value


@main.command("mint")
@config_option
@click.option("--workspace", default=None, help="Workspace key (default: the default workspace).")
@click.option("--user-id", required=True, help="The user's stable id.")
@click.option("--attr", "attrs", multiple=True, help="NAME=VALUE (JSON values keep their type).")
def mint_command(
    config_path: str | None, workspace: str | None, user_id: str, attrs: tuple[str, ...]
) -> None:
    """Mint a token with the real secret and print it with its decoded claims (debugging aid)."""
    raw = dict(_parse_attr(a) for a in attrs)
    with _fail_clearly():
        settings = _load(config_path)
        chosen = settings.workspace(workspace)
        clean = AttributePolicy(chosen.attributes, chosen.on_invalid).clean(raw)
        minted = mint(user_id, clean.values, chosen, int(time.time()), clean.warnings)
    ignored = sorted(set(raw) - set(clean.values) - {p.name for p in clean.dropped})
    claims = jwt.decode(minted.token, chosen.secret.get(), algorithms=[ALGORITHM])
    click.echo(minted.token)
    click.echo(json.dumps(claims, indent=2, ensure_ascii=False))
    for warning in minted.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name in ignored:
        click.echo(f"warning: attribute {name!r} is not whitelisted; ignored", err=True)


@main.command("serve")
@config_option
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--timeout", default=30, show_default=True, type=click.IntRange(1, 600))
def serve(config_path: str | None, bind: str, workers: int, threads: int, timeout: int) -> None:
    """Run the service under gunicorn."""
    from identity_service.server import run_gunicorn

    with _fail_clearly():
        _load(config_path)  # fail here, once, with a readable message, not in every worker
    if config_path:
        os.environ[CONFIG_ENV] = os.path.abspath(config_path)
    run_gunicorn(bind=bind, workers=workers, threads=threads, timeout=timeout)
