"""The front-end commands: `identity-service snippet` and `identity-service lint-frontend`.

Attached to the main group by `register(main)` in cli.py, so this module owns
its commands without editing the group's module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from identity_service.checklist import admin_checklist
from identity_service.cli.errors import fail_clearly
from identity_service.cli.options import config_option
from identity_service.config import load_settings
from identity_service.frontend.embed import ON_FAILURE, embed_html, inline_script, messenger_options
from identity_service.frontend.eslint_config import flat_config
from identity_service.frontend.lint import (
    ALWAYS_PROTECTED,
    lint_paths,
    protected_keys_from_config,
)
from identity_service.frontend.lint_formats import (
    FORMATS,
    as_json,
    as_sarif,
    summary,
    text_lines,
    tool_version,
)
from identity_service.frontend.public_config import MessengerConfig
from identity_service.frontend.script import (
    MODULE_NAME,
    SCRIPT_NAME,
    csp_hash_source,
    messenger_integrity,
    messenger_js,
    messenger_module,
    sri_sha384,
)
from identity_service.http.paths import SCRIPT_PATH

EMBED_NAME = "intercom-messenger.html"


def _absolute_http_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise click.BadParameter("must be an absolute http(s):// URL, as the browser reaches it")
    return value


@click.command("snippet")
@config_option
@click.option("--workspace", default=None, help="Workspace key (default: the default workspace).")
@click.option(
    "--token-url",
    required=True,
    callback=_absolute_http_url,
    help="The token endpoint as browsers reach it, e.g. https://id.example.com/v1/messenger/token.",
)
@click.option(
    "--script-url",
    default=None,
    callback=_absolute_http_url,
    help="Where messenger.js is served (default: this service, next to --token-url).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Write {EMBED_NAME}, {SCRIPT_NAME} and {MODULE_NAME} here (else print the HTML).",
)
@click.option(
    "--on-failure",
    type=click.Choice(ON_FAILURE),
    default="none",
    show_default=True,
    help="When no token can be had: no Messenger at all, or an anonymous (visitor) one.",
)
def snippet_command(
    config_path: str | None,
    workspace: str | None,
    token_url: str,
    script_url: str | None,
    out: Path | None,
    on_failure: str,
) -> None:
    """Write the embed HTML and messenger.js, and print the integrity hash and admin checklist."""
    with fail_clearly():  # an UnsafeSnippetError is a domain error: exit 1
        settings = load_settings(config_path)
        chosen = settings.workspace(workspace)
        config = MessengerConfig.for_workspace(chosen, token_url)
        options = messenger_options(config, on_failure=on_failure)  # type: ignore[arg-type]
        source = script_url or _beside(token_url, SCRIPT_PATH)
        html = embed_html(options, script_url=source)

    if out is None:
        click.echo(html)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / EMBED_NAME).write_text(html + "\n", "utf-8")
        (out / SCRIPT_NAME).write_bytes(messenger_js())
        (out / MODULE_NAME).write_bytes(messenger_module())
    # The report goes to stderr when the HTML is on stdout, so `> embed.html` stays clean.
    report_to_stderr = out is None
    lines = [
        *([f"wrote {out / EMBED_NAME}, {out / SCRIPT_NAME}, {out / MODULE_NAME}"] if out else []),
        f"integrity ({SCRIPT_NAME}): {messenger_integrity()}",
        f"integrity ({MODULE_NAME}): {sri_sha384(messenger_module())}",
        f"script URL: {source}",
        f"CSP without nonces: script-src {csp_hash_source(inline_script(options))} "
        f"{_origin(source)} plus the sources Intercom's CSP guide lists for the widget",
        "The integrity pins this exact messenger.js: after upgrading identity_service,",
        "regenerate this embed (or serve the written messenger.js from your own origin).",
        "",
        admin_checklist(chosen),
    ]
    click.echo("\n".join(lines), err=report_to_stderr)


def _beside(url: str, path: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{path}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@click.command("lint-frontend")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@config_option
@click.option("--workspace", default=None, help="Only this workspace (default: every workspace).")
@click.option("--protect", "extra", multiple=True, help="Another key to treat as protected.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text: a path:line:column line per finding; json; sarif (SARIF 2.1.0, code scanning).",
)
def lint_frontend_command(
    paths: tuple[str, ...],
    config_path: str | None,
    workspace: str | None,
    extra: tuple[str, ...],
    output_format: str,
) -> None:
    """Fail when front-end code sets protected Intercom keys in clear (for CI).

    Parses .js/.mjs/.cjs/.jsx/.ts/.mts/.cts/.tsx files, and the <script>
    elements and event handlers of pages, components and templates (.html,
    .vue, .svelte, Jinja, Django, ERB, EJS, Handlebars, ...), for what reaches
    the Messenger: Intercom('boot'|'update', ...), window.intercomSettings,
    @intercom/messenger-js-sdk and react-use-intercom. Reports user_id, email,
    signed attributes and any user_hash. Exit 1 on findings; accept one with a
    comment `lint-frontend: ignore[rule-id] reason` (the reason is required).
    """
    # The configuration is found as every command finds it; no secret is read.
    with fail_clearly(config_errors=(ValueError,)):
        keys = protected_keys_from_config(config_path, workspace)
    try:
        report = lint_paths(paths, (*keys, *extra))
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    protected = ", ".join(report.protected)
    if output_format == "json":
        click.echo(as_json(report))
    elif output_format == "sarif":
        click.echo(as_sarif(report))
    else:
        for line in text_lines(report):
            click.echo(line)
        for notice in report.notices:
            click.echo(str(notice), err=True)
    if report.findings:
        click.echo(
            f"{summary(report)} (protected: {protected}). Signed attributes reach Intercom "
            "only inside the Messenger JWT; remove them from page code.",
            err=True,
        )
        sys.exit(1)
    if output_format == "text":
        suppressed = f", {len(report.suppressed)} suppressed" if report.suppressed else ""
        click.echo(f"OK: no protected key set in clear (protected: {protected}{suppressed})")


@click.command("eslint-config")
@config_option
@click.option("--workspace", default=None, help="Only this workspace (default: every workspace).")
@click.option("--protect", "extra", multiple=True, help="Another key to treat as protected.")
def eslint_config_command(
    config_path: str | None, workspace: str | None, extra: tuple[str, ...]
) -> None:
    """Print an ESLint flat config (an ES module) flagging protected keys set in clear.

    Core ESLint's no-restricted-syntax, with selectors for the protected keys
    of the configuration (as lint-frontend finds them; no secret is read).
    Selectors cannot follow aliases, variables or spreads: lint-frontend stays
    the CI gate; this gives the same rules in editors.
    """
    with fail_clearly(config_errors=(ValueError,)):
        keys = protected_keys_from_config(config_path, workspace)
    protected = tuple(dict.fromkeys((*ALWAYS_PROTECTED, *keys, *extra)))
    click.echo(flat_config(protected, tool_version()), nl=False)


def register(group: click.Group) -> None:
    """Add `snippet`, `lint-frontend` and `eslint-config` to the `identity-service` group."""
    group.add_command(snippet_command)
    group.add_command(lint_frontend_command)
    group.add_command(eslint_config_command)
