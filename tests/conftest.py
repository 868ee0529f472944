"""Fixtures shared by every test module; keep them small and generic."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from identity_service import create_app
from identity_service.config import INSTANCE_ENV
from tests.support.leak_guard import LeakGuard, leak_guard
from tests.support.service import ServiceFixture

# Every test runs under the log leak guard: no log line may carry a token, a
# cookie or a secret, whatever the test exercises.
__all__ = ["LeakGuard", "leak_guard"]

# 48 bytes, comfortably above the 32-byte minimum for a Messenger secret.
MESSENGER_SECRET = "test-messenger-secret-0123456789abcdefghijklmnop"
MESSENGER_SECRET_ENV = "MESSENGER_SECRET"
assert len(MESSENGER_SECRET.encode()) == 48

WriteConfig = Callable[..., Path]


@pytest.fixture
def app(service: ServiceFixture) -> Flask:
    """The service app on the module's own `service` fixture (modules without one never ask)."""
    return create_app(service.settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    """A not-yet-created instance folder (dev secrets go there)."""
    return tmp_path / "instance"


@pytest.fixture
def environ(instance_path: Path) -> dict[str, str]:
    """The environment handed to `load_settings`: a 48-byte secret and a tmp instance folder."""
    return {MESSENGER_SECRET_ENV: MESSENGER_SECRET, INSTANCE_ENV: str(instance_path)}


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write TOML text (dedented) to a file in tmp_path and return its path."""

    def write(text: str, name: str = "identity.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), "utf-8")
        return path

    return write
