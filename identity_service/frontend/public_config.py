"""What the browser may know about a workspace: app id, region, token URL, protected key names.

Everything here is public: `config.json` serves it to anyone and the embed
writes it into pages. Never a secret, a user id or an attribute value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from identity_service.frontend.escaping import check_script_url
from identity_service.intercom import ALWAYS_PROTECTED, WIDGET_URL
from identity_service.settings import WorkspaceSettings


@dataclass(frozen=True)
class MessengerConfig:
    """What the browser needs to know about one workspace; public, never secret."""

    workspace: str
    app_id: str
    api_base: str
    token_url: str
    protected_keys: tuple[str, ...]
    widget_url: str = WIDGET_URL

    @classmethod
    def for_workspace(
        cls, workspace: WorkspaceSettings, token_url: str, widget_url: str = WIDGET_URL
    ) -> MessengerConfig:
        """The public view of `workspace`, with its token endpoint at `token_url`."""
        return cls(
            workspace=workspace.key,
            app_id=workspace.app_id,
            api_base=workspace.api_base,
            token_url=token_url,
            protected_keys=tuple(dict.fromkeys((*ALWAYS_PROTECTED, *workspace.protected_keys))),
            widget_url=check_script_url(widget_url),
        )

    def as_json(self) -> dict[str, Any]:
        """The document served as config.json."""
        return {
            "workspace": self.workspace,
            "app_id": self.app_id,
            "api_base": self.api_base,
            "token_url": self.token_url,
            "protected_keys": list(self.protected_keys),
            "widget_url": self.widget_url,
        }
