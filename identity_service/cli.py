"""The `identity-service` command line (click)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Mint signed Intercom Messenger tokens for a product's logged-in users."""
