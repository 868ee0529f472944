"""Options every command that reads the configuration shares, spelled once."""

from __future__ import annotations

import click

from identity_service.config import CONFIG_ENV

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help=f"TOML configuration file (default: ${CONFIG_ENV}, else the bundled example).",
)
