"""The demo product's accounts: one SQLite table of users, argon2id password hashes, profiles.

The same rows serve both halves of the demo, as a real product's database
would: Pete logs its users in against them, and the identity service's
profile source reads them through the bundled configuration's
`[workspaces.default.profile]` query. Passwords are stored only as argon2id
hashes (argon2-cffi's defaults, RFC 9106's low-memory profile).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DATABASE_NAME = "demo.db"
# Shown on the login page on purpose: these accounts exist only in the demo.
DEMO_PASSWORD = "pete-demo-password"
TABLE = "users"
# How long a writer may wait for the database lock (the service reads the same file).
LOCK_TIMEOUT = 5.0

SCHEMA = """
CREATE TABLE users (
    id            TEXT PRIMARY KEY,   -- the stable user id: in the session and in the token
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,      -- argon2id; the password itself is never stored
    signed_up_at  TEXT NOT NULL,      -- ISO 8601, UTC
    plan          TEXT NOT NULL,
    teammates     INTEGER NOT NULL,
    last_order_at TEXT                -- ISO 8601, UTC; NULL: no order yet
)
"""
# Every column but the hash: what the product shows and what the service may sign.
PROFILE_COLUMNS = (
    "id",
    "email",
    "name",
    "signed_up_at",
    "plan",
    "teammates",
    "last_order_at",
)


@dataclass(frozen=True)
class DemoUser:
    """One seeded account and its profile row."""

    id: str
    email: str
    name: str
    signed_up_at: str
    plan: str
    teammates: int
    last_order_at: str | None


DEMO_USERS = (
    DemoUser("1001", "ada@pete.example", "Ada Lovelace", "2023-03-14T09:26:53Z", "pro", 3,
             "2025-06-02T17:45:00Z"),
    DemoUser("1002", "grace@pete.example", "Grace Hopper", "2021-12-09T08:00:00Z", "team", 12,
             "2025-05-28T10:12:30Z"),
    # A non-ASCII name shows the token (UTF-8 JSON) and the stand-in's decoding at work.
    DemoUser("1003", "zoe@pete.example", "Zoë Lindqvist", "2024-11-02T14:30:00Z", "free", 0,
             None),
)  # fmt: skip


@cache
def default_hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's (RFC 9106) parameters."""
    return PasswordHasher()


@cache
def _decoy_hash() -> str:
    # Verified against when no account has the email, so an unknown address costs
    # the same argon2 work as a wrong password and timing does not tell them apart.
    return default_hasher().hash(os.urandom(16).hex())


def database_path(instance: Path) -> Path:
    """Where the demo database lives: in the instance folder, beside the dev secrets."""
    return instance / DATABASE_NAME


def prepare(path: Path, *, reset: bool = False, hasher: PasswordHasher | None = None) -> bool:
    """Make sure `path` holds the demo users; create and seed it when needed.

    `reset` throws the existing file away first. A file without the users table
    (say, the empty file SQLite creates when the service opened the path before
    the demo ever ran) is seeded too. The new database is built in a temporary
    file (mode 0600: it holds password hashes) and moved into place in one
    rename, so a crash mid-seed never leaves a half-filled database.
    Returns True when the database was (re)created now.
    """
    if not reset and _has_users_table(path):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with closing(sqlite3.connect(temporary)) as db:
            db.executescript(SCHEMA)
            _seed(db, hasher or default_hasher())
            db.commit()
        for stale in (f"{path}-journal", f"{path}-wal", f"{path}-shm"):
            Path(stale).unlink(missing_ok=True)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def _has_users_table(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with _connect(path) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
            ).fetchone()
    except sqlite3.DatabaseError:
        return False  # not a database at all: recreate it
    return found is not None


def _seed(db: sqlite3.Connection, hasher: PasswordHasher) -> None:
    db.executemany(
        "INSERT INTO users (id, email, name, password_hash, signed_up_at, plan, teammates, "
        "last_order_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (u.id, u.email, u.name, hasher.hash(DEMO_PASSWORD), u.signed_up_at, u.plan,
             u.teammates, u.last_order_at)
            for u in DEMO_USERS
        ],
    )  # fmt: skip


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    # mode=rw: never create a database as a side effect of reading one.
    uri = f"{path.resolve().as_uri()}?mode=rw"
    with closing(sqlite3.connect(uri, uri=True, timeout=LOCK_TIMEOUT)) as db:
        db.row_factory = sqlite3.Row
        yield db


def authenticate(
    path: Path, email: str, password: str, hasher: PasswordHasher | None = None
) -> dict[str, Any] | None:
    """The profile of the account with this email and password, or None.

    An unknown email and a wrong password both give None after the same argon2
    work, so neither the answer nor its timing says which accounts exist.
    """
    hasher = hasher or default_hasher()
    with _connect(path) as db:
        row = db.execute(
            f"SELECT {', '.join(PROFILE_COLUMNS)}, password_hash FROM users WHERE email = ?",  # noqa: S608 (constant column names)
            (email.strip(),),
        ).fetchone()
        stored = row["password_hash"] if row is not None else _decoy_hash()
        try:
            hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None  # the decoy "matched": impossible in practice, refused anyway
        if hasher.check_needs_rehash(stored):
            # Parameters were raised since this hash was made: upgrade it while we
            # hold the password, the only moment we ever can.
            db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?",
                (hasher.hash(password), row["id"]),
            )
            db.commit()
    return {column: row[column] for column in PROFILE_COLUMNS}


def load_profile(path: Path, user_id: str) -> dict[str, Any] | None:
    """The user's profile row (everything but the password hash), or None."""
    with _connect(path) as db:
        row = db.execute(
            f"SELECT {', '.join(PROFILE_COLUMNS)} FROM users WHERE id = ?",  # noqa: S608 (constant column names)
            (user_id,),
        ).fetchone()
    return None if row is None else {column: row[column] for column in PROFILE_COLUMNS}
