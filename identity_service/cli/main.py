"""The `identity-service` command line (click)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import jwt

from identity_service.attributes import AttributePolicy
from identity_service.checklist import admin_checklist
from identity_service.cli.errors import fail_clearly
from identity_service.cli.options import config_option
from identity_service.config import CONFIG_ENV, load_settings
from identity_service.intercom import TOKEN_ALGORITHM
from identity_service.secrets import SecretSource
from identity_service.settings import (
    DEFAULT_PLATFORM,
    PLATFORMS,
    Platform,
    Settings,
    WorkspaceSettings,
)
from identity_service.tokens import mint


def _load(config_path: str | None, *, generate_dev_secrets: bool = False) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Every problem, key files and profile URLs included, is the loader's to find:
    # nothing is built here just to see whether it can be.
    return load_settings(config_path, generate_dev_secrets=generate_dev_secrets)


@click.group()
def main() -> None:
    """Mint signed Intercom Messenger tokens for a product's logged-in users."""


def _not_yet(source: SecretSource) -> str:
    # check-config only reads: a development secret appears when the service first needs it.
    if source.kind == "dev" and not Path(source.reference).exists():
        return " (not generated yet: the service creates it on first use)"
    return ""


def describe_workspace(workspace: WorkspaceSettings, default: bool) -> list[str]:
    """A readable summary of one workspace for check-config."""
    where = workspace.region or "custom api_base"
    lines = [
        f"workspace {workspace.key}{' (default)' if default else ''}",
        f"  app_id:          {workspace.app_id}",
        f"  region:          {where} -> {workspace.api_base}",
        *(
            f"  {platform + ' secret:':<17}{workspace.describe_secret(platform)}{_not_yet(source)}"
            for platform, source in workspace.secrets.items()
        ),
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


@main.command("check-config")
@config_option
@click.option(
    "--security",
    is_flag=True,
    help="Grade the configuration for security instead; exit 1 on any high finding.",
)
@click.option("--json", "as_json", is_flag=True, help="With --security: print the report as JSON.")
@click.option(
    "--online",
    is_flag=True,
    help="With --security: also check each workspace in Intercom (intercom check's findings).",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="With --security: worker processes `serve` will run (memory:// limits are per worker).",
)
def check_config(
    config_path: str | None, security: bool, as_json: bool, online: bool, workers: int
) -> None:
    """Validate the configuration and print a summary per workspace (or a security report)."""
    if (as_json or online) and not security:
        raise click.UsageError("--json and --online apply to the security report; add --security")
    with fail_clearly():
        settings = _load(config_path)
    if security:
        from identity_service.security_report import assess

        report = assess(settings, workers=workers)
        if online:
            from identity_service.intercom_api.check import with_online_findings

            report = with_online_findings(report, settings)
        click.echo(report.to_json() if as_json else report.to_text())
        sys.exit(0 if report.passed else 1)
    click.echo(f"configuration: {settings.source}: OK")
    for warning in settings.warnings:
        click.echo(f"warning: {warning}")
    for key, workspace in settings.workspaces.items():
        click.echo("")
        click.echo("\n".join(describe_workspace(workspace, key == settings.default_workspace)))
        click.echo(admin_checklist(workspace))


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
@click.option(
    "--platform",
    type=click.Choice(PLATFORMS),
    default=DEFAULT_PLATFORM,
    show_default=True,
    help="Sign with this platform's secret (web, or the iOS / Android SDKs').",
)
def mint_command(
    config_path: str | None,
    workspace: str | None,
    user_id: str,
    attrs: tuple[str, ...],
    platform: Platform,
) -> None:
    """Mint a token with the real secret and print it with its decoded claims (debugging aid)."""
    raw = dict(_parse_attr(a) for a in attrs)
    with fail_clearly():
        settings = _load(config_path)
        chosen = settings.workspace(workspace)
        clean = AttributePolicy(chosen.attributes, chosen.on_invalid).clean(raw)
        minted = mint(user_id, clean.values, chosen, int(time.time()), clean.warnings, platform)
    secret = chosen.secret_for(platform)
    ignored = sorted(set(raw) - set(clean.values) - {p.name for p in clean.dropped})
    claims = jwt.decode(minted.token, secret.get(), algorithms=[TOKEN_ALGORITHM])
    # Which secret signed it: a token Intercom refuses is most often signed with another
    # platform's key. Where it is, never what it is.
    click.echo(
        f"signed for {platform} with {secret.what} ({chosen.describe_secret(platform)})", err=True
    )
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
    from identity_service.http.server import run_gunicorn

    path = os.path.abspath(config_path) if config_path else None
    with fail_clearly():
        # Here, once, with a readable message; the workers start from these settings.
        # Only serve makes development secrets (check-config only reads): a folder it
        # cannot write is a startup error naming the key, not a 503 at every request.
        settings = _load(path, generate_dev_secrets=True)
    start_serve_check(settings, path)  # never waited for: Intercom cannot delay startup
    if path:
        os.environ[CONFIG_ENV] = path
    run_gunicorn(
        bind=bind,
        workers=workers,
        threads=threads,
        timeout=timeout,
        settings=settings,
        load=lambda: _load(path),  # each SIGHUP: validated before any worker uses it
    )


from identity_service.cli.frontend import register as register_frontend  # noqa: E402
from identity_service.cli.intercom import register as register_intercom  # noqa: E402
from identity_service.cli.intercom import start_serve_check  # noqa: E402
from identity_service.demo.cli import register as register_demo  # noqa: E402

register_demo(main)
register_frontend(main)
register_intercom(main)
