"""What an item says about its development, for story clustering (triage/clusters.py).

Two reports of one development share names, places, programmes, numbers and dates, and say
what happened (a call, a meeting, a crash, a launch) in their own words — in English or in
Japanese. Each item becomes a set of *keys*, hashed to 32 bits:

    word      an English content word ("counterstrike") or a Japanese noun (Sudachi's
              normalised form: 反撃): compared only between items of one language
    name      a proper noun's consonant skeleton: "Blinken" and ブリンケン (read by Sudachi,
              romanised by jaconv: burinken) are both "brnkn"; 岸田 (キシダ) and "Kishida"
              are "ksd"; オスプレイ and "Osprey" are "spr"
    concept   a term of the bilingual table `story_terms.toml`: 電話会談 and "phone call" are
              `call`, 日米韓 and "trilateral" are `trilateral`
    code      programme and model codes and numbers: F-35B, SM-3, "2+2" (2プラス2), ILEX 23-1,
              $550 billion and 5500億ドル (one value), a day of the month ("Nov. 29", 29日)

Names, concepts and codes cross languages; words do not. The title's keys are also kept
apart (a headline says what the item is about), and a few facts are read from the title:
which third countries take part (Korea, Australia, the Philippines, India), the level
(leaders, foreign or defence ministers, vice ministers), a call or a meeting, the day of the
month, and whether it previews something to come. triage/clusters.py turns two items' keys
and facts into the probability that they report the same development.

Kept apart from the clustering (no numpy, no scipy) because the collect flow's parse workers
compute this as they parse (triage/annotate.py). Japanese text loads Sudachi's dictionary
(about 80 MB, memory-mapped) the first time a worker meets a Japanese item; English text
never does.
"""

from __future__ import annotations

import functools
import re
import struct
import sys
import tomllib
import unicodedata
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import compress
from typing import Any

from ..texts import ascii_but_quotes, nfkc

__all__ = ["StoryKeys", "pack", "story_keys", "token_set", "unpack"]

#: Key classes, in the top two bits of each hash. Words compare within one language only.
WORD, NAME, CONCEPT, CODE = 0, 1, 2, 3
_CLASS_SHIFT = 30
_HASH_MASK = (1 << _CLASS_SHIFT) - 1
#: The packed format's first bytes; anything else (an older format) is made again from text.
MAGIC = b"SK3"  # SK3: hyphenated compounds name their parts' concepts
#: Summary characters read: the lead paragraphs name the development; later ones drift into
#: background that differs between outlets, and reading a whole article costs time.
SUMMARY_CHARS = 700

#: Facts read from the title, packed into one 32-bit integer (see `Facts`).
PARTIES = ("korea", "australia", "philippines", "india")
LEVELS = ("leader", "foreign-minister", "defense-minister", "vice-minister", "two-plus-two")
#: What happened, as a title names it: two titles naming different events differ.
EVENTS = ("call", "summit", "meeting", "two-plus-two", "visit", "briefing", "crash", "launch",
          "exercise",
          "grounding", "lawsuit", "acquisition", "election", "resign", "inauguration",
          "agreement", "deployment", "export", "sanctions", "earthquake", "condolence",
          "nomination", "court-martial", "landfill", "relocation")

_STOP_WORDS = """
a about above after again against ago all also am amid among an and any are as at be been
before being between both but by can could did do does during each either for from further
had has have having he her here hers him his how i if in into is it its itself just may might
more most much must my new no nor not now of off on once only or other our out over own said
same say says she should since so some such than that the their them then there these they
this those through to too under until up upon very via was we were what when where whether
which while who whom why will with within without would yet you your
mr ms mrs dr hon honorable excellency local time approximately commencing minute minutes
margin margins sideline sidelines press release releases today yesterday week
monday tuesday wednesday thursday friday saturday sunday
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec
"""
_STOP = frozenset(_STOP_WORDS.split())
#: Capitalised words that are not names even when no lower-case twin is in the text.
_NOT_NAME_WORDS = """the this that these those he she it they we our their his her its
a an on in at for of and with to by from as after before during secretary minister ministers
prime president department office state defense defence foreign affairs spokesperson readout
statement joint press release u.s us usa united states japan japanese america american
lead update updated breaking news photo video"""
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())

