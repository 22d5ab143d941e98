"""`texts.nfkc` is `unicodedata.normalize("NFKC", ·)`, whatever the text.

It normalises only the pieces its pattern lists and checks the result; these tests try every
character of the Basic Multilingual Plane in context, and random mixes of the characters
that combine across pieces (marks, jamo, half-width voicing marks) with those it patches.
"""

from __future__ import annotations

import random
import unicodedata

from alliance_digest.texts import ascii_but_quotes, nfkc


def nf(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def test_every_bmp_character_in_context_normalises_as_unicodedata_does() -> None:
    for code in range(0x20, 0x10000):
        if 0xD800 <= code < 0xE000:  # surrogates are not characters
            continue
        c = chr(code)
        for text in (c, f"Japan {c}…", f"日米{c}ｶﾞ", f"{c}\u0301x"):
            assert nfkc(text) == nf(text), (hex(code), text)


def test_random_mixes_normalise_as_unicodedata_does() -> None:
    rnd = random.Random(7)
    tricky = ("\u0301\u0308\u3099\u309a\uff9e\uff9f\u1100\u1161\u11a8\uac00…\u00a0\u2011"
              "\uff21\uff11\u3000\u2122\u2460\u3300\uf900\ufb01\u00bd\u2026\u0041\u00e9")
    plain = "Japan 日米カがの-., "
    for _ in range(30_000):
        text = "".join(rnd.choice(tricky) if rnd.random() < 0.4 else rnd.choice(plain)
                       for _ in range(rnd.randint(0, 14)))
        assert nfkc(text) == nf(text), repr(text)


def test_normalised_and_ascii_text_come_back_as_they_are() -> None:
    for text in ("", "U.S.-Japan alliance", "日米同盟の強化", "“Quad” talks"):
        assert nfkc(text) is text


def test_ascii_but_quotes_is_every_character_ascii_or_a_typographic_quote() -> None:
    rng = random.Random(3)
    alphabet = "ab ’‘“”é\u2028\x85日\x7f\x80"
    for _ in range(20_000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        expected = all(ch.isascii() or ch in "‘’“”" for ch in text)
        assert ascii_but_quotes(text) is expected, text
