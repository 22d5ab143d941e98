"""Search as the editor types it, for the desk and the CLI alike.

Syntax: words are ANDed; `"extended deterrence"` is a phrase; `-COVID` or `-"phrase"`
excludes; `OR` (upper case) between two terms accepts either, binding tighter than the
implicit AND (`Okinawa OR Guam base` = (Okinawa or Guam) and base). Anything else is text:
FTS5 syntax typed by the user (NEAR, column:, parentheses, *, ^) is never passed to MATCH —
every term reaches FTS5 as a quoted string (see store/search.py).
"""

from __future__ import annotations

import html
import re
from typing import Any

import sqlite_utils

from ..errors import SearchQueryError
from ..store.db import time_budget
from ..store.search import MARK_END, MARK_START, SearchQuery, search_items

#: Characters that are syntax in FTS5 or in other search boxes; in a bare word they separate
#: words ("title:Okinawa" searches "title" and "Okinawa").
_SEPARATORS = re.compile(r"[()\[\]{}:;,!?*^<>=~|\\@#$`]+")
#: Trimmed from the ends of bare words ("U.S." stays "U.S", enough to match "U.S.").
_TRIM = ".'+&/-_"
_SNIPPET_CHARS = 160
#: Characters of a column an excerpt looks at, at most.
EXCERPT_SCAN = 20_000


def _tokens(text: str) -> list[tuple[str, str, bool]]:
    """(kind, text, excluded) with kind "term" or "or", in order."""
    out: list[tuple[str, str, bool]] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        excluded = False
        if text[pos] == "-" and pos + 1 < n and not text[pos + 1].isspace():
            excluded, pos = True, pos + 1
        if text[pos] == '"':
            end = text.find('"', pos + 1)
            if end < 0:
                raise SearchQueryError(f"unclosed quote in search {text!r}")
            phrase = " ".join(text[pos + 1:end].split())
            pos = end + 1
            if phrase:
                out.append(("term", phrase, excluded))
            continue
        end = pos
        while end < n and not text[end].isspace() and text[end] != '"':
            end += 1
        word, pos = text[pos:end], end
        if word == "OR" and not excluded:
            out.append(("or", word, False))
            continue
        parts = [p.strip(_TRIM) for p in _SEPARATORS.split(word)]
        out += [("term", p, excluded) for p in parts if p]
    return out


def parse_query(text: str) -> SearchQuery:
    """The search text as AND-ed groups of OR-ed terms plus excluded terms."""
    groups: list[list[str]] = []
    excluded: list[str] = []
    pending_or = False
    for kind, value, negated in _tokens(text):
        if kind == "or":
            if not groups or pending_or:
                raise SearchQueryError(f"OR needs a term on each side in search {text!r}")
            pending_or = True
        elif negated:
            if pending_or:
                raise SearchQueryError(f"cannot OR an excluded term in search {text!r}")
            excluded.append(value)
        elif pending_or:
            groups[-1].append(value)
            pending_or = False
        else:
            groups.append([value])
    if pending_or:
        raise SearchQueryError(f"OR needs a term on each side in search {text!r}")
    if not groups:
        what = "only excludes terms" if excluded else "has nothing to search for"
        raise SearchQueryError(f"search {text!r} {what}")
    return SearchQuery(tuple(tuple(dict.fromkeys(g)) for g in groups),
                       tuple(dict.fromkeys(excluded)))


def _excerpt(row: dict[str, Any], terms: list[str]) -> str:
    """A marked excerpt around the first term found, every term in it marked.

    Looks only at the first EXCERPT_SCAN characters of each column, so its cost is bounded
    whatever an item holds (texts are capped when stored, sources/normalise.py, too).
    """
    wanted = sorted({t.lower() for t in terms if t}, key=len, reverse=True)
    for column in ("headline", "title", "blurb", "summary_text"):
        text = (row.get(column) or "")[:EXCERPT_SCAN]
        lowered = text.lower()
        if len(lowered) != len(text):  # a case change altered lengths: positions would drift
            lowered = text
        found = [at for at in (lowered.find(t) for t in wanted) if at >= 0]
        if not found:
            continue
        at = min(found)
        start = max(0, at - _SNIPPET_CHARS // 2)
        end = min(len(text), at + _SNIPPET_CHARS)
        return ("…" if start else "") + _mark(text[start:end], lowered[start:end], wanted) \
            + ("…" if end < len(row.get(column) or "") else "")
    return (row.get("title") or "")[:_SNIPPET_CHARS]


def _mark(text: str, lowered: str, terms: list[str]) -> str:
    """`text` with every occurrence of `terms` (longest first, not overlapping) marked."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        hits = [(at, t) for t in terms if (at := lowered.find(t, pos)) >= 0]
        if not hits:
            break
        at, term = min(hits, key=lambda h: (h[0], -len(h[1])))
        out += [text[pos:at], MARK_START, text[at:at + len(term)], MARK_END]
        pos = at + len(term)
    out.append(text[pos:])
    return "".join(out)


def search(db: sqlite_utils.Database, query: str, *, status: str | None = None,
           limit: int = 50, offset: int = 0, order: str = "relevance",
           budget: float | None = None, **filters: str | None) -> list[dict[str, Any]]:
    """Items matching the editor's search, best first (bm25), with source name and snippet.

    Each row is the item's columns (`score` is triage's relevance) plus `source`, `bm25`
    (lower is better; None when only short terms were searched or `order="newest"`, then
    newest first), `snippet` (plain text) and `snippet_html` (escaped, matches in <mark>).
    `filters` narrow in SQL as in browsing: source, category, country, language, section, tag,
    since, until. Raises SearchQueryError for text that is not a search, InputError for a bad
    status, order, limit or offset (both are InputErrors, and ValueErrors). With `budget`
    (seconds) a search that runs longer stops with SearchTooBroad (an InputError too).
    """
    parsed = parse_query(query)
    terms = [t for group in parsed.groups for t in group]
    with time_budget(db, budget):
        rows = search_items(db, parsed, status=status, limit=limit, offset=offset,
                            order=order, **filters)
    for row in rows:
        marked = unmarkdown(_excerpt(row, terms))
        row["snippet"] = (marked.replace(MARK_START, "").replace(MARK_END, "")
                          .replace(_BOLD_START, "").replace(_BOLD_END, ""))
        row["snippet_html"] = (html.escape(marked).replace(MARK_START, "<mark>")
                               .replace(MARK_END, "</mark>").replace(_BOLD_START, "<strong>")
                               .replace(_BOLD_END, "</strong>"))
    return rows


#: Placeholders for bold in a snippet until it is escaped (control characters, like the marks).
_BOLD_START, _BOLD_END = "\x04", "\x05"
_SNIPPET_LINK = re.compile(r"\[([^\[\]]*)\]\([^)\s…]*\)?")
_SNIPPET_LINK_TAIL = re.compile(r"\]\([^)\s…]*\)?")
_SNIPPET_BOLD = re.compile(r"\*\*([^*]+?)\*\*")


def unmarkdown(snippet: str) -> str:
    """A snippet of blurb Markdown as it reads: links become their words (a link cut by the
    snippet's edge loses its target too), **bold** becomes bold, stray ** go. Linear."""
    text = _SNIPPET_LINK.sub(r"\1", snippet)
    text = _SNIPPET_LINK_TAIL.sub("", text)
    text = _SNIPPET_BOLD.sub(_BOLD_START + r"\1" + _BOLD_END, text)
    return text.replace("**", "")
