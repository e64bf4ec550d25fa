"""Text helpers shared by the enrichment functions: what counts as an absent string, and how a
value derived from user input is made storable in PostgreSQL and Arrow."""

from __future__ import annotations

import re

# The tracker writes `false` or "" for an absent string, and a JSON reader with a string schema
# turns `false`/`null` into the text "false"/"null"; JavaScript trackers also leak "undefined".
# None of these is ever a real referrer, e-mail address or UTM value.
ABSENT_MARKERS = frozenset({"", "false", "null", "none", "undefined", "nan"})

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def present_text(value: object) -> str | None:
    """`value` trimmed if it is a string that carries information, else None (None, False,
    NaN, numbers, "", "false", "null", ... are all "absent")."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lower() in ABSENT_MARKERS:
        return None
    return text


def storable(text: str) -> str:
    """`text` made safe for PostgreSQL `text` and Arrow UTF-8: NUL (which PostgreSQL rejects)
    and lone surrogates (which UTF-8 cannot encode) become U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _LONE_SURROGATE.sub("\ufffd", text)
    return text
