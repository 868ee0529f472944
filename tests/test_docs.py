"""The documentation states only what is true of the code.

- README's quick start names exactly the Makefile targets that exist (`make run`, `make test`);
- every `tests/...py::test_name[case]` reference (SECURITY.md above all) names a real test;
- every relative link and `#anchor` in README.md, SECURITY.md and docs/*.md resolves;
- docs/configuration.md's key tables list exactly the keys of the settings schema
  (settings.py, read by config.py's loader), with their defaults and limits.

Each checker returns a list of problems. The tests at the bottom feed each one a
broken document, which shows that these tests fail when the docs drift.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from identity_service import schema
from identity_service.config import CONFIG_ENV, INSTANCE_ENV
from identity_service.demo.cli import demo as demo_command
from identity_service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECURITY = ROOT / "SECURITY.md"
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "configuration.md"
MAKEFILE = ROOT / "Makefile"

# `name:` at the start of a line, not `name :=` (a variable) nor `.PHONY:` / `$(STAMP):`.
_MAKE_TARGET = re.compile(r"^([A-Za-z0-9][\w-]*)\s*:(?!=)(.*)$", re.M)
_FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"``.+?``|`[^`\n]+`")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
# [text](target) and ![alt](target); text may hold one level of brackets.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+)(?:\[([^\]]+)\])?)?")
_KEY_MARKER = re.compile(r"^<!-- config-keys: (\w+) -->[ \t]*\n((?:\|[^\n]*(?:\n|$))+)", re.M)
_KEY_CELL = re.compile(r"`([a-z_]+)`")


def markdown_files() -> list[Path]:
    return [README, SECURITY, *sorted(DOCS.glob("*.md"))]


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group())


def without_code(text: str) -> str:
    """Markdown with fenced blocks and inline code blanked out, every position kept."""
    return _INLINE_CODE.sub(_blank, _FENCE.sub(_blank, text))


# -- (a) the quick start and the Makefile -------------------------------------------------


def makefile_targets(text: str) -> dict[str, str]:
    """Target name -> the rest of its rule line (its prerequisites)."""
    return {m.group(1): m.group(2).strip() for m in _MAKE_TARGET.finditer(text)}


def makefile_recipe(text: str, target: str) -> list[str]:
    """The tab-indented command lines of `target`'s rule."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _MAKE_TARGET.match(line)
        if match and match.group(1) == target:
            recipe = []
            for following in lines[index + 1 :]:
                if not following.startswith("\t"):
                    break
                recipe.append(following.strip())
            return recipe
    return []


def sections(markdown: str) -> list[tuple[str, str]]:
    """(title, body) of each `## ` section, in order (code blocks do not count as headings)."""
    starts = []
    for bare in _HEADING.finditer(without_code(markdown)):
        # Positions are the same in `markdown`; the title is read there, code included.
        heading = _HEADING.match(markdown, bare.start())
        if heading is not None and len(heading.group(1)) == 2:
            starts.append((bare.start(), heading.group(2)))
    found = []
    for i, (start, title) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(markdown)
        found.append((title, markdown[start:end]))
    return found


def quick_start_block(markdown: str) -> str:
    """The first fenced code block of the `## Quick start` section ("" when there is none)."""
    for title, body in sections(markdown):
        if title.strip().lower() == "quick start":
            match = _FENCE.search(body)
            return match.group() if match else ""
    return ""


def quick_start_commands(markdown: str) -> list[str]:
    """The commands in the quick start block, without their trailing comments."""
    lines = quick_start_block(markdown).splitlines()[1:-1]  # drop the fence lines
    commands = [line.split("#", 1)[0].strip() for line in lines]
    return [c for c in commands if c]


def quick_start_problems(readme: str, makefile: str) -> list[str]:
    problems = []
    titles = [title for title, _ in sections(readme)]
    if not titles or titles[0].strip().lower() != "quick start":
        problems.append(f"the first section must be 'Quick start', found {titles[:1]}")
    commands = quick_start_commands(readme)
    if commands != ["make run", "make test"]:
        problems.append(f"quick start commands are {commands}, expected make run and make test")
    targets = makefile_targets(makefile)
    for command in commands:
        words = command.split()
        if words[:1] != ["make"] or len(words) != 2:
            problems.append(f"{command!r} is not a plain `make <target>`")
        elif words[1] not in targets:
            problems.append(f"{command!r}: the Makefile has no target {words[1]!r}")
    return problems


# -- (b) references to tests ----------------------------------------------------------------


def defined_functions(path: Path) -> set[str]:
    """Every function name defined in a Python file (module level and in classes)."""
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def find_test_references(markdown: str) -> list[tuple[str, str | None, str | None]]:
    """(file, function or None, case or None) for each `tests/...py[::name[case]]` mention."""
    return [(m.group(1), m.group(2), m.group(3)) for m in _TEST_REF.finditer(markdown)]


