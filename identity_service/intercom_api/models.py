"""Intercom's data attribute, as the Data Attributes API returns it, parsed strictly.

Only the fields the check relies on are kept, and each is required with its
type: a security check must never read a missing `messenger_writable` as
"protected", so an answer without it is an error, not a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from identity_service.errors import IntercomResponseError


@dataclass(frozen=True)
class DataAttribute:
    """One contact data attribute in Intercom (standard or custom)."""

    name: str
    data_type: str  # string, integer, float, boolean, date (Intercom's names)
    custom: bool
    archived: bool
    messenger_writable: bool  # False = "Prevent updates via the Messenger" (API 2.11+)
    api_writable: bool
    id: str | None = None  # custom attributes only
    description: str = ""

    @classmethod
    def parse(cls, item: Any) -> DataAttribute:
        """One element of a list answer, or a create/update answer."""
        if not isinstance(item, Mapping) or item.get("type") != "data_attribute":
            raise IntercomResponseError("Intercom sent something that is not a data attribute")
        name = _field(item, "name", str, "?")
        custom = _field(item, "custom", bool, name)
        raw_id = item.get("id")
        if custom and not isinstance(raw_id, (int, str)):
            raise IntercomResponseError(f"Intercom sent custom attribute {name!r} without an id")
        if "messenger_writable" not in item:
            raise IntercomResponseError(
                f"Intercom sent attribute {name!r} without messenger_writable: the answer is "
                "from an API version before 2.11, which cannot say whether it is protected"
            )
        return cls(
            name=name,
            data_type=_field(item, "data_type", str, name),
            custom=custom,
            archived=_field(item, "archived", bool, name),
            messenger_writable=_field(item, "messenger_writable", bool, name),
            api_writable=bool(item.get("api_writable", True)),
            id=None if raw_id is None else str(raw_id),
            description=item.get("description") or "",
        )


def parse_list(document: Any) -> list[DataAttribute]:
    """The answer to GET /data_attributes: {"type": "list", "data": [...]} (not paginated)."""
    if not isinstance(document, Mapping) or document.get("type") != "list":
        raise IntercomResponseError("Intercom's answer to the data attribute list is not a list")
    data = document.get("data")
    if not isinstance(data, list):
        raise IntercomResponseError("Intercom's data attribute list has no data array")
    return [DataAttribute.parse(item) for item in data]


def _field(item: Mapping[str, Any], key: str, kind: type, name: str) -> Any:
    value = item.get(key)
    if not isinstance(value, kind):
        raise IntercomResponseError(
            f"Intercom sent attribute {name!r} without a valid {key} ({kind.__name__})"
        )
    return value
