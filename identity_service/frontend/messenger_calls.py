"""Where page code hands settings to the Messenger, and which keys those settings carry.

Works on tree-sitter syntax trees of one file (all the scripts of a page share
one global scope, so they are read together). Names are followed file-wide, not
per scope: `const ic = window.Intercom` makes `ic(...)` a call of the Messenger
everywhere in the file, and `const base = {...}` gives `base` its keys wherever
it is spread, merged or passed. Nothing is followed across files.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tree_sitter import Node

from identity_service.frontend import packages
from identity_service.frontend.syntax import arguments, string_value, text, walk


class Role(enum.Enum):
    """What a name or an expression stands for, as far as the Messenger is concerned."""

    CLASSIC = "window.Intercom"
    SETTINGS = "window.intercomSettings"
    SDK_MODULE = packages.SDK_MODULE
    SDK_INIT = "init"
    SDK_BOOT = "boot"
    SDK_UPDATE = "update"
    REACT_MODULE = packages.REACT_MODULE
    REACT_HOOK = packages.REACT_HOOK
    REACT_API = "useIntercom()"
    REACT_BOOT = "useIntercom().boot"
    REACT_UPDATE = "useIntercom().update"
    REACT_PROVIDER = packages.REACT_PROVIDER


class Naming(enum.Enum):
    """How the keys of an object become Intercom's keys."""

    INTERCOM = "intercom"  # as written; `custom_attributes: {...}` is read too
    VERBATIM = "verbatim"  # a custom attributes object: as written
    REACT = "react"  # react-use-intercom's camelCase props


@dataclass(frozen=True)
class KeyUse:
    """A key that reaches Intercom from page code: Intercom's name, as written, where."""

    key: str
    written: str
    node: Node
    context: str


# Expressions that stand for the value they wrap (see `_unwrap`).
_WRAPPERS = frozenset(
    {"parenthesized_expression", "as_expression", "satisfies_expression", "non_null_expression",
     "type_assertion", "await_expression"}
)  # fmt: skip
_FUNCTIONS = frozenset(
    {"arrow_function", "function_expression", "function", "function_declaration"}
)
_SINKS = frozenset(
    {"call_expression", "assignment_expression", "augmented_assignment_expression",
     "variable_declarator", "jsx_opening_element", "jsx_self_closing_element"}
)  # fmt: skip
_NAMES = frozenset(
    {"identifier", "property_identifier", "shorthand_property_identifier",
     "shorthand_property_identifier_pattern"}
)  # fmt: skip
COMMENTS = frozenset({"comment", "html_comment"})
_KEPT = _SINKS | _NAMES | COMMENTS | {"import_statement", "function_declaration", "string"}
_PASS_THROUGH = frozenset({"structuredClone", "freeze", "reactive", "toRaw"})
_SDK_CONTEXT = {
    Role.SDK_INIT: "Intercom({...})",
    Role.SDK_BOOT: "boot(...)",
    Role.SDK_UPDATE: "update(...)",
}


def _unwrap(node: Node) -> Node:
    while node.type in _WRAPPERS and node.named_children:
        # `<T>x` puts the type first; `x as T`, `x!`, `(x)`, `await x` put the value first.
        node = node.named_children[-1 if node.type == "type_assertion" else 0]
    return node


def _member_name(node: Node) -> tuple[Node, str, Node] | None:
    """(object, property name, property node) of `a.b` or `a["b"]`."""
    if node.type == "member_expression":
        obj, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
        if obj is not None and prop is not None:
            return obj, text(prop), prop
    if node.type == "subscript_expression":
        obj, index = node.child_by_field_name("object"), node.child_by_field_name("index")
        name = string_value(index)
        if obj is not None and index is not None and name is not None:
            return obj, name, index
    return None


def _returned(function: Node) -> list[Node]:
    """The expressions a function returns (not those of functions nested in it)."""
    body = function.child_by_field_name("body")
    if body is None:
        return []
    if body.type != "statement_block":
        return [body]  # `() => ({...})`
    found: list[Node] = []
    stack = list(body.named_children)
    while stack:
        node = stack.pop()
        if node.type == "return_statement":
            found.extend(node.named_children[:1])
        elif node.type not in _FUNCTIONS and node.type != "class_body":
            stack.extend(node.named_children)
    return found