_WORD = re.compile(r"[a-z0-9]+(?:[.'+&-][a-z0-9]+)*")
# `\b[A-Z]…` and `\b[a-z]…`, written with the letter first and the word boundary as a look-
# behind at the character before it: the engine skips in C to the next letter of the class
# instead of testing a boundary at every character (half the time for capitals).
_CAPITALISED = re.compile(r"[A-Z](?<!\w.)[a-zA-Z'’]+(?:-[A-Z][a-zA-Z]+)*")
_CODE = re.compile(
    r"(?<![a-z0-9])([a-z]{1,6}-?\d{1,4}[a-z]?|\d+\+\d+|\d{1,3}-\d{1,3})(?![a-z0-9])")
_CJK = re.compile(r"[\u3041-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3041-\u30ff]")
_KATAKANA = re.compile(r"[\u30a0-\u30ff]+")
_LATIN_TOKEN = re.compile(r"[a-z][a-z0-9+-]*")
_LOWER_WORD = re.compile(r"[a-z](?<!\w.)[a-z'’-]+")
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_EN_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})\b")
_JA_DAY = re.compile(r"(?:\d{1,2}月)?(\d{1,2})日")
_EN_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*(million|billion|trillion|bn|tn)\b")
_SCALE = {"million": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12, "tn": 1e12}
_EN_PREVIEW = re.compile(
    r"\b(?:ahead of|preview|previewing|background (?:press )?(?:call|briefing)|to visit|"
    r"will visit|will meet|will hold|set to|plans to|to meet|to hold|to host|upcoming|"
    r"next week|expected to)\b")
_JA_PREVIEW = re.compile(r"(?:予定|前に|事前|見通し|調整|来週|あす)")
_DIGIT = re.compile(r"\d")
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?:\s*[ap]\.?\s?m\b\.?)?", re.IGNORECASE)
#: Romanisation to a consonant skeleton: spellings that Japanese katakana folds together
#: (l/r, v/b, th/s, m/n before consonants…) are folded the same way in English.
_SKELETON_RULES = (("tch", "c"), ("ch", "c"), ("sh", "s"), ("ph", "f"), ("th", "s"),
                   ("ts", "s"), ("ck", "k"), ("qu", "k"), ("q", "k"), ("x", "ks"), ("dg", "j"),
                   ("ng", "n"), ("ce", "se"), ("ci", "si"), ("cy", "si"), ("c", "k"),
                   ("z", "s"), ("l", "r"), ("v", "b"), ("m", "n"), ("j", "z"))
_VOWELS = re.compile(r"[aeiouwyh]")
_REPEATS = re.compile(r"(.)\1+")
_NOT_LETTERS = re.compile(r"[^a-z]")
_U32 = "I" if array("I").itemsize == 4 else "L"


@dataclass(frozen=True, slots=True)
class Facts:
    """What a title says about the development, beside its words (all optional).

    Packed into 46 bits (`pack`) so a pool of thousands compares them as integer arrays.
    """

    japanese: bool = False
    #: Third countries named in the title / anywhere in the item (bits of PARTIES).
    parties_title: int = 0
    parties_text: int = 0
    #: Officials' level named in the title (bits of LEVELS).
    level: int = 0
    #: 1 a call, 2 a meeting, 0 neither said.
    meeting: int = 0
    #: Day of the month the title or first sentence names (0: none).
    day: int = 0
    preview: bool = False
    #: Events the title names (bits of EVENTS).
    events: int = 0

    def pack(self) -> int:
        return (int(self.japanese) | self.parties_title << 1 | self.parties_text << 5
                | self.level << 9 | self.meeting << 14 | self.day << 16 | int(self.preview) << 21
                | self.events << 22)

    @classmethod
    def unpack(cls, value: int) -> Facts:
        return cls(bool(value & 1), value >> 1 & 15, value >> 5 & 15, value >> 9 & 31,
                   value >> 14 & 3, value >> 16 & 31, bool(value >> 21 & 1),
                   value >> 22 & ((1 << len(EVENTS)) - 1))


@dataclass(frozen=True, slots=True)
class StoryKeys:
    """An item's keys (sorted 32-bit hashes, class in the top bits) and title facts."""

    #: A tuple when made from text (`story_keys`), an array of 32-bit integers when read back
    #: (`unpack`): a clustering chunk's window unpacks tens of thousands of items, and as
    #: tuples their keys' Python integers took ~5 KB an item (160 MB for 30,000), as arrays 0.6.
    keys: Sequence[int]
    title_keys: Sequence[int]
    facts: Facts


