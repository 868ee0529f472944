"""Inline suppressions: `lint-frontend: ignore[rule-id] reason`, in a comment.

A comment alone on its line covers the next line (and its own); a comment after
code covers its own line. Without `[...]` it covers every rule. The reason is
required: a suppression without one, or naming an unknown rule, suppresses
nothing and is itself a finding, so that every accepted finding says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from identity_service.frontend.findings import INVALID_SUPPRESSION, RULE_IDS, Finding

_DIRECTIVE = re.compile(
    r"lint-frontend:\s*ignore\b(?:\[(?P<rules>[^\]]*)\])?(?P<reason>.*)", re.DOTALL
)
# Comment closers and separators around a reason: `*/`, `-->`, `#}`, `%>`, `}}`, `--`, `:`.
_CLOSER = re.compile(r"\s*(?:\*/|-->|--\}\}|#\}|%>|\}\})\s*$")
_LEAD = re.compile(r"^[\s:=\-\u2013\u2014]+")


@dataclass(frozen=True)
class Suppression:
    """A valid suppression: the lines and rules it covers, and why."""

    first_line: int
    last_line: int
    rules: frozenset[str] | None  # None: every rule
    reason: str

    def covers(self, finding: Finding) -> bool:
        return self.first_line <= finding.line <= self.last_line and (
            self.rules is None or finding.rule in self.rules
        )


@dataclass(frozen=True)
class Comment:
    """A comment of the file: its text and where it is."""

    text: str
    line: int
    column: int
    end_line: int
    alone: bool  # nothing but whitespace around it on its lines


def read_suppression(comment: Comment, path: str) -> Suppression | Finding | None:
    """The suppression a comment makes, a finding if it is invalid, or None for no directive."""
    match = _DIRECTIVE.search(comment.text)
    if match is None:
        return None
    reason = _LEAD.sub("", _CLOSER.sub("", match.group("reason"))).strip()
    named = match.group("rules")
    rules = None if named is None else frozenset(r.strip() for r in named.split(",") if r.strip())
    problem = None
    if rules is not None and (not rules or not rules <= RULE_IDS):
        unknown = ", ".join(sorted(rules - RULE_IDS)) or "none"
        problem = (
            f"suppression names unknown rule(s): {unknown} (known: {', '.join(sorted(RULE_IDS))})"
        )
    elif not any(char.isalnum() for char in reason):
        problem = "suppression without a reason"
    if problem is not None:
        return Finding(
            path, comment.line, comment.column, "", problem, rule=INVALID_SUPPRESSION.id,
            end_line=comment.end_line,
        )  # fmt: skip
    last = comment.end_line + 1 if comment.alone else comment.end_line
    return Suppression(comment.line, last, rules, " ".join(reason.split()))
