"""`lint-frontend` reports for people (text) and for CI (JSON, SARIF 2.1.0).

SARIF is what GitHub code scanning and most CI security dashboards read.
Suppressed findings are kept in SARIF and JSON with their reason (SARIF's
`suppressions`, kind `inSource`), so a dashboard shows them as accepted rather
than forgetting them; text shows only open findings.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from identity_service.frontend.findings import (
    INVALID_SUPPRESSION,
    PROTECTED_KEY,
    RULES,
    USER_HASH,
    Finding,
    Notice,
    Report,
)

TOOL_NAME = "identity-service lint-frontend"
FORMATS = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
JSON_FORMAT_VERSION = 1


def tool_version() -> str:
    try:
        return metadata.version("identity_service")
    except metadata.PackageNotFoundError:
        return "0"


def text_lines(report: Report) -> list[str]:
    """One `path:line:column: message` line per open finding."""
    return [str(finding) for finding in report.findings]


def summary(report: Report) -> str:
    """What failed, counted by rule: "3 protected key(s) set in clear, 1 user_hash"."""
    counts = {rule.id: 0 for rule in RULES}
    for finding in report.findings:
        counts[finding.rule] += 1
    labels = {
        PROTECTED_KEY.id: "protected key(s) set in clear",
        USER_HASH.id: "user_hash (deprecated identity verification)",
        INVALID_SUPPRESSION.id: "invalid suppression(s)",
    }
    return ", ".join(f"{counts[rule]} {label}" for rule, label in labels.items() if counts[rule])


def _finding(finding: Finding) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rule": finding.rule,
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "end_line": finding.end_line,
        "end_column": finding.end_column,
        "key": finding.key,
        "context": finding.context,
        "message": finding.message,
    }
    if finding.suppression is not None:
        data["reason"] = finding.suppression
    return data


def _notice(notice: Notice) -> dict[str, Any]:
    return {
        "path": notice.path,
        "line": notice.line,
        "column": notice.column,
        "message": notice.message,
    }


def as_json(report: Report) -> str:
    """The report as one JSON document (format version 1)."""
    document = {
        "format_version": JSON_FORMAT_VERSION,
        "tool": {"name": TOOL_NAME, "version": tool_version()},
        "protected_keys": list(report.protected),
        "rules": [
            {"id": r.id, "title": r.title, "description": r.description, "level": r.level}
            for r in RULES
        ],
        "findings": [_finding(f) for f in report.findings],
        "suppressed": [_finding(f) for f in report.suppressed],
        "notices": [_notice(n) for n in report.notices],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def _uri(path: str, root: Path) -> tuple[str, bool]:
    """(URI, relative to the source root?) of a reported path."""
    resolved = Path(path).resolve()
    try:
        return quote(resolved.relative_to(root).as_posix()), True
    except ValueError:
        return resolved.as_uri(), False


def _location(
    path: str, line: int, column: int, end: tuple[int, int], root: Path
) -> dict[str, Any]:
    uri, relative = _uri(path, root)
    artifact: dict[str, Any] = {"uri": uri}
    if relative:
        artifact["uriBaseId"] = "%SRCROOT%"
    region: dict[str, Any] = {"startLine": line, "startColumn": column}
    if end[0] >= line and end[1] >= 1:
        region.update(endLine=end[0], endColumn=end[1])
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


def _result(finding: Finding, root: Path) -> dict[str, Any]:
    index = next(i for i, rule in enumerate(RULES) if rule.id == finding.rule)
    # Stable across edits elsewhere in the file: which rule, file, key and construct.
    identity = "\0".join((finding.rule, _uri(finding.path, root)[0], finding.key, finding.context))
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": RULES[index].level,
        "message": {"text": finding.message},
        "locations": [
            _location(
                finding.path,
                finding.line,
                finding.column,
                (finding.end_line, finding.end_column),
                root,
            )
        ],
        "partialFingerprints": {
            "lintFrontendFinding/v1": hashlib.sha256(identity.encode()).hexdigest()
        },
    }
    if finding.suppression is not None:
        result["suppressions"] = [{"kind": "inSource", "justification": finding.suppression}]
    return result


def as_sarif(report: Report, root: Path | None = None) -> str:
    """The report as a SARIF 2.1.0 log; paths relative to `root` (default: the working dir)."""
    base = (root or Path.cwd()).resolve()
    rules = [
        {
            "id": rule.id,
            "name": "".join(part.capitalize() for part in rule.id.split("-")),
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.description},
            "help": {"text": rule.description},
            "defaultConfiguration": {"level": rule.level},
            "properties": {"tags": ["security", "intercom"]},
        }
        for rule in RULES
    ]
    run = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": tool_version(),
                "semanticVersion": tool_version(),
                "rules": rules,
            }
        },
        "originalUriBaseIds": {"%SRCROOT%": {"uri": base.as_uri() + "/"}},
        "columnKind": "unicodeCodePoints",
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {
                        "level": "warning",
                        "message": {"text": notice.message},
                        "locations": [
                            _location(notice.path, notice.line, notice.column, (0, 0), base)
                        ],
                    }
                    for notice in report.notices
                ],
            }
        ],
        "results": [_result(f, base) for f in (*report.findings, *report.suppressed)],
        "properties": {"protectedKeys": list(report.protected)},
    }
    log = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False)
