"""Find front-end code that sets protected Intercom keys in clear; for product teams' CI.

A signed attribute, `user_id` or `email` written by page code into the
Messenger's settings is at best ignored (Intercom keeps the signed value) and
at worst trusted (a CDA without "Prevent updates via the Messenger"); a
`user_hash` is deprecated identity verification. messenger.js strips such keys
at run time; this finds them at review time, with file:line:column.

Code is parsed with tree-sitter (JavaScript, TypeScript, JSX, TSX; the
`<script>` elements and event handlers of pages, components and templates,
see `sources`), and `messenger_calls` finds what reaches the Messenger:
`Intercom('boot' | 'update', ...)`, `window.intercomSettings`, the npm SDK
`@intercom/messenger-js-sdk` and react-use-intercom, through aliases, spreads,
`Object.assign`, ternaries and local functions. Each finding has a stable rule
id (`findings`); `lint-frontend: ignore[rule] reason` accepts one
(`suppressions`). No framework, no Flask: plain functions.

The one way in for callers: `lint_paths(paths, protected)` (or `scan_paths`),
given the set of protected keys; `protected_keys_from_config` gives that set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from identity_service.config import read_settings
from identity_service.frontend.findings import (
    PROTECTED_KEY,
    USER_HASH,
    Finding,
    Notice,
    Report,
)
from identity_service.frontend.messenger_calls import COMMENTS, Program
from identity_service.frontend.sources import SUFFIXES, Source, read_source, wanted
from identity_service.frontend.suppressions import Comment, Suppression, read_suppression
from identity_service.frontend.syntax import Positions, first_error, parse
from identity_service.intercom import ALWAYS_PROTECTED

__all__ = [
    "ALWAYS_PROTECTED",
    "SUFFIXES",
    "Finding",
    "Report",
    "iter_files",
    "lint_paths",
    "lint_source",
    "protected_keys_from_config",
    "scan_paths",
    "scan_text",
]

SKIP_DIRS = frozenset({"node_modules", ".git", ".hg", ".svn", "__pycache__", ".venv"})
# In markup and template tags (not parsed as code): user_hash, user-hash, userHash.
_MARKUP_USER_HASH = re.compile(rb"(?i)(?<![a-z0-9])user[_-]?hash(?![a-z0-9])")
_TEMPLATE_COMMENT = (b"{#", b"<%#", b"{{!")


def lint_source(original: bytes, path: str, protected: Iterable[str]) -> Report:
    """Everything one file's code shows: findings (open and suppressed) and notices."""
    keys = frozenset(protected)
    source = read_source(path, original)
    positions = Positions(source.original)
    trees = [parse(source.code, span, positions) for span in source.spans]
    program = Program([tree.root_node for tree in trees])
    found: dict[tuple[int, str], Finding] = {}

    def add(start: int, end: int, key: str, context: str, rule: str) -> None:
        if (start, rule) in found:
            return
        line, column = positions.line_column(start)
        end_line, end_column = positions.line_column(end)
        found[(start, rule)] = Finding(
            path, line, column, key, context, rule=rule, end_line=end_line, end_column=end_column
        )

    for use in program.key_uses():
        if use.key == "user_hash":
            add(use.node.start_byte, use.node.end_byte, use.key, use.context, USER_HASH.id)
        elif use.key in keys:
            add(use.node.start_byte, use.node.end_byte, use.key, use.context, PROTECTED_KEY.id)
    for node in program.user_hash_nodes():
        add(node.start_byte, node.end_byte, "user_hash", "code", USER_HASH.id)
    for start, end, context in _markup_user_hash(source):
        add(start, end, "user_hash", context, USER_HASH.id)

    report = Report(tuple(sorted(keys)))
    suppressions: list[Suppression] = []
    for comment in _comments(source, program, positions):
        made = read_suppression(comment, path)
        if isinstance(made, Suppression):
            suppressions.append(made)
        elif made is not None:
            report.findings.append(made)
    for finding in found.values():
        cover = next((s for s in suppressions if s.covers(finding)), None)
        if cover is None:
            report.findings.append(finding)
        else:
            report.suppressed.append(_suppressed(finding, cover.reason))
    deep = "an expression too deeply nested to follow: keys in it may be missed"
    for node in program.too_deep:
        line, column = positions.line_column(node.start_byte)
        report.notices.append(Notice(path, line, column, deep))
    for tree in trees:
        error = first_error(tree.root_node)
        if error is not None:
            line, column = positions.line_column(error.start_byte)
            report.notices.append(
                Notice(
                    path,
                    line,
                    column,
                    "code that does not parse here: keys set near it may be missed",
                )
            )
    report.findings.sort(key=_order)
    report.suppressed.sort(key=_order)
    return report


