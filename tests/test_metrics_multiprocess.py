"""/metrics under gunicorn counts every worker, whichever worker answers the scrape."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

from tests.support.served import serving
from tests.support.service import make_service

MINTS = 24


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> str:
    # A new connection per request, so the kernel hands them to both workers.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body
    finally:
        connection.close()


def test_metrics_are_the_sum_of_all_workers(tmp_path: Path) -> None:
    svc = make_service(tmp_path, extra="\n[service.rate_limit]\nenabled = false\n")
    with serving(tmp_path / "service.toml", tmp_path, workers=2, threads=2) as server:
        port = server.port
        server.wait_for_lines(r"Booting worker", count=2)
        for _ in range(MINTS):
            token = svc.idp_token()
            request(port, "POST", "/v1/messenger/token", {"Authorization": f"Bearer {token}"})
        pids = set()
        for _ in range(8):
            text = request(port, "GET", "/metrics")
            minted = re.search(
                r'^identity_tokens_minted_total\{platform="web",workspace="main"\} (\S+)$',
                text,
                re.M,
            )
            assert minted is not None, text
            assert float(minted.group(1)) == MINTS
            # As docs/operations.md says: multiprocess mode exports no _created samples.
            assert "_created" not in text
        pids.update(re.findall(r"Booting worker with pid: (\d+)", server.log()))
        assert len(pids) == 2


def test_outside_serve_each_counter_exports_a_created_timestamp(tmp_path: Path) -> None:
    from identity_service import create_app

    svc = make_service(tmp_path)
    client = create_app(svc.settings).test_client()
    bearer = {"Authorization": f"Bearer {svc.idp_token()}"}
    assert client.post("/v1/messenger/token", headers=bearer).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r"^identity_tokens_minted_created\b", text, re.M), text