# --- the bilingual concept table ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Concepts:
    #: English phrases as word tuples (as _WORD splits them) -> concept; longest first wins.
    english: dict[tuple[str, ...], str]
    #: For each first word of a phrase, the lengths of the phrases it starts, longest first.
    starts: dict[str, tuple[int, ...]]
    japanese: tuple[tuple[str, str], ...]


@functools.cache
def _concepts() -> _Concepts:
    """story_terms.toml as a phrase table (English) and a list of substrings (Japanese)."""
    table = tomllib.loads(resources.files(__package__).joinpath("story_terms.toml")
                          .read_text(encoding="utf-8"))
    english: dict[tuple[str, ...], str] = {}
    japanese: list[tuple[str, str]] = []
    for concept, terms in table.items():
        for phrase in terms.get("en", []):
            words = tuple(_WORD.findall(unicodedata.normalize("NFKC", phrase).lower()))
            if words:
                english.setdefault(words, concept)
        for term in terms.get("ja", []):
            japanese.append((unicodedata.normalize("NFKC", term), concept))
    starts: dict[str, set[int]] = {}
    for words in english:
        starts.setdefault(words[0], set()).add(len(words))
    return _Concepts(english, {w: tuple(sorted(n, reverse=True)) for w, n in starts.items()},
                     tuple(japanese))


def _english_concepts(words: list[str]) -> set[str]:
    """Concepts of a lower-cased word list: at each word the longest phrase that starts there."""
    table = _concepts()
    starts, english = table.starts, table.english
    found: set[str] = set()
    after = 0  # a phrase found covers its words: the next one starts after it
    # The positions of the words a phrase starts with, found in C (compress over a map).
    for k in list(compress(range(len(words)), map(starts.__contains__, words))):
        if k < after:
            continue
        for length in starts[words[k]]:
            concept = english.get(tuple(words[k:k + length]))
            if concept is not None:
                found.add(concept)
                after = k + length
                break
    return found


def _japanese_concepts(text: str) -> set[str]:
    return {concept for term, concept in _concepts().japanese if term in text}


# --- names ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def skeleton(word: str) -> str:
    """A romanised word's consonant skeleton: "Blinken" and "burinken" are both "brnkn"."""
    w = _NOT_LETTERS.sub("", word.lower())
    if not w:
        return ""
    for old, new in _SKELETON_RULES:
        w = w.replace(old, new)
    head = "" if w[0] in "aeiouwy" else w[0]
    return _REPEATS.sub(r"\1", head + _VOWELS.sub("", w[1:]))


def katakana_skeleton(kana: str) -> str:
    """The skeleton of a katakana reading (ブリンケン -> burinken -> "brnkn")."""
    import jaconv

    return skeleton(jaconv.kana2alphabet(jaconv.kata2hira(kana)).replace("-", ""))


@functools.cache
def _sudachi() -> Any:
    """Sudachi's tokenizer with its packaged dictionary (sudachidict-core), loaded once."""
    from sudachipy import dictionary

    return dictionary.Dictionary().tokenizer()


# --- keys ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 17)
def _key(kind: int, text: str) -> int:
    return kind << _CLASS_SHIFT | (zlib.crc32(text.encode("utf-8")) & _HASH_MASK)


def _codes(low: str, keys: set[int]) -> None:
    for m in _CODE.finditer(low):
        keys.add(_key(CODE, m.group(1).replace("-", "")))


class _Memo(dict[str, Any]):
    """A function's results by argument, started again when `size` are held: hostile text of
    ever new words costs one computation a word, no more. An item's words are looked up with
    `map(memo.__getitem__, words)`: a dict's own look-up in C, about half of an lru_cache's
    (which also moves each hit to the front of its list)."""

    def __init__(self, fn: Callable[[str], Any], size: int) -> None:
        super().__init__()
        self.fn = fn
        self.size = size

    def __missing__(self, key: str) -> Any:
        if len(self) >= self.size:
            self.clear()
        value = self[key] = self.fn(key)
        return value


