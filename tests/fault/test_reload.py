"""Operator mistakes never stop `identity-service serve` (2 workers): issue 12, item 3.

A SIGHUP with a broken configuration is refused in the master: the workers go
on with the last good configuration, the refusal is logged, counted
(`identity_config_reloads_total{result="refused"}`) and shown by /readyz, and
fixing the file plus another SIGHUP recovers. A worker that dies after the
Messenger secret file was deleted or shortened is replaced by one that boots
from the master's last good values and signs with the last good secret.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support.served import Server, serving
from tests.support.service import MESSENGER_SECRET, make_service

TOKEN_PATH = "/v1/messenger/token"
UNLIMITED = '\n[service.rate_limit]\nper_client = "1000000/minute"\nper_user = "1000000/minute"\n'
WORKERS = 2


def call(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    """One request on a fresh connection: (status, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        raw = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw


def minted(port: int, bearer: dict[str, str], count: int = 8) -> list[int]:
    statuses = []
    for _ in range(count):
        status, body = call(port, "POST", TOKEN_PATH, bearer)
        statuses.append(status)
        if status == 200:
            jwt.decode(body["token"], MESSENGER_SECRET, algorithms=["HS256"])
    return statuses


def reloads(port: int, result: str) -> float:
    _, text = call(port, "GET", "/metrics")
    found = re.search(rf'identity_config_reloads_total\{{result="{result}"\}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def booted(server: Server) -> list[int]:
    return [int(x.rsplit(" ", 1)[1]) for x in server.lines if "Booting worker with pid" in x]


def wait_for_workers(server: Server, count: int) -> None:
    server.wait_for_lines("Booting worker with pid", count=count)


def replacement_ready(server: Server) -> int:
    """The pid of the worker booted last, once its app is built (it logs so)."""
    pid = booted(server)[-1]
    server.wait_for_lines(rf'"message":"worker app ready","pid":{pid}\b')
    assert server.process.poll() is None, server.log()
    return pid


def replaced_after_sighup(server: Server, generation: int) -> None:
    """SIGHUP the master; wait until the new workers booted and the previous ones exited."""
    old = booted(server)
    os.kill(server.process.pid, signal.SIGHUP)
    wait_for_workers(server, (generation + 1) * WORKERS)
    for pid in old[-WORKERS:]:
        server.wait_for_lines(rf"Worker exiting \(pid: {pid}\)")


@pytest.mark.fault
def test_sighup_with_a_broken_config_keeps_serving_and_a_fixed_one_recovers(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path, extra=UNLIMITED)
    bearer = service.bearer_headers()
    config = tmp_path / "service.toml"
    good = config.read_text()
    with serving(config, tmp_path, workers=WORKERS, threads=2) as server:
        port = server.port
        wait_for_workers(server, WORKERS)
        assert minted(port, bearer) == [200] * 8

        config.write_text(good.replace("token_lifetime = 3600", "token_lifetim = 3600"))
        replaced_after_sighup(server, 1)  # gunicorn replaces the workers on SIGHUP
        server.wait_for_lines("configuration refused")
        assert server.process.poll() is None, server.log()
        assert minted(port, bearer) == [200] * 8
        status, ready = call(port, "GET", "/readyz")
        assert status == 200, ready
        assert ready["status"] == "degraded"
        assert ready["checks"]["config"] == "refused"
        assert reloads(port, "refused") == 1
        refusal = next(x for x in server.lines if "configuration refused" in x)
        assert "token_lifetim" in refusal and str(config) in refusal

        config.write_text(good)
        replaced_after_sighup(server, 2)
        server.wait_for_lines("configuration reloaded")
        status, ready = call(port, "GET", "/readyz")
        assert (status, ready["status"], ready["checks"]["config"]) == (200, "ready", "ok")
        assert reloads(port, "applied") == 1
        assert minted(port, bearer) == [200] * 8
        assert server.process.poll() is None


def delete(path: Path) -> None:
    path.unlink()


def shorten(path: Path) -> None:
    path.write_text("too-short\n")


@pytest.mark.fault
@pytest.mark.parametrize("damage", [delete, shorten], ids=["deleted", "shortened"])
def test_a_worker_replaced_after_the_secret_file_broke_serves_with_the_last_good_secret(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    service = make_service(tmp_path, extra=UNLIMITED)
    bearer = service.bearer_headers()
    with serving(tmp_path / "service.toml", tmp_path, workers=WORKERS, threads=2) as server:
        port = server.port
        wait_for_workers(server, WORKERS)
        assert minted(port, bearer) == [200] * 8

        damage(tmp_path / "messenger.secret")
        victim = booted(server)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for_workers(server, WORKERS + 1)
        assert replacement_ready(server) != victim
        # Every worker, the replacement included, signs with the last good secret.
        assert minted(port, bearer, count=12) == [200] * 12
        status, ready = call(port, "GET", "/readyz")
        assert status == 200, ready
        assert ready["status"] == "degraded"
        assert ready["checks"]["main.secret"] == "refused"
        assert "too-short" not in server.log()


@pytest.mark.fault
def test_a_worker_replaced_after_the_idp_key_file_was_deleted_verifies_with_the_loaded_key(
    tmp_path: Path,
) -> None:
    # The same class: a file read when a worker builds its app (a `key_file`,
    # "loaded once at startup") must not be read again by a replacement.
    service = make_service(tmp_path, extra=UNLIMITED)
    bearer = service.bearer_headers()
    with serving(tmp_path / "service.toml", tmp_path, workers=WORKERS, threads=2) as server:
        port = server.port
        wait_for_workers(server, WORKERS)
        assert minted(port, bearer) == [200] * 8

        (tmp_path / "idp-public.pem").unlink()
        os.kill(booted(server)[0], signal.SIGKILL)
        wait_for_workers(server, WORKERS + 1)
        replacement_ready(server)
        assert minted(port, bearer, count=12) == [200] * 12
