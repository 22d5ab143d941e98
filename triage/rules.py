"""Relevance rules: read from TOML, validated, compiled once into fast regexes.

Where the rules come from (first that exists wins):

1. a `[relevance]` table in digest.toml;
2. a `relevance.toml` file next to digest.toml;
3. the packaged default `relevance.toml` (its header comments document the format).

Text and terms go through the same normalisation (`normalise`): NFKC (full-width ＵＳＦＪ becomes
USFJ, half-width katakana becomes full-width), the upper-case abbreviations "US", "U.S.", "USA" and
"U.S.A." become the one token "u.s." (before case folding, so the pronoun "us" stays apart), then
case folding, and every dash becomes "-". Latin-script terms match whole words only ("Quad" does
not match "Quadrennial"); a space or hyphen in a term matches any run of spaces and hyphens, so
"U.S.-Japan" also matches "U.S. – Japan"; a trailing `*` matches any word ending ("Okinawa*").
Terms holding Japanese script match anywhere (Japanese has no spaces between words).

All terms of all groups compile into one matcher: one regex alternation for Latin-script
terms, built from a trie (a scan tries one branch per character, not every term at every
position), and one for Japanese terms. Each match is the longest term at a word start (any
position for Japanese); the next search starts one character after that start, so terms
inside or overlapping longer ones are found too ("Japan" in "U.S.-Japan alliance"), and
shorter terms sharing a start ("U.S." in "U.S.-Japan") come from a table made at compile time.
One scan of title and summary per item, whatever the number of groups: 100,000 items score in
seconds.

The patterns consume what they match, rather than looking ahead from every position, because
then they begin with something the regex engine can skip to in C: the Latin one with the
non-word character before a term (a space, a dash, a kanji), the Japanese one with the first
characters of its terms. Japanese text, which the lookahead tried term by term at every
character, scans in less than half the time. The Latin pattern comes in three spellings of
one meaning, chosen by the text: ASCII classes for ASCII text; for text holding Japanese,
the alternation first (with the look-behind after a term's first character), so the engine
skips over the kanji and kana, where the non-word character first would stop at each.
`Matcher.latin_terms`/`japanese_terms` keep the tries' alternations:
tests/relevance_reference.py scans with the lookaheads they replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import DEFAULT_CONFIG, PACKAGE_DIR, Settings, read_toml
from ..texts import ascii_but_quotes, nfkc

#: The packaged default rules.
DEFAULT_RULES = PACKAGE_DIR / "relevance.toml"
#: Source fields a prior can match on.
PRIOR_FIELDS = ("name", "category", "owner", "country")

_TOP_KEYS = frozenset({"threshold", "title_factor", "summary_chars", "false_friends", "groups",
                       "combos", "priors"})
_GROUP_KEYS = frozenset({"weight", "max", "terms", "description"})
_COMBO_KEYS = frozenset({"name", "all", "none", "weight", "description"})
_PRIOR_KEYS = frozenset({"name", "weight", "implies", "description", *PRIOR_FIELDS})

# Hiragana, katakana, CJK ideographs (and their extensions), the iteration mark and the long-vowel
# mark: a term holding any of these is Japanese and matches as a substring.
_JAPANESE_CHARS = r"\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_JAPANESE = re.compile(f"[{_JAPANESE_CHARS}]")
# A word character for Latin terms' boundaries: Japanese script does not count, since Japanese
# text runs Latin words straight into kana ("USFJ司令官").
_WORD = f"[^\\W{_JAPANESE_CHARS}]"
_NON_WORD = f"[\\W{_JAPANESE_CHARS}]"
_IS_WORD = re.compile(_WORD)
# Upper-case US abbreviations, read before case folding (the pronoun "us" must not match).
# The "U" comes before the look-behind (which then checks the character before it) so that
# the pattern starts with a literal: the engine jumps from one "U" to the next instead of
# testing the look-behind at every character.
_US_ABBREV = re.compile(r"U(?<![\w.]U)\.?S\.?(?:A\.?)?(?![\w])")
_DASHES = re.compile(r"[\u2010-\u2015\u2212\ufe58\ufe63]")
_SEPARATORS = re.compile(r"[\s\-]+")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9_]+$")
#: Matched spellings a Matcher remembers (its `cache`) before it starts again.
_CACHE_SIZE = 4096


def normalise(text: str) -> str:
    """Text as rules see it: NFKC, US abbreviations as "u.s.", case-folded, plain dashes."""
    if text.isascii():  # (known without a scan) NFKC keeps it, no dashes, casefold = lower
        return _US_ABBREV.sub("u.s.", text).lower()
    # English set with typographic quotes, dashes and ellipses: NFKC keeps the quotes and
    # dashes and makes the ellipsis three dots, `_DASHES` makes the dashes plain ones, which
    # the US abbreviations cannot tell apart; with nothing else outside ASCII, neither NFKC nor
    # full case folding has anything left to do.
    plain = text.replace("\u2014", "-").replace("\u2013", "-").replace("\u2026", "...")
    if ascii_but_quotes(plain):
        return _US_ABBREV.sub("u.s.", plain).lower()
    text = nfkc(text)
    text = _US_ABBREV.sub("u.s.", text)
    return _DASHES.sub("-", text.casefold())


def match_key(text: str) -> str:
    """The lookup key of a normalised match: separators collapsed to one space."""
    return _SEPARATORS.sub(" ", text).strip()


def is_japanese(term: str) -> bool:
    """True when a term holds Japanese script (and so matches as a substring)."""
    return bool(_JAPANESE.search(term))


#: What one matched term means: (group index, term as written in the rules, weight).
Hit = tuple[int, str, float]
#: The group index of false friends in hits.
FALSE_FRIEND = -1


@dataclass(frozen=True, slots=True)
class Matcher:
    """Compiled terms (of every group): regexes, and the way back from a match to the terms."""

    #: Latin-script terms, as `non-word (?=first characters)(alternation)(?!word)`: the
    #: character before a word start, then the longest term there (group 1). A pattern's
    #: source, like the others: each is compiled at the first scan that needs it (`pattern`),
    #: so a collect that scores nothing (every source answered 304) never compiles one (~10
    #: ms each time the rules load).
    latin: str | None
    #: Japanese terms, as `(alternation)`: the longest term at the next position holding one.
    japanese: str | None
    #: Normalised match key → the hits of that term and of the shorter terms it starts with.
    exact: Mapping[str, tuple[Hit, ...]]
    #: Prefix terms (`word*`): (normalised prefix, its hits), longest first.
    prefixes: tuple[tuple[str, tuple[Hit, ...]], ...] = ()
    #: The tries' alternations the two patterns are built on (None: no such terms).
    latin_terms: str | None = None
    japanese_terms: str | None = None
    #: `latin` for ASCII text: ASCII classes for the word characters (compiled with
    #: re.ASCII), which the engine tests faster than Unicode's \W.
    latin_ascii: str | None = None
    #: `latin` for text holding Japanese: the alternation first, each first character followed
    #: by a look-behind at the character before it, so the engine skips in C over kanji and
    #: kana to the next character a term starts with (`latin` stops at each of them, since
    #: Japanese script is not part of words).
    latin_lead: str | None = None

    #: Matched text → its hits (`hits_for`), filled as items are scored: the same few terms
    #: recur in every feed, and looking them up again (a regex sub, a dict, the prefixes) was
    #: a fifth of the rules' cost. Bounded (`_CACHE_SIZE`); not part of equality.
    cache: dict[str, tuple[Hit, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: Field name → its pattern, compiled (None where there are no such terms).
    compiled: dict[str, re.Pattern[str] | None] = field(
        default_factory=dict, compare=False, repr=False)

    def pattern(self, name: str) -> re.Pattern[str] | None:
        """The compiled pattern of field `name` (None where there are no such terms)."""
        if name not in self.compiled:  # two threads may both compile: the same pattern
            source = getattr(self, name)
            self.compiled[name] = (None if source is None else
                                   re.compile(source, re.ASCII if name == "latin_ascii" else 0))
        return self.compiled[name]

    def hits_for(self, matched: str) -> tuple[Hit, ...]:
        """The terms behind a piece of matched, normalised text."""
        hits = self.cache.get(matched)
        if hits is not None:
            return hits
        hits = self._lookup(matched)
        if len(self.cache) >= _CACHE_SIZE:
            self.cache.clear()  # hostile text of ever new spellings costs a lookup each, no more
        self.cache[matched] = hits
        return hits

    def _lookup(self, matched: str) -> tuple[Hit, ...]:
        key = match_key(matched)
        hits = self.exact.get(key)
        if hits is not None:
            return hits
        for prefix, prefix_hits in self.prefixes:
            if key.startswith(prefix):
                return prefix_hits
        return ()

    def find(self, text: str) -> Iterator[tuple[int, int, tuple[Hit, ...]]]:
        """(start, end, hits) of every term in normalised `text`, overlaps included."""
        yield from self.scan(text)

    def scan(self, text: str, plain: bool | None = None) -> list[tuple[int, int, tuple[Hit, ...]]]:
        """`find` as a list: the per-item path (no generator, the cache looked up inline).

        `plain`: `ascii_but_quotes(text)` when the caller knows it (None: found here).
        """
        out: list[tuple[int, int, tuple[Hit, ...]]] = []
        cached = self.cache.get
        hits_for = self.hits_for
        compiled = self.compiled
        if plain is None:
            plain = ascii_but_quotes(text)
        if plain:  # quotes are no word characters in either spelling
            japanese_text = False
            name = "latin_ascii"
        else:
            japanese_text = _JAPANESE.search(text) is not None
            name = "latin_lead" if japanese_text else "latin"
        latin = compiled[name] if name in compiled else self.pattern(name)
        if latin is not None and japanese_text:
            search = latin.search
            m = search(text)
            while m is not None:
                start = m.start()
                term = m.group(1)
                out.append((start, m.end(1), cached(term) or hits_for(term)))
                m = search(text, start + 1)
        elif latin is not None:
            # A space first: a term at the very start has its non-word character before it.
            # Positions in `padded` are one more than in `text`.
            padded = " " + text
            search = latin.search
            m = search(padded)
            while m is not None:
                start = m.start(1)
                term = m.group(1)
                out.append((start - 1, m.end(1) - 1, cached(term) or hits_for(term)))
                m = search(padded, start)  # the next non-word character is at `start` or after
        if japanese_text:
            japanese = (compiled["japanese"] if "japanese" in compiled
                        else self.pattern("japanese"))
            if japanese is not None:
                search = japanese.search
                m = search(text)
                while m is not None:
                    start = m.start()
                    term = m.group(1)
                    out.append((start, m.end(), cached(term) or hits_for(term)))
                    m = search(text, start + 1)
        return out


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of weighted terms (`[groups.NAME]`)."""

    name: str
    #: Weight of terms without one of their own.
    weight: float
    #: Cap on what the group adds to a score (absolute value, title factor included); each
    #: distinct term found adds its weight.
    max: float
    description: str = ""
    #: The rule its reasons name ("group:japan"), made once.
    rule: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", f"group:{self.name}")


