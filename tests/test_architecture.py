"""The layering holds: no private names of dependencies, and a domain free of Flask and HTTP.

(a) No module of identity_service uses a private name (`_x`) of a dependency:
    found in each module's syntax tree, so a new module is checked too.
(b) The domain (every top-level module, auth/ and observability/) imports no
    web framework and no HTTP client library: each is imported in a fresh
    interpreter and `sys.modules` is looked at, so an import through another
    module counts as well.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "identity_service"
ROOT = PACKAGE.parent

# `_typeshed` is the standard library's type-checking-only module (the WSGI
# protocol types), never imported at run time: not a dependency's private API.
ALLOWED_PRIVATE_MODULES = frozenset({"_typeshed"})


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(package: Path) -> frozenset[str]:
    """Every name identity_service itself defines (functions, classes, attributes, variables)."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return frozenset(names)


def private_uses(source: str, own: frozenset[str]) -> list[str]:
    """Each use, in `source`, of a private name that identity_service does not define itself.

    Imports: a private module (`flask_cors._x`, `a._b.c`) or name (`from jwt
    import _x`) of anything but identity_service. Attributes: `thing._x`,
    where `_x` is no name of ours (so `app._got_first_request` is found, and
    our own classes' private members, used by our own code, are not).
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "identity_service" or parts[0] in ALLOWED_PRIVATE_MODULES:
                continue
            if any(_private(p) for p in parts):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            found += [
                f"line {node.lineno}: from {node.module} import {a.name}"
                for a in node.names
                if _private(a.name)
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] != "identity_service"
                and a.name.split(".")[0] not in ALLOWED_PRIVATE_MODULES
                and any(_private(p) for p in a.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))
OWN = _own_names(PACKAGE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_uses_a_private_name_of_a_dependency(path: Path) -> None:
    assert private_uses(path.read_text(), OWN) == []


# What the token route's fast path did, before it became a WSGI app of its own.
OLD_FAST_PATH = """
from flask_cors.core import _ComputedCorsOptions as CorsOptions
import werkzeug._internal
from flask_cors import core as _core

def serves_alone(app, request):
    app._got_first_request = True
    return request._get_current_object()
"""


def test_the_check_finds_each_kind_of_private_use() -> None:
    assert private_uses(OLD_FAST_PATH, OWN) == [
        "line 2: from flask_cors.core import _ComputedCorsOptions",
        "line 3: import werkzeug._internal",
        "line 7: app._got_first_request",
        "line 8: request._get_current_object",
    ]


# -- (b) the domain imports no web framework and no HTTP client -----------------------------

FORBIDDEN = (
    "flask",
    "werkzeug",
    "flask_cors",
    "flask_limiter",
    "httpx",
    "requests",
    "urllib3",
    "aiohttp",
    "httplib2",
)


def _domain_modules() -> list[str]:
    top = [f"identity_service.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    layers = [
        f"identity_service.{folder}" + ("" if p.stem == "__init__" else f".{p.stem}")
        for folder in ("auth", "observability")
        for p in (PACKAGE / folder).glob("*.py")
    ]
    return sorted(top + layers)


# Domain modules that still import one of FORBIDDEN, each with the reason and
# the issue that moves it; empty now. An entry here is a known debt, not a pass.
ALLOWED_DOMAIN_IMPORTS: dict[str, str] = {}

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:])))
"""


@pytest.mark.parametrize("module", _domain_modules())
def test_a_domain_module_imports_no_web_framework_or_http_client(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, *FORBIDDEN],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    loaded = json.loads(result.stdout)
    if module in ALLOWED_DOMAIN_IMPORTS:
        pytest.xfail(ALLOWED_DOMAIN_IMPORTS[module])
    assert loaded == [], f"{module} loads {loaded}"


def test_the_domain_list_covers_the_layers() -> None:
    modules = _domain_modules()
    for expected in (
        "identity_service.runtime",
        "identity_service.auth",
        "identity_service.auth.bearer",
        "identity_service.observability.metrics",
    ):
        assert expected in modules
    assert not any(m.startswith(("identity_service.http", "identity_service.cli")) for m in modules)


def test_the_probe_sees_an_import_through_another_module() -> None:
    # The HTTP layer does load Flask: the probe must say so.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "identity_service.http.app", *FORBIDDEN],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert "flask" in json.loads(result.stdout)
