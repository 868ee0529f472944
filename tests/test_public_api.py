"""The supported API: every name in `identity_service.__all__` imports, and lazily.

pyjwt's `jwt/__init__.py` is the model for the list; unlike it, the names are
imported on first use, so `import identity_service` (which Python runs before
every `identity_service.x` import) stays free of Flask.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import identity_service

ROOT = Path(__file__).resolve().parent.parent
# The names bound to Flask: the extension, and the app factory once called.
FLASK_BOUND = frozenset({"IdentityService"})

PROBE = """
import json, sys
exec(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "werkzeug"))))
"""


def loaded_web_modules(code: str) -> list[str]:
    """Flask and werkzeug modules loaded after running `code` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("name", identity_service.__all__)
def test_each_supported_name_imports_from_the_package(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from identity_service import {name}", namespace)  # noqa: S102 (a name of __all__)
    value = namespace[name]
    assert value is getattr(identity_service, name)
    assert getattr(value, "__name__", name) == name  # the object itself, not an alias


def test_the_list_is_sorted_unique_and_in_dir() -> None:
    names = identity_service.__all__
    assert len(set(names)) == len(names)
    assert set(names) <= set(dir(identity_service))


def test_an_unsupported_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="Runtime"):
        identity_service.Runtime  # noqa: B018 (the lookup is the test)
    with pytest.raises(ImportError):
        exec("from identity_service import Runtime", {})  # noqa: S102


def test_importing_the_package_loads_no_flask() -> None:
    assert loaded_web_modules("import identity_service") == []


def test_the_flask_free_names_load_no_flask() -> None:
    names = sorted(set(identity_service.__all__) - FLASK_BOUND - {"create_app"})
    assert loaded_web_modules(f"from identity_service import {', '.join(names)}") == []


def test_the_extension_does_load_flask() -> None:
    # The probe must see Flask when it is there, or the two tests above prove nothing.
    assert "flask" in loaded_web_modules("from identity_service import IdentityService")
