"""Intercom's rules, written once: regions and hosts, names, types, limits, protected keys.

Everything here is what Intercom documents (or what its public integrations
show) about the web Messenger and custom data attributes (CDAs), with the help
article where one matters; where Intercom is silent, the README's "Decisions"
section says what we chose. The loader, the attribute policy, the token, the snippet, the linter and
messenger.js all take their rules from this module (messenger.js by a test
that holds its lists equal to these). Plain data and one pure function: no
I/O, no settings, no Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# -- regions and hosts ------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """One Intercom data-hosting region and the hosts that serve it."""

    name: str
    # The Messenger's `api_base` (the "api-iam" hosts), which the browser boots with.
    messenger_api_base: str
    # The REST API (Data Attributes API...), reached with an access token, never the browser.
    rest_api_base: str


_REGIONS = (
    Region("us", "https://api-iam.intercom.io", "https://api.intercom.io"),
    Region("eu", "https://api-iam.eu.intercom.io", "https://api.eu.intercom.io"),
    Region("au", "https://api-iam.au.intercom.io", "https://api.au.intercom.io"),
)
DEFAULT_REGION = "us"  # Intercom's own default, when a workspace names no region
# region -> the Messenger's api_base, the table the configuration's `region` key reads.
REGIONS: Mapping[str, str] = {r.name: r.messenger_api_base for r in _REGIONS}
# region -> the REST API host.
REST_API_BASES: Mapping[str, str] = {r.name: r.rest_api_base for r in _REGIONS}
# The version sent in every REST request's Intercom-Version header, and tested against:
# the first with `messenger_writable` on data attributes (the admin's "Prevent updates
# via the Messenger"), and in which a CDA created through the API defaults to false.
REST_API_VERSION = "2.11"


WIDGET_URL = "https://widget.intercom.io/widget/{app_id}"
# Where an Intercom admin finds the Messenger API secret and "Enforce messenger security"
# (Intercom's own link: app.intercom.com/a/apps/_/settings/channels/messenger/security).
MESSENGER_SECURITY_SETTINGS = "Settings > Channels > Messenger > Security"
# Where an admin finds (and creates) the contact attributes.
PEOPLE_DATA_SETTINGS = "Settings > Data > People"

# -- the Messenger token ------------------------------------------------------------

TOKEN_ALGORITHM = "HS256"  # the only algorithm Intercom documents for Messenger tokens
MAX_USER_ID_CHARS = 255  # Intercom's limit for user_id

# Keys the browser must never set in clear whatever the workspace signs:
# identity (user_id, email) and the legacy HMAC, which has no expiry.
ALWAYS_PROTECTED = ("user_id", "email", "user_hash")
# Boot settings messenger.js itself sets from the token endpoint's answer; a host
# page passing them would boot a different app or replay a stale token.
OWNED_KEYS = ("app_id", "api_base", "intercom_user_jwt")
# The registered JWT claims a Messenger token carries or could carry.
TOKEN_CLAIMS = ("exp", "iat", "nbf", "jti", "iss", "sub", "aud")

# -- attributes ---------------------------------------------------------------------

AttributeType = Literal["string", "integer", "number", "boolean", "date"]

# Standard Intercom user attributes we may sign; every other name is a CDA.
STANDARD_ATTRIBUTES: Mapping[str, AttributeType] = {
    "email": "string",
    "name": "string",
    "phone": "string",
    "created_at": "date",
}
# Intercom's names for the attribute types in Settings > Data > People.
TYPE_LABELS: Mapping[AttributeType, str] = {
    "string": "Text",
    "integer": "Number",
    "number": "Decimal number",
    "boolean": "True or false",
    "date": "Date",
}
# The same types as the REST API's `data_type` values.
DATA_TYPES: Mapping[AttributeType, str] = {
    "string": "string",
    "integer": "integer",
    "number": "float",
    "boolean": "boolean",
    "date": "date",
}

MAX_STRING_CHARS = 255  # characters (code points), not bytes
CDA_SOFT_LIMIT = 250  # active People CDAs per workspace, "about"; a warning, not a refusal
# Intercom treats a key ending in this as a date (Unix seconds) rather than a number.
DATE_SUFFIX = "_at"

# Characters Intercom forbids in custom attribute names (help article 179). It
# silently replaces them with "_", creating a different attribute than meant.
FORBIDDEN_CHARACTERS = frozenset(".$~`!@#%^&*'{}[]|\\\"\x00")

# Names the token or the Messenger use themselves: signing one as an attribute
# would override identity or break the boot settings.
RESERVED_NAMES = frozenset({"user_id", "user_hash", *TOKEN_CLAIMS, *OWNED_KEYS})


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
    if type_ == "date" and not name.endswith(DATE_SUFFIX):
        return f"date attribute {name!r} must end in _at (Intercom treats only _at keys as dates)"
    if type_ != "date" and name.endswith(DATE_SUFFIX):
        return (
            f'{name!r} ends in _at, so Intercom treats it as a date; declare type = "date" '
            "or rename it"
        )
    return None
