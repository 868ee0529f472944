"""Find front-end code that sets protected Intercom keys in clear; for product teams' CI.

A signed attribute, `user_id`, `email` or `user_hash` written by page code into
`window.intercomSettings` or `Intercom('boot' | 'update', {...})` is at best
ignored (Intercom keeps the signed value) and at worst trusted (a CDA without
"Prevent updates via the Messenger"). messenger.js strips such keys at run
time; this finds them at review time, with file:line.

It reads JavaScript-like source with a small tokenizer (strings, template
literals, comments and regular expressions are understood, so a key inside a
string or comment is not a finding) and looks at object literals in:

- `Intercom('boot' | 'update', {...})` (any receiver: `window.Intercom`, ...)
- `intercomSettings = {...}`, `intercomSettings.key = ...`, `intercomSettings['key'] = ...`
- `Object.assign(<...>intercomSettings, {...})`
- an identifier passed to those, when the same file declares it `= {...}`

In .html/.htm/.vue files only `<script>` elements are read. A line containing
`lint-frontend: ignore` is skipped. No framework, no Flask: plain functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from identity_service.config import read_settings

ALWAYS_PROTECTED = ("user_id", "email", "user_hash")
SCRIPT_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx"})
MARKUP_SUFFIXES = frozenset({".html", ".htm", ".vue"})
SUFFIXES = SCRIPT_SUFFIXES | MARKUP_SUFFIXES
SKIP_DIRS = frozenset({"node_modules", ".git", ".hg", ".svn", "__pycache__", ".venv"})
IGNORE_MARK = "lint-frontend: ignore"
GUARDED_METHODS = frozenset({"boot", "update"})

_SCRIPT_ELEMENT = re.compile(r"(<script\b[^>]*>)(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
# A `type` other than these marks a data block or a template, not JavaScript.
_JS_TYPES = r"(?:text/javascript|module|text/babel|application/javascript)\b"
_NON_JS_TYPE = re.compile(rf"""\btype\s*=\s*["']?(?!{_JS_TYPES})[\w/+.-]""", re.IGNORECASE)
_IDENT_START = re.compile(r"[A-Za-z_$\u0080-\uffff]")
_IDENT = re.compile(r"[A-Za-z0-9_$\u0080-\uffff]*")
_NUMBER = re.compile(
    r"(?:0[xXoObB][0-9a-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)n?"
)
_PUNCT = ("...", "?.", "=>", "==", "!=", "<=", ">=", "&&", "||", "??", "+=", "-=")
# After these tokens a "/" starts a regular expression, not a division.
_REGEX_AFTER = frozenset(
    [*"(,=:[!&|?{};+-*%<>~^", "=>", "return", "typeof", "case", "do", "else", "in", "of",
     "new", "delete", "void", "throw", "yield", "await"]
)  # fmt: skip


@dataclass(frozen=True)
class Token:
    """One lexical token: kind is ident, string, template, number, regex or punct."""

    kind: str
    text: str  # for strings: the decoded value
    line: int
    column: int


@dataclass(frozen=True)
class Finding:
    """A protected key set in clear: where, which key, and in what construct."""

    path: str
    line: int
    column: int
    key: str
    context: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}:{self.column}: protected key {self.key!r} set in clear "
            f"in {self.context}; it must come only from the signed Messenger token"
        )


# -- tokenizer ---------------------------------------------------------------------------


