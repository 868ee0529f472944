"""`identity-service intercom check` and `intercom sync`: prove and set up the Intercom side.

Attached to the main group by `register(main)`. Both read the workspaces'
contact data attributes through Intercom's REST API with the token of
[workspaces.<name>.intercom_api]; `check` exits 1 on any high finding (a
deployment pipeline can gate on it), `sync` prints a plan and changes Intercom
only with --apply.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import click

from identity_service.cli.errors import EXIT_FAILED, fail_clearly
from identity_service.cli.options import config_option
from identity_service.config import load_settings
from identity_service.intercom_api.check import (
    api_settings,
    check_workspace,
    inspect,
    report_json,
)
from identity_service.intercom_api.client import IntercomClient
from identity_service.intercom_api.sync import apply, plan
from identity_service.settings import Settings, WorkspaceSettings

NOT_CONFIGURED = (
    "has no [workspaces.{key}.intercom_api] table: add one with secret_env or secret_file "
    "naming an Intercom access token (see docs/intercom-admin.md)"
)


def checked_workspaces(settings: Settings, key: str | None) -> list[WorkspaceSettings]:
    """The named workspace, or every workspace with an Intercom API token."""
    if key is not None:
        workspace = settings.workspace(key)
        if workspace.intercom_api is None:
            raise click.UsageError(f"workspace {key!r} {NOT_CONFIGURED.format(key=key)}")
        return [workspace]
    chosen = [w for w in settings.workspaces.values() if w.intercom_api is not None]
    if not chosen:
        raise click.UsageError(
            "no workspace has an [workspaces.<name>.intercom_api] table: add one with "
            "secret_env or secret_file naming an Intercom access token (docs/intercom-admin.md)"
        )
    return chosen


def _load(config_path: str | None) -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return load_settings(config_path)


@click.group("intercom")
def intercom_group() -> None:
    """Check and set up the Intercom side (the contact data attributes that are signed)."""


@intercom_group.command("check")
@config_option
@click.option("--workspace", default=None, help="Workspace key (default: every one with a token).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check_command(config_path: str | None, workspace: str | None, as_json: bool) -> None:
    """Compare the whitelist with Intercom's data attributes; exit 1 on a high finding."""
    with fail_clearly():
        settings = _load(config_path)
        chosen = checked_workspaces(settings, workspace)
        checks = [check_workspace(w)[0] for w in chosen]
    if as_json:
        click.echo(report_json(checks))
    else:
        click.echo("\n\n".join(c.to_text() for c in checks))
    sys.exit(0 if all(c.passed for c in checks) else EXIT_FAILED)


@intercom_group.command("sync")
@config_option
@click.option("--workspace", default=None, help="Workspace key (default: every one with a token).")
@click.option("--apply", "do_apply", is_flag=True, help="Make the changes (default: dry run).")
def sync_command(config_path: str | None, workspace: str | None, do_apply: bool) -> None:
    """Plan (and with --apply make) the CDAs and protections the whitelist needs."""
    ok = True
    with fail_clearly():
        settings = _load(config_path)
        for index, chosen in enumerate(checked_workspaces(settings, workspace)):
            with IntercomClient(api_settings(chosen)) as client:
                found = client.list_contact_attributes()
                changes = plan(chosen, inspect(chosen, found), found)
                if do_apply:
                    apply(client, changes)
            click.echo(("\n" if index else "") + changes.to_text(applied=do_apply))
            ok = ok and changes.succeeded
    sys.exit(0 if ok else EXIT_FAILED)


def start_serve_check(settings: Settings, config_path: str | None) -> None:
    """`serve`: run the check once, in a process of its own, when a token is configured.

    Its own process, not a thread of gunicorn's master (which forks workers: a
    thread holding a lock at that moment would leave it held in every worker), and
    never waited for: startup goes on whatever Intercom does. The process logs the
    result and sets identity_service_intercom_unprotected_attributes in the
    service's metrics files; gunicorn's master reaps it like any child.
    """
    if not any(w.intercom_api is not None for w in settings.workspaces.values()):
        return
    from identity_service.http.server import metrics_directory

    metrics_directory()  # the folder the workers will use, chosen now
    argv = [sys.executable, "-m", "identity_service.intercom_api.startup"]
    # Our own interpreter and module, no shell; the path is serve's own --config.
    subprocess.Popen(  # noqa: S603
        [*argv, *([config_path] if config_path else [])], stdin=subprocess.DEVNULL
    )


def register(group: click.Group) -> None:
    """Add the `intercom` command group to `identity-service`."""
    group.add_command(intercom_group)
