"""docs/migrating.md's claims about lint-frontend hold for the code it shows.

The guide's hand-written snippet (the shape a team migrating from `user_hash` has
today), saved as a Django/Jinja template, must fail lint-frontend with a `user-hash`
finding and the identity keys, exactly in the text form the guide quotes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from identity_service.cli.main import main

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migrating.md"


def snippet_block() -> str:
    text = GUIDE.read_text("utf-8")
    section = text.split("### A hand-written snippet", 1)[1]
    match = re.search(r"```js\n(.*?)```", section, re.S)
    assert match, "the guide lost its hand-written snippet"
    return match.group(1)


def test_the_guides_hand_written_snippet_fails_lint_frontend_on_user_hash(tmp_path: Path) -> None:
    page = tmp_path / "templates" / "base.html"
    page.parent.mkdir()
    page.write_text(f"<!doctype html>\n<script>\n{snippet_block()}</script>\n", "utf-8")

    text = CliRunner().invoke(main, ["lint-frontend", str(tmp_path)])
    report = CliRunner().invoke(main, ["lint-frontend", "--format", "json", str(tmp_path)])

    assert text.exit_code == 1 and report.exit_code == 1
    findings = json.loads(report.stdout)["findings"]
    assert {f["key"] for f in findings if f["rule"] == "user-hash"} == {"user_hash"}
    assert {"user_id", "email", "plan"} <= {
        f["key"] for f in findings if f["rule"] == "protected-key-in-clear"
    }
    # The line format the guide quotes, for a user_hash in window.intercomSettings.
    quoted = (
        "user_hash (deprecated identity verification) in window.intercomSettings = {...}; "
        "remove it and send the signed Messenger JWT instead"
    )
    assert quoted in GUIDE.read_text("utf-8")
    assert any(line.endswith(quoted) for line in text.stdout.splitlines())


def test_a_suppression_with_a_reason_as_the_guide_shows_it_accepts_the_finding(
    tmp_path: Path,
) -> None:
    code = "// lint-frontend: ignore[user-hash] legacy checkout page, migrated in Q1"
    assert code in GUIDE.read_text("utf-8")
    (tmp_path / "legacy.js").write_text(f"{code}\nconst user_hash = legacyHash;\n", "utf-8")

    result = CliRunner().invoke(main, ["lint-frontend", str(tmp_path)])

    assert result.exit_code == 0, result.output
