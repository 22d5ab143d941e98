"""Full-text search over items: the FTS5 SQL behind triage/search.py.

`items_fts` is an FTS5 table with the trigram tokenizer over title, summary_text, headline and
blurb (migration 3), so a term matches as a case-insensitive substring in English and Japanese
alike. Trigrams cannot match a term shorter than three characters (日米, US): such terms are
matched on the items' columns directly — as a substring for Japanese, which has no word
breaks, and as a whole word otherwise, so "US" does not find "thus" or "August".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ..errors import InputError
from .entries import entry_marks
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
#: The same for a ranked search, which reads and scores each match's text (`_rank`).
RANK_WINDOW = 1_000

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

    # Two steps: order the matches to pick the page's ids, then fetch those rows. Only the
    # most recently stored matches are ordered: FTS5 hands them out newest rowid first and
    # stops at the LIMIT, so a common word (a fifth of a million items) costs what a rare one
    # does; ranking or date-sorting every match of it took about a second. While the filters
    # leave the page short, the window reaches further back (4x each time) from where it
    # ended, so the whole index is read at most once.
    if not match:
        page = _ordered_ids(db, None, where, params, "newest", (), limit, offset)
    else:
        ids: list[int] = []
        window = MATCH_WINDOW if order == "newest" else RANK_WINDOW
        while True:
            more = _newest_matches(db, match, window, ids[-1] if ids else None)
            ids += more
            page = _ordered_ids(db, ids, where, params, order, ranked, limit, offset)
            if len(more) < window or len(page) >= limit:
                break
            window *= 4
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
    # "in entry N" / "used in entry N": a story's items the issue uses, and those it does not
    # need because their development is in entry N through its other outlets.
    in_entries = entry_marks(db, ids)
    rows = []
    for item_id, bm25 in page:
        row = found[item_id]
        row["entry"] = in_entries.get(item_id)
        row["bm25"] = bm25
        row["tags"] = json.loads(row["tags"] or "[]")
        rows.append(row)
    return rows


def _newest_matches(db: sqlite_utils.Database, match: str, count: int,
                    below: int | None) -> list[int]:
    """The `count` most recently stored matches (below rowid `below`), newest first."""
    if below is None:
        sql, params = ("SELECT rowid FROM items_fts WHERE items_fts MATCH ? "
                       "ORDER BY rowid DESC LIMIT ?", [match, count])
    else:
        sql, params = ("SELECT rowid FROM items_fts WHERE items_fts MATCH ? AND rowid < ? "
                       "ORDER BY rowid DESC LIMIT ?", [match, below, count])
    return [r[0] for r in db.execute(sql, params)]


def _ordered_ids(db: sqlite_utils.Database, ids: list[int] | None, where: list[str],
                 params: list[Any], order: str, ranked: Sequence[Sequence[str]], limit: int,
                 offset: int) -> list[tuple[int, float | None]]:
    """(item id, bm25-like score or None) of the page: among `ids` (None: every item) that
    pass `where`, newest first, or best first (`order="relevance"`, `_rank`)."""
    where = list(where)
    params = list(params)
    if ids is not None:
        where.insert(0, "items.id IN (SELECT value FROM json_each(?))")
        params.insert(0, json.dumps(ids))
    condition = " AND ".join(where) or "1"
    if order == "newest" or not ranked:
        return [(item_id, None) for (item_id,) in db.execute(
            "SELECT items.id FROM items JOIN sources ON sources.id = items.source_id "
            f"WHERE {condition} ORDER BY items.published_at DESC, items.id DESC "
            "LIMIT ? OFFSET ?", [*params, limit, offset])]
    columns = ", ".join(f"items.[{c}]" for c in SEARCH_COLUMNS)
    rows = db.execute(
        f"SELECT items.id, items.published_at, {columns} FROM items "
        f"JOIN sources ON sources.id = items.source_id WHERE {condition}", params).fetchall()
    scored = _rank(rows, ranked)
    return scored[offset:offset + limit]


def _rank(rows: Sequence[tuple[Any, ...]], groups: Sequence[Sequence[str]],
          ) -> list[tuple[int, float]]:
    """BM25 over the window's rows, as FTS5's bm25() would score them (lower is better).

    FTS5's own bm25() reads every match of each term for its IDF, a cost that grows with the
    whole index; here the IDF comes from the window and the texts are capped when stored, so
    this costs the window. Terms count as substrings, case-insensitively, as the trigram
    index matches them; each column weighs BM25_WEIGHTS.
    """
    k1, b = 1.2, 0.75
    if not rows:
        return []
    terms = [[t.lower() for t in g] for g in groups]
    n_cols = len(SEARCH_COLUMNS)
    # Per row: the columns that hold text, as (column, weight, lowered text).
    texts = [[(c, BM25_WEIGHTS[c], v.lower()) for c in range(n_cols) if (v := r[2 + c])]
             for r in rows]
    totals = [0] * n_cols
    for cols in texts:
        for c, _, text in cols:
            totals[c] += len(text)
    avg = [max(1.0, t / len(rows)) for t in totals]
    weight_sum = sum(BM25_WEIGHTS)
    tfs: list[list[float]] = []
    df = [0] * len(terms)
    for cols in texts:
        row_tf = []
        for g, group in enumerate(terms):
            tf = 0.0
            for _, w, text in cols:
                for term in group:
                    if term in text:
                        tf += w * text.count(term)
            df[g] += tf > 0
            row_tf.append(tf)
        tfs.append(row_tf)
    n = len(rows)
    idf = [math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in df]
    scored = []
    for r, cols, row_tf in zip(rows, texts, tfs, strict=True):
        length = sum(w * len(text) / avg[c] for c, w, text in cols) / weight_sum
        norm = k1 * (1 - b + b * length)
        score = sum(idf[g] * tf * (k1 + 1) / (tf + norm) for g, tf in enumerate(row_tf) if tf)
        scored.append((-score, r[1] or "", r[0]))
    # Best first; ties newest first, as the date order (two stable sorts).
    scored.sort(key=lambda x: (x[1], x[2]), reverse=True)
    scored.sort(key=lambda x: x[0])
    return [(item_id, score) for score, _, item_id in scored]
