"""Where secrets come from: an environment variable, a file, or a development file.

Secrets never live in the configuration file; the file only says where to find
them. A file secret is re-read when the file changes on disk, so an operator
rotates it by replacing the file (atomically, with `mv`) and no restart is
needed. What happens when the file goes bad (missing, unreadable or too weak)
is the secret's policy:

- `keep` (the Messenger secret, a session method's current key): the last
  good value stays in use, so a botched rotation never turns into failed
  requests. The secret reports itself `refused` meanwhile (for /readyz).
- `revoke` (a session fallback key): removing the key is how an operator
  stops trusting it, so it has no value until a good file is back.

Either way the change is logged once, when it happens, not at every request.
"""

from __future__ import annotations

import logging
import os
import secrets as stdlib_secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from identity_service.errors import ConfigProblem, SecretUnavailableError

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
# A log message, not a password (ruff's S105 matches the word SECRET in the name).
DEV_SECRET_BANNER = (
    "DEVELOPMENT SECRET IN USE: {what} comes from the generated file {path}. "
    "It protects nothing in production; configure secret_env or secret_file."
)

# How to make a strong secret, for messages: a command that exists where the
# service runs (`python` may not be on PATH; openssl is), printing 64 characters.
GENERATE_SECRET = "openssl rand -base64 48"

SecretKind = Literal["env", "file", "dev"]
OnRefused = Literal["keep", "revoke"]


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_secret_file(path: Path) -> bytes:
    """Read a secret file; one trailing newline (as editors and `echo` add) is not part of it."""
    raw = path.read_bytes()
    return raw[:-1] if raw.endswith(b"\n") else raw