class _Lexer:
    def __init__(self, text: str, line: int = 1) -> None:
        self.text = text
        self.pos = 0
        self.line = line
        self.line_start = 0
        self.tokens: list[Token] = []

    def error_safe_tokens(self) -> list[Token]:
        while self.pos < len(self.text):
            self.step()
        return self.tokens

    def newlines(self, start: int, end: int) -> None:
        count = self.text.count("\n", start, end)
        if count:
            self.line += count
            self.line_start = self.text.rfind("\n", start, end) + 1

    def add(self, kind: str, text: str, start: int, line: int, column: int) -> None:
        self.tokens.append(Token(kind, text, line, column))
        self.newlines(start, self.pos)

    def step(self) -> None:
        text, start = self.text, self.pos
        char = text[start]
        line, column = self.line, start - self.line_start + 1
        if char in " \t\r\n\f\v\u00a0\ufeff\u2028\u2029":
            self.pos += 1
            self.newlines(start, self.pos)
        elif text.startswith("//", start) or text.startswith("<!--", start):
            end = text.find("\n", start)
            self.pos = len(text) if end < 0 else end
        elif text.startswith("/*", start):
            end = text.find("*/", start + 2)
            self.pos = len(text) if end < 0 else end + 2
            self.newlines(start, self.pos)
        elif char in "'\"":
            value = self.string(char)
            self.add("string", value, start, line, column)
        elif char == "`":
            self.template()
            self.add("template", "", start, line, column)
        elif char == "/" and self.regex_allowed():
            self.regex()
            self.add("regex", "", start, line, column)
        elif _IDENT_START.match(char):
            match = _IDENT.match(text, start + 1)
            self.pos = match.end() if match else start + 1
            self.add("ident", text[start : self.pos], start, line, column)
        elif char.isdigit() or (char == "." and text[start + 1 : start + 2].isdigit()):
            match = _NUMBER.match(text, start)
            self.pos = match.end() if match and match.end() > start else start + 1
            self.add("number", text[start : self.pos], start, line, column)
        else:
            punct = next((p for p in _PUNCT if text.startswith(p, start)), char)
            self.pos = start + len(punct)
            self.add("punct", punct, start, line, column)

    def regex_allowed(self) -> bool:
        if not self.tokens:
            return True
        last = self.tokens[-1]
        return last.kind in {"punct", "ident"} and last.text in _REGEX_AFTER

    def string(self, quote: str) -> str:
        text, pos = self.text, self.pos + 1
        out: list[str] = []
        while pos < len(text) and text[pos] != quote and text[pos] != "\n":
            if text[pos] == "\\" and pos + 1 < len(text):
                out.append(_unescape(text[pos + 1]))
                pos += 2
            else:
                out.append(text[pos])
                pos += 1
        self.pos = pos + 1
        return "".join(out)

    def template(self) -> None:
        # Skip to the closing backtick, stepping over nested ${ ... } expressions.
        text, pos, depth = self.text, self.pos + 1, 0
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                pos += 2
                continue
            if depth == 0 and char == "`":
                break
            if text.startswith("${", pos):
                depth += 1
                pos += 2
                continue
            if depth and char == "}":
                depth -= 1
            pos += 1
        self.pos = pos + 1

    def regex(self) -> None:
        text, pos, in_class = self.text, self.pos + 1, False
        while pos < len(text) and text[pos] != "\n":
            char = text[pos]
            if char == "\\":
                pos += 2
                continue
            if char == "[":
                in_class = True
            elif char == "]":
                in_class = False
            elif char == "/" and not in_class:
                break
            pos += 1
        pos += 1
        match = _IDENT.match(text, pos)  # flags
        self.pos = match.end() if match else pos


def _unescape(char: str) -> str:
    return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(char, char)


def tokenize(source: str, first_line: int = 1) -> list[Token]:
    """Tokens of JavaScript / TypeScript source (good enough to find object literal keys)."""
    return _Lexer(source, first_line).error_safe_tokens()


# -- the scan ------------------------------------------------------------------------------


