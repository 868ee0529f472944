"""Secret sources: environment, file (rotated without restart) and the development file."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from identity_service import secrets as secrets_module
from identity_service.errors import SecretUnavailableError
from identity_service.secrets import (
    GENERATE_SECRET,
    MIN_SECRET_BYTES,
    SecretSource,
    ensure_dev_secret,
)

FIRST = "first-secret-0123456789abcdefghijklmnopqrstuvwxyz"
SECOND = "second-secret-0123456789abcdefghijklmnopqrstuvwxyz"
TOO_SHORT = "short-secret-value"


def rotate(path: Path, content: str) -> None:
    """Replace the file atomically, the way an operator (or a secrets manager) rotates it."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(content)
    os.replace(fresh, path)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "messenger.secret"
    path.write_text(FIRST)
    return path


def file_source(path: Path) -> SecretSource:
    return SecretSource("file", str(path), "test Messenger secret")


# -- files -----------------------------------------------------------------------------


def test_a_replaced_file_is_picked_up_without_restart(secret_file: Path) -> None:
    source = file_source(secret_file)
    assert source.get() == FIRST.encode()
    rotate(secret_file, SECOND)
    assert source.get() == SECOND.encode()
    rotate(secret_file, FIRST)
    assert source.get() == FIRST.encode()


def test_a_file_rewritten_in_place_is_picked_up(secret_file: Path) -> None:
    source = file_source(secret_file)
    assert source.get() == FIRST.encode()
    secret_file.write_text(SECOND)  # a different size, same inode
    assert source.get() == SECOND.encode()