def reference_problems(markdown: str, root: Path = ROOT) -> list[str]:
    problems = []
    for file, function, case in find_test_references(markdown):
        path = root / file
        shown = file + (f"::{function}" if function else "") + (f"[{case}]" if case else "")
        if not path.is_file():
            problems.append(f"{shown}: no such file")
            continue
        if function is not None and function not in defined_functions(path):
            problems.append(f"{shown}: {file} defines no function {function}")
        # A parametrized case is named by an id written in the test file.
        text = path.read_text("utf-8")
        if case is not None and f'"{case}"' not in text and f"'{case}'" not in text:
            problems.append(f"{shown}: no case id {case!r} is written in {file}")
    return problems


def threat_rows_without_tests(markdown: str) -> list[str]:
    """Rows of the threat tables whose last column names no test function."""
    body = next((b for t, b in sections(markdown) if t.lower().startswith("threats")), "")
    missing = []
    for line in body.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if not line.startswith("|") or len(cells) < 3:
            continue
        if cells[0] in {"threat", ""} or set(cells[0]) <= set("-: "):
            continue  # header or separator
        if not any(function for _, function, _ in find_test_references(cells[-1])):
            missing.append(cells[0])
    return missing


# -- (c) links ----------------------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower case, punctuation dropped."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in _HEADING.finditer(_FENCE.sub("", markdown)):
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Broken relative links (missing file, or missing heading anchor) in one Markdown file."""
    text = path.read_text("utf-8")
    problems = []
    for match in _LINK.finditer(without_code(text)):
        target = match.group(1)
        if _SCHEME.match(target):
            continue  # http(s):, mailto: ...: not checked offline
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: ({target})"
        if not linked.is_relative_to(root.resolve()):
            problems.append(f"{where} points outside the repository")
        elif not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            problems.append(f"{where}: {linked.name} has no heading with anchor #{anchor}")
    return problems


# -- (d) configuration keys -------------------------------------------------------------------


def table_name(cls: type) -> str:
    """The config-keys table of a settings class: BearerAuthSettings -> bearer."""
    name = re.sub(r"(Auth)?(Settings|Spec)$", "", cls.__name__) or "Settings"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class KeyRow:
    """What the schema says of one key, for its documentation row: its default and limits."""

    default: str | None  # `30`, `"sub"`, `[]` as the table writes it; None: not checked
    limits: str | None  # "0 to 300"


def _documented_value(value: Any) -> str | None:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{value!r}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return "`[]`" if value == () else None


def schema_keys(root: type = Settings) -> dict[str, dict[str, KeyRow]]:
    """Each settings table's keys (schema.tables), with the default and limits to show."""
    tables: dict[str, dict[str, KeyRow]] = {}
    for cls in schema.tables(root):
        rows = tables.setdefault(table_name(cls), {})
        for spec in dataclasses.fields(cls):
            if not schema.is_key(spec):
                continue
            rule = schema.field_rule(spec)
            value = schema.default(spec)
            limits = None
            if rule.low is not None and rule.high is not None:
                limits = f"{schema.number(rule.low)} to {schema.number(rule.high)}"
            default = (
                None if value is dataclasses.MISSING or rule.keys else _documented_value(value)
            )
            for key in rule.keys or (spec.name,):
                rows[key] = KeyRow(default, limits)
    return tables


