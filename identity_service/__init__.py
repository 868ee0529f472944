"""identity_service: signed Intercom Messenger tokens for a product's logged-in users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from identity_service.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, **options: Any) -> Flask:
    """Build the Flask app (imported lazily so the domain modules stay free of Flask)."""
    from identity_service.http.app import create_app as factory

    return factory(settings, **options)
