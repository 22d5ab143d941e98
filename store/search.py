"""Full-text search over items: the FTS5 SQL behind triage/search.py.

`items_fts` is an FTS5 table with the trigram tokenizer over title, summary_text, headline and
blurb (migration 3), so a term matches as a case-insensitive substring in English and Japanese
alike. Trigrams cannot match a term shorter than three characters (日米, US): such terms are
matched on the items' columns directly — as a substring for Japanese, which has no word
breaks, and as a whole word otherwise, so "US" does not find "thus" or "August".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ..errors import InputError
from .items import item_filters
from .migrations import SEARCH_COLUMNS

#: Shortest term the trigram index can match.
MIN_FTS_CHARS = 3
#: bm25 column weights, in SEARCH_COLUMNS order: a word in the (editor's) headline says more
#: about an item than the same word deep in a summary.
BM25_WEIGHTS = (10.0, 1.0, 10.0, 4.0)
#: Marks around matched text in snippets; control characters never occur in stored text.
MARK_START, MARK_END = "\x02", "\x03"
#: Matches ordered first, newest stored first (`search_items`); grows 4x while too few.
MATCH_WINDOW = 2_000

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_TEXT = " || ' ' || ".join(f"coalesce(items.[{c}], '')" for c in SEARCH_COLUMNS)
_WORD_FUNCTION = "digest_has_word"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: every group must match (one of its terms), no excluded term may.

    Terms are literal text; phrases and words alike match as substrings.
    """

    groups: tuple[tuple[str, ...], ...]
    excluded: tuple[str, ...] = ()


def fts_string(term: str) -> str:
    """An FTS5 string literal: inside double quotes no character is query syntax."""
    return '"' + term.replace('"', '""') + '"'


def is_short(term: str) -> bool:
    """True for terms the trigram index cannot match."""
    return len(term) < MIN_FTS_CHARS


def _has_word(text: str | None, term: str | None) -> int:
    if not text or not term:
        return 0
    return int(re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE) is not None)


def _short_condition(term: str, params: list[Any]) -> str:
    """SQL matching a short term on the items' own columns (the trigram index cannot)."""
    like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    params.append(like)
    condition = f"({_TEXT}) LIKE ? ESCAPE '\\'"
    if not _CJK.search(term):
        # LIKE narrows cheaply in C; the word test runs only on what it lets through.
        params.append(term)
        condition = f"({condition} AND {_WORD_FUNCTION}({_TEXT}, ?))"
    return condition


def _in_fts(expression: str, params: list[Any]) -> str:
    params.append(expression)
    return "items.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)"