def documented_keys(markdown: str) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Section -> (key, row) of each `<!-- config-keys: section -->` table, and unreadable rows."""
    documented: dict[str, list[tuple[str, str]]] = {}
    bad_rows = []
    for marker in _KEY_MARKER.finditer(markdown):
        section, table = marker.group(1), marker.group(2)
        rows = [r for r in table.splitlines() if r.strip()][2:]  # skip header and separator
        keys = documented.setdefault(section, [])
        for row in rows:
            first = row.strip().strip("|").split("|")[0].strip()
            cell = _KEY_CELL.fullmatch(first)
            if cell is None:
                bad_rows.append(f"{section}: {row.strip()[:60]}")
            else:
                keys.append((cell.group(1), row))
    return documented, bad_rows


def config_key_problems(markdown: str, allowed: Mapping[str, Mapping[str, KeyRow]]) -> list[str]:
    documented, bad_rows = documented_keys(markdown)
    problems = [f"not a `key` row: {row}" for row in bad_rows]
    for section in sorted(set(allowed) - set(documented)):
        problems.append(f"the loader's {section}() keys have no config-keys table")
    for section in sorted(set(documented) - set(allowed)):
        problems.append(f"config-keys table {section!r} matches no settings class")
    for section in sorted(set(allowed) & set(documented)):
        keys = [key for key, _ in documented[section]]
        rows = dict(documented[section])
        for key in sorted({k for k in keys if keys.count(k) > 1}):
            problems.append(f"{section}: {key} is documented twice")
        for key in sorted(set(keys) - set(allowed[section])):
            problems.append(f"{section}: {key} is documented but the loader refuses it")
        for key in sorted(set(allowed[section]) - set(keys)):
            problems.append(f"{section}: {key} is accepted by the loader but not documented")
        for key in sorted(set(allowed[section]) & set(keys)):
            row, expected = rows[key], allowed[section][key]
            if expected.default is not None and expected.default not in row:
                problems.append(
                    f"{section}: {key}'s row does not show its default {expected.default}"
                )
            if expected.limits is not None and expected.limits not in row:
                problems.append(f"{section}: {key}'s row does not say {expected.limits!r}")
    return problems


# -- the documentation as it is ------------------------------------------------------------------


# -- (e) documented commands ---------------------------------------------------------------

# `identity-service <command>` and the rest of its line in code (fenced or inline; not the
# `[identity-service messenger]` console prefix), with
# shell continuation lines joined; a table cell's `|` and the closing backtick end it.
_INVOCATION = re.compile(r"(?<!\[)identity-service ([a-z][a-z-]*)((?:\\\n|[^`|\n])*)")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")
PATH_NOTE = ". .venv/bin/activate"


def code_text(markdown: str) -> str:
    """Only the code of a Markdown document (fenced blocks, inline code), prose blanked.

    Every position is kept, so a match's offset is its offset in the document.
    """
    prose = without_code(markdown)
    return "".join(c if c != p or c in " \n" else " " for c, p in zip(markdown, prose, strict=True))


def documented_invocations(markdown: str) -> list[tuple[str, list[str]]]:
    """(command, its --flags) for each `identity-service ...` written in code."""
    return [
        (m.group(1), _FLAG.findall(m.group(2))) for m in _INVOCATION.finditer(code_text(markdown))
    ]


def invocation_problems(markdown: str, helps: Mapping[str, str]) -> list[str]:
    problems = []
    for command, flags in documented_invocations(markdown):
        if command not in helps:
            problems.append(f"identity-service {command}: no such command")
            continue
        problems += [
            f"identity-service {command} {flag}: --help lists no such option"
            for flag in flags
            if not re.search(rf"(?<![\w-]){flag}(?![\w-])", helps[command])
        ]
    return problems


def path_note_problems(path: Path, markdown: str) -> list[str]:
    """A page whose code runs `identity-service` must first say how to get it on PATH."""
    first = _INVOCATION.search(code_text(markdown))
    if first is None:
        return []
    before = markdown[: first.start()]
    if PATH_NOTE in before or "../README.md#quick-start" in before:
        return []
    return [f"{path.name}: runs identity-service before saying how to get it on PATH"]


# The docs' own configuration file (`--config service.toml`, in any folder, or
# `load_settings("service.toml")`) is one the reader writes first: a page must say
# where it comes from before it uses it, or the command fails as copied.
_OWN_CONFIG = re.compile(r"--config \S*service\.toml|load_settings\(\"service\.toml\"\)")
OWN_CONFIG_STEP = "cp identity_service/example.toml service.toml"
OWN_CONFIG_ANCHOR = "#your-own-configuration-file"


def own_config_problems(path: Path, markdown: str) -> list[str]:
    first = _OWN_CONFIG.search(code_text(markdown))
    if first is None:
        return []
    before = markdown[: first.start()]
    if OWN_CONFIG_STEP in before or f"{OWN_CONFIG_ANCHOR})" in before:
        return []
    return [f"{path.name}: uses service.toml before saying where it comes from"]


@pytest.fixture(scope="module")
def helps() -> dict[str, str]:
    # In-process (click's runner) for speed; the console script itself runs below.
    from identity_service.cli.main import main

    helps = {}
    for name, command in main.commands.items():
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        helps[name] = result.output
        # A group (`intercom check`, `intercom sync`): its subcommands' options count as its own.
        for sub in getattr(command, "commands", {}):
            helps[name] += CliRunner().invoke(main, [name, sub, "--help"]).output
    return helps


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_and_option_exists(path: Path, helps: dict[str, str]) -> None:
    assert invocation_problems(path.read_text("utf-8"), helps) == []


def test_every_command_is_documented_in_the_readme(helps: dict[str, str]) -> None:
    documented = {command for command, _ in documented_invocations(README.read_text("utf-8"))}
    assert set(helps) <= documented


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_page_says_how_to_get_the_command_before_using_it(path: Path) -> None:
    assert path_note_problems(path, path.read_text("utf-8")) == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_page_says_where_service_toml_comes_from_before_using_it(path: Path) -> None:
    assert own_config_problems(path, path.read_text("utf-8")) == []


def test_configuration_md_gives_the_step_that_makes_service_toml() -> None:
    text = CONFIG_DOC.read_text("utf-8")
    assert OWN_CONFIG_ANCHOR[1:] in anchors(text)
    assert OWN_CONFIG_STEP in code_text(text)


def test_every_documented_serve_binds_loopback_as_the_front_proxy_section_requires() -> None:
    # operations.md: "Bind serve to 127.0.0.1 ... so that only nginx reaches it";
    # a copied example that binds every interface contradicts it.
    binds = [
        (path.name, bind)
        for path in markdown_files()
        for m in _INVOCATION.finditer(code_text(path.read_text("utf-8")))
        if m.group(1) == "serve"
        for bind in re.findall(r"--bind[ =](\S+)", m.group(2))
    ]
    assert binds, "no documented `serve --bind` found"
    assert [b for b in binds if not b[1].startswith("127.0.0.1:")] == []


# A shell block is pasted whole: a server started in the foreground blocks every
# line after it, which then never runs.
_SH_BLOCK = re.compile(r"^```(?:sh|bash)\n(.*?)^```", re.M | re.S)
_FOREGROUND = re.compile(r"^identity-service (?:serve|demo)\b(?!.*&\s*$)")


def foreground_problems(markdown: str) -> list[str]:
    problems = []
    for block in _SH_BLOCK.findall(markdown):
        lines = [x.split(" #", 1)[0].strip() for x in block.replace("\\\n", " ").splitlines()]
        commands = [x for x in lines if x and not x.startswith("#")]
        problems += [
            f"{command!r} runs in the foreground, so the block's next lines never run"
            for command, later in itertools.pairwise(commands)
            if _FOREGROUND.match(command) and later
        ]
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_block_runs_anything_after_a_foreground_server(path: Path) -> None:
    assert foreground_problems(path.read_text("utf-8")) == []


def test_the_foreground_checker_fails_on_a_server_before_other_commands() -> None:
    blocked = "```sh\nidentity-service serve --bind 127.0.0.1:8000\ncurl -s x\n```\n"
    assert len(foreground_problems(blocked)) == 1
    assert foreground_problems(blocked.replace("8000\n", "8000 &\n")) == []
    assert foreground_problems("```sh\ncurl -s x\nidentity-service demo\n```\n") == []


# The three mistakes configuration.md's error example (and README's shorter one) shows.
ERROR_EXAMPLE_CONFIG = """\
[workspaces.eu]
app_id = "abc123"
region = "eu"
secret_env = "DOCS_EXAMPLE_SECRET"
token_lifetime = 100000
[[workspaces.eu.attributes]]
name = "email"
type = "string"
claim = "email"
[[workspaces.eu.attributes]]
name = "name"
type = "string"
claim = "name"
[[workspaces.eu.attributes]]
name = "plan"
type = "string"
claim = "plan"
[[workspaces.eu.attributes]]
name = "plan.tier"
type = "string"
claim = "tier"
[[workspaces.eu.auth]]
method = "bearer"
issuer = "https://pete.eu.auth0.com/"
audience = "identity-service"
algorithms = ["HS256"]
jwks_url = "https://pete.eu.auth0.com/.well-known/jwks.json"
"""


def error_example(markdown: str, heading: str) -> list[str]:
    """The output lines of the first plain ``` block in section `heading`."""
    body = next(b for t, b in sections(markdown) if t == heading)
    found = re.search(r"^```\n(.*?)^```", body, re.M | re.S)
    assert found, f"no output block under {heading!r}"
    return found.group(1).splitlines()


def test_the_documented_configuration_errors_are_what_check_config_prints(
    tmp_path: Path,
) -> None:
    (tmp_path / "service.toml").write_text(ERROR_EXAMPLE_CONFIG)
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env["DOCS_EXAMPLE_SECRET"] = "s" * 48
    done = subprocess.run(
        [str(Path(sys.executable).with_name("identity-service")), "check-config",
         "--config", "service.toml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    printed = done.stderr.splitlines()
    heading = "Errors: every problem at once, each with its key path"
    documented = error_example(CONFIG_DOC.read_text("utf-8"), heading)
    assert documented == ["$ identity-service check-config --config service.toml", *printed]
    # README's shorter example: the same lines, in the same order, cut with " ...".
    short = error_example(README.read_text("utf-8"), "Configuration")
    kept = [line for line in printed if any(line.startswith(x.removesuffix(" ...")) for x in short)]
    assert len(kept) == len(short), (short, printed)
    assert all(k.startswith(x.removesuffix(" ...")) for k, x in zip(kept, short, strict=True))


def test_the_own_config_checker_fails_when_the_step_comes_late() -> None:
    late = "# x\n\n`identity-service mint --config service.toml`\n\n" + OWN_CONFIG_STEP + "\n"
    linked = "# x\n\nSee [it](configuration.md#your-own-configuration-file).\n\n" + late
    assert own_config_problems(Path("p.md"), late) == [
        "p.md: uses service.toml before saying where it comes from"
    ]
    assert own_config_problems(Path("p.md"), linked) == []


def test_the_quick_start_says_how_to_get_the_command_on_path() -> None:
    quick_start = next(
        body for title, body in sections(README.read_text("utf-8")) if title == "Quick start"
    )
    assert PATH_NOTE in quick_start


# Documented commands run as a reader runs them, in an empty folder with the
# bundled example (secrets generated in a temporary instance folder). Each must
# match an invocation the README documents, so a renamed flag fails here too.
RUNNABLE = [
    ("check-config", [], 0),
    ("check-config", ["--security", "--json"], 1),  # the bundled example's dev secrets: high
    ("mint", ["--user-id", "42", "--attr", "plan=pro"], 0),
    ("snippet", ["--token-url", "http://127.0.0.1:8000/v1/messenger/token", "--out", "site"], 0),
    ("lint-frontend", ["site"], 0),
    ("demo-token", ["--email", "ada@pete.example"], 0),
    # The docs' `--config service.toml`, after the documented step that makes it.
    ("check-config", ["--config", "service.toml"], 0),
    ("check-config", ["--config", "service.toml", "--security", "--json"], 1),
    ("mint", ["--config", "service.toml", "--user-id", "42"], 0),
    (
        "snippet",
        ["--config", "service.toml", "--token-url", "https://id.pete.example/v1/messenger/token"],
        0,
    ),
    ("lint-frontend", ["--config", "service.toml", "site"], 0),
]


@pytest.mark.parametrize(
    ("command", "args", "code"), RUNNABLE, ids=[" ".join([c, *a][:2]) for c, a, _ in RUNNABLE]
)
def test_documented_commands_run_as_written(
    command: str, args: list[str], code: int, tmp_path: Path
) -> None:
    documented = [i for p in markdown_files() for i in documented_invocations(p.read_text("utf-8"))]
    flags = [a for a in args if a.startswith("--")]
    assert any(c == command and set(flags) <= set(f) for c, f in documented), (command, flags)
    folder = tmp_path / "work"
    folder.mkdir()
    if "service.toml" in args:  # OWN_CONFIG_STEP, run from the checkout into this folder
        _, source, target = OWN_CONFIG_STEP.split()
        shutil.copyfile(ROOT / source, folder / target)
    if command == "lint-frontend":  # lints what snippet writes: our own embed is clean
        snippet = RUNNABLE[3]
        run_command(snippet[0], snippet[1], folder, tmp_path)
    done = run_command(command, args, folder, tmp_path)
    assert done.returncode == code, done.stdout + done.stderr


def run_command(
    command: str, args: list[str], folder: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("identity-service")
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    env[INSTANCE_ENV] = str(tmp_path / "instance")
    return subprocess.run(
        [str(script), command, *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_invocation_checker_fails_on_unknown_commands_and_flags() -> None:
    helps = {"mint": "Usage: identity-service mint [OPTIONS]\n  --user-id TEXT\n"}
    text = (
        "`identity-service mint --user-id 4 --user`\n\n"
        "```sh\nidentity-service mint \\\n  --attr x=1\nidentity-service mnit\n```\n"
    )
    assert invocation_problems(text, helps) == [
        "identity-service mint --user: --help lists no such option",
        "identity-service mint --attr: --help lists no such option",
        "identity-service mnit: no such command",
    ]


def test_the_path_note_checker_fails_when_the_note_comes_late() -> None:
    late = "# x\n\n```sh\nidentity-service mint\n```\n\nRun . .venv/bin/activate first.\n"
    early = "# x\n\nRun . .venv/bin/activate first.\n\n```sh\nidentity-service mint\n```\n"
    assert path_note_problems(Path("p.md"), late) == [
        "p.md: runs identity-service before saying how to get it on PATH"
    ]
    assert path_note_problems(Path("p.md"), early) == []


def test_readme_quick_start_is_first_and_names_exactly_the_makefiles_two_commands() -> None:
    assert quick_start_problems(README.read_text("utf-8"), MAKEFILE.read_text("utf-8")) == []


def makefile_variables(text: str) -> dict[str, str]:
    """`NAME = value` and `NAME ?= value` defaults (`make run PORT=8001` overrides them)."""
    return dict(re.findall(r"^([A-Z_]+) \??= (.+)$", text, re.M))


def test_make_run_starts_the_demo_at_the_address_the_readme_gives() -> None:
    makefile = MAKEFILE.read_text("utf-8")
    recipe = makefile_recipe(makefile, "run")
    assert any(
        line.endswith("identity-service demo --host $(HOST) --port $(PORT)") for line in recipe
    ), recipe
    defaults = {param.name: param.default for param in demo_command.params}
    variables = makefile_variables(makefile)
    assert (variables["HOST"], variables["PORT"]) == (defaults["host"], str(defaults["port"]))
    url = f"http://{defaults['host']}:{defaults['port']}"
    readme = README.read_text("utf-8")
    assert url in quick_start_block(readme)
    assert "make run PORT=8001" in readme


def test_make_test_lints_type_checks_and_runs_pytest_as_the_readme_says() -> None:
    makefile = MAKEFILE.read_text("utf-8")
    assert makefile_targets(makefile)["test"].split() == ["lint", "typecheck", "pytest"]
    commands = " ".join(
        line
        for target in ("lint", "typecheck", "pytest")
        for line in makefile_recipe(makefile, target)
    )
    for tool in ("ruff check", "ruff format --check", "mypy --strict", "pytest"):
        assert tool in commands
    block = quick_start_block(README.read_text("utf-8"))
    assert "ruff" in block and "mypy --strict" in block


def test_every_test_referenced_in_security_md_exists() -> None:
    text = SECURITY.read_text("utf-8")
    references = find_test_references(text)
    assert len({(f, n) for f, n, _ in references if n}) >= 50  # the table is really there
    assert reference_problems(text) == []


def test_every_threat_in_security_md_names_a_test() -> None:
    text = SECURITY.read_text("utf-8")
    assert threat_rows_without_tests(text) == []
    rows = [line for line in text.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 30


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_test_references_in_every_document_exist(path: Path) -> None:
    assert reference_problems(path.read_text("utf-8")) == []


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert link_problems(path) == []


def test_the_readme_shows_the_demo_screenshot_and_links_every_page() -> None:
    text = README.read_text("utf-8")
    linked = {match.group(1) for match in _LINK.finditer(without_code(text))}
    expected = {"docs/demo.png", "SECURITY.md"} | {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert expected <= linked


def test_configuration_md_documents_exactly_the_keys_the_loader_accepts() -> None:
    markdown = CONFIG_DOC.read_text("utf-8")
    keys = schema_keys()
    assert len(keys) >= 8  # top level, service, rate limit, workspace, ...
    assert config_key_problems(markdown, keys) == []


# -- the checkers catch what they are for ---------------------------------------------------------

MAKEFILE_SAMPLE = """\
PYTHON ?= python3
VENV := .venv
.PHONY: run test
$(STAMP): pyproject.toml
\ttouch $(STAMP)
run: $(STAMP)
\t$(BIN)/identity-service demo
test: lint pytest
"""


def test_makefile_parsing_sees_rules_but_not_variables() -> None:
    assert makefile_targets(MAKEFILE_SAMPLE) == {"run": "$(STAMP)", "test": "lint pytest"}
    assert makefile_recipe(MAKEFILE_SAMPLE, "run") == ["$(BIN)/identity-service demo"]


@pytest.mark.parametrize(
    ("readme", "fragment"),
    [
        pytest.param(
            "# x\n\n## Quick start\n\n```sh\nmake run\nmake check  # lint\n```\n",
            "no target 'check'",
            id="unknown target",
        ),
        pytest.param(
            "# x\n\n## Quick start\n\n```sh\nmake run\n```\n", "expected make run", id="one missing"
        ),
        pytest.param(
            "# x\n\n## Why\n\ntext\n\n## Quick start\n\n```sh\nmake run\nmake test\n```\n",
            "first section",
            id="not first",
        ),
        pytest.param("# x\n\n## Usage\n\n```sh\nmake run\n```\n", "expected", id="no section"),
    ],
)
def test_quick_start_checker_fails_on_drift(readme: str, fragment: str) -> None:
    problems = quick_start_problems(readme, MAKEFILE_SAMPLE)
    assert any(fragment in p for p in problems), problems


