"""`identity-service demo`: Pete and the identity service on one port, ready to click through."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from identity_service.checklist import admin_checklist
from identity_service.cli.errors import fail_clearly
from identity_service.cli.options import config_option
from identity_service.config import instance_folder, load_settings
from identity_service.demo import database, idp
from identity_service.demo.product import (
    STAND_IN_WIDGET_URL,
    DemoSetupError,
    create_demo_app,
    session_auth,
    shown_path,
)
from identity_service.errors import SecretUnavailableError
from identity_service.intercom import MESSENGER_SECURITY_SETTINGS, REGIONS, WIDGET_URL
from identity_service.secrets import MIN_SECRET_BYTES, SecretSource
from identity_service.settings import BearerAuthSettings, Settings

APP_ID_ENV = "INTERCOM_APP_ID"
SECRET_ENV = "INTERCOM_MESSENGER_SECRET"
REGION_ENV = "INTERCOM_REGION"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
RULE = "=" * 78


class DemoError(Exception):
    """The demo cannot start; the message says why and what to do."""


def intercom_from_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """`settings` with the default workspace pointed at your own Intercom app.

    The app id comes from $INTERCOM_APP_ID, the region from $INTERCOM_REGION
    (us, eu or au; default us) and the Messenger API secret from
    $INTERCOM_MESSENGER_SECRET, read like any `secret_env`: never written anywhere.
    """
    workspace = settings.workspace(None)
    app_id = environ.get(APP_ID_ENV, "").strip()
    region = (environ.get(REGION_ENV) or "us").strip().lower()
    if not app_id or not app_id.isascii() or not app_id.isalnum():
        raise DemoError(
            f"${APP_ID_ENV} must be your Intercom app id (letters and digits, e.g. 'ql8el0gn')"
        )
    if region not in REGIONS:
        raise DemoError(f"${REGION_ENV} must be one of {', '.join(REGIONS)}, got {region!r}")
    secret = SecretSource(
        "env", SECRET_ENV, f"{SECRET_ENV} (your Messenger API secret)", MIN_SECRET_BYTES
    )
    try:
        secret.load(environ)  # as config.py does for secret_env: this value is the one used
    except SecretUnavailableError as exc:
        raise DemoError(
            f"{exc.detail}; copy the secret from Intercom's {MESSENGER_SECURITY_SETTINGS}"
        ) from None
    mine = dataclasses.replace(
        workspace, app_id=app_id, region=region, api_base=REGIONS[region], secret=secret
    )
    return dataclasses.replace(settings, workspaces={**settings.workspaces, workspace.key: mine})


def choose_widget(
    settings: Settings, real_widget: bool | None, environ: Mapping[str, str]
) -> tuple[Settings, bool]:
    """The settings to run on and whether the real Intercom widget is used.

    Real when asked for (--real-widget) or, unless --stand-in-widget, when both
    $INTERCOM_APP_ID and $INTERCOM_MESSENGER_SECRET are set.
    """
    present = [name for name in (APP_ID_ENV, SECRET_ENV) if environ.get(name)]
    if real_widget is False:
        return settings, False
    if len(present) == 2:
        return intercom_from_environment(settings, environ), True
    if len(present) == 1:
        missing = SECRET_ENV if present == [APP_ID_ENV] else APP_ID_ENV
        raise DemoError(
            f"${present[0]} is set but ${missing} is not: set both to use your own Intercom "
            "workspace, or neither (or pass --stand-in-widget) for the local stand-in"
        )
    if real_widget and settings.workspace(None).secret_for("web").kind == "dev":
        raise DemoError(
            f"--real-widget needs your workspace: export {APP_ID_ENV} and {SECRET_ENV} "
            f"(and {REGION_ENV} if not us), or pass --config with your app_id and "
            "secret_env / secret_file. A generated development secret is unknown to Intercom."
        )
    return settings, bool(real_widget)


COMMAND = "identity-service"


def command_as_run(argv0: str | None = None) -> str:
    """How the reader can type this command again: its name when that is on PATH, else
    the path it was run by (`make run` runs `.venv/bin/identity-service`, not on PATH)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name != COMMAND:  # not the console script (an in-process runner)
        return COMMAND
    on_path = shutil.which(COMMAND)
    if on_path is not None and Path(on_path).resolve() == Path(argv0).resolve():
        return COMMAND
    return argv0


def describe_secret(source: SecretSource) -> str:
    if source.kind == "dev":
        return f"DEMO SECRET, generated: {source.reference}"
    return source.describe()


