"""Text hygiene shared by every floor: bidirectional control characters removed.

U+202A–U+202E (embeddings and overrides), U+2066–U+2069 (isolates), U+200E/U+200F (the
left-to-right and right-to-left marks) and U+061C (the Arabic letter mark) change how the
text around them is *displayed* without being seen: "‮txt.exe" reads as "exe.txt", and a
headline can be made to say something else in the desk and in all three drafts. The digest's
languages (English, Japanese, Korean) need none of them, so titles, summaries and editors'
fields drop them all. On the ground floor with no project imports, like urls.py.
"""

from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "strip_bidi"]

BIDI_CONTROLS = frozenset(
    [
        *map(chr, range(0x202A, 0x202F)),
        *map(chr, range(0x2066, 0x206A)),
        "\u200e",
        "\u200f",
        "\u061c",
    ]
)
# A character class, not str.translate: translate looks every character up in a dict, which
# made this a tenth of a parse worker's time on non-ASCII feeds; the regex scans in C.
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def strip_bidi(text: str) -> str:
    """`text` without bidirectional control characters."""
    return _BIDI.sub("", text) if not text.isascii() else text