def test_a_heading_inside_a_code_block_is_not_a_section() -> None:
    readme = (
        "# x\n\n```sh\n## not a heading\n```\n\n## Quick start\n\n```sh\nmake run\nmake test\n```\n"
    )
    assert quick_start_problems(readme, MAKEFILE_SAMPLE) == []


def test_reference_checker_fails_on_unknown_files_functions_and_cases() -> None:
    text = (
        "`tests/test_api.py::test_405_tokens_never_travel_by_get` is real;\n"
        "`tests/test_api.py::test_that_was_never_written`,\n"
        "`tests/test_nowhere.py::test_x`,\n"
        "`tests/attack/test_bearer_attacks.py::test_attack_is_refused[no such case]`."
    )
    problems = reference_problems(text)
    assert len(problems) == 3, problems
    assert "defines no function test_that_was_never_written" in problems[0]
    assert "no such file" in problems[1]
    assert "no case id 'no such case'" in problems[2]


def test_threat_rows_without_a_test_are_reported() -> None:
    text = (
        "## Threats, and tests\n\n| threat | mitigation | covered by |\n|---|---|---|\n"
        "| forged cookie | HMAC | `tests/auth/test_session.py::test_tampered_cookie` |\n"
        "| a flood | limits | none yet |\n\n## Next\n"
    )
    assert threat_rows_without_tests(text) == ["a flood"]


