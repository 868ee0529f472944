"""Plan, and on request apply, what makes Intercom protect every signed CDA.

Two kinds of change only: create a missing CDA (the whitelist's type and
description, messenger_writable false) and set messenger_writable false on a
signed one. Nothing is ever archived, unarchived, renamed or retyped: Intercom
cannot change a name or a type, and an archive is an admin's decision; the plan
says what must be done by hand instead. A clean workspace plans nothing, so a
second run is a no-op.

Applying stops at the first failure: the outcome of every step is reported as
it is (done, failed, unknown, not attempted), so nothing is called done that
Intercom did not confirm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from identity_service.errors import IntercomApiError, IntercomOutcomeUnknownError
from identity_service.intercom import DATA_TYPES
from identity_service.intercom_api.check import WorkspaceCheck
from identity_service.intercom_api.client import IntercomClient
from identity_service.intercom_api.models import DataAttribute
from identity_service.settings import WorkspaceSettings

ActionKind = Literal["create", "protect"]
Outcome = Literal["planned", "done", "failed", "unknown", "not attempted"]
MANUAL_FINDINGS = frozenset({"intercom-type-mismatch", "intercom-cda-archived"})


@dataclass
class Action:
    """One change the plan makes in Intercom, and what became of it."""

    kind: ActionKind
    name: str
    data_type: str = ""
    description: str = ""
    attribute_id: str | None = None
    outcome: Outcome = "planned"
    error: str = ""

    def describe(self) -> str:
        if self.kind == "create":
            return (
                f"create contact attribute {self.name!r} ({self.data_type}, "
                "messenger_writable false)"
            )
        return f"set messenger_writable false on {self.name!r} (id {self.attribute_id})"


@dataclass
class Plan:
    """Changes for one workspace, and what only an admin can do."""

    workspace: str
    actions: list[Action] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return all(a.outcome in ("done", "planned") for a in self.actions)

    def to_text(self, applied: bool) -> str:
        lines = [f"Intercom sync for workspace {self.workspace}{'' if applied else ' (dry run)'}"]
        if not self.actions:
            lines.append("  nothing to change in Intercom")
        for action in self.actions:
            label = "would" if action.outcome == "planned" else action.outcome
            line = f"  [{label}] {action.describe()}"
            if action.error:
                line += f": {action.error}"
            lines.append(line)
        for step in self.manual:
            lines.append(f"  [by hand] {step}")
        if not applied and self.actions:
            lines.append("  run again with --apply to make these changes")
        return "\n".join(lines)


def plan(
    workspace: WorkspaceSettings, check: WorkspaceCheck, found: Sequence[DataAttribute]
) -> Plan:
    """What `sync --apply` would change, from a fresh check of the same attributes `found`."""
    by_name = {a.name: a for a in found}
    result = Plan(workspace.key)
    for spec in workspace.custom_attributes:
        existing = by_name.get(spec.name)
        if existing is None:
            result.actions.append(
                Action("create", spec.name, DATA_TYPES[spec.type], spec.description)
            )
        elif existing.custom and existing.messenger_writable:
            result.actions.append(Action("protect", spec.name, attribute_id=existing.id))
    result.manual = [f"{f.attribute}: {f.fix}" for f in check.findings if f.id in MANUAL_FINDINGS]
    return result


def apply(client: IntercomClient, changes: Plan) -> Plan:
    """Make the planned changes in order; stop at the first failure, recording each outcome."""
    for index, action in enumerate(changes.actions):
        try:
            if action.kind == "create":
                made = client.create_contact_attribute(
                    action.name, action.data_type, action.description
                )
            else:
                made = client.protect(action.attribute_id or "")
        except IntercomOutcomeUnknownError as exc:
            action.outcome, action.error = "unknown", exc.detail
        except IntercomApiError as exc:
            action.outcome, action.error = "failed", exc.detail
        else:
            if made.name != action.name or made.messenger_writable:
                # Only what Intercom confirms counts as done.
                action.outcome = "failed"
                action.error = (
                    f"Intercom answered with {made.name!r}, messenger_writable "
                    f"{str(made.messenger_writable).lower()}"
                )
            else:
                action.outcome = "done"
        if action.outcome != "done":
            for later in changes.actions[index + 1 :]:
                later.outcome = "not attempted"
            break
    return changes
