"""The `items` table: writing parsed entries, and reading items back."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from ..errors import InputError
from .db import utcnow
from .migrations import ITEM_STATUSES, SEARCH_COLUMNS
from .scores import TRIAGE

#: Columns the feed owns: a re-fetch may change these, and only these.
FEED_FIELDS = ("guid", "url", "title", "summary", "summary_text", "author", "language",
               "image_url", "published_at", "updated_at")


def content_hash(entry: Mapping[str, Any]) -> str:
    """Fingerprint of the feed-owned fields, to detect changed entries without comparing each."""
    h = hashlib.sha1(usedforsecurity=False)
    for field in FEED_FIELDS:
        h.update(str(entry.get(field) or "").encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def store_entries(db: sqlite_utils.Database, source_id: int,
                  entries: Sequence[Mapping[str, Any]], *,
                  now: str | None = None,
                  triaged: MutableMapping[str, int] | None = None) -> tuple[int, int]:
    """Insert new entries and update changed ones for one source; returns (new, updated).

    `entries` are dicts with an `identity` and the feed-owned fields (sources.types.Entry as a
    dict). Editor-owned fields and the status are never touched on update. An entry without a
    date keeps the time it was first seen, and a later fetch that still has no date does not
    move it. Call inside a transaction (`db.atomic()`) to make the source's write atomic.

    An entry that also carries triage's keys, made where it was parsed (triage/annotate.py:
    `score`, `reasons` as JSON text, `relevant`, story `tokens` as bytes), is inserted already
    triaged: its score and reasons, status `filtered` (by triage) unless relevant, and,
    waiting to be clustered, as a story of its own with its story tokens in `item_tokens_new`
    (migration 6); `triaged`, if given, counts those new rows under "candidates" and
    "filtered".
    """
    if not entries:
        return 0, 0
    now = now or utcnow()
    existing: dict[str, tuple[int, str, int]] = {
        identity: (item_id, digest, guessed)
        for identity, item_id, digest, guessed in db.execute(
            "SELECT identity, id, content_hash, published_guessed FROM items WHERE source_id = ?",
            [source_id],
        )
    }
    # Entries this source shares with an item of another source (same canonical URL).
    merged = {identity for (identity,) in db.execute(
        "SELECT identity FROM item_sources WHERE source_id = ?", [source_id])}
    new_rows: list[dict[str, Any]] = []
    updated = 0
    for entry in entries:
        identity = entry["identity"]
        if identity in merged:
            continue
        values = {f: entry.get(f) for f in FEED_FIELDS}
        old = existing.get(identity)
        if old is None:
            guessed = not values["published_at"]
            if guessed:
                values["published_at"] = now
            row = {"source_id": source_id, "identity": identity, **values,
                   "published_guessed": int(guessed), "first_seen_at": now,
                   "content_hash": content_hash(entry), "status": "candidate", "tags": "[]",
                   "score": None, "reasons": None, "status_by": None, "triaged_at": None,
                   "tokens": None}
            if "score" in entry:
                relevant = bool(entry["relevant"])
                row.update(score=entry["score"], reasons=entry["reasons"], triaged_at=now,
                           tokens=entry.get("tokens"),
                           status="candidate" if relevant else "filtered",
                           status_by=None if relevant else TRIAGE)
            new_rows.append(row)
            existing[identity] = (0, "", int(guessed))
            continue
        item_id, old_hash, guessed = old
        digest = content_hash(entry)
        if digest == old_hash or item_id == 0:
            continue
        update = dict(values, content_hash=digest, changed_at=now)
        if not values["published_at"]:
            # Keep the first-seen date rather than losing the item's place in time.
            del update["published_at"]
        elif guessed:
            update["published_guessed"] = 0
        db["items"].update(item_id, update)
        updated += 1
    new_rows = _merge_exact_duplicates(db, source_id, new_rows, now)
    if not new_rows:
        return 0, updated
    # Ids given here (SQLite would give the same: max + 1 onwards), so that an item inserted
    # with its story tokens can lead its own story from the start. Another writer cannot slip
    # in between: its commit would make this transaction's first write fail, not collide.
    next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM items").fetchone()[0]
    for k, row in enumerate(new_rows):
        row["id"] = next_id + k
        row["cluster_id"] = row["id"] if row["tokens"] else None
    _insert_items(db, new_rows)
    waiting = [(r["id"], r["tokens"]) for r in new_rows if r["tokens"]]
    if waiting:
        db.conn.executemany("INSERT INTO item_tokens_new (item_id, tokens) VALUES (?, ?)",
                            waiting)
    if triaged is not None:
        for r in new_rows:
            if r["triaged_at"] is not None:
                key = "filtered" if r["status"] == "filtered" else "candidates"
                triaged[key] = triaged.get(key, 0) + 1
    return len(new_rows), updated


@contextmanager
def index_in_bulk(db: sqlite_utils.Database) -> Iterator[None]:
    """Add the items inserted inside the block to the search index in one statement, at its end.

    For a writer storing many sources in one transaction: FTS5 writes an index segment per
    statement, and merging a segment per source cost a third of storing (migration 6). Use it
    inside a transaction (`store.db.write_transaction`), and do not change the search columns
    of an item inserted in the block before it ends (the index would be asked to forget text
    it never held). What the block left inserted is indexed even when it raises; the
    transaction then decides whether any of it stays.
    """
    after = db.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()[0]
    db.execute("INSERT INTO search_deferred (id, after_id) VALUES (1, ?)", [after])
    try:
        yield
    finally:
        db.execute(f"INSERT INTO items_fts (rowid, {_SEARCH}) SELECT id, {_SEARCH} FROM items "
                   "WHERE id > ?", [after])
        db.execute("DELETE FROM search_deferred")


_SEARCH = ", ".join(f"[{c}]" for c in SEARCH_COLUMNS)
#: The columns a new item is inserted with (the rest take their defaults).
_NEW_ITEM_COLUMNS = ("id", "source_id", "identity", *FEED_FIELDS, "published_guessed",
                     "first_seen_at", "content_hash", "status", "tags", "score", "reasons",
                     "status_by", "triaged_at", "cluster_id")
_ROW_MARKS = f"({', '.join('?' * len(_NEW_ITEM_COLUMNS))})"
#: Rows per INSERT, within SQLite's limit on bound parameters (999 before SQLite 3.32).
_ROWS_PER_INSERT = max(1, (32766 if sqlite3.sqlite_version_info >= (3, 32) else 999)
                       // len(_NEW_ITEM_COLUMNS))


def _insert_items(db: sqlite_utils.Database, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new item rows, a source's rows in as few statements as possible.

    Not executemany: the full-text index is kept by a trigger, and FTS5 flushes its pending
    terms to a new index segment at every statement that writes to it, so one statement per
    row made each item its own segment (then merged) and nearly doubled the cost of storing.
    Not sqlite-utils' insert_all either: it re-reads the table's schema on every call, which
    cost as much as the insert itself at a few dozen rows per source.
    """
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start:start + _ROWS_PER_INSERT]
        db.execute(
            f"INSERT INTO items ({', '.join(_NEW_ITEM_COLUMNS)}) VALUES "
            + ", ".join([_ROW_MARKS] * len(chunk)),
            [r[c] for r in chunk for c in _NEW_ITEM_COLUMNS],
        )