def test_link_checker_fails_on_missing_files_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## `check-config --security`, here\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n## Local heading\n\n"
        "[ok](other.md#check-config---security-here) [ok](#local-heading)"
        " [ok](https://example.com/x) ![img](missing.png)\n"
        "[bad](other.md#nowhere) [bad](#nowhere) [bad](../../outside.md)\n"
        "`[in code](missing.md)`\n```\n[in a block](missing.md)\n```\n"
    )
    problems = link_problems(page, root=tmp_path)
    assert len(problems) == 4, problems
    assert "(missing.png): no such file" in problems[0]
    assert "other.md has no heading with anchor #nowhere" in problems[1]
    assert "page.md has no heading with anchor #nowhere" in problems[2]
    assert "outside the repository" in problems[3]


def test_github_slugs() -> None:
    assert github_slug("Decisions where Intercom's documentation is silent") == (
        "decisions-where-intercoms-documentation-is-silent"
    )
    assert github_slug("`[service.rate_limit]`") == "servicerate_limit"
    assert (
        github_slug("Running it: `identity-service serve`") == "running-it-identity-service-serve"
    )


# A schema of two tables for the checkers' own tests: [service] holds [service.profile].
_ProfileSettings = dataclasses.make_dataclass("ProfileSettings", [("url", str)])
_ServiceSettings = dataclasses.make_dataclass(
    "ServiceSettings",
    [
        ("hsts", bool),
        ("proxy_hops", int, dataclasses.field(default=0, metadata=schema.rule(0, 5, "proxies"))),
        ("profile", _ProfileSettings | None, None),
    ],
)