@dataclass(frozen=True, slots=True)
class Combo:
    """A weight added only when groups match together (`[[combos]]`)."""

    name: str
    #: Each element is a set of alternatives: at least one group of every element must match.
    all: tuple[frozenset[str], ...]
    #: Groups that, if any matched, stop the combination.
    none: frozenset[str]
    weight: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class Prior:
    """A weight for items of matching sources (`[[priors]]`)."""

    name: str
    #: Field → accepted values (case-folded); every field given must match.
    match: Mapping[str, frozenset[str]]
    weight: float
    #: Groups counted as present for combinations (a US government source speaks for the US).
    implies: frozenset[str] = frozenset()
    description: str = ""

    def applies(self, source: Mapping[str, Any] | None) -> bool:
        """True when `source` (a row with name/category/owner/country) matches every field."""
        if not source:
            return False
        for key, accepted in self.match.items():
            value = source.get(key)
            if not value or str(value).casefold() not in accepted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Rules:
    """Compiled relevance rules; build with `load_rules` or `rules_from_mapping`."""

    #: Items scoring at or above this are candidates; below, filtered.
    threshold: float
    #: Multiplier for a term found in the title rather than only in the summary.
    title_factor: float
    #: How much of the summary is read (the lede carries the news; long bodies mention everything).
    summary_chars: int
    groups: tuple[Group, ...]
    combos: tuple[Combo, ...]
    priors: tuple[Prior, ...]
    #: Every group's terms and the false friends; hits name groups by their index in `groups`,
    #: false friends ("Star Alliance" is no alliance) by FALSE_FRIEND.
    matcher: Matcher
    #: Where the rules were read from (a file, or a file and table).
    where: str = ""
    #: The learned model blended with the rules (triage.model.LinearModel), or None: rules alone.
    model: Any = None

    def with_model(self, model: Any) -> Rules:
        """These rules blended with a learned model (None: the rules alone)."""
        return replace(self, model=model)


