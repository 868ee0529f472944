"""How every command reports a failure: one readable line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from identity_service.errors import ConfigError, IdentityServiceError

EXIT_FAILED = 1  # the command ran and could not do its job
EXIT_CONFIG = 2  # the configuration (or the invocation) is wrong


@contextmanager
def fail_clearly(config_errors: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn domain errors (and the extra kinds named) into `error: ...` and an exit code.

    ConfigError and `config_errors` exit 2; other domain errors exit 1.
    """
    try:
        yield
    except ConfigError as exc:
        _fail(exc.detail, EXIT_CONFIG)
    except config_errors as exc:
        _fail(str(exc), EXIT_CONFIG)
    except IdentityServiceError as exc:
        _fail(exc.detail, EXIT_FAILED)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