def banner(
    url: str,
    settings: Settings,
    db_file: Path,
    created: bool,
    real_widget: bool,
    host: str,
    with_idp: bool = False,
) -> list[str]:
    """The startup message: where to click, who to log in as, and which secrets are fake."""
    workspace = settings.workspace(None)
    auth = session_auth(workspace)
    accounts = ", ".join(user.email for user in database.DEMO_USERS)
    lines = [
        RULE,
        f"  Pete, a demo product, with the identity service: open {url}",
        f"  log in as {accounts}",
        f"  password: {database.DEMO_PASSWORD}",
        "",
        f"  Messenger secret:  {describe_secret(workspace.secret_for('web'))}",
        f"  session key:       {describe_secret(auth.secret)}",
        f"  demo accounts:     {db_file} ({'created now' if created else 'kept'}; "
        "--reset recreates it)",
    ]
    if workspace.profile is None or str(db_file.resolve()) not in workspace.profile.url:
        where = workspace.profile.url if workspace.profile else "none"
        lines.append(f"  NOTE: profile rows come from {where}, not from the demo database")
    if real_widget:
        lines.append(f"  Intercom widget:   the real one, app {workspace.app_id} "
                     f"({workspace.api_base})")  # fmt: skip
    else:
        lines += [
            f"  Intercom widget:   local stand-in ({STAND_IN_WIDGET_URL}); shows what Intercom "
            "would receive",
            f"                     (export {APP_ID_ENV} and {SECRET_ENV} to use your own app)",
        ]
    if with_idp:
        lines += [
            f"  bearer tokens:     DEVELOPMENT-ONLY identity provider: POST {url}"
            f"{idp.TOKEN_PATH.lstrip('/')}",
            '                     {"email": ..., "password": ...}, or '
            f"`{command_as_run()} demo-token --email ...`",
            f"                     (key {shown_path(settings.service.instance_path / idp.KEY_FILE)}"
            f", JWKS {idp.JWKS_PATH}; never served by `identity-service serve`)",
        ]
    elif any(isinstance(m, BearerAuthSettings) for m in workspace.auth):
        lines.append("  bearer tokens:     from your configuration's identity provider")
    if any(s.kind == "dev" for s in (*workspace.secrets.values(), auth.secret)):
        lines += [
            "",
            "  THESE ARE DEMO SECRETS. They protect nothing: never deploy with them.",
        ]
    if host not in LOOPBACK:
        lines += [
            "",
            f"  WARNING: listening on {host}: other machines can reach the demo accounts.",
        ]
        if with_idp:
            lines.append(
                "  Anyone who can reach it, with the password above, gets a bearer token from "
                "the development identity provider."
            )
    lines += ["  Ctrl+C stops the demo.", RULE]
    return lines


@contextmanager
def listening_socket(host: str, port: int) -> Iterator[socket.socket]:
    """A socket listening on host:port, or a DemoError naming the port and how to change it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DemoError(
                f"port {port} on {host} is already in use (another demo, or another "
                "program): stop it, or choose another port with "
                f"`make run PORT={port + 1}` or `{command_as_run()} demo --port {port + 1}`"
            ) from None
        raise DemoError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another address with "
            f"`make run HOST=... PORT=...` or `{command_as_run()} demo --host ... --port ...`"
        ) from None
    with sock:  # werkzeug holds its own duplicate of it
        yield sock


def reachable(host: str) -> str:
    """An address this process can reach the demo at (a wildcard address is no destination)."""
    if host in {"", "0.0.0.0"}:  # noqa: S104 (the address listened on, not bound here)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _stop(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the process like Ctrl+C does: the server socket is closed cleanly.
    raise SystemExit(0)


def run_demo(
    config_path: str | None,
    host: str,
    port: int,
    reset: bool,
    real_widget: bool | None,
) -> None:
    """Prepare everything, print the banner, and serve until interrupted."""
    from werkzeug.serving import make_server

    from identity_service.observability.logs import configure_logging

    settings = load_settings(config_path)
    settings, real = choose_widget(settings, real_widget, os.environ)
    session_auth(settings.workspace(None))  # fail before touching the database
    db_file = database.database_path(settings.service.instance_path)
    created = database.prepare(db_file, reset=reset)
    widget_url = WIDGET_URL if real else STAND_IN_WIDGET_URL
    with listening_socket(host, port) as sock:
        bound = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{bound}/"
        # The service fetches the demo IdP's JWKS from this very server.
        settings, with_idp = idp.with_demo_idp(settings, f"http://{reachable(host)}:{bound}")
        app = create_demo_app(settings, db_file, widget_url=widget_url)
        # werkzeug serves the socket bound here; bound by werkzeug itself, a busy port
        # would end the process with its generic text instead of this command's.
        server = make_server(host, bound, app, threaded=True, fd=sock.fileno())
    # The demo is the service: its development Messenger secrets are made now (a
    # mint would), so the file the banner and the checklist name exists already.
    for workspace in settings.workspaces.values():
        for secret in workspace.secrets.values():
            if secret.kind == "dev":
                secret.load()
    lines = banner(url, settings, db_file, created, real, host, with_idp)
    click.secho("\n".join(lines), err=True, fg="yellow", bold=True)
    if real:
        click.echo(admin_checklist(settings.workspace(None)), err=True)
    configure_logging()
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port."
)
@click.option("--reset", is_flag=True, help="Recreate the demo database (accounts and profiles).")
@config_option
@click.option(
    "--real-widget/--stand-in-widget",
    "real_widget",
    default=None,
    help=f"Load Intercom's real widget (default: when ${APP_ID_ENV} and ${SECRET_ENV} are "
    "set) or the local stand-in that shows what Intercom would receive.",
)
def demo(
    host: str, port: int, reset: bool, config_path: str | None, real_widget: bool | None
) -> None:
    """Run Pete, a demo product with local accounts, and the identity service on one port."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with fail_clearly(config_errors=(DemoError, DemoSetupError)):
        run_demo(config_path, host, port, reset, real_widget)


@click.command("demo-token")
@click.option("--email", required=True, help="A demo user's email, e.g. ada@pete.example.")
def demo_token(email: str) -> None:
    """Print a bearer token from the demo's development identity provider (DEVELOPMENT ONLY).

    Signed with the demo's key in the instance folder; only `identity-service
    demo` (`make run`) accepts it. Use it as `Authorization: Bearer <token>`.
    """
    users = {user.email: user for user in database.DEMO_USERS}
    user = users.get(email.strip().lower())
    with fail_clearly(config_errors=(DemoError,)):
        if user is None:
            raise DemoError(f"no demo user {email}: use one of {', '.join(users)}")
        key = idp.signing_key(instance_folder())
    click.echo(idp.issue(key, user.id, user.email, user.name, int(time.time())))
    click.echo(idp.WARNING, err=True)


def register(group: click.Group) -> None:
    """Add the `demo` and `demo-token` commands to the `identity-service` group."""
    group.add_command(demo)
    group.add_command(demo_token)
