"""Intercom's attribute-name rules, checked when the configuration loads."""

from __future__ import annotations

import pytest

from identity_service import intercom
from identity_service.config import load_settings
from identity_service.errors import ConfigError
from tests.conftest import MESSENGER_SECRET_ENV, WriteConfig

# The spec's lists, written out again so that a change to the module is noticed.
SPEC_FORBIDDEN = [".", "$", "~", "`", "!", "@", "#", "%", "^", "&", "*", "'", "{", "}", "[", "]",
                  "|", "\\", '"', "\x00"]  # fmt: skip
SPEC_RESERVED = ["user_id", "exp", "iat", "nbf", "jti", "iss", "sub", "aud", "app_id",
                 "intercom_user_jwt", "user_hash", "api_base"]  # fmt: skip
TYPES = ["string", "integer", "number", "boolean", "date"]
NOT_DATES = ["string", "integer", "number", "boolean"]


def test_forbidden_characters_are_exactly_intercoms() -> None:
    assert frozenset(SPEC_FORBIDDEN) == intercom.FORBIDDEN_CHARACTERS


def test_reserved_names_are_exactly_the_specs() -> None:
    assert frozenset(SPEC_RESERVED) == intercom.RESERVED_NAMES


@pytest.mark.parametrize("char", SPEC_FORBIDDEN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_every_forbidden_character_is_refused_anywhere(char: str, where: str) -> None:
    name = {"start": f"{char}plan", "middle": f"plan{char}tier", "end": f"plan{char}"}[where]
    reason = intercom.name_problem(name, "string")
    assert reason is not None
    assert "forbids" in reason
    assert ("NUL" if char == "\x00" else char) in reason


@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("name", ["", " ", "\t"])
def test_empty_names_are_refused(name: str, type_: str) -> None:
    assert intercom.name_problem(name, type_) == "must not be empty"


@pytest.mark.parametrize("name", SPEC_RESERVED)
def test_reserved_names_are_refused(name: str) -> None:
    reason = intercom.name_problem(name, "string")
    assert reason is not None
    assert "reserved" in reason


@pytest.mark.parametrize("type_", NOT_DATES)
@pytest.mark.parametrize("name", ["last_order_at", "created_at", "_at"])
def test_an_at_name_must_be_a_date(name: str, type_: str) -> None:
    reason = intercom.name_problem(name, type_)
    assert reason is not None
    assert "_at" in reason
    assert 'type = "date"' in reason


@pytest.mark.parametrize("name", ["last_order", "signed_up", "at", "last_order_AT", "dated"])
def test_a_date_must_end_in_at(name: str) -> None:
    reason = intercom.name_problem(name, "date")
    assert reason is not None
    assert "must end in _at" in reason


@pytest.mark.parametrize(
    ("name", "type_"),
    [
        ("plan", "string"),
        ("Plan Name", "string"),  # spaces are allowed
        ("plan-tier", "string"),
        ("plan_tier", "string"),
        ("teammates", "integer"),
        ("score", "number"),
        ("is_admin", "boolean"),
        ("last_order_at", "date"),
        ("created_at", "date"),
        ("Café ✓", "string"),  # non-ASCII letters are not forbidden
        ("user_id_2", "string"),  # only exact reserved names are refused
        ("email", "string"),
        ("a" * 200, "string"),
    ],
)
def test_good_names_pass(name: str, type_: str) -> None:
    assert intercom.name_problem(name, type_) is None


# -- the rules that need the whole whitelist: duplicates and the CDA soft limit --------


def _config(attributes: list[tuple[str, str]]) -> str:
    tables = "".join(
        f'[[workspaces.eu.attributes]]\nname = "{name}"\ntype = "{type_}"\nprofile = "col"\n\n'
        for name, type_ in attributes
    )
    return (
        f'[workspaces.eu]\napp_id = "abc123"\nregion = "eu"\n'
        f'secret_env = "{MESSENGER_SECRET_ENV}"\n\n{tables}'
    )


def test_duplicate_names_are_refused_with_their_index(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    path = write_config(_config([("plan", "string"), ("seats", "integer"), ("plan", "string")]))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    assert [(p.path, p.message) for p in caught.value.problems] == [
        ("workspaces.eu.attributes[2].name", "duplicate attribute name 'plan'")
    ]


def test_names_are_case_sensitive_so_plan_and_plan_are_different(
    write_config: WriteConfig, environ: dict[str, str]
) -> None:
    path = write_config(_config([("plan", "string"), ("Plan", "string")]))
    settings = load_settings(path, environ)
    assert [a.name for a in settings.workspace(None).attributes] == ["plan", "Plan"]


@pytest.mark.parametrize(
    ("cdas", "warned"),
    [(250, False), (251, True)],
)
def test_more_than_250_cdas_warns_and_standard_attributes_do_not_count(
    write_config: WriteConfig, environ: dict[str, str], cdas: int, warned: bool
) -> None:
    standard = [("email", "string"), ("name", "string"), ("phone", "string"),
                ("created_at", "date")]  # fmt: skip
    custom = [(f"cda {i}", "string") for i in range(cdas)]
    path = write_config(_config(standard + custom))
    settings = load_settings(path, environ)
    workspace = settings.workspace("eu")
    assert len(workspace.attributes) == cdas + 4
    assert len(workspace.custom_attributes) == cdas
    cda_warnings = [w for w in settings.warnings if "soft limit" in w]
    if warned:
        assert cda_warnings == [
            f"workspaces.eu.attributes: {cdas} custom attributes; Intercom's soft limit is "
            "about 250 active CDAs per workspace"
        ]
    else:
        assert cda_warnings == []