def test_config_key_checker_fails_both_ways() -> None:
    source = schema_keys(_ServiceSettings)
    markdown = (
        "<!-- config-keys: service -->\n| key | type |\n|---|---|\n"
        "| `hsts` | boolean |\n| `hstss` | boolean |\n| hsts | no backticks |\n"
        "| `profile` | table |\n"
    )
    problems = config_key_problems(markdown, source)
    assert "not a `key` row: service: | hsts | no backticks |" in problems
    assert "the loader's profile() keys have no config-keys table" in problems
    assert "service: hstss is documented but the loader refuses it" in problems
    assert "service: proxy_hops is accepted by the loader but not documented" in problems
    assert len(problems) == 4, problems


def test_config_key_checker_fails_on_a_stale_default_or_limit() -> None:
    markdown = (
        "<!-- config-keys: service -->\n| key | type | default | rules |\n|---|---|---|---|\n"
        "| `hsts` | boolean | required | |\n| `proxy_hops` | integer | `1` | 0 to 3. |\n"
        "| `profile` | table | none | |\n"
        "<!-- config-keys: profile -->\n| key | type |\n|---|---|\n| `url` | string |\n"
    )
    assert config_key_problems(markdown, schema_keys(_ServiceSettings)) == [
        "service: proxy_hops's row does not show its default `0`",
        "service: proxy_hops's row does not say '0 to 5'",
    ]
    fixed = markdown.replace("`1` | 0 to 3.", "`0` | 0 to 5.")
    assert config_key_problems(fixed, schema_keys(_ServiceSettings)) == []