# --- loading -------------------------------------------------------------------------------------


def load_rules(settings: Settings) -> Rules:
    """The rules in force: digest.toml's [relevance], else relevance.toml beside it, else ours."""
    config = settings.config_path
    if "relevance" in settings.sections:
        data = settings.sections["relevance"]
        where = str(config or DEFAULT_CONFIG)
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: 'relevance' must be a table ([relevance])")
        return rules_from_mapping(data, where, prefix="relevance.")
    path = config.parent / "relevance.toml" if config else None
    if path is None or not path.is_file():
        path = DEFAULT_RULES
    return load_rules_file(path)


def load_rules_file(path: Path) -> Rules:
    """Rules from a relevance.toml file (its tables at the top level, or under [relevance]).

    The file's last compiled rules are kept while it is unchanged (same inode, size, mtime and
    ctime): a command that checks the rules before it starts and then collects compiled them
    twice, ~40 ms of an all-304 pass. Rules are immutable, so sharing them is safe.
    """
    try:
        stat = path.stat()
    except OSError:  # read_toml says what is wrong, in one line
        return _compile_file(path)
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if (kept := _COMPILED.get(key)) is not None:
        return kept
    rules = _compile_file(path)
    _COMPILED.clear()  # one file's rules at a time: a process uses one rules file
    _COMPILED[key] = rules
    return rules


