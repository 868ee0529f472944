"""What `lint-frontend` reports: its rules (stable ids), findings, and notices."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """One check. `id` never changes: CI baselines and suppression comments name it."""

    id: str
    title: str
    description: str
    level: str  # SARIF's: error | warning | note


PROTECTED_KEY = Rule(
    "protected-key-in-clear",
    "A protected Intercom key is set in clear by page code",
    "user_id, email and every signed attribute must reach Intercom only inside the Messenger "
    "JWT. Set in clear by page code, a value is at best ignored (Intercom keeps the signed "
    "one) and at worst trusted (a custom attribute without 'Prevent updates via the "
    "Messenger'). Remove it from the page: the token carries it.",
    "error",
)
USER_HASH = Rule(
    "user-hash",
    "user_hash: deprecated identity verification",
    "Intercom deprecated HMAC identity verification (user_hash) in May 2025 in favour of "
    "Messenger security with JWTs. A user_hash has no expiry and cannot secure attribute "
    "updates. Remove it and send the Messenger JWT (intercom_user_jwt) instead.",
    "error",
)
INVALID_SUPPRESSION = Rule(
    "invalid-suppression",
    "A lint-frontend suppression without a reason, or naming an unknown rule",
    "`lint-frontend: ignore` must say why (`lint-frontend: ignore[rule-id] reason`), so that "
    "a reviewer can judge it. A suppression without a reason, or naming no known rule, "
    "suppresses nothing.",
    "error",
)
RULES = (PROTECTED_KEY, USER_HASH, INVALID_SUPPRESSION)
RULE_IDS = frozenset(rule.id for rule in RULES)


@dataclass(frozen=True)
class Finding:
    """A problem in front-end code: where, which key, in what construct, under which rule."""

    path: str
    line: int
    column: int
    key: str
    context: str
    rule: str = PROTECTED_KEY.id
    end_line: int = 0
    end_column: int = 0
    suppression: str | None = field(default=None, compare=False)  # the reason, if suppressed

    @property
    def message(self) -> str:
        """What is wrong and what to do, without the location."""
        if self.rule == USER_HASH.id:
            return (
                f"user_hash (deprecated identity verification) in {self.context}; "
                "remove it and send the signed Messenger JWT instead"
            )
        if self.rule == INVALID_SUPPRESSION.id:
            return (
                f"{self.context}; write `lint-frontend: ignore[rule-id] why` "
                "(it suppresses nothing)"
            )
        return (
            f"protected key {self.key!r} set in clear in {self.context}; "
            "it must come only from the signed Messenger token"
        )

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class Notice:
    """Something the linter could not read (code it could not parse): not a failure."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: warning: {self.message}"


@dataclass
class Report:
    """All that one run found: open findings, suppressed ones (with reasons), notices."""

    protected: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def extend(self, other: Report) -> None:
        self.findings.extend(other.findings)
        self.suppressed.extend(other.suppressed)
        self.notices.extend(other.notices)