def search_items(db: sqlite_utils.Database, query: SearchQuery, *, status: str | None = None,
                 limit: int = 50, offset: int = 0, order: str = "relevance",
                 **filters: str | None) -> list[dict[str, Any]]:
    """Items matching `query` with their source's name, best first.

    With at least one group of trigram-searchable terms and `order="relevance"` the order is
    `bm25` (lower is better; not `rank`, which is the editor's column); `order="newest"`, or a
    search of short terms only, comes newest first. Either order is taken among the
    MATCH_WINDOW most recently stored matches (more while filters leave the page short), so a
    word in every fifth item costs what a rare one does; an older item ranks only once the
    newer matches are exhausted or filtered out. `filters` are store.items.item_filters'
    (source, category, country, language, section, tag, since, until), applied in SQL.
    """
    if not query.groups:
        raise InputError("a search needs at least one term that is not excluded")
    if order not in ("relevance", "newest"):
        raise InputError(f"unknown order {order!r} (relevance or newest)")
    if limit < 1 or offset < 0:
        raise InputError("limit must be at least 1 and offset at least 0")
    db.conn.create_function(_WORD_FUNCTION, 2, _has_word, deterministic=True)

    # Groups made only of long terms go into the one MATCH that ranks; the rest are filters.
    ranked = [g for g in query.groups if not any(is_short(t) for t in g)]
    short_groups = [g for g in query.groups if any(is_short(t) for t in g)]
    match = " AND ".join("(" + " OR ".join(fts_string(t) for t in g) + ")" for g in ranked)
    long_excluded = [t for t in query.excluded if not is_short(t)]
    if match and long_excluded:
        match = f"({match}) NOT ({' OR '.join(fts_string(t) for t in long_excluded)})"
        long_excluded = []

    where: list[str] = []
    params: list[Any] = []
    if match:
        params.append(match)
        where.append("items_fts MATCH ?")
    for group in short_groups:
        alternatives = [_short_condition(t, params) if is_short(t)
                        else _in_fts(fts_string(t), params) for t in group]
        where.append("(" + " OR ".join(alternatives) + ")")
    if long_excluded:
        where.append("NOT " + _in_fts(" OR ".join(fts_string(t) for t in long_excluded),
                                      params))
    for term in query.excluded:
        if is_short(term):
            where.append("NOT " + _short_condition(term, params))
    filter_where, filter_params = item_filters(status=status, **filters)
    where += filter_where
    params += filter_params

    # Two steps: rank (or date-order) the matches to pick the page's ids, then fetch those
    # rows. Only the most recently stored matches are ordered (`_match_floor`): a common word
    # matches a fifth of all items, and ranking or date-sorting every one of them cost about
    # a second at a million items, the newest few thousand a few milliseconds.
    window = MATCH_WINDOW
    while True:
        floor = _match_floor(db, match, window + offset) if match else None
        page = _page_ids(db, match, where, params, floor, order=order, limit=limit,
                         offset=offset)
        if floor is None or len(page) >= limit:
            break
        window *= 4  # filters left too few in the window: look further back
    if not page:
        return []
    ids = [item_id for item_id, _ in page]
    marks = ",".join("?" * len(ids))
    found = {
        row["id"]: row for row in db.query(
            "SELECT items.*, sources.name AS source, sources.category AS source_category, "
            "sources.country AS source_country FROM items "
            f"JOIN sources ON sources.id = items.source_id WHERE items.id IN ({marks})", ids)
    }
    rows = []
    for item_id, bm25 in page:
        row = found[item_id]
        row["bm25"] = bm25
        row["tags"] = json.loads(row["tags"] or "[]")
        rows.append(row)
    return rows


def _match_floor(db: sqlite_utils.Database, match: str, window: int) -> int | None:
    """The rowid of the `window`-th most recently stored match; None if there are fewer.

    FTS5 walks a term's matches newest rowid first and stops at the LIMIT, so this costs the
    window, not the number of matches.
    """
    row = db.execute("SELECT rowid FROM items_fts WHERE items_fts MATCH ? "
                     "ORDER BY rowid DESC LIMIT 1 OFFSET ?", [match, window - 1]).fetchone()
    return None if row is None else int(row[0])


def _page_ids(db: sqlite_utils.Database, match: str, where: list[str], params: list[Any],
              floor: int | None, *, order: str, limit: int, offset: int,
              ) -> list[tuple[int, float | None]]:
    """(item id, bm25 or None) of the page, among the matches at or above `floor`."""
    where = list(where)
    params = list(params)
    if floor is not None:
        where.append("items_fts.rowid >= ?")
        params.append(floor)
    if match and order == "relevance":
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        sql = (
            f"SELECT items.id, bm25(items_fts, {weights}) AS bm25 FROM items_fts "
            "JOIN items ON items.id = items_fts.rowid "
            "JOIN sources ON sources.id = items.source_id "
            f"WHERE {' AND '.join(where)} ORDER BY bm25, items.published_at DESC, items.id DESC"
        )
    else:
        source = "items_fts JOIN items ON items.id = items_fts.rowid" if match else "items"
        sql = (
            f"SELECT items.id, NULL AS bm25 FROM {source} "
            "JOIN sources ON sources.id = items.source_id "
            f"WHERE {' AND '.join(where)} ORDER BY items.published_at DESC, items.id DESC"
        )
    return [(item_id, bm25) for item_id, bm25 in db.execute(
        sql + " LIMIT ? OFFSET ?", [*params, limit, offset])]
