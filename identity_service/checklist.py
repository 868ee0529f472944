"""What an Intercom admin must switch on so that a workspace's signed attributes are protected.

Only Intercom can stop the browser from changing an attribute ("Prevent
updates via the Messenger") and refuse unsigned updates ("Enforce messenger
security"). The first is visible through Intercom's Data Attributes API, so
`identity-service intercom check` proves steps 1 and 2 and `intercom sync`
does them; the REST API does not expose the second, so it stays a manual step.
"""

from __future__ import annotations

from identity_service.intercom import (
    MESSENGER_SECURITY_SETTINGS,
    PEOPLE_DATA_SETTINGS,
    TYPE_LABELS,
)
from identity_service.settings import MOBILE_PLATFORMS, WorkspaceSettings


def admin_checklist(workspace: WorkspaceSettings) -> str:
    """What an Intercom admin must switch on so the signed attributes are really protected."""
    custom = workspace.custom_attributes
    standard = [a.name for a in workspace.attributes if a.is_standard]
    lines = [
        f"Intercom admin checklist for workspace {workspace.key!r} "
        f"(app_id {workspace.app_id}, {workspace.api_base}):",
    ]
    if custom:
        width = max(len(a.name) for a in custom)
        lines.append(
            f"  [ ] 1. {PEOPLE_DATA_SETTINGS} > Create attribute, for each custom data\n"
            "         attribute (exact names: case sensitive, cannot be renamed later):"
        )
        lines += [f"           {a.name:<{width}}  {TYPE_LABELS[a.type]}" for a in custom]
        lines.append(
            '  [ ] 2. For each of them turn on "Prevent updates via the Messenger"; without it '
            "page code can still overwrite the signed value."
        )
        lines.append(_proof(workspace))
    else:
        lines.append("  [-] 1-2. No custom data attributes are signed: nothing to create or lock.")
    lines.append(
        f"  [ ] 3. {MESSENGER_SECURITY_SETTINGS}: put the secret key enabled for each "
        "platform where identity_service reads it (it signs that platform's tokens with it):"
    )
    width = max(len(p) for p in workspace.secrets)
    lines += [
        f"           {platform + ':':<{width + 1}}  {workspace.describe_secret(platform)}"
        for platform in workspace.secrets
    ]
    mobile = [p for p in workspace.secrets if p in MOBILE_PLATFORMS]
    rollout = (
        f" For {' and '.join(mobile)}: only once app versions that send the JWT are out; "
        "enforcing breaks older app versions (docs/mobile.md, safe rollout)."
        if mobile
        else ""
    )
    lines.append(f'  [ ] 4. Then turn on "Enforce messenger security".{rollout}')
    if standard:
        lines.append(
            f"  Standard attributes signed in the token (no CDA needed; Intercom cannot lock "
            f"them, messenger.js strips them from page code): {', '.join(standard)}"
        )
    return "\n".join(lines)


def _proof(workspace: WorkspaceSettings) -> str:
    """How steps 1-2 are checked and done from here rather than by clicking."""
    command = f"identity-service intercom check --workspace {workspace.key}"
    if workspace.intercom_api is None:
        return (
            f"         Prove 1-2 with `{command}` (and do them with `intercom sync --apply`)\n"
            f"         once [workspaces.{workspace.key}.intercom_api] has a REST access token."
        )
    return (
        f"         Prove 1-2: `{command}`; do them: `identity-service intercom sync "
        f"--workspace {workspace.key} --apply`."
    )
