"""Issue a Messenger token for an authenticated user: facts -> clean attributes -> signed JWT.

The one domain service both the HTTP endpoint and the server-rendered snippet
call, so every path to a token applies the same whitelist and rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from identity_service.attributes import AttributePolicy
from identity_service.auth import Identity
from identity_service.errors import AttributeProblem, InvalidUserIdError
from identity_service.profile import ProfileOutcome, SqlProfileSource, fetch_profile, gather_facts
from identity_service.settings import DEFAULT_PLATFORM, Platform, Settings, WorkspaceSettings
from identity_service.tokens import MintedToken, mint, normalize_user_id
from identity_service.user_ids import user_id_problem


@dataclass(frozen=True)
class Issued:
    """A minted token plus what observability needs to know about how it was made."""

    minted: MintedToken
    dropped: tuple[AttributeProblem, ...]  # attributes left out as invalid
    profile: ProfileOutcome  # what the profile step found


class TokenIssuer:
    """Mints tokens for any configured workspace; built once per app."""

    def __init__(self, settings: Settings, profiles: Mapping[str, SqlProfileSource]) -> None:
        self.settings = settings
        self.profiles = profiles
        self.policies = {
            key: AttributePolicy(ws.attributes, ws.on_invalid)
            for key, ws in settings.workspaces.items()
        }

    def issue_detailed(
        self,
        identity: Identity,
        workspace: WorkspaceSettings,
        now: int,
        platform: Platform = DEFAULT_PLATFORM,
    ) -> Issued:
        """Gather the user's facts, keep the valid whitelisted ones, and sign them with
        `platform`'s secret."""
        # Before any lookup: a platform without a secret gets no profile query.
        workspace.secret_for(platform)
        # Before any lookup: an id that cannot be signed is never sent to the
        # database. The endpoint's authenticate() has refused these already (401);
        # this holds for every other caller (the server-rendered snippet).
        user_id = normalize_user_id(identity.user_id)
        if workspace.user_id_pattern is not None and (
            problem := user_id_problem(user_id, workspace.user_id_pattern)
        ):
            raise InvalidUserIdError(problem)
        source = self.profiles.get(workspace.key)
        row, profile_warnings, outcome = fetch_profile(source, user_id)
        facts = gather_facts(identity.claims, row, workspace.attributes)
        clean = self.policies[workspace.key].clean(facts)
        minted = mint(
            user_id,
            clean.values,
            workspace,
            now,
            warnings=(*profile_warnings, *clean.warnings),
            platform=platform,
        )
        return Issued(
            minted=minted,
            dropped=clean.dropped,
            profile=outcome,
        )

    def issue(self, identity: Identity, workspace: str | None, now: int) -> MintedToken:
        """Mint a token for `identity` in the named (or default) workspace."""
        return self.issue_detailed(identity, self.settings.workspace(workspace), now).minted