def _word_key(word: str) -> int | None:
    """The key of one lower-case English word (plural "s" folded), None for a stop word."""
    word = word.removesuffix("'s")
    if word in _STOP or len(word) < 2:
        return None
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
        if word in _STOP:
            return None
    return _key(WORD, word)


def _name_keys(word: str) -> tuple[int, ...]:
    """The keys of a capitalised word taken as a name (each part of "Kim-Jong")."""
    keys: list[int] = []
    for part in word.lower().split("-"):
        sk = skeleton(part)
        if len(sk) >= 2:
            keys.append(_key(NAME, sk))
            if part.endswith("s") and len(sk) > 3:  # Philippines / フィリピン
                keys.append(_key(NAME, sk[:-1]))
    return tuple(keys)


_WORD_KEYS = _Memo(_word_key, 1 << 16)
_NAME_KEYS = _Memo(_name_keys, 1 << 16)


def _english_keys(text: str, lower_words: set[str]) -> tuple[set[int], set[str]]:
    """An English text's keys, and its concepts.

    `lower_words`: the words the whole item (title and summary) uses in lower case.
    """
    low = text.lower()
    if ":" in low:
        low = _CLOCK.sub(" ", low)
    words = _WORD.findall(low)
    if "'s" in low:
        words = [w.removesuffix("'s") for w in words]
    keys = set(map(_WORD_KEYS.__getitem__, set(words)))  # one C loop through the memo
    keys.discard(None)
    # A capitalised word is a name when the item never uses it in lower case ("Framework"
    # in a Title Case headline is "framework" in the summary).
    # (A name's keys depend only on its lower case: one look-up per distinct lower-case
    # word, and the set differences in C.)
    capitalised = set(_CAPITALISED.findall(text))
    if "'s" in text or "’s" in text:
        lowered = {w.removesuffix("'s").removesuffix("’s").lower() for w in capitalised}
    else:
        lowered = set(map(str.lower, capitalised))
    keys.update(*map(_NAME_KEYS.__getitem__,
                     lowered.difference(_NOT_NAMES, _STOP, lower_words)))
    concepts = _english_concepts(words)
    # A hyphenated compound names each of its parts ("Japan-Australia-India-U.S.",
    # "U.S.-Japan-ROK"): its countries and terms count as if written apart.
    if "-" in low and "-" in (joined := " ".join(words)):  # words hold no space: split
        concepts |= _english_concepts(joined.replace("-", " ").split())  # in C, empties dropped
    keys.update(_key(CONCEPT, c) for c in concepts)
    if _DIGIT.search(low):  # every pattern below needs a digit (\d)
        _codes(low, keys)
        for m in _EN_DAY.finditer(low):
            keys.add(_key(CODE, f"day{int(m.group(1))}"))
        for m in _EN_AMOUNT.finditer(low):
            keys.add(_key(CODE, f"{float(m.group(1)) * _SCALE[m.group(2)]:.3g}"))
    return keys, concepts  # type: ignore[return-value]


def _japanese_keys(text: str, _lower_words: set[str]) -> tuple[set[int], set[str]]:
    """A Japanese text's keys, and its concepts."""
    keys: set[int] = set()
    for m in _sudachi().tokenize(text):
        pos = m.part_of_speech()
        surface = m.surface()
        if pos[0] != "名詞" and not _LATIN_TOKEN.fullmatch(surface.lower()):
            continue
        if pos[1] == "数詞":
            try:
                value = float(m.normalized_form())
            except ValueError:
                continue
            if value >= 1e6:  # amounts (5500億 = 5.5e11); small numbers are days and counts
                keys.add(_key(CODE, f"{value:.3g}"))
            continue
        if not _CJK.search(surface):
            low = surface.lower()
            if _LATIN_TOKEN.fullmatch(low) and len(low) >= 2:
                keys.add(_key(WORD, low))
                if not any(ch.isdigit() for ch in low) and len(sk := skeleton(low)) >= 2:
                    keys.add(_key(NAME, sk))
            continue
        keys.add(_key(WORD, m.normalized_form()))
        if pos[1] == "固有名詞" or _KATAKANA.fullmatch(surface):
            reading = m.reading_form()
            if _KATAKANA.fullmatch(reading) and len(sk := katakana_skeleton(reading)) >= 2:
                keys.add(_key(NAME, sk))
    concepts = _japanese_concepts(text)
    for concept in concepts:
        keys.add(_key(CONCEPT, concept))
    low = text.lower().replace("プラス", "+")
    _codes(low, keys)
    for m in _JA_DAY.finditer(text):
        keys.add(_key(CODE, f"day{int(m.group(1))}"))
    return keys, concepts


