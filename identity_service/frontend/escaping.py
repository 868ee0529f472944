"""What may be written into a page, and how: inline JSON, CSP nonces, script URLs, attributes.

Every value the embed writes into HTML passes one of these; anything that
cannot be written safely is refused with `UnsafeSnippetError`, never
"cleaned" into something else.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlsplit

from identity_service.errors import UnsafeSnippetError

# A nonce goes into a double-quoted attribute unescaped only because it can
# hold nothing but base64 / base64url characters (the rule intercom-rails uses).
_NONCE = re.compile(r"[A-Za-z0-9+/_-]{8,256}={0,2}")
# In <script> text, "<" could close the element or open "<!--"; ">" and "&"
# matter in XHTML and attribute reuse; U+2028/U+2029 end a line in older
# JavaScript engines. Escaped as \u003c-style sequences they mean the same JSON value.
_INLINE_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_INLINE_PATTERN = re.compile("[<>&\u2028\u2029]")
# In a script or widget URL: "\\" (a "/" to browsers), C0/C1 controls, DEL, space.
_URL_UNSAFE = re.compile(r"[\\\x00-\x20\x7f-\x9f]")


def inline_json(value: Any) -> str:
    """JSON that is safe as the text of an HTML `<script>` element.

    ASCII-only output (`ensure_ascii`), so the value survives whatever charset
    the host page declares and its CSP hash is unambiguous; then every
    character that HTML's script parsing treats specially is \\u-escaped.
    """
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return _INLINE_PATTERN.sub(lambda m: _INLINE_ESCAPES[m.group()], text)


def check_nonce(nonce: str) -> str:
    """Return `nonce` if it is base64/base64url text of sensible length; refuse anything else."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise UnsafeSnippetError(
            "CSP nonce refused: it must be 8-256 base64 or base64url characters "
            "(generate one with secrets.token_urlsafe(16))"
        )
    return nonce


def check_script_url(url: str) -> str:
    """Allow only http(s) URLs and absolute paths as a script source (never javascript: etc.).

    Browsers read a backslash as "/" in http(s) URLs and drop tabs and newlines,
    so "/\\evil.example/m.js" or "/\t/evil.example/m.js" would load from
    evil.example while looking like a path here: any backslash, control
    character or whitespace is refused, as is a protocol-relative "//host".
    """
    if not isinstance(url, str) or _URL_UNSAFE.search(url) or any(c.isspace() for c in url):
        raise UnsafeSnippetError(
            "script URL must not contain backslashes, whitespace or control characters, "
            f"got {url!r}"
        )
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"} and parts.netloc:
        return url
    if not parts.scheme and not parts.netloc and url.startswith("/") and not url.startswith("//"):
        return url
    raise UnsafeSnippetError(f"script URL must be https://..., http://... or /path, got {url!r}")


def html_attribute(value: str) -> str:
    """`value` escaped for a double-quoted HTML attribute."""
    return html.escape(value, quote=True)
