"""intercom.py: Intercom's rules are written once, and messenger.js agrees with them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from identity_service import intercom

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "identity_service"
MESSENGER_JS = (PACKAGE / "frontend" / "static" / "messenger.js").read_text("utf-8")

# The hosts as Intercom documents them, written out again so that a change is noticed.
SPEC_HOSTS = {
    "us": ("https://api-iam.intercom.io", "https://api.intercom.io"),
    "eu": ("https://api-iam.eu.intercom.io", "https://api.eu.intercom.io"),
    "au": ("https://api-iam.au.intercom.io", "https://api.au.intercom.io"),
}


def _js_value(name: str) -> object:
    """The JSON literal messenger.js assigns to `var <name>` (a list or a string)."""
    match = re.search(rf"^\s*var {name} = (.+);$", MESSENGER_JS, re.MULTILINE)
    assert match is not None, f"messenger.js no longer defines {name}"
    return json.loads(match.group(1))


def test_messenger_js_always_protects_exactly_intercoms_keys() -> None:
    assert tuple(_js_value("ALWAYS_PROTECTED")) == intercom.ALWAYS_PROTECTED  # type: ignore[arg-type]


def test_messenger_js_owns_exactly_the_boot_keys() -> None:
    assert tuple(_js_value("OWNED_KEYS")) == intercom.OWNED_KEYS  # type: ignore[arg-type]


def test_messenger_js_default_widget_url_is_intercoms() -> None:
    assert _js_value("DEFAULT_WIDGET_URL") == intercom.WIDGET_URL


def test_each_region_has_its_messenger_and_rest_hosts() -> None:
    assert {r: (intercom.REGIONS[r], intercom.REST_API_BASES[r]) for r in SPEC_HOSTS} == SPEC_HOSTS
    assert set(intercom.REGIONS) == set(intercom.REST_API_BASES) == set(SPEC_HOSTS)
    assert intercom.DEFAULT_REGION in intercom.REGIONS


def test_no_attribute_type_lacks_an_intercom_label_or_data_type() -> None:
    assert set(intercom.TYPE_LABELS) == {"string", "integer", "number", "boolean", "date"}
    assert set(intercom.DATA_TYPES) == set(intercom.TYPE_LABELS)
    assert set(intercom.STANDARD_ATTRIBUTES.values()) <= set(intercom.TYPE_LABELS)


# Each rule's literal, and the one module allowed to write it.
WRITTEN_ONCE = [
    ('"user_id", "email", "user_hash"', "intercom.py"),
    ('"app_id", "api_base", "intercom_user_jwt"', "intercom.py"),
    ("api-iam.eu.intercom.io", "intercom.py"),
    ("widget.intercom.io", "intercom.py"),
    ("Settings > Channels > Messenger > Security", "intercom.py"),
    ("Settings > Data > People", "intercom.py"),
    ("api.eu.intercom.io", "intercom.py"),
    ('"2.11"', "intercom.py"),
    ('"/v1/messenger/token"', "http/paths.py"),
    ("= 255", "intercom.py"),
    ("= 250", "intercom.py"),
]


@pytest.mark.parametrize(("literal", "home"), WRITTEN_ONCE)
def test_each_rule_is_written_in_one_module(literal: str, home: str) -> None:
    found = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if literal in path.read_text("utf-8")
    )
    assert found == [home]


# The modules that write Intercom's rules into pages, tokens and keys; a product's
# templates and the CLI use them without an app.
FLASK_FREE = [
    "identity_service.intercom",
    "identity_service.checklist",
    "identity_service.attributes",
    "identity_service.http.paths",
    "identity_service.frontend.script",
    "identity_service.frontend.escaping",
    "identity_service.frontend.public_config",
    "identity_service.frontend.embed",
    "identity_service.frontend.jinja",
    "identity_service.auth.algorithms",
    "identity_service.auth.jose",
    "identity_service.auth.keys",
    "identity_service.auth.jwks",
    "identity_service.intercom_api.check",
]


@pytest.mark.parametrize("module", FLASK_FREE)
def test_the_module_imports_no_flask_and_no_http_framework(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'flask', 'werkzeug', 'flask_cors', 'requests', 'httpx'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout.strip() == "[]"