def _compile_file(path: Path) -> Rules:
    data = read_toml(path)
    if set(data) == {"relevance"} and isinstance(data["relevance"], dict):
        return rules_from_mapping(data["relevance"], str(path), prefix="relevance.")
    return rules_from_mapping(data, str(path))


_COMPILED: dict[tuple[str, int, int, int, int], Rules] = {}


def rules_from_mapping(data: Mapping[str, Any], where: str, *, prefix: str = "") -> Rules:
    """Validate and compile a rules table; `where` (a file name) and `prefix` go into errors.

    Every mistake raises one ConfigError line naming the file, the table and the key.
    """
    top = f"{where}: [{prefix.rstrip('.')}]" if prefix else where
    _known(top, data, _TOP_KEYS)
    threshold = _number(top, "threshold", data.get("threshold", 5.0))
    title_factor = _number(top, "title_factor", data.get("title_factor", 1.0))
    if title_factor < 1:
        raise ConfigError(f"{top}: 'title_factor' must be at least 1, got {title_factor!r}")
    summary_chars = data.get("summary_chars", 2000)
    if isinstance(summary_chars, bool) or not isinstance(summary_chars, int) or summary_chars < 0:
        raise ConfigError(f"{top}: 'summary_chars' must be a whole number >= 0, "
                          f"got {summary_chars!r}")

    groups_data = data.get("groups", {})
    if not isinstance(groups_data, dict) or not groups_data:
        raise ConfigError(f"{top}: 'groups' must be a table of [{prefix}groups.NAME] tables")
    parsed = [_group(f"{where}: [{prefix}groups.{name}]", name, table, title_factor)
              for name, table in groups_data.items()]
    groups = tuple(group for group, _terms in parsed)
    names = frozenset(g.name for g in groups)

    combos_data = data.get("combos", [])
    if not isinstance(combos_data, list):
        raise ConfigError(f"{top}: 'combos' must be an array of [[{prefix}combos]] tables")
    combos = tuple(
        _combo(f"{where}: [[{prefix}combos]] #{i}", table, names)
        for i, table in enumerate(combos_data, start=1)
    )
    priors_data = data.get("priors", [])
    if not isinstance(priors_data, list):
        raise ConfigError(f"{top}: 'priors' must be an array of [[{prefix}priors]] tables")
    priors = tuple(
        _prior(f"{where}: [[{prefix}priors]] #{i}", table, names)
        for i, table in enumerate(priors_data, start=1)
    )

    friends = data.get("false_friends", [])
    if not isinstance(friends, list):
        raise ConfigError(f"{top}: 'false_friends' must be a list of strings")
    # One matcher for everything; false friends are the group index FALSE_FRIEND.
    matcher = compile_terms(
        top,
        [(FALSE_FRIEND, _term(top, "false_friends", t), 0.0) for t in friends]
        + [(index, term, weight) for index, (_g, terms) in enumerate(parsed)
           for term, weight in terms.items()],
    )
    return Rules(
        threshold=threshold,
        title_factor=title_factor,
        summary_chars=summary_chars,
        groups=groups,
        combos=combos,
        priors=priors,
        matcher=matcher,
        where=top,
    )