def _key_name(node: Node) -> str | None:
    if node.type in {"property_identifier", "number", "private_property_identifier"}:
        return text(node)
    if node.type == "computed_property_name" and node.named_children:
        return string_value(node.named_children[0])
    return string_value(node)


class Program:
    """The bindings of one file, and the keys its code sends to the Messenger."""

    def __init__(self, roots: Sequence[Node]) -> None:
        self.roots = roots
        # Walked once, keeping only the nodes looked at again: making tree-sitter's Node
        # objects is most of the cost, and holding all of them makes Python's GC crawl.
        self.nodes = [node for root in roots for node in walk(root) if node.type in _KEPT]
        self.values: dict[str, list[Node]] = defaultdict(list)
        self.destructured: dict[str, list[tuple[Node, str]]] = defaultdict(list)
        self.imports: dict[str, Role] = {}
        self.member_writes: dict[str, list[tuple[str, Node, Node]]] = defaultdict(list)
        self.merges: dict[str, list[Node]] = defaultdict(list)
        self.functions: dict[str, list[Node]] = defaultdict(list)
        self.too_deep: list[Node] = []  # sinks whose value was too deeply nested to follow
        for node in self.nodes:
            self._index(node)

    # -- the index ---------------------------------------------------------------------

    def _index(self, node: Node) -> None:
        kind = node.type
        if kind == "import_statement":
            self._import(node)
        elif kind == "variable_declarator":
            name, value = node.child_by_field_name("name"), node.child_by_field_name("value")
            if name is not None and value is not None:
                self._bind(name, value)
        elif kind in {"assignment_expression", "augmented_assignment_expression"}:
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
            if left is None or right is None:
                return
            member = _member_name(_unwrap(left))
            if left.type == "identifier":
                self._bind(left, right)
            elif member is not None and _unwrap(member[0]).type == "identifier":
                self.member_writes[text(_unwrap(member[0]))].append((member[1], member[2], right))
        elif kind == "function_declaration":
            name = node.child_by_field_name("name")
            if name is not None:
                self.functions[text(name)].extend(_returned(node))
        elif kind == "call_expression" and self._is_object_assign(node):
            args = arguments(node)
            if args and _unwrap(args[0]).type == "identifier":
                self.merges[text(_unwrap(args[0]))].extend(args[1:])

    def _bind(self, name: Node, value: Node) -> None:
        if name.type == "identifier":
            self.values[text(name)].append(value)
            if _unwrap(value).type in _FUNCTIONS:
                self.functions[text(name)].extend(_returned(_unwrap(value)))
        elif name.type == "object_pattern":
            for part in name.named_children:
                if part.type == "shorthand_property_identifier_pattern":
                    self.destructured[text(part)].append((value, text(part)))
                elif part.type == "object_assignment_pattern" and part.named_children:
                    local = part.named_children[0]
                    self.destructured[text(local)].append((value, text(local)))
                elif part.type == "pair_pattern":
                    key, target = part.child_by_field_name("key"), part.child_by_field_name("value")
                    if key is not None and target is not None:
                        if target.type == "assignment_pattern" and target.named_children:
                            target = target.named_children[0]
                        self.destructured[text(target)].append((value, _key_name(key) or ""))

    def _import(self, node: Node) -> None:
        module = {
            packages.SDK_MODULE: Role.SDK_MODULE,
            packages.REACT_MODULE: Role.REACT_MODULE,
        }.get(string_value(node.child_by_field_name("source")) or "")
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        if module is None or clause is None:
            return
        for part in clause.named_children:
            if part.type == "identifier":  # the default export
                self._import_as(text(part), module, "default")
            elif part.type == "namespace_import" and part.named_children:
                self.imports[text(part.named_children[-1])] = module
            elif part.type == "named_imports":
                for specifier in part.named_children:
                    name = specifier.child_by_field_name("name")
                    alias = specifier.child_by_field_name("alias") or name
                    if name is not None and alias is not None:
                        self._import_as(text(alias), module, _key_name(name) or text(name))

    def _import_as(self, local: str, module: Role, exported: str) -> None:
        role = self._member_role(module, exported)
        if role is not None:
            self.imports[local] = role

    # -- what an expression stands for -------------------------------------------------

    def role(self, node: Node, seen: frozenset[str] = frozenset()) -> Role | None:
        """What `node` stands for (window.Intercom, an SDK function, ...), or None."""
        node = _unwrap(node)
        if node.type == "identifier":
            return self._name_role(text(node), seen)
        member = _member_name(node)
        if member is not None:
            return self._member_role(self.role(member[0], seen), member[1])
        if node.type in {"binary_expression", "ternary_expression"}:
            # `window.Intercom || noop`, `ready ? window.Intercom : queue`
            sides = ("left", "right", "consequence", "alternative")
            for side in (node.child_by_field_name(name) for name in sides):
                role = self.role(side, seen) if side is not None else None
                if role is not None:
                    return role
            return None
        if node.type == "call_expression":
            callee = node.child_by_field_name("function")
            args = arguments(node)
            if callee is None:
                return None
            if (callee.type == "import" or text(callee) == "require") and args:
                return {
                    packages.SDK_MODULE: Role.SDK_MODULE,
                    packages.REACT_MODULE: Role.REACT_MODULE,
                }.get(string_value(args[0]) or "")
            bound = _member_name(_unwrap(callee))
            if bound is not None and bound[1] == "bind":  # window.Intercom.bind(window)
                return self.role(bound[0], seen)
            if self.role(callee, seen) is Role.REACT_HOOK:
                return Role.REACT_API
        return None

    def _name_role(self, name: str, seen: frozenset[str]) -> Role | None:
        if name in self.imports:
            return self.imports[name]
        if name in seen:
            return None
        inner = seen | {name}
        for value in self.values.get(name, ()):
            role = self.role(value, inner)
            if role is not None:
                return role
        for value, prop in self.destructured.get(name, ()):
            role = self._member_role(self.role(value, inner), prop)
            if role is not None:
                return role
        return {
            packages.CLASSIC_FUNCTION: Role.CLASSIC,
            packages.CLASSIC_SETTINGS: Role.SETTINGS,
        }.get(name)

    @staticmethod
    def _member_role(owner: Role | None, prop: str) -> Role | None:
        if owner is Role.SDK_MODULE:
            return {"init": Role.SDK_INIT, "boot": Role.SDK_BOOT, "update": Role.SDK_UPDATE}.get(
                packages.SDK_EXPORTS.get(prop, "")
            )
        if owner is Role.REACT_MODULE:
            return {
                packages.REACT_HOOK: Role.REACT_HOOK,
                packages.REACT_PROVIDER: Role.REACT_PROVIDER,
            }.get(prop)
        if owner is Role.REACT_API:
            return {"boot": Role.REACT_BOOT, "update": Role.REACT_UPDATE}.get(prop)
        return {
            packages.CLASSIC_FUNCTION: Role.CLASSIC,
            packages.CLASSIC_SETTINGS: Role.SETTINGS,
        }.get(prop)

    def _string(self, node: Node, seen: frozenset[str] = frozenset()) -> str | None:
        """A string literal's value, or that of the name it is bound to."""
        node = _unwrap(node)
        value = string_value(node)
        if value is not None or node.type != "identifier" or text(node) in seen:
            return value
        for bound in self.values.get(text(node), ()):
            value = self._string(bound, seen | {text(node)})
            if value is not None:
                return value
        return None

    def _is_object_assign(self, call: Node) -> bool:
        callee = call.child_by_field_name("function")
        member = _member_name(_unwrap(callee)) if callee is not None else None
        return member is not None and member[1] == "assign" and text(member[0]) == "Object"

    # -- the keys that reach the Messenger ---------------------------------------------

    def key_uses(self) -> Iterator[KeyUse]:
        """Every key page code sends to the Messenger, once per place it is written."""
        seen: set[tuple[int, str]] = set()
        for node in self.nodes:
            if node.type not in _SINKS:
                continue
            try:
                for use in self._sink(node):
                    mark = (use.node.start_byte, use.key)
                    if mark not in seen:
                        seen.add(mark)
                        yield use
            except RecursionError:  # `a || a || ...` thousands deep: say so, go on
                self.too_deep.append(node)

    def _sink(self, node: Node) -> Iterator[KeyUse]:
        kind = node.type
        if kind == "call_expression":
            yield from self._call(node)
        elif kind in {"assignment_expression", "augmented_assignment_expression"}:
            yield from self._assignment(node)
        elif kind == "variable_declarator":
            name, value = node.child_by_field_name("name"), node.child_by_field_name("value")
            if name is not None and value is not None and text(name) == packages.CLASSIC_SETTINGS:
                yield from self.keys(value, Naming.INTERCOM, "window.intercomSettings = {...}")
        elif kind in {"jsx_opening_element", "jsx_self_closing_element"}:
            yield from self._provider(node)

    def _call(self, call: Node) -> Iterator[KeyUse]:
        callee = call.child_by_field_name("function")
        args = arguments(call)
        if callee is None or not args:
            return
        if self._is_object_assign(call):
            if self.role(args[0]) is Role.SETTINGS:
                for source in args[1:]:
                    yield from self.keys(
                        source, Naming.INTERCOM, "Object.assign(intercomSettings, {...})"
                    )
            return
        role = self.role(callee)
        if role is Role.CLASSIC:
            method = self._string(args[0])
            if method in packages.CLASSIC_METHODS and len(args) > 1:
                yield from self.keys(args[1], Naming.INTERCOM, f"Intercom('{method}', ...)")
            elif method is None:  # Intercom({...}): the npm SDK's initialiser
                yield from self.keys(args[0], Naming.INTERCOM, "Intercom({...})")
        elif role in _SDK_CONTEXT:
            context = f"{_SDK_CONTEXT[role]} of {packages.SDK_MODULE}"
            yield from self.keys(args[0], Naming.INTERCOM, context)
        elif role in {Role.REACT_BOOT, Role.REACT_UPDATE}:
            method = "boot" if role is Role.REACT_BOOT else "update"
            context = f"useIntercom().{method}(...) of {packages.REACT_MODULE}"
            yield from self.keys(args[0], Naming.REACT, context)

    def _assignment(self, node: Node) -> Iterator[KeyUse]:
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or right is None:
            return
        if self.role(left) is Role.SETTINGS:
            yield from self.keys(right, Naming.INTERCOM, "window.intercomSettings = {...}")
            return
        member = _member_name(_unwrap(left))
        if member is None:
            return
        owner, key, where = member
        shape = "[<key>]" if _unwrap(left).type == "subscript_expression" else ".<key>"
        if self.role(owner) is Role.SETTINGS:
            context = f"window.intercomSettings{shape} = ..."
            yield from self._key(key, where, right, Naming.INTERCOM, context, frozenset())
            return
        parent = _member_name(_unwrap(owner))
        if (
            parent is not None
            and parent[1] == packages.CLASSIC_CUSTOM_ATTRIBUTES
            and self.role(parent[0]) is Role.SETTINGS
        ):
            context = f"window.intercomSettings.custom_attributes{shape} = ..."
            yield KeyUse(key, key, where, context)

    def _provider(self, element: Node) -> Iterator[KeyUse]:
        name = element.child_by_field_name("name")
        if name is None or self.role(name) is not Role.REACT_PROVIDER:
            return
        for attribute in element.named_children:
            if attribute.type != "jsx_attribute" or len(attribute.named_children) < 2:
                continue
            prop, value = attribute.named_children[0], attribute.named_children[-1]
            if text(prop) == packages.REACT_BOOT_PROP and value.type == "jsx_expression":
                for expression in value.named_children[:1]:
                    context = f"<IntercomProvider autoBootProps={{...}}> of {packages.REACT_MODULE}"
                    yield from self.keys(expression, Naming.REACT, context)

    def keys(
        self, node: Node, naming: Naming, context: str, seen: frozenset[str] = frozenset()
    ) -> Iterator[KeyUse]:
        """The keys of the object `node` evaluates to, as far as this file shows them."""
        node = _unwrap(node)
        kind = node.type
        if kind == "object":
            for part in node.named_children:
                yield from self._property(part, naming, context, seen)
        elif kind in {"identifier", "shorthand_property_identifier"}:
            name = text(node)
            if f"{naming.value}:{name}" in seen:
                return
            inner = seen | {f"{naming.value}:{name}"}
            for value in self.values.get(name, ()):
                yield from self.keys(value, naming, context, inner)
            for key, where, value in self.member_writes.get(name, ()):
                yield from self._key(key, where, value, naming, context, inner)
            for value in self.merges.get(name, ()):
                yield from self.keys(value, naming, context, inner)
        elif kind == "ternary_expression":
            for branch in ("consequence", "alternative"):
                child = node.child_by_field_name(branch)
                if child is not None:
                    yield from self.keys(child, naming, context, seen)
        elif kind == "binary_expression" and text(node.child_by_field_name("operator")) in {
            "||",
            "??",
            "&&",
        }:
            for side in ("left", "right"):
                child = node.child_by_field_name(side)
                if child is not None:
                    yield from self.keys(child, naming, context, seen)
        elif kind == "sequence_expression" and node.named_children:
            yield from self.keys(node.named_children[-1], naming, context, seen)
        elif kind == "call_expression":
            yield from self._call_result(node, naming, context, seen)

    def _call_result(
        self, call: Node, naming: Naming, context: str, seen: frozenset[str]
    ) -> Iterator[KeyUse]:
        callee = _unwrap(call.child_by_field_name("function") or call)
        args = arguments(call)
        if self._is_object_assign(call):
            for arg in args:
                yield from self.keys(arg, naming, context, seen)
            return
        member = _member_name(callee)
        name = member[1] if member is not None else text(callee)
        if (
            name in _PASS_THROUGH and args
        ):  # structuredClone(x), Object.freeze(x), Vue's reactive(x)
            yield from self.keys(args[0], naming, context, seen)
        elif callee.type == "identifier" and f"call:{name}" not in seen:
            for value in self.functions.get(name, ()):
                yield from self.keys(value, naming, context, seen | {f"call:{name}"})

    def _property(
        self, part: Node, naming: Naming, context: str, seen: frozenset[str]
    ) -> Iterator[KeyUse]:
        if part.type == "pair":
            key, value = part.child_by_field_name("key"), part.child_by_field_name("value")
            name = _key_name(key) if key is not None else None
            if key is not None and name is not None:
                where = key.named_children[0] if key.type == "computed_property_name" else key
                yield from self._key(name, where, value, naming, context, seen)
        elif part.type == "shorthand_property_identifier":
            yield from self._key(text(part), part, part, naming, context, seen)
        elif part.type == "spread_element" and part.named_children:
            yield from self.keys(part.named_children[0], naming, context, seen)
        elif part.type == "method_definition":
            key = part.child_by_field_name("name")
            name = _key_name(key) if key is not None else None
            if key is not None and name is not None:
                yield from self._key(name, key, None, naming, context, seen)

    def _key(
        self,
        name: str,
        where: Node,
        value: Node | None,
        naming: Naming,
        context: str,
        seen: frozenset[str],
    ) -> Iterator[KeyUse]:
        if naming is Naming.REACT:
            if name == packages.REACT_CUSTOM_ATTRIBUTES and value is not None:
                yield from self.keys(value, Naming.VERBATIM, context, seen)
            elif name in packages.REACT_KEYS:
                mapped = packages.REACT_KEYS[name]
                shown = context if mapped == name else f"{context} (as {name})"
                yield KeyUse(mapped, name, where, shown)
            return
        yield KeyUse(name, name, where, context)
        if (
            naming is Naming.INTERCOM
            and name == packages.CLASSIC_CUSTOM_ATTRIBUTES
            and value is not None
        ):
            yield from self.keys(value, Naming.VERBATIM, context, seen)

    # -- user_hash, wherever it is ------------------------------------------------------

    def user_hash_nodes(self) -> Iterator[Node]:
        """Every name, key or key string `user_hash` in the code (strings elsewhere are text)."""
        key_parents = {"subscript_expression", "computed_property_name", "pair", "pair_pattern"}
        for node in self.nodes:
            if node.type in _NAMES:
                if text(node) == "user_hash":
                    yield node
            elif node.type == "string" and string_value(node) == "user_hash":
                parent = node.parent
                if (
                    parent is not None
                    and parent.type in key_parents
                    and (parent.type != "pair" or parent.child_by_field_name("key") == node)
                ):
                    yield node
