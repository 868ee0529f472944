"""An ESLint flat-config rule set for the protected keys (`identity-service eslint-config`).

For teams that want the check in their editor and their existing ESLint run:
core ESLint's `no-restricted-syntax` with one selector per construct, the
protected keys in one regular expression. Selectors see one syntax tree node
and its neighbours, not names: they cannot follow aliases, spreads, variables
or imports, so this is a subset of `lint-frontend` (which stays the CI gate).
The npm SDK and react-use-intercom selectors apply only in files that import
the package (`Program:has(ImportDeclaration[...])`), so an unrelated
`update({email})` elsewhere is not flagged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from identity_service.frontend import packages
from identity_service.frontend.findings import PROTECTED_KEY, USER_HASH

CONFIG_NAME = "identity-service/intercom-protected-keys"
FILES = "**/*.{js,mjs,cjs,jsx,ts,mts,cts,tsx}"
_REACT_NAMES = {intercom: react for react, intercom in packages.REACT_KEYS.items()}


def _alternation(names: Iterable[str]) -> str:
    """An esquery regular expression matching exactly these names."""
    return "/^(?:" + "|".join(re.escape(name) for name in sorted(set(names))) + ")$/"


def _keys(names: str) -> tuple[str, str]:
    """Property selectors for a key written as a name (`plan:`) or a string (`"plan":`)."""
    return f"Property[key.name={names}]", f"Property[key.value={names}]"


def restricted_syntax(protected: Iterable[str]) -> list[dict[str, str]]:
    """`no-restricted-syntax` entries (selector, message) for these protected keys."""
    # user_hash has its own rule, which flags it anywhere: not repeated here.
    keys = tuple(key for key in dict.fromkeys(protected) if key != "user_hash")
    plain = _alternation(keys)
    react = _alternation(_REACT_NAMES[key] for key in keys if key in _REACT_NAMES)
    intercom = "[callee.name='Intercom'], [callee.property.name='Intercom']"
    settings = (
        "[left.name='intercomSettings'], [left.property.name='intercomSettings'], "
        "[left.property.value='intercomSettings']"
    )
    classic = f"CallExpression:matches({intercom})[arguments.0.value=/^(?:boot|update)$/]"
    init = f"CallExpression:matches({intercom})[arguments.0.type='ObjectExpression']"
    assign = (
        "CallExpression[callee.object.name='Object'][callee.property.name='assign']"
        ":matches([arguments.0.name='intercomSettings'], "
        "[arguments.0.property.name='intercomSettings'])"
    )
    sdk = f"Program:has(ImportDeclaration[source.value='{packages.SDK_MODULE}'])"
    react_file = f"Program:has(ImportDeclaration[source.value='{packages.REACT_MODULE}'])"
    boot_or_update = (
        "CallExpression:matches([callee.name=/^(?:boot|update)$/], "
        "[callee.property.name=/^(?:boot|update)$/])"
    )
    owners = [
        f"{classic} > ObjectExpression",
        f"{classic} > ObjectExpression > Property[key.name='custom_attributes'] > ObjectExpression",
        f"{init} > ObjectExpression",
        f"AssignmentExpression:matches({settings}) > ObjectExpression.right",
        "VariableDeclarator[id.name='intercomSettings'] > ObjectExpression.init",
        f"{assign} > ObjectExpression",
        f"{sdk} {boot_or_update} > ObjectExpression",
        f"{react_file} {boot_or_update} > ObjectExpression > "
        "Property[key.name='customAttributes'] > ObjectExpression",
        "JSXAttribute[name.name='autoBootProps'] > JSXExpressionContainer > ObjectExpression "
        "> Property[key.name='customAttributes'] > ObjectExpression",
    ]
    message = (
        f"{PROTECTED_KEY.id}: a protected Intercom key set in clear; it must come only from "
        "the signed Messenger token (identity-service lint-frontend)"
    )
    entries = [
        {"selector": f"{owner} > {key}", "message": message}
        for owner in owners
        for key in _keys(plain)
    ]
    written = [
        f"AssignmentExpression > MemberExpression.left:matches([object.name='intercomSettings'], "
        f"[object.property.name='intercomSettings']):matches([property.name={plain}], "
        f"[property.value={plain}])",
    ]
    entries.extend({"selector": selector, "message": message} for selector in written)
    react_owners = [
        f"{react_file} {boot_or_update} > ObjectExpression",
        "JSXAttribute[name.name='autoBootProps'] > JSXExpressionContainer > ObjectExpression",
    ]
    if react != "/^(?:)$/":
        entries.extend(
            {"selector": f"{owner} > Property[key.name={react}]", "message": message}
            for owner in react_owners
        )
    hash_message = (
        f"{USER_HASH.id}: user_hash is deprecated identity verification; remove it and send "
        "the signed Messenger JWT instead (identity-service lint-frontend)"
    )
    entries.extend(
        {"selector": selector, "message": hash_message}
        for selector in (
            "Identifier[name='user_hash']",
            "Property > Literal.key[value='user_hash']",
            "MemberExpression[computed=true] > Literal.property[value='user_hash']",
            *(f"{owner} > Property[key.name='userHash']" for owner in react_owners),
        )
    )
    return entries


def flat_config(protected: Iterable[str], version: str) -> str:
    """An ES module exporting a flat-config array (and the entries, to merge with your own)."""
    keys = tuple(dict.fromkeys(protected))
    entries = json.dumps(restricted_syntax(keys), indent=2)
    block = {
        "name": CONFIG_NAME,
        "files": [FILES],
        "rules": {"no-restricted-syntax": ["error", "__ENTRIES__"]},
    }
    config = json.dumps(block, indent=2).replace('"__ENTRIES__"', "...restrictedSyntax")
    return (
        f"// Generated by `identity-service eslint-config` (identity_service {version}).\n"
        f"// Protected keys: {', '.join(keys)}.\n"
        "// Use: import intercom from './intercom.eslint.config.mjs';\n"
        "//      export default [...yourConfig, ...intercom];\n"
        "// ESLint does not merge one rule's options across config objects: if you configure\n"
        "// no-restricted-syntax yourself, spread `restrictedSyntax` into your own entry.\n"
        f"export const restrictedSyntax = {entries};\n\n"
        f"export default [\n{_indent(config)}\n];\n"
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
