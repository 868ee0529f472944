"""Compare a workspace's whitelist with its contact data attributes in Intercom: findings.

`inspect` is plain data in, findings out: it grades the attribute list the
client fetched (`check_workspace` does both). Each finding has a stable id, a
severity (high ones fail `intercom check`, like `check-config --security`), the
configuration key path, the attribute, what is wrong and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from identity_service.errors import IdentityServiceError
from identity_service.intercom import (
    CDA_SOFT_LIMIT,
    DATA_TYPES,
    MESSENGER_SECURITY_SETTINGS,
    PEOPLE_DATA_SETTINGS,
)
from identity_service.intercom_api.client import IntercomClient
from identity_service.intercom_api.models import DataAttribute
from identity_service.security_report import SEVERITIES, Finding, SecurityReport, Severity
from identity_service.settings import (
    IntercomApiSettings,
    Settings,
    WorkspaceSettings,
)

REPORT_FORMAT = 1
PREVENT = '"Prevent updates via the Messenger"'
SYNC = "identity-service intercom sync --apply"
LISTED_NAMES = 20  # unsigned writable CDAs named in the information finding


@dataclass(frozen=True)
class IntercomFinding:
    """One difference between the whitelist and Intercom, with its fix."""

    id: str
    severity: Severity
    path: str
    attribute: str | None
    reason: str
    fix: str

    def as_security_finding(self) -> Finding:
        """The same finding in `check-config --security`'s report."""
        return Finding(self.id, self.severity, self.path, f"{self.reason}. Fix: {self.fix}")


@dataclass(frozen=True)
class WorkspaceCheck:
    """The findings for one workspace, and what they were measured on."""

    workspace: str
    rest_base: str
    findings: tuple[IntercomFinding, ...]
    active_cdas: int
    unprotected: tuple[str, ...]  # signed CDAs the Messenger can still write (or create)

    @property
    def passed(self) -> bool:
        return not any(f.severity == "high" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "rest_base": self.rest_base,
            "active_cdas": self.active_cdas,
            "cda_soft_limit": CDA_SOFT_LIMIT,
            "unprotected_attributes": list(self.unprotected),
            "summary": {**self.counts(), "passed": self.passed},
            "findings": [asdict(f) for f in self.findings],
        }

    def to_text(self) -> str:
        lines = [f"Intercom check for workspace {self.workspace} ({self.rest_base})"]
        for finding in self.findings:
            subject = f"  {finding.attribute}" if finding.attribute else ""
            lines.append(f"{finding.severity.upper():<7} {finding.id}  {finding.path}{subject}")
            lines.append(f"        {finding.reason}")
            lines.append(f"        fix: {finding.fix}")
        counts = self.counts()
        tally = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES)
        verdict = "PASS" if self.passed else "FAIL: fix every high finding"
        lines.append(f"summary: {tally} -> {verdict}")
        return "\n".join(lines)


def report_json(checks: Sequence[WorkspaceCheck]) -> str:
    document = {
        "format": REPORT_FORMAT,
        "passed": all(c.passed for c in checks),
        "workspaces": [c.to_dict() for c in checks],
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def api_settings(workspace: WorkspaceSettings) -> IntercomApiSettings:
    """The workspace's [intercom_api] settings; callers choose workspaces that have them."""
    if workspace.intercom_api is None:
        raise ValueError(f"workspace {workspace.key!r} has no [intercom_api] table")
    return workspace.intercom_api


def check_workspace(workspace: WorkspaceSettings) -> tuple[WorkspaceCheck, list[DataAttribute]]:
    """Read the workspace's contact attributes from Intercom (one GET) and grade them."""
    with IntercomClient(api_settings(workspace)) as client:
        found = client.list_contact_attributes()
    return inspect(workspace, found), found


def online_findings(settings: Settings) -> list[Finding]:
    """For `check-config --security --online`: every workspace's Intercom findings.

    A workspace Intercom could not be asked about is a high finding: a gate
    must not pass on what it could not prove.
    """
    findings: list[Finding] = []
    for workspace in settings.workspaces.values():
        path = f"workspaces.{workspace.key}.intercom_api"
        if workspace.intercom_api is None:
            findings.append(
                Finding(
                    "intercom-not-checked",
                    "info",
                    path,
                    "no Intercom access token is configured, so the Intercom side of this "
                    f"workspace is not checked; add [{path}] (docs/intercom-admin.md)",
                )
            )
            continue
        try:
            check, _ = check_workspace(workspace)
        except IdentityServiceError as exc:
            findings.append(Finding("intercom-check-failed", "high", path, exc.detail))
            continue
        findings += [f.as_security_finding() for f in check.findings]
    return findings


def with_online_findings(report: SecurityReport, settings: Settings) -> SecurityReport:
    """`report` with Intercom's answers in place of its offline reminders.

    The offline report can only remind that each CDA must be protected
    (cda-prevent-updates); for a workspace that was checked, the check's own
    findings say whether it is.
    """
    online = online_findings(settings)
    checked = {
        f"workspaces.{w.key}." for w in settings.workspaces.values() if w.intercom_api is not None
    }
    kept = [
        f
        for f in report.findings
        if not (f.id == "cda-prevent-updates" and any(f.path.startswith(c) for c in checked))
    ]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted([*kept, *online], key=lambda f: (rank[f.severity], f.id, f.path))
    return SecurityReport(report.source, tuple(ordered))


def inspect(workspace: WorkspaceSettings, found: Sequence[DataAttribute]) -> WorkspaceCheck:
    """Grade Intercom's contact attributes `found` against `workspace`'s whitelist."""
    rest_base = api_settings(workspace).rest_base
    by_name = {a.name: a for a in found}
    findings = list(_signed(workspace, by_name))
    active = [a for a in found if a.custom and not a.archived]
    findings += _capacity(workspace, active, by_name)
    findings += _unsigned_writable(workspace, active)
    unprotected = tuple(
        spec.name
        for spec in workspace.attributes
        if not spec.is_standard and _unprotected(by_name.get(spec.name))
    )
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (rank[f.severity], f.id, f.attribute or ""))
    return WorkspaceCheck(workspace.key, rest_base, tuple(findings), len(active), unprotected)


