"""Parse JavaScript, TypeScript, JSX and TSX with tree-sitter, and place nodes as editors do.

tree-sitter's grammars are maintained with the languages (JSX, optional
chaining, TypeScript's `as`, `satisfies` and generics), never fail on broken
code (they mark an ERROR node and parse on), and parse a part of a file in
place (`included_ranges`), so an inline `<script>` keeps the lines and columns
of the page it is in.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser, Point, Range, Tree


class Dialect(enum.Enum):
    """Which grammar reads a piece of code."""

    JAVASCRIPT = "javascript"  # tree-sitter's JavaScript grammar includes JSX
    TYPESCRIPT = "typescript"
    TSX = "tsx"


@cache
def _language(dialect: Dialect) -> Language:
    if dialect is Dialect.TYPESCRIPT:
        return Language(tree_sitter_typescript.language_typescript())
    if dialect is Dialect.TSX:
        return Language(tree_sitter_typescript.language_tsx())
    return Language(tree_sitter_javascript.language())


@dataclass(frozen=True)
class Span:
    """A byte range of a file and the grammar its code is written in."""

    start: int
    end: int
    dialect: Dialect


class Positions:
    """Byte offsets of one file -> 1-based line and column, columns in characters."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line_starts = [0]
        self.line_starts.extend(match.end() for match in re.finditer(b"\n", source))

    def point(self, offset: int) -> Point:
        """tree-sitter's (row, byte column) of a byte offset."""
        row = self._row(offset)
        return Point(row, offset - self.line_starts[row])

    def line_column(self, offset: int) -> tuple[int, int]:
        """1-based line, and 1-based column counted in characters (Unicode code points)."""
        row = self._row(offset)
        start = self.line_starts[row]
        column = len(self.source[start:offset].decode("utf-8", errors="replace"))
        return row + 1, column + 1

    def _row(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset) - 1


def parse(source: bytes, span: Span, positions: Positions) -> Tree:
    """The syntax tree of `span` of `source`; nodes keep their offsets in the whole file."""
    parser = Parser(_language(span.dialect))
    if (span.start, span.end) != (0, len(source)):
        parser.included_ranges = [
            Range(positions.point(span.start), positions.point(span.end), span.start, span.end)
        ]
    return parser.parse(source)


def text(node: Node | None) -> str:
    """The source text of a node ("" for none)."""
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def walk(root: Node) -> Iterator[Node]:
    """Every node under `root` (included), in source order."""
    # A cursor, not `node.children`: it visits each node once, in C.
    cursor = root.walk()
    while True:
        node = cursor.node
        if node is not None:
            yield node
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent():
            if cursor.node == root:
                return
            if cursor.goto_next_sibling():
                break
        else:
            return


def first_error(root: Node) -> Node | None:
    """The first node tree-sitter could not read (an ERROR, or a token it had to invent)."""
    if not root.has_error:
        return None
    for node in walk(root):
        if node.is_error or node.is_missing:
            return node
    return root


def arguments(call: Node) -> Sequence[Node]:
    """The argument expressions of a call (comments left out)."""
    args = call.child_by_field_name("arguments")
    if args is None or args.type != "arguments":
        return ()
    return [child for child in args.named_children if child.type != "comment"]


def string_value(node: Node | None) -> str | None:
    """The value of a string literal, or of a template literal without `${}`; else None."""
    if node is None:
        return None
    if node.type == "string":
        return "".join(
            text(part) if part.type == "string_fragment" else _escape(text(part))
            for part in node.named_children
        )
    if node.type == "template_string" and not any(
        child.type == "template_substitution" for child in node.named_children
    ):
        return text(node)[1:-1]
    return None


def _escape(sequence: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    return simple.get(sequence[1:], sequence[1:]) if len(sequence) == 2 else sequence