# -- (f) Intercom's wording, once -----------------------------------------------------------

_SETTINGS_PATH = re.compile(r"Settings(?: > [A-Z][A-Za-z ]*?)+ > Security")


def test_every_mention_of_the_messenger_security_page_uses_intercoms_current_path() -> None:
    from identity_service.intercom import MESSENGER_SECURITY_SETTINGS

    sources = [*markdown_files(), *sorted((ROOT / "identity_service").rglob("*.py"))]
    found = {
        (path.name, match.group())
        for path in sources
        for match in _SETTINGS_PATH.finditer(path.read_text("utf-8"))
    }
    assert found, "no mention of the Messenger security settings page"
    assert {text for _, text in found} == {MESSENGER_SECURITY_SETTINGS}, found


def test_the_readme_quotes_the_timed_bench_ratio_only_as_a_spread_over_runs() -> None:
    # One run's ratio of two timings (0.73x) came out 1.46 and 0.60 on a busy machine.
    body = next(b for t, b in sections(README.read_text("utf-8")) if t == "Benchmarks")
    quoting = [
        part
        for part in body.split("\n- ")
        if part.startswith("`bench/mint_cost.py`") and re.search(r"\b\d\.\d\d\b", part)
    ]
    assert quoting, "the README quotes no mint_cost figure at all"
    for bullet in quoting:
        ratios = set(re.findall(r"\b\d\.\d\d\b", bullet))
        assert len(ratios) >= 3 and "runs" in bullet and "instructions.py" in bullet, bullet


# -- (f) the mobile examples (docs/mobile.md) hold to the API -------------------------------