def _unprotected(attribute: DataAttribute | None) -> bool:
    # Missing: the Messenger may create it; present: unless messenger_writable is false.
    return attribute is None or (attribute.custom and attribute.messenger_writable)


def _signed(
    workspace: WorkspaceSettings, by_name: dict[str, DataAttribute]
) -> Iterator[IntercomFinding]:
    app = f"Intercom app {workspace.app_id}"
    for index, spec in enumerate(workspace.attributes):
        path = f"workspaces.{workspace.key}.attributes[{index}]"
        want = DATA_TYPES[spec.type]
        found = by_name.get(spec.name)
        if found is None and spec.is_standard:
            continue  # standard attributes need no CDA; reported below when listed
        if found is None:
            yield IntercomFinding(
                "intercom-cda-missing", "high", path, spec.name,
                f"{spec.name!r} is signed but {app} has no contact attribute by that name, so "
                "nothing stops page code from creating it through the Messenger unsigned",
                f"`{SYNC}` creates it ({want}, messenger_writable false), or create it in "
                f"{PEOPLE_DATA_SETTINGS} with {PREVENT} on",
            )  # fmt: skip
            continue
        if not found.custom or spec.is_standard:
            yield IntercomFinding(
                "intercom-standard-attribute", "info", path, spec.name,
                f"{spec.name!r} is a standard attribute: Intercom's {PREVENT} exists for "
                "custom attributes only, so Intercom cannot lock it",
                "nothing to set per attribute: the signed token's value is what Intercom "
                f"applies once {MESSENGER_SECURITY_SETTINGS} enforces security, and "
                "messenger.js strips it from page code; keep it signed",
            )  # fmt: skip
        if found.data_type != want:
            yield IntercomFinding(
                "intercom-type-mismatch", "high" if found.custom else "medium", path, spec.name,
                f"{spec.name!r} is {found.data_type} in Intercom but {spec.type} ({want}) in the "
                "whitelist: Intercom refuses or misreads the signed values",
                "Intercom cannot change a type: change the whitelist's type to match, or "
                f"archive it in {PEOPLE_DATA_SETTINGS} and sign a new name (sync never retypes)",
            )  # fmt: skip
        if not found.custom:
            continue
        if found.archived:
            yield IntercomFinding(
                "intercom-cda-archived", "medium", path, spec.name,
                f"{spec.name!r} is archived in {app}: it is hidden from filters and lists, "
                "and Intercom cannot reuse its name for a new attribute",
                f"unarchive it in {PEOPLE_DATA_SETTINGS} (archived ones are at the bottom), or "
                "stop signing it (sync never unarchives what an admin archived)",
            )  # fmt: skip
        if found.messenger_writable:
            yield IntercomFinding(
                "intercom-cda-messenger-writable", "high", path, spec.name,
                f"{spec.name!r} is signed, but messenger_writable is true in {app}: page code "
                "can overwrite the signed value from the browser without a token",
                f"`{SYNC}` sets messenger_writable false, or turn {PREVENT} on for it in "
                f"{PEOPLE_DATA_SETTINGS}",
            )  # fmt: skip


def _capacity(
    workspace: WorkspaceSettings,
    active: Sequence[DataAttribute],
    by_name: dict[str, DataAttribute],
) -> Iterator[IntercomFinding]:
    missing = sum(1 for s in workspace.custom_attributes if s.name not in by_name)
    after = len(active) + missing
    path = f"workspaces.{workspace.key}.intercom_api"
    over = after > CDA_SOFT_LIMIT
    yield IntercomFinding(
        "intercom-cda-count", "medium" if over else "info", path, None,
        f"{len(active)} active custom attributes in the workspace ({after} once the "
        f"{missing} missing ones are created); Intercom's soft limit is {CDA_SOFT_LIMIT}",
        f"archive unused attributes in {PEOPLE_DATA_SETTINGS} or ask Intercom for a higher "
        "limit" if over else "nothing to do",
    )  # fmt: skip


def _unsigned_writable(
    workspace: WorkspaceSettings, active: Sequence[DataAttribute]
) -> Iterator[IntercomFinding]:
    signed = {a.name for a in workspace.attributes}
    open_ = sorted(a.name for a in active if a.messenger_writable and a.name not in signed)
    if not open_:
        return
    shown = ", ".join(open_[:LISTED_NAMES]) + (" ..." if len(open_) > LISTED_NAMES else "")
    yield IntercomFinding(
        "intercom-unsigned-writable", "info", f"workspaces.{workspace.key}.attributes", None,
        f"{len(open_)} custom attribute(s) the Messenger may write are not signed by this "
        f"service: {shown}. Page code can set them; nothing targeting or trusting them "
        "should rely on their values",
        f"sign the ones that matter (add them to the whitelist and run `{SYNC}`), or turn "
        f"{PREVENT} on for the ones nothing needs to write from the browser",
    )  # fmt: skip
