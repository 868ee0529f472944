"""`identity-service eslint-config`: the printed flat config, run by a real ESLint from npm.

ESLint is installed from the npm registry into pytest's cache folder once
(`npm install eslint@ESLINT_VERSION`), then lints fixture files with the
generated config; the findings are ESLint's own JSON output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from identity_service.cli import frontend as frontend_cli
from identity_service.frontend.lint import protected_keys_from_config, scan_text

ESLINT_VERSION = "10.15.0"
P = "protected-key-in-clear"
H = "user-hash"

FILES: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "classic.js": (
        """\
        Intercom('boot', {app_id: 'a', user_id: u});
        window.Intercom('update', {custom_attributes: {plan}});
        window.intercomSettings = {email: e};
        window["intercomSettings"] = {"teammates": 2};
        intercomSettings.plan = 'x';
        Object.assign(window.intercomSettings, {name: n});
        Intercom('trackEvent', 'ordered', {email});
        Intercom('update', {intercom_user_jwt: t, color: 'red', company: {email}});
        const settings = {user_hash: x};
        var intercomSettings = {app_id: 'a', plan: p};
        """,
        [(1, P), (2, P), (3, P), (4, P), (5, P), (6, P), (9, H), (10, P)],
    ),
    "sdk.mjs": (
        """\
        import Intercom, { update, boot } from '@intercom/messenger-js-sdk';
        Intercom({ app_id: 'a', user_id: id, intercom_user_jwt: t });
        update({ plan });
        boot({ app_id: 'a', intercom_user_jwt: t });
        """,
        [(2, P), (3, P)],
    ),
    "store.mjs": (
        """\
        import { update } from './store-lib.mjs';
        update({ email, user_id: 1 });
        """,
        [],
    ),
    "help.jsx": (
        """\
        import { useIntercom, IntercomProvider } from 'react-use-intercom';
        const { boot, update } = useIntercom();
        boot({ userId: 1, customAttributes: { plan: 'x' }, intercomUserJwt: t });
        update({ userHash: h, name: 'x' });
        export const App = () => <IntercomProvider autoBootProps={{ email: e }} />;
        update({ user_id: 1, intercomUserJwt: t });
        """,
        [(3, P), (3, P), (4, H), (4, P), (5, P)],
    ),
}


def _cli() -> click.Group:
    group = click.Group("identity-service")
    frontend_cli.register(group)
    return group


@pytest.fixture(scope="module")
def eslint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The path of a real ESLint binary, installed from the npm registry (cached)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (CI installs it)")
    folder = f"eslint-{ESLINT_VERSION}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    root = cache.mkdir(folder) if cache is not None else tmp_path_factory.mktemp(folder)
    binary = root / "node_modules" / ".bin" / "eslint"
    if not binary.exists():
        subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error",
             "--prefix", str(root), f"eslint@{ESLINT_VERSION}"],
            check=True, timeout=300,
        )  # fmt: skip
    return binary


def test_the_printed_config_flags_what_lint_frontend_flags_in_a_real_eslint(
    tmp_path: Path, eslint: Path
) -> None:
    printed = CliRunner().invoke(
        _cli(), ["eslint-config", "--protect", "plan", "--protect", "name"]
    )
    assert printed.exit_code == 0, printed.output
    (tmp_path / "intercom.eslint.config.mjs").write_text(printed.stdout)
    (tmp_path / "eslint.config.mjs").write_text(
        "import intercom from './intercom.eslint.config.mjs';\n"
        "export default [\n"
        "  { languageOptions: { parserOptions: { ecmaFeatures: { jsx: true } } } },\n"
        "  ...intercom,\n"
        "];\n"
    )
    for name, (source, _) in FILES.items():
        (tmp_path / name).write_text(textwrap.dedent(source))

    run = subprocess.run(
        [str(eslint), "--format", "json", *FILES],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert run.returncode == 1, run.stderr
    results = {Path(r["filePath"]).name: r["messages"] for r in json.loads(run.stdout)}
    keys = (*protected_keys_from_config(None, None), "plan", "name")
    for name, (_, expected) in FILES.items():
        messages = results[name]
        assert all(m["ruleId"] == "no-restricted-syntax" for m in messages), messages
        found = sorted((m["line"], m["message"].split(":")[0]) for m in messages)
        assert found == sorted(expected), name
        # lint-frontend finds the same on these files (it also sees what selectors cannot).
        linted = scan_text((tmp_path / name).read_text(), name, keys)
        assert sorted((f.line, f.rule) for f in linted) == sorted(expected), name


def test_the_config_names_the_keys_of_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        '[workspaces.main]\napp_id = "a1"\nsecret_env = "UNSET"\n'
        '[[workspaces.main.attributes]]\nname = "seats"\ntype = "integer"\nclaim = "s"\n'
    )
    printed = CliRunner().invoke(_cli(), ["eslint-config", "--config", str(config)])
    assert printed.exit_code == 0
    assert "// Protected keys: user_id, email, user_hash, seats." in printed.stdout
    assert "/^(?:email|seats|user_id)$/" in printed.stdout
    assert "export default [" in printed.stdout
