"""The master's last good state (reloading.LastGoodConfig), and what /readyz says about it.

The same rules run under `identity-service serve` in tests/fault/test_reload.py;
here each refusal is checked on its own, without a server.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from identity_service import create_app
from identity_service.cli.main import _load
from identity_service.http.reloading import REFUSED_CONFIG, LastGoodConfig
from tests.support.service import MESSENGER_SECRET, ServiceFixture, make_service

NEW_MESSENGER_SECRET = "n" * 40 + "-the-rotated-messenger-secret"


@pytest.fixture
def service(tmp_path: Path) -> ServiceFixture:
    return make_service(tmp_path)


def last_good(service: ServiceFixture, counted: list[str]) -> LastGoodConfig:
    config = str(service.root / "service.toml")
    return LastGoodConfig(service.settings, lambda: _load(config), counted.append)


def break_typo(root: Path) -> None:
    path = root / "service.toml"
    path.write_text(path.read_text().replace("token_lifetime", "token_lifetim"))


def break_secret(root: Path) -> None:
    (root / "messenger.secret").unlink()


def break_key_file(root: Path) -> None:
    (root / "idp-public.pem").write_text("not a key\n")


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (break_typo, "workspaces.main.token_lifetim"),
        (break_secret, "workspaces.main.secret_file"),
        (break_key_file, "key_file"),
    ],
    ids=["typo", "secret file missing", "key file unusable"],
)
def test_a_refused_reload_keeps_the_last_good_state_and_says_why(
    service: ServiceFixture, caplog: pytest.LogCaptureFixture, damage: object, named: str
) -> None:
    counted: list[str] = []
    state = last_good(service, counted)
    before = (state.settings, state.key_files)
    damage(service.root)  # type: ignore[operator]
    with caplog.at_level(logging.ERROR, logger="identity_service.http.reloading"):
        assert state.reload() is False
    assert (state.settings, state.key_files) == before
    assert counted == ["refused"]
    assert state.refused is not None and named in state.refused
    (line,) = [r.getMessage() for r in caplog.records if "configuration refused" in r.getMessage()]
    assert named in line and "\n" not in line
    assert MESSENGER_SECRET not in caplog.text


def test_a_good_reload_replaces_the_state_and_clears_the_refusal(service: ServiceFixture) -> None:
    counted: list[str] = []
    state = last_good(service, counted)
    break_typo(service.root)
    state.reload()
    config = service.root / "service.toml"
    config.write_text(config.read_text().replace("token_lifetim", "token_lifetime"))
    assert state.reload() is True
    assert state.refused is None and counted == ["refused", "applied"]
    assert state.settings is not service.settings


def test_an_unexpected_error_while_loading_is_a_refusal_never_a_crash(
    service: ServiceFixture, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError(f"something quoting {MESSENGER_SECRET}")

    state = LastGoodConfig(service.settings, broken)  # type: ignore[arg-type]
    assert state.reload() is False
    assert state.refused is not None and "RuntimeError" in state.refused
    assert MESSENGER_SECRET not in caplog.text and MESSENGER_SECRET not in state.refused


def test_before_a_fork_the_secrets_are_read_again_keeping_the_last_good_value(
    service: ServiceFixture,
) -> None:
    state = last_good(service, [])
    path = service.root / "messenger.secret"
    path.write_text(NEW_MESSENGER_SECRET + "\n")
    state.refresh_secrets()
    secret = service.settings.workspaces["main"].secret
    path.unlink()
    state.refresh_secrets()
    assert secret.get() == NEW_MESSENGER_SECRET.encode()  # the rotation the master saw
    assert secret.refused is not None


def test_readyz_is_degraded_on_a_refused_config_and_on_refused_secrets(
    service: ServiceFixture,
) -> None:
    client = create_app(service.settings, **{REFUSED_CONFIG: None}).test_client()
    ready = client.get("/readyz").get_json()
    assert ready["status"] == "ready"
    assert ready["checks"]["config"] == "ok"
    assert ready["checks"]["main.auth[1]"] == "ok"  # the session method

    (service.root / "messenger.secret").unlink()
    (service.root / "session.secret").write_text("short\n")
    response = client.get("/readyz")
    assert response.status_code == 200
    ready = response.get_json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["main.secret"] == "refused"
    assert ready["checks"]["main.auth[1]"] == "refused"

    refused = create_app(service.settings, **{REFUSED_CONFIG: "service.toml: 1 problem"})
    assert refused.test_client().get("/readyz").get_json()["checks"]["config"] == "refused"
