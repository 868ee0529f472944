"""The check `serve` runs once at start (in a process of its own): log it, export it.

`python -m identity_service.intercom_api.startup [CONFIG]`, started by `serve`
(cli/intercom.py) when a workspace has an Intercom API token. For each such
workspace it logs one line with the result and sets the gauge
`identity_service_intercom_unprotected_attributes{workspace}`: the signed CDAs
the Messenger can still write or create, or -1 when Intercom could not be
asked (the log line says why). It never affects the service: it exits 0.
"""

from __future__ import annotations

import logging
import sys

from prometheus_client import Gauge

from identity_service.config import load_settings
from identity_service.errors import IdentityServiceError
from identity_service.intercom_api.check import check_workspace
from identity_service.observability import configure_logging, use_multiprocess_metrics

# Named, not __name__: run with -m this module is __main__, outside the service's loggers.
log = logging.getLogger("identity_service.intercom_api.startup")
UNKNOWN = -1


def main(argv: list[str]) -> int:
    configure_logging()
    use_multiprocess_metrics()  # before the gauge exists: its value goes to the shared files
    unprotected = Gauge(
        "identity_service_intercom_unprotected_attributes",
        "Signed CDAs Intercom lets the Messenger write (or create); -1: not known",
        ["workspace"],
        registry=None,  # exposed through the multiprocess files, with the workers' metrics
        multiprocess_mode="mostrecent",  # this process exits; its last value stays
    )
    try:
        settings = load_settings(argv[0] if argv else None)
    except IdentityServiceError as exc:
        log.error("intercom check at start: %s", exc.detail)
        return 0
    for workspace in settings.workspaces.values():
        if workspace.intercom_api is None:
            continue
        try:
            check, _ = check_workspace(workspace)
        except IdentityServiceError as exc:
            unprotected.labels(workspace.key).set(UNKNOWN)
            log.warning(
                "intercom check at start failed (the service runs on): %s",
                exc.detail,
                extra={"fields": {"workspace": workspace.key}},
            )
            continue
        unprotected.labels(workspace.key).set(len(check.unprotected))
        counts = check.counts()
        log.log(
            logging.INFO if check.passed else logging.WARNING,
            "intercom check at start: %s",
            "PASS" if check.passed else "FAIL: run `identity-service intercom check`",
            extra={"fields": {
                "workspace": workspace.key,
                "high": counts["high"],
                "unprotected_attributes": list(check.unprotected),
                "findings": [f.id for f in check.findings if f.severity != "info"],
            }},
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