MOBILE_DOC = DOCS / "mobile.md"
# Each example's language, and the call that logs the user in to Intercom: setUserJwt
# must come before it (Intercom: "called before any user login").
MOBILE_LANGUAGES = {
    "swift": "Intercom.loginUser(",
    "kotlin": ".loginIdentifiedUser(",
    "tsx": "Intercom.loginUserWithUserAttributes(",
    "dart": ".loginIdentifiedUser(",
}
_QUOTED_WORD = re.compile(r"""["']([a-z][a-z0-9_]*)["']""")
_QUOTED_SLUG = re.compile(r"""["']([a-z]+(?:-[a-z]+)+)["']""")
_STATUS = re.compile(r"\b([45]\d\d)\b")
_URL = re.compile(r"https://[\w.-]+(/[\w/.-]*)")
# The workspace key the examples name, and words that are not the API's.
MOBILE_OWN_WORDS = {"eu"}


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block."""
    return [
        (m.group(1), m.group(2))
        for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", markdown, re.M | re.S)
    ]


def mobile_example_problems(markdown: str) -> list[str]:
    """What in the mobile examples the service does not have, or Intercom's order forbids."""
    from identity_service.errors import REFUSAL_REASONS, IdentityServiceError
    from identity_service.http.api import TOKEN_PATH
    from identity_service.http.openapi import build_openapi
    from identity_service.http.schemas import (
        ProblemSchema,
        TokenRequestSchema,
        TokenResponseSchema,
    )
    from identity_service.settings import PLATFORMS

    def every_subclass(cls: type[IdentityServiceError]) -> set[type[IdentityServiceError]]:
        found: set[type[IdentityServiceError]] = set()
        for sub in cls.__subclasses__():
            found |= {sub, *every_subclass(sub)}
        return found

    words = (
        set(TokenRequestSchema().fields)
        | set(TokenResponseSchema().fields)
        | set(ProblemSchema().fields)
        | set(PLATFORMS)
        | REFUSAL_REASONS
        | MOBILE_OWN_WORDS
    )
    slugs = {c.slug for c in every_subclass(IdentityServiceError)}
    statuses = set(build_openapi("docs")["paths"][TOKEN_PATH]["post"]["responses"])
    problems: list[str] = []
    blocks = [(lang, code) for lang, code in fenced_blocks(markdown) if lang in MOBILE_LANGUAGES]
    for missing in sorted(set(MOBILE_LANGUAGES) - {lang for lang, _ in blocks}):
        problems.append(f"no {missing} example")
    for lang, whole in blocks:
        where = f"{lang} example"
        code = "\n".join(line for line in whole.splitlines() if not line.startswith("import "))
        for word in sorted(set(_QUOTED_WORD.findall(code)) - words):
            problems.append(f"{where}: {word!r} is no request, response or problem field of ours")
        for slug in sorted(set(_QUOTED_SLUG.findall(code)) - slugs - {"retry-after"}):
            problems.append(f"{where}: {slug!r} is not a problem type")
        for status in sorted(set(_STATUS.findall(code)) - statuses):
            problems.append(f"{where}: status {status} is not one the endpoint answers")
        paths = _URL.findall(code)
        if not paths or any(path != TOKEN_PATH for path in paths):
            problems.append(f"{where}: must call {TOKEN_PATH} (found {paths})")
        # Refreshed before exp on a timer, or (Flutter) by the SDK's provider.
        refresh = "setUserJwtProvider(" if lang == "dart" else "expires_at"
        for needed in ('"POST"', "Bearer ", "setUserJwt(", "logout()", refresh, "token"):
            if needed not in code.replace("'POST'", '"POST"').replace("http.post(", '"POST"'):
                problems.append(f"{where}: does not use {needed.strip()!r}")
        if not any(p in _QUOTED_WORD.findall(code) for p in ("ios", "android")):
            problems.append(f"{where}: names no mobile platform")
        login = code.find(MOBILE_LANGUAGES[lang])
        first_jwt = code.find("setUserJwt(")
        if login == -1:
            problems.append(f"{where}: never logs the user in ({MOBILE_LANGUAGES[lang]})")
        elif first_jwt == -1 or first_jwt > login:
            problems.append(f"{where}: setUserJwt must come before {MOBILE_LANGUAGES[lang]}")
    return problems


def test_the_mobile_examples_use_only_the_api_that_exists() -> None:
    assert mobile_example_problems(MOBILE_DOC.read_text("utf-8")) == []


def test_the_mobile_example_checker_fails_on_drift() -> None:
    good = MOBILE_DOC.read_text("utf-8")
    drifted = {
        "a renamed field": good.replace('json["expires_at"]', 'json["expiresAt"]'),
        "an unknown field": good.replace('json.getString("user_id")', 'json.getString("uid")'),
        "another endpoint": good.replace(
            "id.pete.example/v1/messenger/token'", "id.pete.example/v1/token'"
        ),
        "login before the token": good.replace(
            'await Intercom.setUserJwt(body["token"] as string); // first: before the login call\n'
            '  await Intercom.loginUserWithUserAttributes({ userId: body["user_id"] as string });',
            'await Intercom.loginUserWithUserAttributes({ userId: body["user_id"] as string });\n'
            '  await Intercom.setUserJwt(body["token"] as string);',
        ),
        "a made-up problem type": good.replace(
            "fix the app; 429: wait retryAfter seconds.\nclass Messenger",
            "fix the app; 'token-expired'\nclass Messenger",
        ),
        "a status the endpoint never answers": good.replace(
            "status != 200", "status != 200 && status != 409"
        ),
        "no provider": good.replace("setUserJwtProvider(", "setJwtProvider("),
        "no logout": good.replace("Intercom.client().logout()", "Intercom.client().reset()"),
    }
    for name, text in drifted.items():
        assert text != good, name
        assert mobile_example_problems(text), name
