"""Intercom's rules for attribute names, checked when the configuration loads."""

from __future__ import annotations

# Characters Intercom forbids in custom attribute names (help article 179). It
# silently replaces them with "_", creating a different attribute than meant.
FORBIDDEN_CHARACTERS = frozenset(".$~`!@#%^&*'{}[]|\\\"\x00")

# Names the token or the Messenger use themselves: signing one as an attribute
# would override identity or break the boot settings.
RESERVED_NAMES = frozenset(
    {
        "user_id", "exp", "iat", "nbf", "jti", "iss", "sub", "aud",
        "app_id", "intercom_user_jwt", "user_hash", "api_base",
    }
)  # fmt: skip


def name_problem(name: str, type_: str) -> str | None:
    """Why `name` cannot be a whitelisted attribute of `type_`, or None when it can."""
    if not name or not name.strip():
        return "must not be empty"
    bad = sorted({c for c in name if c in FORBIDDEN_CHARACTERS})
    if bad:
        shown = " ".join("NUL" if c == "\x00" else c for c in bad)
        return (
            f"{name!r} contains {shown}, which Intercom forbids in attribute names "
            "(it would silently store a different attribute); use letters, digits, _ or spaces"
        )
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved by the Messenger token; choose another name"
    if type_ == "date" and not name.endswith("_at"):
        return f"date attribute {name!r} must end in _at (Intercom treats only _at keys as dates)"
    if type_ != "date" and name.endswith("_at"):
        return (
            f'{name!r} ends in _at, so Intercom treats it as a date; declare type = "date" '
            "or rename it"
        )
    return None
