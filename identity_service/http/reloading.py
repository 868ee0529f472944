"""The last good configuration a server's workers start from, and reloads that may refuse one.

`identity-service serve` validates the configuration once in the master and
keeps the result here. Every worker is forked from that state and builds its
app on it, so a worker that replaces a dead one never reads the configuration
or the secrets on its own: a typo saved in the file, or a secret file deleted
since, cannot stop it from booting (and gunicorn's master from staying up).

A reload (SIGHUP) loads and validates the file again first. A good one
replaces the state; a bad one is refused, logged with every problem, and the
workers go on with the last good one, which they report in /readyz.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from identity_service.errors import ConfigError, SecretUnavailableError
from identity_service.runtime import KeyFiles, load_key_files
from identity_service.settings import Settings

log = logging.getLogger(__name__)

ReloadResult = str  # "applied" or "refused": the label of the reload metric
# The app config key under which a worker learns that the latest reload was refused (/readyz).
REFUSED_CONFIG = "IDENTITY_SERVICE_REFUSED_CONFIG"


@dataclass
class LastGoodConfig:
    """The settings new workers start from, and why the latest reload was refused (if it was)."""

    settings: Settings
    load: Callable[[], Settings]  # reads and validates the configuration, or raises
    counted: Callable[[ReloadResult], None] = lambda result: None
    refused: str | None = None
    # The bearer key files, loaded here once, like the secrets: a worker reads no file.
    key_files: KeyFiles = field(init=False)

    def __post_init__(self) -> None:
        self.key_files = load_key_files(self.settings)

    def reload(self) -> bool:
        """Load the configuration again; keep the last good one when it is refused."""
        try:
            fresh = self.load()
            key_files = load_key_files(fresh)
        except ConfigError as exc:
            # The problems name the file, each key and its fix, never a secret's value.
            return self._refuse(exc.detail)
        except Exception as exc:  # a reload must never take the master down
            # Only the type: an unexpected message could quote anything.
            return self._refuse(f"{self.settings.source}: {type(exc).__name__} while loading")
        self.settings, self.key_files = fresh, key_files
        self.refused = None
        log.warning("configuration reloaded: %s", fresh.source)
        self.counted("applied")
        return True

    def _refuse(self, why: str) -> bool:
        self.refused = why
        log.error(
            "configuration refused, the workers keep the last good configuration: %s",
            why.replace("\n", " "),
        )
        self.counted("refused")
        return False

    def refresh_secrets(self) -> None:
        """Re-read every secret file before a worker is forked, so it starts from the latest
        good values (a bad file keeps the last good value, or revokes a fallback key)."""
        for source in self.settings.secrets():
            # Unavailable only if never loaded, which validated settings rule out.
            with contextlib.suppress(SecretUnavailableError):
                source.current()
