"""The Flask application factory: the only place that wires settings into Flask."""

from __future__ import annotations

from typing import Any

from flask import Flask

from identity_service.config import load_settings
from identity_service.settings import Settings


def create_app(settings: Settings | None = None, **options: Any) -> Flask:
    """Create the app on `settings` (loaded from the environment when None)."""
    app = Flask("identity_service")
    app.config.update(options)
    app.extensions["identity_service.settings"] = settings or load_settings()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
