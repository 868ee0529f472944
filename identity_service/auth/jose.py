"""JOSE's strict encodings: JSON objects without duplicate members, canonical unpadded base64url.

A JWS header, payload or JWK Set means one thing to us only if it can mean
nothing else to another parser: both readings here refuse what lenient ones
would accept (a repeated member, NaN, padding, a stray character, unused bits
set), so a token cannot say one thing to us and another to its issuer.
"""

from __future__ import annotations

import binascii
import json
from typing import Any, NoReturn

_B64URL_INDEX = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
# The last character of 2 (or 3) leftover characters carries 4 (or 2) bits no byte uses.
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def load_json_object(data: bytes | str) -> dict[str, Any]:
    """Parse a JSON object as JOSE requires: duplicate member names and NaN/Infinity refused.

    With `json.loads` the last duplicate wins, so a header or payload could
    mean one thing to us and another to a different parser (RFC 7515 §5.2,
    RFC 8725 §3.6); refusing is the only safe reading.
    """
    try:
        # JWS and JWKS JSON is UTF-8 (RFC 7515 §5.1, RFC 8259 §8.1); a bad byte is ValueError.
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _STRICT_DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _refuse(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not valid JSON")


# Built once: `json.loads(..., object_pairs_hook=...)` would build a decoder per call.
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_refuse_duplicates, parse_constant=_refuse)


def b64url_decode(segment: str) -> bytes:
    """Unpadded, canonical base64url (RFC 7515 §2); anything else is ValueError.

    Canonical means the last character's unused low bits are zero: checked on
    that one character rather than by encoding the result again (a third of the
    work of verifying a token, RSA aside).
    """
    leftover = len(segment) % 4
    if leftover == 1:
        raise ValueError("impossible base64url length")
    if "+" in segment or "/" in segment or "=" in segment:
        raise ValueError("not base64url: standard alphabet or padding")
    try:
        standard = segment.encode("ascii").translate(_URLSAFE_TO_STANDARD)
        # strict_mode refuses every character outside the alphabet (the lenient
        # default would skip them), so a decoded segment is exactly the sent one.
        data = binascii.a2b_base64(standard + b"=" * (-leftover % 4), strict_mode=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("invalid base64url") from None
    if leftover and _B64URL_INDEX[segment[-1]] & _UNUSED_BITS[leftover]:
        raise ValueError("non-canonical base64url")
    return data