def _merge_exact_duplicates(db: sqlite_utils.Database, source_id: int,
                            rows: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Record new entries whose URL another source already published on that item instead.

    Returns the rows that are really new.
    """
    urls = [r["url"] for r in rows if r.get("url")]
    if not urls:
        return rows
    owners: dict[str, int] = {}
    for start in range(0, len(urls), 500):
        chunk = urls[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for url, item_id in db.execute(
            f"SELECT url, min(id) FROM items WHERE url IN ({marks}) AND source_id != ? "
            "GROUP BY url",
            [*chunk, source_id],
        ):
            owners[url] = item_id
    if not owners:
        return rows
    fresh = []
    for r in rows:
        item_id = owners.get(r.get("url") or "")
        if item_id is None:
            fresh.append(r)
            continue
        db["item_sources"].insert(
            {"source_id": source_id, "identity": r["identity"], "item_id": item_id,
             "url": r["url"], "first_seen_at": now},
            ignore=True,
        )
    return fresh


def other_sources(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The other sources that published exactly this item (same canonical URL)."""
    return list(db.query(
        "SELECT sources.name AS source, item_sources.url, item_sources.first_seen_at "
        "FROM item_sources JOIN sources ON sources.id = item_sources.source_id "
        "WHERE item_sources.item_id = ? ORDER BY item_sources.first_seen_at",
        [item_id],
    ))


def newest_published(entries: Iterable[Mapping[str, Any]]) -> str | None:
    """Latest `published_at` among entries that carried a date."""
    dates = [e["published_at"] for e in entries if e.get("published_at")]
    return max(dates) if dates else None


#: Orderings `query_items` offers: newest first, or best score first (newest among equals).
ORDERS = {
    "newest": "items.published_at DESC, items.id DESC",
    "score": "items.score DESC, items.published_at DESC, items.id DESC",
}


def item_filters(*, status: str | None = None, since: str | None = None,
                 until: str | None = None, source: str | None = None,
                 category: str | None = None, country: str | None = None,
                 language: str | None = None, section: str | None = None,
                 tag: str | None = None) -> tuple[list[str], list[Any]]:
    """SQL conditions (over `items` joined with `sources`) and their parameters.

    Shared by browsing and search so that a filter means the same in both. `status` may be
    "all" (None means all too); `since`/`until` are ISO dates or datetimes (UTC) compared to
    published_at (`until` inclusive of that whole day when a bare date).
    """
    where, params = ["1 = 1"], []
    if status and status != "all":
        if status not in ITEM_STATUSES:
            raise InputError(
                f"unknown status {status!r} (one of {', '.join(ITEM_STATUSES)} or all)"
            )
        where.append("items.status = ?")
        params.append(status)
    if since:
        where.append("items.published_at >= ?")
        params.append(since)
    if until:
        where.append("items.published_at <= ?")
        params.append(until + "T23:59:59Z" if len(until) == 10 else until)
    for column, value in (("sources.name", source), ("sources.category", category),
                          ("sources.country", country), ("items.section", section)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if language:
        where.append("coalesce(items.language, sources.language) LIKE ?")
        params.append(f"{language}%")
    if tag:
        where.append("EXISTS (SELECT 1 FROM json_each(items.tags) WHERE json_each.value = ?)")
        params.append(tag)
    return where, params


def query_items(db: sqlite_utils.Database, *, status: str | None = None,
                since: str | None = None, until: str | None = None,
                source: str | None = None, category: str | None = None,
                country: str | None = None, language: str | None = None,
                section: str | None = None, tag: str | None = None,
                order: str = "newest", limit: int | None = None,
                offset: int = 0) -> list[dict[str, Any]]:
    """Items with their source's name (and category and country); filters combine with AND.

    The filters are `item_filters`'; `order` is one of ORDERS.
    """
    if order not in ORDERS:
        raise InputError(f"unknown order {order!r} (one of {', '.join(ORDERS)})")
    where, params = item_filters(status=status, since=since, until=until, source=source,
                                 category=category, country=country, language=language,
                                 section=section, tag=tag)
    sql = (
        "SELECT items.*, sources.name AS source, sources.category AS source_category, "
        "sources.country AS source_country FROM items "
        "JOIN sources ON sources.id = items.source_id "
        f"WHERE {' AND '.join(where)} ORDER BY {ORDERS[order]}"
    )
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    rows = []
    for row in db.query(sql, params):
        row["tags"] = json.loads(row["tags"] or "[]")
        if "reasons" in row:
            row["reasons"] = json.loads(row["reasons"] or "[]")
        rows.append(row)
    return rows


def count_items(db: sqlite_utils.Database) -> dict[str, int]:
    """How many items are in each status."""
    return dict(db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