def _matching(tokens: Sequence[Token], index: int) -> int:
    """Index of the bracket closing the one at `index` (or the last token)."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack: list[str] = []
    for i in range(index, len(tokens)):
        token = tokens[i]
        if token.kind != "punct":
            continue
        if token.text in pairs:
            stack.append(pairs[token.text])
        elif stack and token.text == stack[-1]:
            stack.pop()
            if not stack:
                return i
    return len(tokens) - 1


def object_keys(tokens: Sequence[Token], open_index: int) -> Iterator[tuple[str, Token]]:
    """(key, token) for each property of the object literal opening at `open_index`.

    Nested `custom_attributes: {...}` is descended into; other nested values are not
    (an object value is not an Intercom attribute).
    """
    end = _matching(tokens, open_index)
    i = open_index + 1
    while i < end:
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 <= end else None
        key: str | None = None
        if token.kind in {"ident", "string", "number"} and nxt is not None:
            if nxt.text == ":" or (token.kind == "ident" and nxt.text in {",", "}"}):
                key = token.text  # `key: value`, `"key": value`, or shorthand `{ key }`
        elif (
            token.text == "["
            and i + 3 <= end
            and tokens[i + 1].kind == "string"
            and (tokens[i + 2].text, tokens[i + 3].text) == ("]", ":")
        ):
            key, token = tokens[i + 1].text, tokens[i + 1]  # computed `["key"]: value`
        if key is not None:
            yield key, token
            value_at = i + 2 if nxt is not None and nxt.text == ":" else i + 1
            if key == "custom_attributes" and value_at < end and tokens[value_at].text == "{":
                yield from object_keys(tokens, value_at)
        # Skip to the next property at this depth.
        while i < end and tokens[i].text != ",":
            if tokens[i].kind == "punct" and tokens[i].text in "([{" and i != open_index:
                i = _matching(tokens, i)
            i += 1
        i += 1


def _declared_objects(tokens: Sequence[Token]) -> dict[str, int]:
    """Identifiers assigned an object literal in this file: `name = {` -> index of `{`."""
    found: dict[str, int] = {}
    for i in range(len(tokens) - 2):
        if tokens[i].kind == "ident" and tokens[i + 1].text == "=" and tokens[i + 2].text == "{":
            found.setdefault(tokens[i].text, i + 2)
    return found


def _argument_objects(
    tokens: Sequence[Token], start: int, declared: dict[str, int]
) -> Iterator[int]:
    """Indexes of the `{` of an object argument at `start` (inline, or a declared identifier)."""
    if start >= len(tokens):
        return
    token = tokens[start]
    if token.text == "{":
        yield start
    elif token.kind == "ident" and token.text in declared:
        yield declared[token.text]


def scan_tokens(
    tokens: Sequence[Token], protected: Iterable[str]
) -> Iterator[tuple[Token, str, str]]:
    """(token, key, context) for every protected key set in clear."""
    keys = frozenset(protected)
    declared = _declared_objects(tokens)
    seen: set[tuple[int, int, str]] = set()

    def report(objects: Iterable[int], context: str) -> Iterator[tuple[Token, str, str]]:
        for index in objects:
            for key, where in object_keys(tokens, index):
                mark = (where.line, where.column, key)
                if key in keys and mark not in seen:
                    seen.add(mark)
                    yield where, key, context

    count = len(tokens)
    for i, token in enumerate(tokens):
        if token.kind != "ident":
            continue
        nxt = tokens[i + 1] if i + 1 < count else None
        if nxt is None:
            break
        if token.text == "Intercom" and nxt.text in {"(", "?."}:
            open_at = i + 1 if nxt.text == "(" else i + 2
            method = tokens[open_at + 1] if open_at + 1 < count else None
            comma = tokens[open_at + 2] if open_at + 2 < count else None
            if (
                method is not None
                and method.kind == "string"
                and method.text in GUARDED_METHODS
                and comma is not None
                and comma.text == ","
            ):
                context = f"Intercom('{method.text}', ...)"
                yield from report(_argument_objects(tokens, open_at + 3, declared), context)
        elif token.text == "intercomSettings":
            if nxt.text == "=" and i + 2 < count:
                yield from report(
                    _argument_objects(tokens, i + 2, declared), "window.intercomSettings = {...}"
                )
            elif nxt.text in {".", "?."} and i + 3 < count and tokens[i + 3].text == "=":
                key = tokens[i + 2]
                if key.text in keys:
                    mark = (key.line, key.column, key.text)
                    if mark not in seen:
                        seen.add(mark)
                        yield key, key.text, "window.intercomSettings.<key> = ..."
            elif nxt.text == "[" and i + 4 < count and tokens[i + 2].kind == "string":
                key = tokens[i + 2]
                if tokens[i + 3].text == "]" and tokens[i + 4].text == "=" and key.text in keys:
                    mark = (key.line, key.column, key.text)
                    if mark not in seen:
                        seen.add(mark)
                        yield key, key.text, "window.intercomSettings[<key>] = ..."
        elif token.text == "assign" and i >= 2 and tokens[i - 2].text == "Object":
            if nxt.text != "(":
                continue
            close = _matching(tokens, i + 1)
            args = tokens[i + 2 : close]
            if any(t.text == "intercomSettings" for t in args[:4]):
                objects = [
                    i + 2 + j
                    for j, t in enumerate(args)
                    if t.text == "{" and (j == 0 or args[j - 1].text == ",")
                ]
                yield from report(objects, "Object.assign(intercomSettings, {...})")


def script_blocks(text: str, suffix: str) -> Iterator[tuple[str, int, int]]:
    """(source, first line, column offset of that line) of the JavaScript in a file.

    All of a script file; only the `<script>` elements of markup.
    """
    if suffix not in MARKUP_SUFFIXES:
        yield text, 1, 0
        return
    for match in _SCRIPT_ELEMENT.finditer(text):
        if _NON_JS_TYPE.search(match.group(1)):
            continue  # JSON data blocks, templates, ...
        start = match.start(2)
        offset = start - (text.rfind("\n", 0, start) + 1)
        yield match.group(2), text.count("\n", 0, start) + 1, offset


def scan_text(text: str, path: str, protected: Iterable[str]) -> list[Finding]:
    """Every finding in one file's text; `path` decides how the text is read."""
    keys = tuple(protected)
    lines = text.splitlines()
    findings: list[Finding] = []
    for source, first_line, offset in script_blocks(text, Path(path).suffix.lower()):
        for token, key, context in scan_tokens(tokenize(source, first_line), keys):
            line_text = lines[token.line - 1] if token.line - 1 < len(lines) else ""
            if IGNORE_MARK in line_text:
                continue
            # Columns of a script element's first line count from the element's start.
            column = token.column + offset if token.line == first_line else token.column
            findings.append(Finding(path, token.line, column, key, context))
    return sorted(findings, key=lambda f: (f.line, f.column, f.key))


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files to scan under `paths` (directories are walked; node_modules and VCS dirs skipped)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if candidate.suffix.lower() in SUFFIXES and not name.endswith(".min.js"):
                        yield candidate
        else:
            yield path  # named explicitly: scanned whatever its suffix


def scan_paths(paths: Iterable[str | os.PathLike[str]], protected: Iterable[str]) -> list[Finding]:
    """Scan files and directories; raises OSError for a path that cannot be read."""
    keys = tuple(dict.fromkeys((*ALWAYS_PROTECTED, *protected)))
    findings: list[Finding] = []
    for path in iter_files(paths):
        text = path.read_text("utf-8", errors="replace")
        findings.extend(scan_text(text, str(path), keys))
    return findings


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