def test_an_unchanged_file_is_not_read_again(
    secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = file_source(secret_file)
    source.get()
    reads: list[Path] = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    for _ in range(5):
        assert source.get() == FIRST.encode()
    assert reads == []


def test_a_rotated_file_that_is_too_short_keeps_the_previous_value(
    secret_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = file_source(secret_file)
    assert source.get() == FIRST.encode()
    with caplog.at_level(logging.ERROR, logger="identity_service.secrets"):
        rotate(secret_file, TOO_SHORT)
        assert source.get() == FIRST.encode()
        assert source.get() == FIRST.encode()
    refusals = [r for r in caplog.records if "rotation refused" in r.getMessage()]
    assert len(refusals) == 1  # reported once, not on every request
    assert TOO_SHORT not in caplog.text
    assert FIRST not in caplog.text
    rotate(secret_file, SECOND)  # a good rotation afterwards is taken
    assert source.get() == SECOND.encode()


def refuse_by(how: str, path: Path, moved: Path) -> None:
    if how == "deleted":
        path.unlink()
    elif how == "moved away":
        os.replace(path, moved)
    elif how == "emptied":
        path.write_text("")
    else:
        path.write_text(TOO_SHORT)


REFUSALS = ["deleted", "moved away", "emptied", "short"]


@pytest.mark.parametrize("how", REFUSALS)
def test_a_keep_secret_whose_file_goes_bad_keeps_its_value_and_says_so_once(
    secret_file: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    source = file_source(secret_file)
    assert source.get() == FIRST.encode() and source.refused is None
    with caplog.at_level(logging.WARNING, logger="identity_service.secrets"):
        refuse_by(how, secret_file, secret_file.with_name("away"))
        for _ in range(3):
            assert source.get() == FIRST.encode()
        assert source.refused is not None and str(secret_file) in source.refused
    refusals = [r for r in caplog.records if "keeping the previous value" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    assert FIRST not in caplog.text


@pytest.mark.parametrize("how", REFUSALS)
def test_a_revoke_secret_whose_file_goes_bad_has_no_value_until_a_good_file_is_back(
    secret_file: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    source = SecretSource("file", str(secret_file), "test fallback key", on_refused="revoke")
    assert source.current() == FIRST.encode()
    moved = secret_file.with_name("away")
    with caplog.at_level(logging.WARNING, logger="identity_service.secrets"):
        refuse_by(how, secret_file, moved)
        for _ in range(3):
            assert source.current() is None
        with pytest.raises(SecretUnavailableError):
            source.get()
        revocations = [r for r in caplog.records if r.getMessage().startswith("secret revoked")]
        assert len(revocations) == 1  # logged when it happens, not at every request
        # The same file put back (same inode, size and time) is read again and trusted.
        if how == "moved away":
            os.replace(moved, secret_file)
        else:
            secret_file.unlink(missing_ok=True)
            secret_file.write_text(FIRST)
        assert source.current() == FIRST.encode()
        assert source.refused is None
    assert any("good again" in r.getMessage() for r in caplog.records)
    assert FIRST not in caplog.text


def test_a_file_missing_mid_rotation_keeps_the_previous_value(secret_file: Path) -> None:
    source = file_source(secret_file)
    assert source.get() == FIRST.encode()
    secret_file.unlink()
    assert source.get() == FIRST.encode()
    secret_file.write_text(SECOND)
    assert source.get() == SECOND.encode()


def test_one_trailing_newline_is_not_part_of_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text(FIRST + "\n")
    assert file_source(path).get() == FIRST.encode()
    path.write_text(FIRST + "\n\n")
    assert file_source(path).get() == (FIRST + "\n").encode()


def test_a_missing_file_is_an_error_that_says_how_to_fix_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.secret"
    with pytest.raises(SecretUnavailableError) as caught:
        file_source(path).get()
    assert str(path) in caught.value.detail
    assert "create the file or fix secret_file" in caught.value.detail
    assert caught.value.status == 503


def test_a_file_that_is_too_short_at_first_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.secret"
    path.write_text("k" * 31)
    with pytest.raises(SecretUnavailableError) as caught:
        file_source(path).get()
    assert "is 31 bytes; at least 32 are required" in caught.value.detail
    assert "k" * 31 not in caught.value.detail


def test_the_value_never_appears_in_repr_or_description(secret_file: Path) -> None:
    source = file_source(secret_file)
    source.get()
    assert FIRST not in repr(source)
    assert FIRST not in source.describe()
    assert source.describe() == f"file {secret_file}"


# -- environment -----------------------------------------------------------------------


def test_an_env_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MESSENGER_SECRET", FIRST)
    source = SecretSource("env", "TEST_MESSENGER_SECRET", "test Messenger secret")
    assert source.get() == FIRST.encode()
    assert source.describe() == "environment variable TEST_MESSENGER_SECRET"


def test_an_unset_env_secret_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_MESSENGER_SECRET", raising=False)
    source = SecretSource("env", "TEST_MESSENGER_SECRET", "test Messenger secret")
    with pytest.raises(SecretUnavailableError, match="TEST_MESSENGER_SECRET is not set"):
        source.get()


def test_a_short_env_secret_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MESSENGER_SECRET", "k" * 31)
    source = SecretSource("env", "TEST_MESSENGER_SECRET", "test Messenger secret")
    with pytest.raises(SecretUnavailableError, match="is 31 bytes; at least 32"):
        source.get()


def test_min_bytes_counts_bytes_not_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MESSENGER_SECRET", "\u00e9" * 16)  # 16 characters, 32 bytes
    source = SecretSource("env", "TEST_MESSENGER_SECRET", "test Messenger secret")
    assert len(source.get()) == 32


# -- the development secret ------------------------------------------------------------


def test_the_dev_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "dev-workspaces-default.secret"
    assert ensure_dev_secret(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    value = path.read_bytes()
    assert len(value) >= 32
    assert ensure_dev_secret(path) is False
    assert path.read_bytes() == value  # reused, never regenerated
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    source = SecretSource("dev", str(path), "dev secret")
    assert source.get() == value


def test_an_existing_dev_secret_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "dev.secret"
    path.write_text(FIRST)
    assert ensure_dev_secret(path) is False
    assert path.read_text() == FIRST


def test_two_dev_secrets_differ(tmp_path: Path) -> None:
    ensure_dev_secret(tmp_path / "a.secret")
    ensure_dev_secret(tmp_path / "b.secret")
    assert (tmp_path / "a.secret").read_bytes() != (tmp_path / "b.secret").read_bytes()


def test_workers_starting_together_share_one_complete_dev_secret(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "dev.secret"
    start = threading.Barrier(8)
    created: list[bool] = []
    seen: list[bytes] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        made = ensure_dev_secret(path)
        value = path.read_bytes()  # what the loader reads right after
        with lock:
            created.append(made)
            seen.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 1
    assert len(set(seen)) == 1
    assert len(seen[0]) >= 32
    assert [p.name for p in path.parent.iterdir()] == ["dev.secret"]


def test_a_fix_landing_while_a_bad_rotation_is_refused_is_still_picked_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "messenger.secret"
    path.write_text("A" * 40)
    source = SecretSource("file", str(path), "test secret")
    assert source.get() == b"A" * 40

    fixed = tmp_path / "fixed.secret"
    fixed.write_text("B" * 40)
    real_read = secrets_module.read_secret_file

    def read_then_fix(target: Path) -> bytes:
        data = real_read(target)
        if data == b"short":
            os.replace(fixed, path)  # the operator's fix lands right after the bad read
        return data

    bad = tmp_path / "bad.secret"
    bad.write_text("short")
    os.replace(bad, path)
    monkeypatch.setattr(secrets_module, "read_secret_file", read_then_fix)
    assert source.get() == b"A" * 40  # the short file is refused, the old value kept
    assert source.get() == b"B" * 40  # and the fix is not mistaken for the refused file


def test_the_hint_for_a_short_secret_is_a_command_that_runs_and_makes_a_long_enough_one(
    tmp_path: Path,
) -> None:
    short = tmp_path / "short.secret"
    short.write_text("too short")
    with pytest.raises(SecretUnavailableError) as caught:
        SecretSource("file", str(short), "test secret").load()
    hint = re.search(r"generate one with `([^`]+)`", caught.value.detail)
    assert hint is not None, caught.value.detail
    assert hint.group(1) == GENERATE_SECRET
    made = subprocess.run(
        ["sh", "-c", hint.group(1)],
        capture_output=True,
        timeout=30,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    short.write_bytes(made.stdout)
    assert len(SecretSource("file", str(short), "test secret").load()) >= MIN_SECRET_BYTES
    documented = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert f"`{GENERATE_SECRET}`" in documented
