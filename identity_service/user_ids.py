"""What a user id is: the one rule every way in applies before any lookup or signing.

A user id is text that names one user the same way everywhere it goes: the
profile query, the token, Intercom, the logs. So it is valid Unicode (no lone
surrogate, which no encoder takes) and holds no control character: NUL is
refused by PostgreSQL's text type (so "victim\\x00admin" would read as a database
outage), and tabs, newlines and the other C0/C1 controls, or the Unicode line
separators, are invisible or split lines in every place an id is shown. A
workspace can narrow this further with `user_id_pattern`, matched in full.
"""

from __future__ import annotations

import re

from identity_service.text import is_unicode_text

# C0 controls (NUL, TAB, LF, CR...), DEL, C1 controls, LINE and PARAGRAPH SEPARATOR.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def user_id_problem(user_id: str, pattern: re.Pattern[str] | None = None) -> str | None:
    """Why `user_id` cannot name a user (None when it can). Length is the token's rule."""
    if not is_unicode_text(user_id):
        return "the user id is not valid Unicode text"
    if _CONTROL.search(user_id):
        return "the user id contains a control character"
    if pattern is not None and pattern.fullmatch(user_id) is None:
        # fullmatch, not match: "1\n" must not pass "[0-9]+$" the way `$` lets it.
        return "the user id does not have this workspace's form (user_id_pattern)"
    return None
