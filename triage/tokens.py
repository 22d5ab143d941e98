"""The words two reports of one event are compared on, for story clustering (triage/clusters.py).

Kept apart from the clustering (no numpy, no scipy) because the collect flow's parse workers
tokenise new items as they parse them (triage/annotate.py): they should not load what only
the clustering needs.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import zlib
from array import array

__all__ = ["SUMMARY_TOKENS", "story_tokens", "token_set"]

#: Summary words considered: the lead paragraph names the event; later paragraphs drift into
#: background that differs between outlets and only dilutes the overlap.
SUMMARY_TOKENS = 40
#: Function words, press-release boilerplate, and words nearly every alliance item contains.
_STOP_WORDS = """
a about above after again against ago all also am amid among an and any are as at be been
before being between both but by can could did do does during each either for from further
had has have having he her here hers him his how i if in into is it its itself just may might
more most much must my new no nor not now of off on once only or other our out over own said
same say says she should since so some such than that the their them then there these they
this those through to too under until up upon very via was we were what when where whether
which while who whom why will with within without would yet you your
mr ms mrs dr hon honorable excellency local time approximately commencing minute minutes
margin margins sideline sidelines press release releases statement joint readout today
yesterday week
japan japanese japan's us u.s usa united states america american americans alliance
minister ministers ministry foreign affairs defense defence secretary state talk talks
meeting meetings meet meets met hold holds held security agree agrees agreed agreement
cooperation cooperate military force forces two both strengthen strengthened bilateral
deepen boost vow vows vowed region regional further work toward towards first government
official officials country countries nation nations
"""
_STOP = frozenset(_STOP_WORDS.split())

_WORD = re.compile(r"[a-z0-9]+(?:[.'+&][a-z0-9]+)*")
#: Kana and CJK ideographs: Japanese has no spaces, so it is compared by character bigrams.
_CJK = re.compile(r"[\u3041-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
#: Bigrams touching hiragana are mostly particles and verb endings ("を確", "しま").
_HIRAGANA = re.compile(r"[\u3041-\u309f]")
#: Clock times ("9:40 a.m.") are how ministries open a release, not what it is about.
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?:\s*[ap]\.?\s?m\b\.?)?", re.IGNORECASE)
#: Summary characters read first: SUMMARY_TOKENS words fit in them for nearly every summary,
#: and tokenising a whole article body to keep its first words cost most of the time.
_SUMMARY_PREFIX = 600
#: array's typecode for unsigned 32-bit integers.
_U32 = "I" if array("I").itemsize == 4 else "L"


def _word_lists(text: str) -> tuple[list[str], list[str]]:
    """(CJK bigrams, Latin-script words) of `text`, each in text order, stop words dropped."""
    text = unicodedata.normalize("NFKC", text).lower()
    if ":" in text:  # _CLOCK starts with \b, which the engine tests at every character
        text = _CLOCK.sub(" ", text)
    grams: list[str] = []
    for run in _CJK.findall(text):
        pairs = [run] if len(run) == 1 else [run[k:k + 2] for k in range(len(run) - 1)]
        grams += [g for g in pairs if not _HIRAGANA.search(g)]
    words: list[str] = []
    for word in _WORD.findall(text):
        word = word.removesuffix("'s")
        if word in _STOP:
            continue
        # Plural "s" only: "talks"/"talk", "islands"/"island"; a real stemmer would also fold
        # names ("Marles", "Austin") into other words.
        if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
            if word in _STOP:
                continue
        words.append(word)
    return grams, words


def _words(text: str) -> list[str]:
    grams, words = _word_lists(text)
    return grams + words


def _summary_words(text: str) -> list[str]:
    """`_words(text)[:SUMMARY_TOKENS]`, reading only a prefix of the text when that is enough.

    The prefix ends at a space, which no word, CJK run or NFKC composition crosses, so its
    bigrams and words begin the full text's. `_words` lists all bigrams before any word,
    though, so the prefix answers only if its bigrams alone fill the quota, or the rest of the
    text has no CJK to add.
    """
    if len(text) > _SUMMARY_PREFIX:
        cut = text.rfind(" ", 0, _SUMMARY_PREFIX)
        if cut > 0:
            grams, words = _word_lists(text[:cut])
            if len(grams) >= SUMMARY_TOKENS or (
                len(grams) + len(words) >= SUMMARY_TOKENS and not _CJK.search(text, cut)
            ):
                return (grams + words)[:SUMMARY_TOKENS]
    return _words(text)[:SUMMARY_TOKENS]


def story_tokens(title: str | None, summary_text: str | None) -> list[str]:
    """The words two reports of the same event are compared on (see triage/clusters.py)."""
    words = _words(title or "") + _summary_words(summary_text or "")
    return list(dict.fromkeys(words))


def token_set(title: str | None, summary_text: str | None) -> bytes:
    """story_tokens as sorted unique 32-bit hashes (little-endian), as item_tokens stores them."""
    hashes = array(_U32, sorted({zlib.crc32(t.encode("utf-8"))
                                for t in story_tokens(title, summary_text)}))
    if sys.byteorder == "big":
        hashes.byteswap()
    return hashes.tobytes()
