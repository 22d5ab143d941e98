"""Text hygiene shared by every floor: bidirectional control characters removed, and NFKC.

U+202A–U+202E (embeddings and overrides), U+2066–U+2069 (isolates), U+200E/U+200F (the
left-to-right and right-to-left marks) and U+061C (the Arabic letter mark) change how the
text around them is *displayed* without being seen: "‮txt.exe" reads as "exe.txt", and a
headline can be made to say something else in the desk and in all three drafts. The digest's
languages (English, Japanese, Korean) need none of them, so titles, summaries and editors'
fields drop them all. On the ground floor with no project imports, like urls.py.

`nfkc` is `unicodedata.normalize("NFKC", text)`, made cheap for the text news feeds carry:
relevance and story keys normalise every item's title and summary, and Python's NFKC, once a
string holds a single character it changes (the ellipsis that ends a truncated summary, a
full-width digit in a Japanese date), decomposes and recomposes the whole string: ~17 µs for
1,500 characters of English, ~27 µs for 180 of Japanese.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["BIDI_CONTROLS", "ascii_but_quotes", "nfkc", "strip_bidi"]

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


#: Typographic quotes, the only non-ASCII characters of most English feed text (nine items in
#: ten of those not in ASCII among the labelled set's English).
TYPOGRAPHIC_QUOTES = ("\u2019", "\u201c", "\u201d", "\u2018")


def ascii_but_quotes(text: str) -> bool:
    """True when `text` is ASCII but for typographic quotes (‘ ’ “ ”).

    Such text can be read as ASCII text is (no letter, digit, space or Japanese outside
    ASCII; a quote is none of them), with patterns whose classes are ASCII's, which the regex
    engine tests faster. Four `str.replace` passes (~1 µs for 400 characters): a regex class
    of the non-ASCII characters other than quotes costs twice that, `str.translate` seven times.
    """
    if text.isascii():
        return True
    for quote in TYPOGRAPHIC_QUOTES:
        text = text.replace(quote, "")
    return text.isascii()


# Characters that NFKC changes or combines, of the kinds news text holds: Latin-1's no-break
# space and ordinals, the general punctuation's spaces, ellipsis and primes, super- and
# subscripts, letterlike and number forms, enclosed numbers, Kangxi radicals, CJK symbols,
# compatibility and enclosed forms, CJK compatibility ideographs, ligatures, small and
# full- or half-width forms. Not every such character (nor combining marks, which compose
# with the character before them): `nfkc` checks its result and normalises the whole text
# when one is missed. One character class, so the engine skips in C to the next piece.
_COMPAT = re.compile(
    "[\u00a0\u00a8\u00aa\u00af\u00b2-\u00b5\u00b8-\u00ba\u00bc-\u00be"
    "\u2000-\u200a\u2011\u2024-\u2026\u202f\u2033\u2034\u2036\u2037\u203c\u203e"
    "\u2047-\u2049\u2057\u205f\u2070-\u209f\u20a8\u2100-\u2189\u2460-\u24ff"
    "\u2f00-\u2fd5\u3000\u3036\u3038-\u303a\u309b\u309c\u309f\u30ff\u3131-\u318e"
    "\u3192-\u319f\u3200-\u33ff\uf900-\ufaff\ufb00-\ufb4f\ufe10-\ufe19\ufe30-\ufe6b"
    "\ufe70-\ufefc\uff01-\uffee]+"
)


def _nfkc_match(m: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", m.group())


def nfkc(text: str) -> str:
    """`unicodedata.normalize("NFKC", text)`, normalising only the pieces that need it.

    Each piece is replaced by its NFKC form, which is compatibility-equivalent to it, so the
    patched text is equivalent to `text`; when the patched text is in NFKC it is therefore
    NFKC(text) itself (the normal form of an equivalence class is unique). Otherwise (a
    character the pattern does not list, a mark that composes across a piece's edge) the
    whole text is normalised, as before.
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text
    patched = _COMPAT.sub(_nfkc_match, text)
    if unicodedata.is_normalized("NFKC", patched):
        return patched
    return unicodedata.normalize("NFKC", text)