def ensure_dev_secret(path: Path, generate: Callable[[], bytes] | None = None) -> bool:
    """Create a random development secret at `path` (mode 0600) unless it exists.

    `generate` makes the content (default: 48 random URL-safe bytes; the demo's
    identity provider makes a private key). Returns True when it was created now.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp opens with O_EXCL and mode 0600. The secret is written there first and
    # then linked into place: os.link refuses an existing path like O_EXCL does, so two
    # workers starting together never overwrite each other's secret, and neither can
    # read the file while it is still empty.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(generate() if generate else stdlib_secrets.token_urlsafe(48).encode())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    return True


@dataclass(eq=False)
class SecretSource:
    """A secret's location, and (for files) the last good value read from it."""

    kind: SecretKind
    reference: str  # the env variable name, or the file path
    what: str  # e.g. "workspaces.eu messenger secret", for messages
    min_bytes: int = MIN_SECRET_BYTES
    on_refused: OnRefused = "keep"  # what a bad file means (see the module's docstring)
    key: str = ""  # the configuration key naming it ("workspaces.eu.secret_env"), for problems
    _value: bytes | None = field(default=None, repr=False)
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _refused: str | None = field(default=None, repr=False)  # why the file is bad now

    @property
    def refused(self) -> str | None:
        """Why the file is refused right now (its last good value, or none, in use), else None."""
        return self._refused

    def describe(self) -> str:
        """Say where the secret comes from (never what it is)."""
        if self.kind == "env":
            return f"environment variable {self.reference}"
        if self.kind == "dev":
            return f"development file {self.reference}"
        return f"file {self.reference}"

    def load(self, environ: Mapping[str, str] | None = None) -> bytes:
        """Read the secret now, or raise SecretUnavailableError saying why and how to fix it.

        `environ` is where an env secret is looked up (default: the process's).

        For a file, the stamp is taken BEFORE the read. It is stored AFTER the value
        on success (so a reader that sees the new stamp also sees the new value), and
        also when the file is refused (so a bad file is reported once, and a file
        replaced meanwhile still differs from it and is read next time).
        """
        stamp: tuple[int, int, int] | None = None
        try:
            if self.kind == "env":
                data = self._read_env(os.environ if environ is None else environ)
            else:
                path = Path(self.reference)
                if self.kind == "dev" and not path.exists():
                    # Created by the first reader that needs it (the service), never by
                    # loading the configuration, so read-only commands leave no files.
                    self._generate(path)
                try:
                    stamp = _stamp(path)
                    data = read_secret_file(path)
                except OSError as exc:
                    raise SecretUnavailableError(
                        f"{self.what}: cannot read {path} ({exc.strerror}); "
                        "create the file or fix secret_file"
                    ) from None
            if len(data) < self.min_bytes:
                raise SecretUnavailableError(
                    f"{self.what}: the secret from {self.describe()} is {len(data)} bytes; "
                    f"at least {self.min_bytes} are required (generate one with "
                    f"`{GENERATE_SECRET}`)"
                )
            self._value = data
            return data
        finally:
            if stamp is not None:
                self._stamp = stamp

    def _generate(self, path: Path) -> None:
        try:
            created = ensure_dev_secret(path)
        except OSError as exc:
            raise SecretUnavailableError(
                f"{self.what}: cannot generate the development secret {path} ({exc.strerror}); "
                "make the instance folder writable or set IDENTITY_SERVICE_INSTANCE"
            ) from None
        if created:
            log.warning("generated a new development secret in %s (mode 0600)", path)

    def _read_env(self, environ: Mapping[str, str]) -> bytes:
        value = environ.get(self.reference)
        if value is None:
            raise SecretUnavailableError(
                f"{self.what}: environment variable {self.reference} is not set; "
                "export it or use secret_file"
            )
        return value.encode()

    def get(self) -> bytes:
        """The current secret; a file secret is re-read when the file has changed.

        Raises SecretUnavailableError when there is none: never loaded, or a
        `revoke` secret whose file is refused now.
        """
        value = self.current()
        if value is None:
            raise SecretUnavailableError(f"{self.what}: revoked: {self._refused}")
        return value

    def current(self) -> bytes | None:
        """The current secret, or None for a `revoke` secret whose file is refused now."""
        value = self._value
        if value is None:
            with self._lock:
                return self._value if self._value is not None else self.load()
        if self.kind == "env":
            return value
        path = Path(self.reference)
        try:
            current = _stamp(path)
        except OSError as exc:
            with self._lock:
                # Forget the stamp: whatever file appears next (even the same one
                # moved back) is read again before it counts as good.
                self._stamp = None
                return self._refuse(f"cannot read {path} ({exc.strerror})", value)
        if current == self._stamp:
            # Read the value only now: load() stores it before the stamp, so having
            # seen the new stamp we cannot return the old value.
            if self._refused is not None and self.on_refused == "revoke":
                return None  # the same refused file as before
            return self._value or value
        with self._lock:
            previous = self._value or value
            if current == self._stamp:  # another thread reloaded while we waited
                return None if self._refused and self.on_refused == "revoke" else previous
            try:
                fresh = self.load()
            except SecretUnavailableError as exc:
                return self._refuse(exc.detail.removeprefix(f"{self.what}: "), previous)
            was_refused, self._refused = self._refused, None
            if fresh != previous:
                log.warning("secret reloaded: %s (%s)", self.what, self.describe(), extra=_pid())
            elif was_refused is not None:
                log.warning(
                    "secret file good again: %s (%s)", self.what, self.describe(), extra=_pid()
                )
            return fresh

    def _refuse(self, reason: str, previous: bytes) -> bytes | None:
        """Record that the file is bad (logged once per change); the value to use meanwhile."""
        if reason != self._refused:
            self._refused = reason
            if self.on_refused == "revoke":
                log.warning("secret revoked: %s: %s", self.what, reason, extra=_pid())
            else:
                log.error(
                    "secret rotation refused, keeping the previous value: %s: %s",
                    self.what,
                    reason,
                    extra=_pid(),
                )
        return None if self.on_refused == "revoke" else previous


def resolve(
    sources: Iterable[SecretSource],
    environ: Mapping[str, str] | None = None,
    *,
    generate: bool = False,
) -> list[ConfigProblem]:
    """Read every secret now, as the service will sign and verify with them; the problems.

    Each problem is at the key that names the secret, with the fix, never the
    value. A development secret that does not exist yet is made only when
    `generate` (`serve`, before any worker starts); otherwise the service makes
    it when it first needs it, so commands that only read write nothing.
    """
    problems: list[ConfigProblem] = []
    for source in sources:
        if source.kind == "dev":
            log.warning(DEV_SECRET_BANNER.format(what=source.what, path=source.reference))
            if not generate and not Path(source.reference).exists():
                continue
        try:
            source.load(environ)
        except SecretUnavailableError as exc:
            problems.append(ConfigProblem(source.key, exc.detail.removeprefix(f"{source.what}: ")))
    return problems


def _pid() -> dict[str, dict[str, int]]:
    # Each worker process notices on its own: say which one did.
    return {"fields": {"pid": os.getpid()}}
