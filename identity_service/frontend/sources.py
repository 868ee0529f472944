"""Which files hold front-end code, and where the JavaScript is in each of them.

A script file is JavaScript or TypeScript from end to end. A page or a template
(HTML, Vue and Svelte components, Jinja, Django, ERB, EJS, Handlebars, ...)
holds code in `<script>` elements and in event-handler attributes
(`onclick="..."`, Vue's `@click="..."`). Template tags are blanked out first,
byte for byte (an expression tag becomes an identifier of the same length, a
statement or comment tag becomes spaces), so that `<script nonce="<%= n %>">`
is still found, `{{ user.id|tojson }}` reads as a value, both branches of
`{% if %}` are read, and every line and column stays the file's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from identity_service.frontend.syntax import Dialect, Span

SCRIPT_DIALECTS = {
    ".js": Dialect.JAVASCRIPT,
    ".mjs": Dialect.JAVASCRIPT,
    ".cjs": Dialect.JAVASCRIPT,
    ".jsx": Dialect.JAVASCRIPT,
    ".ts": Dialect.TYPESCRIPT,
    ".mts": Dialect.TYPESCRIPT,
    ".cts": Dialect.TYPESCRIPT,
    ".tsx": Dialect.TSX,
}
# Components: their `{{ }}` is the framework's own template syntax, never inside <script>.
COMPONENT_SUFFIXES = frozenset({".vue", ".svelte"})
TEMPLATE_SUFFIXES = frozenset(
    {".html", ".htm", ".xhtml", ".jinja", ".jinja2", ".j2", ".njk", ".twig", ".liquid",
     ".djhtml", ".erb", ".ejs", ".hbs", ".handlebars", ".mustache"}
)  # fmt: skip
MARKUP_SUFFIXES = COMPONENT_SUFFIXES | TEMPLATE_SUFFIXES
SUFFIXES = frozenset(SCRIPT_DIALECTS) | MARKUP_SUFFIXES

# Expression tags print a value; statement and comment tags print nothing.
# Handlebars' block helpers (`{{#if}}`, `{{/if}}`, `{{else}}`, `{{^}}`) and partials
# (`{{> name}}`) are statements, not values.
_HANDLEBARS_BLOCK = rb"\{\{~?\s*(?:[!#/^>]|else\b)"
_EXPRESSION_TAG = re.compile(
    rb"\{\{\{.*?\}\}\}|\{\{(?!~?\s*(?:[!#/^>]|else\b)).*?\}\}|<%[=-].*?%>", re.DOTALL
)
_SILENT_TAG = re.compile(
    rb"\{%.*?%\}|\{#.*?#\}|" + _HANDLEBARS_BLOCK + rb".*?\}\}|<%(?![=-]).*?%>", re.DOTALL
)
_HTML_COMMENT = re.compile(rb"<!--.*?(?:-->|\Z)", re.DOTALL)
_SCRIPT_ELEMENT = re.compile(
    rb"<script\b([^>]*)>(.*?)(?:</script\s*>|\Z)", re.IGNORECASE | re.DOTALL
)
_HANDLER_ATTRIBUTE = re.compile(
    rb"""[\s"'](?:on[a-z]+|@[\w.:-]+|v-on:[\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""",
    re.IGNORECASE,
)
_TYPE_ATTRIBUTE = re.compile(rb"""\btype\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_LANG_ATTRIBUTE = re.compile(rb"""\blang\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
# A `type` other than these marks a data block (JSON, importmap) or a client-side template.
_JS_TYPES = frozenset(
    {b"text/javascript", b"application/javascript", b"module", b"text/babel", b"text/jsx",
     b"application/x-javascript", b"text/ecmascript", b"application/ecmascript"}
)  # fmt: skip
_LANG_DIALECTS = {b"ts": Dialect.TYPESCRIPT, b"typescript": Dialect.TYPESCRIPT, b"tsx": Dialect.TSX}


@dataclass(frozen=True)
class Source:
    """One file made ready to parse: code spans, and the regions that are not code."""

    path: str
    original: bytes
    code: bytes  # `original` with template tags blanked, byte for byte
    spans: tuple[Span, ...]
    template_tags: tuple[tuple[int, int], ...]
    markup_comments: tuple[tuple[int, int], ...]
    markup: bool  # a page or template: text outside the spans is not code


def wanted(path: Path) -> bool:
    """Whether a file found in a walked directory is front-end code worth reading."""
    name = path.name.lower()
    return path.suffix.lower() in SUFFIXES and not name.endswith((".min.js", ".d.ts"))


def _blank(data: bytearray, start: int, end: int, fill: int) -> None:
    for i in range(start, end):
        if data[i] not in (0x0A, 0x0D):
            data[i] = fill


def _script_dialect(name: str) -> tuple[Dialect | None, bool]:
    """(dialect of a whole-file script, whether its template tags are blanked), by name."""
    parts = [suffix.lower() for suffix in Path(name).suffixes]
    if parts and parts[-1] in SCRIPT_DIALECTS:
        return SCRIPT_DIALECTS[parts[-1]], False
    # `app.js.erb`, `settings.js.j2`: JavaScript rendered by a template engine.
    if len(parts) >= 2 and parts[-1] in TEMPLATE_SUFFIXES and parts[-2] in SCRIPT_DIALECTS:
        return SCRIPT_DIALECTS[parts[-2]], True
    return None, False


def read_source(path: str, original: bytes) -> Source:
    """Where the code of one file is (the path's suffixes decide how it is read)."""
    dialect, templated = _script_dialect(path)
    suffix = Path(path).suffix.lower()
    code = bytearray(original)
    tags: list[tuple[int, int]] = []
    if templated or suffix in TEMPLATE_SUFFIXES:
        for match in _EXPRESSION_TAG.finditer(original):
            _blank(code, match.start(), match.end(), ord("_"))
            tags.append(match.span())
        for match in _SILENT_TAG.finditer(bytes(code)):
            _blank(code, match.start(), match.end(), ord(" "))
            tags.append(match.span())
    blanked = bytes(code)
    if dialect is not None:
        return Source(
            path, original, blanked, (Span(0, len(blanked), dialect),), tuple(tags), (), False
        )
    if suffix not in MARKUP_SUFFIXES:
        # Named explicitly with another suffix: read as JavaScript.
        return Source(
            path, original, blanked, (Span(0, len(blanked), Dialect.JAVASCRIPT),), (), (), False
        )
    comments = tuple(match.span() for match in _HTML_COMMENT.finditer(blanked))
    spans = list(_markup_spans(blanked, comments))
    return Source(path, original, blanked, tuple(spans), tuple(sorted(tags)), comments, True)


def _inside(offset: int, regions: tuple[tuple[int, int], ...]) -> bool:
    return any(start <= offset < end for start, end in regions)


def _markup_spans(code: bytes, comments: tuple[tuple[int, int], ...]) -> Iterator[Span]:
    scripts: list[tuple[int, int]] = []
    for match in _SCRIPT_ELEMENT.finditer(code):
        if _inside(match.start(), comments):
            continue  # a commented-out script never runs
        scripts.append((match.start(), match.end()))
        dialect = _element_dialect(match.group(1))
        if dialect is not None:
            yield Span(match.start(2), match.end(2), dialect)
    for match in _HANDLER_ATTRIBUTE.finditer(code):
        if _inside(match.start(), comments) or _inside(match.start(), tuple(scripts)):
            continue
        group = 1 if match.group(1) is not None else 2
        yield Span(match.start(group), match.end(group), Dialect.JAVASCRIPT)


def _element_dialect(attributes: bytes) -> Dialect | None:
    kind = _TYPE_ATTRIBUTE.search(attributes)
    if kind is not None and kind.group(1).lower() not in _JS_TYPES:
        return None  # JSON, importmap, text/x-template, ...
    lang = _LANG_ATTRIBUTE.search(attributes)
    if lang is not None:
        return _LANG_DIALECTS.get(lang.group(1).lower(), Dialect.JAVASCRIPT)
    return Dialect.JAVASCRIPT