def _group(where: str, name: str, table: Any,
           title_factor: float) -> tuple[Group, dict[str, float]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    if not _GROUP_NAME.match(name):
        raise ConfigError(f"{where}: group names use letters, digits and _ only")
    _known(where, table, _GROUP_KEYS)
    weight = _number(where, "weight", table.get("weight", 1.0))
    terms_data = table.get("terms")
    terms: dict[str, float] = {}
    if isinstance(terms_data, list):
        for t in terms_data:
            terms[_term(where, "terms", t)] = weight
    elif isinstance(terms_data, dict):
        for t, w in terms_data.items():
            terms[_term(where, "terms", t)] = _number(where, f"terms.{t}", w)
    else:
        raise ConfigError(f"{where}: 'terms' must be a list of strings or a table of "
                          f"\"term\" = weight")
    if not terms:
        raise ConfigError(f"{where}: 'terms' is empty")
    # By default a group counts once: its heaviest term, found in the title.
    heaviest = max(abs(w) for w in terms.values()) * title_factor
    cap = _number(where, "max", table.get("max", heaviest))
    if cap < 0:
        raise ConfigError(f"{where}: 'max' must be >= 0, got {cap!r}")
    description = table.get("description", "")
    _typed_str(where, "description", description)
    for term in terms:
        _check_term(where, term)
    return Group(name=name, weight=weight, max=cap, description=description), terms


def _combo(where: str, table: Any, names: frozenset[str]) -> Combo:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    _known(where, table, _COMBO_KEYS)
    name = table.get("name")
    _typed_str(where, "name", name)
    if not name:
        raise ConfigError(f"{where}: 'name' is required")
    where = f"{where} ({name})"
    all_ = table.get("all")
    if not isinstance(all_, list) or len(all_) < 2:
        raise ConfigError(f"{where}: 'all' must list at least two groups (\"a|b\" = a or b)")
    elements = tuple(_group_refs(where, "all", e, names) for e in all_)
    none = table.get("none", [])
    if not isinstance(none, list):
        raise ConfigError(f"{where}: 'none' must be a list of group names")
    excluded: frozenset[str] = frozenset().union(*(_group_refs(where, "none", e, names)
                                                   for e in none))
    weight = _number(where, "weight", table.get("weight"))
    description = table.get("description", "")
    _typed_str(where, "description", description)
    return Combo(name=name, all=elements, none=excluded, weight=weight, description=description)


def _prior(where: str, table: Any, names: frozenset[str]) -> Prior:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    _known(where, table, _PRIOR_KEYS)
    match: dict[str, frozenset[str]] = {}
    for key in PRIOR_FIELDS:
        if key not in table:
            continue
        value = table[key]
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{where}: '{key}' must be a string or a list of strings")
        match[key] = frozenset(v.casefold() for v in values)
    if not match:
        raise ConfigError(f"{where}: give at least one of {', '.join(PRIOR_FIELDS)}")
    label = table.get("description") or " ".join(
        f"{k}={'|'.join(sorted(v))}" for k, v in match.items())
    _typed_str(where, "description", label)
    weight = _number(where, "weight", table.get("weight", 0.0))
    implies_data = table.get("implies", [])
    if not isinstance(implies_data, list):
        raise ConfigError(f"{where}: 'implies' must be a list of group names")
    implies: frozenset[str] = frozenset().union(*(_group_refs(where, "implies", e, names)
                                                  for e in implies_data))
    return Prior(name=label, match=match, weight=weight, implies=implies)


def _group_refs(where: str, key: str, value: Any, names: frozenset[str]) -> frozenset[str]:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: '{key}' must hold group names, got {value!r}")
    refs = frozenset(p.strip() for p in value.split("|"))
    unknown = sorted(refs - names)
    if unknown:
        raise ConfigError(f"{where}: '{key}' names unknown group '{unknown[0]}'")
    return refs


def _known(where: str, data: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        known_list = ", ".join(sorted(known))
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (known: {known_list})")


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _typed_str(where: str, key: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")


def _term(where: str, key: str, term: Any) -> str:
    if not isinstance(term, str) or not term.strip() or term.strip() == "*":
        raise ConfigError(f"{where}: '{key}' holds an empty or non-string term: {term!r}")
    return term.strip()


# --- compiling -----------------------------------------------------------------------------------

_END = ""  # trie key: a term ends here
_STAR = "*"  # trie key: a prefix term ends here (any word ending follows)
_SEP = " "  # trie key: a run of spaces and hyphens


def _check_term(where: str, term: str) -> None:
    if not match_key(normalise(term.removesuffix("*"))):
        raise ConfigError(f"{where}: term {term!r} is empty after normalisation")


def compile_terms(where: str, terms: Iterable[tuple[int, str, float]]) -> Matcher:
    """Compile (group index, term, weight) triples into one Matcher (syntax: module docstring)."""
    own: dict[str, list[Hit]] = {}
    stars: dict[str, list[Hit]] = {}
    latin: dict[str, Any] = {}
    japanese: dict[str, Any] = {}
    for index, term, weight in terms:
        star = term.endswith("*")
        key = match_key(normalise(term[:-1] if star else term))
        if not key:
            raise ConfigError(f"{where}: term {term!r} is empty after normalisation")
        hits = (stars if star else own).setdefault(key, [])
        # Spellings that normalise alike ("PMI", "ＰＭＩ") are one term: the first wins.
        if all(h[0] != index for h in hits):
            hits.append((index, term, weight))
        _insert(japanese if is_japanese(key) else latin, _atoms(key), _STAR if star else _END)

    def with_shorter(key: str, hits: list[Hit]) -> tuple[Hit, ...]:
        # Terms that start where this one starts and end at a word end inside it: the scan
        # only reports the longest term at each position, so they ride along here.
        found = list(hits)
        japanese_key = is_japanese(key)
        for cut in range(len(key) - 1, 0, -1):
            if not japanese_key and _IS_WORD.match(key[cut]):
                continue  # a Latin term must end at a word end
            shorter = key[:cut].rstrip()
            found.extend(own.get(shorter, ()))
            found.extend(h for p, ph in stars.items() if shorter.startswith(p) for h in ph)
        return tuple(dict.fromkeys(found))

    exact = {key: with_shorter(key, hits) for key, hits in own.items()}
    prefixes = sorted(
        ((p, with_shorter(p, hits)) for p, hits in stars.items()), key=lambda ph: -len(ph[0])
    )
    latin_pattern = japanese_pattern = latin_ascii = latin_lead = None
    latin_terms = japanese_terms = None
    if latin:
        # Whole words only: a non-word character before (Matcher.scan puts a space before
        # the text), and no word character after, each term. The check after the group
        # backtracks into the trie, so it picks the longest term that ends a word, as a check
        # at each of the trie's term ends would; written once, the pattern compiles ~10x
        # faster (its character classes are costly to compile, and the collect flow's parse
        # workers each compile the rules). The class of first characters turns most word
        # starts (and every kanji of a Japanese text) away before the trie is tried.
        latin_terms = _trie_regex(latin, "")
        first = "".join(sorted(re.escape(atom) for atom in latin))
        latin_pattern = f"{_NON_WORD}(?=[{first}])({latin_terms})(?!{_WORD})"
        latin_ascii = f"[^a-zA-Z0-9_](?=[{first}])({latin_terms})(?![a-zA-Z0-9_])"
        latin_lead = f"({_trie_regex(latin, '', f'(?<!{_WORD}.)')})(?!{_WORD})"
    if japanese:
        # It begins with a literal in every branch: the engine skips in C to the next
        # character that starts a term.
        japanese_terms = _trie_regex(japanese, "")
        japanese_pattern = f"({japanese_terms})"
    return Matcher(latin=latin_pattern, japanese=japanese_pattern, exact=exact,
                   prefixes=tuple(prefixes), latin_terms=latin_terms,
                   japanese_terms=japanese_terms, latin_ascii=latin_ascii, latin_lead=latin_lead)


def _atoms(key: str) -> list[str]:
    return [_SEP if ch == " " else ch for ch in key]


def _insert(trie: dict[str, Any], atoms: list[str], end: str) -> None:
    node = trie
    for atom in atoms:
        node = node.setdefault(atom, {})
    node[end] = {}


def _trie_regex(node: Mapping[str, Any], end: str, after_first: str = "") -> str:
    """A regex for a trie, with `end` where a term ends; longer continuations are tried first.

    `after_first` follows each term's first character (a look-behind at the one before it).
    """
    branches = []
    for atom, child in node.items():
        if atom in (_END, _STAR):
            continue
        piece = r"[\s\-]+" if atom == _SEP else re.escape(atom)
        branches.append(piece + after_first + _trie_regex(child, end))
    endings = []
    if _STAR in node:
        endings.append(r"\w*" + end)
    if _END in node:
        endings.append(end)
    alternatives = branches + endings
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"

