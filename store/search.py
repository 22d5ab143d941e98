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

from .migrations import ITEM_STATUSES, SEARCH_COLUMNS

#: Shortest term the trigram index can match.
MIN_FTS_CHARS = 3
#: bm25 column weights, in SEARCH_COLUMNS order: a word in the (editor's) headline says more
#: about an item than the same word deep in a summary.
BM25_WEIGHTS = (10.0, 1.0, 10.0, 4.0)
#: Marks around matched text in snippets; control characters never occur in stored text.
MARK_START, MARK_END = "\x02", "\x03"
#: The trigram tokenizer counts characters, so this is about 64 characters.
SNIPPET_TOKENS = 64

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
                 limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Items matching `query` with their source's name, best first, and a marked snippet.

    With at least one group of trigram-searchable terms the order is `bm25` (lower is better;
    not `rank`, which is the editor's column); a search of short terms only has no relevance
    score and comes newest first.
    """
    if not query.groups:
        raise ValueError("a search needs at least one term that is not excluded")
    if status and status != "all" and status not in ITEM_STATUSES:
        raise ValueError(f"unknown status {status!r} (one of {', '.join(ITEM_STATUSES)} or all)")
    if limit < 1 or offset < 0:
        raise ValueError("limit must be at least 1 and offset at least 0")
    db.conn.create_function(_WORD_FUNCTION, 2, _has_word, deterministic=True)

    # Groups made only of long terms go into the one MATCH that ranks; the rest are filters.
    ranked = [g for g in query.groups if not any(is_short(t) for t in g)]
    filters = [g for g in query.groups if any(is_short(t) for t in g)]
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
    for group in filters:
        alternatives = [_short_condition(t, params) if is_short(t)
                        else _in_fts(fts_string(t), params) for t in group]
        where.append("(" + " OR ".join(alternatives) + ")")
    if long_excluded:
        where.append("NOT " + _in_fts(" OR ".join(fts_string(t) for t in long_excluded),
                                      params))
    for term in query.excluded:
        if is_short(term):
            where.append("NOT " + _short_condition(term, params))
    if status and status != "all":
        where.append("items.status = ?")
        params.append(status)

    columns = "items.*, sources.name AS source"
    if match:
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        sql = (
            f"SELECT {columns}, bm25(items_fts, {weights}) AS bm25, "
            f"snippet(items_fts, -1, '{MARK_START}', '{MARK_END}', '…', {SNIPPET_TOKENS}) "
            "AS snippet FROM items_fts JOIN items ON items.id = items_fts.rowid "
            "JOIN sources ON sources.id = items.source_id "
            f"WHERE {' AND '.join(where)} ORDER BY bm25, items.published_at DESC, items.id DESC"
        )
    else:
        sql = (
            f"SELECT {columns}, NULL AS bm25, NULL AS snippet FROM items "
            "JOIN sources ON sources.id = items.source_id "
            f"WHERE {' AND '.join(where)} ORDER BY items.published_at DESC, items.id DESC"
        )
    sql += " LIMIT ? OFFSET ?"
    params += [limit, offset]
    rows = []
    for row in db.query(sql, params):
        row["tags"] = json.loads(row["tags"] or "[]")
        rows.append(row)
    return rows
