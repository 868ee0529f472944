"""The service's own Flask app: a Flask app with `IdentityService(routes=True)` on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from identity_service.config import load_settings
from identity_service.http.extension import IdentityService
from identity_service.runtime import KeyFiles
from identity_service.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    key_files: KeyFiles | None = None,
    **options: Any,
) -> Flask:
    """Create the app on `settings` (default: $IDENTITY_SERVICE_CONFIG or the bundled example).

    `key_files`: bearer key files loaded already (`runtime.load_key_files`), as
    `identity-service serve` passes them to its workers. `options` go into `app.config`.
    """
    settings = settings or load_settings()
    app = Flask("identity_service")
    app.config.update(MAX_CONTENT_LENGTH=settings.service.max_body_bytes, **options)
    IdentityService(
        app, settings, routes=True, clock=clock, monotonic=monotonic, key_files=key_files
    )
    return app
