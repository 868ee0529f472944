"""Audit events: one line per mint and per refused authentication, ids and names only."""

from __future__ import annotations

import logging
from typing import Any

from identity_service.observability.logs import emit

# The logger name is part of the operations contract (docs/operations.md).
audit_log = logging.getLogger("identity_service.audit")


def audit(event: str, **fields: Any) -> None:
    """Write one audit event; callers pass names and ids only, never values or credentials."""
    emit(audit_log, event, {"event": event, **fields})
