"""Text that can be signed and stored: valid Unicode, i.e. no lone surrogates.

`json.loads` turns "\\ud800" into a lone surrogate; such a string passes every
type check and then fails when encoded as UTF-8 (signing, SQL parameters).
User ids and attribute values are checked with this one predicate.
"""

from __future__ import annotations


def is_unicode_text(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (ASCII, the common case, is checked without encoding)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