def _order(finding: Finding) -> tuple[int, int, str, str]:
    return finding.line, finding.column, finding.key, finding.rule


def _suppressed(finding: Finding, reason: str) -> Finding:
    return Finding(
        finding.path, finding.line, finding.column, finding.key, finding.context,
        rule=finding.rule, end_line=finding.end_line, end_column=finding.end_column,
        suppression=reason,
    )  # fmt: skip


def _markup_user_hash(source: Source) -> Iterator[tuple[int, int, str]]:
    """user_hash where no parser looks: template tags, and markup outside scripts."""
    for match in _MARKUP_USER_HASH.finditer(source.original):
        at = match.start()
        tag = next(((a, b) for a, b in source.template_tags if a <= at < b), None)
        if tag is not None:
            if not source.original.startswith(_TEMPLATE_COMMENT, tag[0]):
                yield at, match.end(), "a template tag"
        elif (
            source.markup
            and not any(span.start <= at < span.end for span in source.spans)
            and not any(a <= at < b for a, b in source.markup_comments)
        ):
            yield at, match.end(), "the page's markup"


def _comments(source: Source, program: Program, positions: Positions) -> Iterator[Comment]:
    """Every comment: JavaScript ones (from the trees), HTML and template comments."""
    regions = [(node.start_byte, node.end_byte) for node in program.nodes if node.type in COMMENTS]
    regions.extend(source.markup_comments)
    regions.extend(
        (a, b) for a, b in source.template_tags if source.original.startswith(_TEMPLATE_COMMENT, a)
    )
    data = source.original
    for start, end in sorted(set(regions)):
        line, column = positions.line_column(start)
        end_line = positions.line_column(end)[0]
        before = data[data.rfind(b"\n", 0, start) + 1 : start]
        after_end = data.find(b"\n", end)
        after = data[end : len(data) if after_end < 0 else after_end]
        text = data[start:end].decode("utf-8", errors="replace")
        alone = not before.strip() and not after.strip()
        yield Comment(text, line, column, end_line, alone)


def scan_text(text: str, path: str, protected: Iterable[str]) -> list[Finding]:
    """The open findings in one file's text; `path` decides how the text is read."""
    return lint_source(text.encode("utf-8"), path, protected).findings


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files to scan under `paths` (directories are walked; node_modules and VCS dirs skipped)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if wanted(candidate):
                        yield candidate
        else:
            yield path  # named explicitly: scanned whatever its suffix


def lint_paths(paths: Iterable[str | os.PathLike[str]], protected: Iterable[str]) -> Report:
    """Lint files and directories; `protected` is added to the always-protected keys.

    Raises OSError for a path that cannot be read.
    """
    keys = tuple(dict.fromkeys((*ALWAYS_PROTECTED, *protected)))
    report = Report(keys)
    for path in iter_files(paths):
        report.extend(lint_source(path.read_bytes(), str(path), keys))
    return report


def scan_paths(paths: Iterable[str | os.PathLike[str]], protected: Iterable[str]) -> list[Finding]:
    """The open findings of `lint_paths`."""
    return lint_paths(paths, protected).findings


def protected_keys_from_config(
    path: str | os.PathLike[str] | None,
    workspace: str | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Protected keys named by the configuration, read without loading any secret.

    The configuration is found and validated as every command does it
    (`read_settings`: `path`, else $IDENTITY_SERVICE_CONFIG, else the bundled
    example), but no secret is read: a product team's CI has the configuration,
    not the Messenger secret. The keys of `workspace`, or of every workspace.
    """
    settings = read_settings(path, environ)
    if workspace is not None and workspace not in settings.workspaces:
        raise ValueError(
            f"{settings.source}: no workspace named {workspace!r} ({sorted(settings.workspaces)})"
        )
    chosen = settings.workspaces.values() if workspace is None else [settings.workspaces[workspace]]
    names = [*ALWAYS_PROTECTED, *(a.name for ws in chosen for a in ws.attributes)]
    return tuple(dict.fromkeys(names))