def _is_japanese(text: str) -> bool:
    if ascii_but_quotes(text):  # most English: no scan for kana and kanji
        return False
    return bool(_KANA.search(text)) or len(_CJK.findall(text)) >= 4


def _facts(title: str, lead: str, japanese: bool, title_concepts: set[str],
           text_concepts: set[str]) -> Facts:
    parties_text = (sum(1 << k for k, p in enumerate(PARTIES) if p in text_concepts)
                    if text_concepts else 0)
    parties_title = level = meeting = events = 0
    if title_concepts:  # most titles name no concept: nothing below to add up
        named = title_concepts | ({"australia", "india"} if "quad" in title_concepts else set())
        parties_title = sum(1 << k for k, p in enumerate(PARTIES) if p in named)
        if "vice-minister" in title_concepts:
            level = 1 << LEVELS.index("vice-minister")
        else:
            level = sum(1 << k for k, name in enumerate(LEVELS) if name in title_concepts)
        meeting = (1 if "call" in title_concepts
                   else 2 if title_concepts & {"meeting", "summit", "two-plus-two"} else 0)
        events = sum(1 << k for k, name in enumerate(EVENTS) if name in title_concepts)
    day = 0
    for part in (title, lead):
        found = _JA_DAY.search(part) if japanese else _EN_DAY.search(part.lower())
        if found:
            day = int(found.group(1))
            break
    preview = bool(_JA_PREVIEW.search(title) if japanese else _EN_PREVIEW.search(title.lower()))
    return Facts(japanese, parties_title, parties_text, level, meeting,
                 day if 0 < day < 32 else 0, preview, events)


def story_keys(title: str | None, summary_text: str | None) -> StoryKeys:
    """The keys and title facts of one item (see the module docstring)."""
    title = nfkc(title or "").strip()
    summary = nfkc((summary_text or "")[:SUMMARY_CHARS]).strip()
    japanese = _is_japanese(title + summary)
    make = _japanese_keys if japanese else _english_keys
    lower_words = set() if japanese else set(_LOWER_WORD.findall(f"{title} {summary}"))
    title_keys, title_concepts = make(title, lower_words) if title else (set(), set())
    summary_keys, summary_concepts = (make(summary, lower_words) if summary
                                      else (set(), set()))
    lead = re.split(r"(?<=[.!?。])\s*", summary, maxsplit=1)[0] if summary else ""
    facts = _facts(title, lead, japanese, title_concepts, title_concepts | summary_concepts)
    return StoryKeys(tuple(sorted(title_keys | summary_keys)), tuple(sorted(title_keys)), facts)


def token_set(title: str | None, summary_text: str | None) -> bytes:
    """story_keys packed as item_tokens stores them (see `pack`)."""
    return pack(story_keys(title, summary_text))


def pack(sk: StoryKeys) -> bytes:
    """StoryKeys as bytes: MAGIC, facts and counts, then the hashes (little-endian)."""
    keys = array(_U32, sk.keys)
    title_keys = array(_U32, sk.title_keys)
    if sys.byteorder == "big":
        keys.byteswap()
        title_keys.byteswap()
    return (MAGIC + struct.pack("<QHH", sk.facts.pack(), len(keys), len(title_keys))
            + keys.tobytes() + title_keys.tobytes())


def unpack(blob: bytes | None) -> StoryKeys | None:
    """token_set's bytes back as StoryKeys; None for an older format (re-tokenise the text)."""
    if not blob or not blob.startswith(MAGIC):
        return None
    facts, n_keys, n_title = struct.unpack_from("<QHH", blob, len(MAGIC))
    start = len(MAGIC) + 12
    keys = array(_U32)
    keys.frombytes(blob[start:start + 4 * n_keys])
    title_keys = array(_U32)
    title_keys.frombytes(blob[start + 4 * n_keys:start + 4 * (n_keys + n_title)])
    if sys.byteorder == "big":
        keys.byteswap()
        title_keys.byteswap()
    return StoryKeys(keys, title_keys, Facts.unpack(facts))
