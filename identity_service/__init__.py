"""identity_service: signed Intercom Messenger tokens for a product's logged-in users.

The supported API is what `__all__` lists; everything else may move. The
service itself is `create_app()`; a product's own Flask app gets
`render_messenger_tag` in its templates with `IdentityService(app, settings)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from identity_service.auth import Identity as Identity
    from identity_service.config import load_settings as load_settings
    from identity_service.config import read_settings as read_settings
    from identity_service.errors import ConfigError as ConfigError
    from identity_service.errors import ConfigProblem as ConfigProblem
    from identity_service.errors import IdentityServiceError as IdentityServiceError
    from identity_service.errors import InvalidAttributesError as InvalidAttributesError
    from identity_service.errors import InvalidUserIdError as InvalidUserIdError
    from identity_service.errors import ProfileUnavailableError as ProfileUnavailableError
    from identity_service.errors import SecretUnavailableError as SecretUnavailableError
    from identity_service.errors import UnknownWorkspaceError as UnknownWorkspaceError
    from identity_service.errors import UnsafeSnippetError as UnsafeSnippetError
    from identity_service.frontend.embed import render_messenger_tag as render_messenger_tag
    from identity_service.frontend.public_config import MessengerConfig as MessengerConfig
    from identity_service.http.extension import IdentityService as IdentityService
    from identity_service.http.state import ServiceState as ServiceState
    from identity_service.http.state import service_state as service_state
    from identity_service.issuer import TokenIssuer as TokenIssuer
    from identity_service.settings import Settings as Settings
    from identity_service.tokens import MintedToken as MintedToken

# Each supported name and the module that defines it. Imported on first use
# (PEP 562), not here: Python runs this file before every `identity_service.x`
# import, so importing the names eagerly would make the smallest module (and the
# CLI's start) load the whole package, SQLAlchemy included, and the
# Flask-bound ones would put Flask in every domain module's imports.
_HOMES = {
    "IdentityService": "identity_service.http.extension",
    "ServiceState": "identity_service.http.state",
    "service_state": "identity_service.http.state",
    "load_settings": "identity_service.config",
    "read_settings": "identity_service.config",
    "Settings": "identity_service.settings",
    "Identity": "identity_service.auth",
    "TokenIssuer": "identity_service.issuer",
    "MintedToken": "identity_service.tokens",
    "render_messenger_tag": "identity_service.frontend.embed",
    "MessengerConfig": "identity_service.frontend.public_config",
    "IdentityServiceError": "identity_service.errors",
    "ConfigError": "identity_service.errors",
    "ConfigProblem": "identity_service.errors",
    "UnknownWorkspaceError": "identity_service.errors",
    "InvalidAttributesError": "identity_service.errors",
    "InvalidUserIdError": "identity_service.errors",
    "ProfileUnavailableError": "identity_service.errors",
    "SecretUnavailableError": "identity_service.errors",
    "UnsafeSnippetError": "identity_service.errors",
}

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "Identity",
    "IdentityService",
    "IdentityServiceError",
    "InvalidAttributesError",
    "InvalidUserIdError",
    "MessengerConfig",
    "MintedToken",
    "ProfileUnavailableError",
    "SecretUnavailableError",
    "ServiceState",
    "Settings",
    "TokenIssuer",
    "UnknownWorkspaceError",
    "UnsafeSnippetError",
    "create_app",
    "load_settings",
    "read_settings",
    "render_messenger_tag",
    "service_state",
]


def create_app(settings: Settings | None = None, **options: Any) -> Flask:
    """Build the service's Flask app (`http.app.create_app`; Flask is imported only now)."""
    from identity_service.http.app import create_app as factory

    return factory(settings, **options)


def __getattr__(name: str) -> Any:
    """A supported name, imported from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
