"""The `items` table: writing parsed entries, and reading items back."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, MutableMapping, Sequence, Set
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import sqlite_utils

from ..errors import InputError
from ..timestamps import utcnow
from .migrations import ITEM_STATUSES, SEARCH_COLUMNS
from .scores import TRIAGE

#: Items `index_backlog` adds to the search index per transaction (~0.3 s of a 2-core machine's
#: time on news-length text): other writers wait at most that long for the write lock.
BACKLOG_CHUNK = 2_000

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


class StoredItem(NamedTuple):
    """What deciding needs to know of an item its source has stored already."""

    id: int
    content_hash: str
    published_guessed: int


@dataclass(frozen=True, slots=True)
class EntryWrites:
    """What storing one source's entries changes (`decide_entries`), before it is applied."""

    #: New `items` rows (no id yet), in feed order, with every column of _NEW_ITEM_COLUMNS
    #: but the id and cluster_id.
    inserts: tuple[dict[str, Any], ...] = ()
    #: (item id, the columns that change) for stored items whose feed-owned fields changed.
    updates: tuple[tuple[int, dict[str, Any]], ...] = ()
    #: `item_sources` rows: new entries another source had already published at that URL,
    #: recorded on its item instead of becoming items of their own (`share_urls`).
    shared: tuple[dict[str, Any], ...] = ()

    def new_urls(self) -> list[str]:
        """The URLs of the entries to insert (to look up in other sources)."""
        return [r["url"] for r in self.inserts if r["url"]]

    def share_urls(self, owners: Mapping[str, int], now: str) -> EntryWrites:
        """These writes with each insert whose URL another source's item has (`owners`: URL
        -> that item's id) recorded on that item instead."""
        if not owners:
            return self
        fresh, shared = [], list(self.shared)
        for row in self.inserts:
            item_id = owners.get(row["url"] or "")
            if item_id is None:
                fresh.append(row)
            else:
                shared.append({"source_id": row["source_id"], "identity": row["identity"],
                               "item_id": item_id, "url": row["url"], "first_seen_at": now})
        return replace(self, inserts=tuple(fresh), shared=tuple(shared))


def decide_entries(source_id: int, entries: Sequence[Mapping[str, Any]],
                   stored: Mapping[str, StoredItem], shared: Set[str], now: str) -> EntryWrites:
    """What to insert and update for a source's parsed entries, given what it has stored.

    Pure (no I/O). `stored`: the source's items by identity; `shared`: identities of entries
    this source shares with another source's item (they are left alone). New entries become
    inserts (an entry without a date takes `now` and is marked guessed); stored ones whose
    feed-owned fields changed become updates of those fields only, so editor-owned fields and
    the status are never touched. An updated entry that has lost its date keeps the date it
    had. An entry carrying triage's keys (triage/annotate.py) is inserted already triaged:
    its score and reasons, status `filtered` (by triage) unless relevant, and its story tokens.
    An identity seen twice in one feed is stored once, as it came first.
    """
    inserts: list[dict[str, Any]] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    new: set[str] = set()
    for entry in entries:
        identity = entry["identity"]
        if identity in shared or identity in new:
            continue
        values = {f: entry.get(f) for f in FEED_FIELDS}
        # Follows the title and summary it describes; not part of the content hash.
        values["text_cut"] = entry.get("text_cut")
        old = stored.get(identity)
        if old is None:
            guessed = not values["published_at"]
            if guessed:
                values["published_at"] = now
            row = {"source_id": source_id, "identity": identity, **values,
                   "published_guessed": int(guessed), "first_seen_at": now,
                   "content_hash": content_hash(entry), "status": "candidate", "tags": "[]",
                   "score": None, "reasons": None, "status_by": None, "triaged_at": None,
                   "tokens": None, "borderline": 0}
            if "score" in entry:
                relevant = bool(entry["relevant"])
                row.update(score=entry["score"], reasons=entry["reasons"], triaged_at=now,
                           tokens=entry.get("tokens"), borderline=int(entry.get("borderline", 0)),
                           status="candidate" if relevant else "filtered",
                           status_by=None if relevant else TRIAGE)
            inserts.append(row)
            new.add(identity)
            continue
        digest = content_hash(entry)
        if digest == old.content_hash:
            continue
        update = dict(values, content_hash=digest, changed_at=now)
        if not values["published_at"]:
            # Keep the first-seen date rather than losing the item's place in time.
            del update["published_at"]
        elif old.published_guessed:
            update["published_guessed"] = 0
        updates.append((old.id, update))
    return EntryWrites(inserts=tuple(inserts), updates=tuple(updates))


def store_entries(db: sqlite_utils.Database, source_id: int,
                  entries: Sequence[Mapping[str, Any]], *,
                  now: str | None = None,
                  triaged: MutableMapping[str, int] | None = None) -> tuple[int, int]:
    """Insert new entries and update changed ones for one source; returns (new, updated).

    `entries` are dicts with an `identity` and the feed-owned fields (sources.types.Entry as a
    dict), plus triage's keys when triaged where parsed (`score`, `reasons` as JSON text,
    `relevant`, story `tokens` as bytes). What changes is decided by `decide_entries`; an
    insert whose URL another source published already is recorded on that item instead. Call
    inside a transaction (`db.atomic()`) to make the source's write atomic. `triaged`, if
    given, counts the rows inserted already triaged under "candidates" and "filtered".
    """
    if not entries:
        return 0, 0
    now = now or utcnow()
    stored = {
        identity: StoredItem(item_id, digest, guessed)
        for identity, item_id, digest, guessed in db.execute(
            "SELECT identity, id, content_hash, published_guessed FROM items WHERE source_id = ?",
            [source_id],
        )
    }
    # Entries this source shares with an item of another source (same canonical URL).
    shared = {identity for (identity,) in db.execute(
        "SELECT identity FROM item_sources WHERE source_id = ?", [source_id])}
    writes = decide_entries(source_id, entries, stored, shared, now)
    writes = writes.share_urls(_url_owners(db, source_id, writes.new_urls()), now)
    _apply(db, writes)
    if triaged is not None:
        for r in writes.inserts:
            if r["triaged_at"] is not None:
                key = "filtered" if r["status"] == "filtered" else "candidates"
                triaged[key] = triaged.get(key, 0) + 1
    return len(writes.inserts), len(writes.updates)


def _apply(db: sqlite_utils.Database, writes: EntryWrites) -> None:
    """Write what `decide_entries` decided: updates, shared URLs, then the new items."""
    for item_id, update in writes.updates:
        db["items"].update(item_id, update)
    for link in writes.shared:
        db["item_sources"].insert(link, ignore=True)
    if not writes.inserts:
        return
    # Ids given here (SQLite would give the same: max + 1 onwards), so that an item inserted
    # with its story tokens can lead its own story from the start. Another writer cannot slip
    # in between: its commit would make this transaction's first write fail, not collide.
    next_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM items").fetchone()[0]
    rows = [{**r, "id": next_id + k, "cluster_id": next_id + k if r["tokens"] else None}
            for k, r in enumerate(writes.inserts)]
    _insert_items(db, rows)
    waiting = [(r["id"], r["tokens"]) for r in rows if r["tokens"]]
    if waiting:
        db.conn.executemany("INSERT INTO item_tokens_new (item_id, tokens) VALUES (?, ?)",
                            waiting)


def defer_search_index(db: sqlite_utils.Database) -> None:
    """Leave the items inserted from now on out of the search index until `index_backlog`.

    For a writer storing many sources (the collect run): FTS5 writes an index segment per
    statement, and merging a segment per source cost a third of storing (migration 6); indexing
    a run's thirty thousand items took half the main process's time while it fetched. The
    backlog (migration 13) is every item whose id is above `search_deferred.after_id`; it
    survives commits and crashes, so the run can leave it to a process of its own after the
    command (pipeline/collect.py) and the next writer to call `index_backlog` completes it.
    Items inserted by anyone while a backlog exists join it. An existing backlog keeps its
    start. Call it inside the writer's transaction.
    """
    db.execute("INSERT OR IGNORE INTO search_deferred (id, after_id) "
               "SELECT 1, coalesce(max(id), 0) FROM items")


def search_backlog(db: sqlite_utils.Database) -> int:
    """How many items wait to be added to the search index (0 without a backlog)."""
    row = db.execute("SELECT after_id FROM search_deferred WHERE id = 1").fetchone()
    if row is None:
        return 0
    return int(db.execute("SELECT count(*) FROM items WHERE id > ?", [row[0]]).fetchone()[0])


def index_backlog(db: sqlite_utils.Database, *, chunk: int | None = None) -> int:
    """Add the search backlog to the index, `chunk` (BACKLOG_CHUNK) items a transaction;
    returns how many.

    Each transaction moves the backlog's start past what it indexed, so a process killed
    half-way keeps what it did and the next call goes on from there; the backlog row goes
    with the last chunk, and inserts are indexed one by one again. Called inside a
    transaction, it does all of it in that one.
    """
    from .db import write_transaction

    chunk = chunk or BACKLOG_CHUNK
    done = 0
    while True:
        with contextlib.ExitStack() as tx:
            if not db.conn.in_transaction:
                tx.enter_context(write_transaction(db))
            row = db.execute("SELECT after_id FROM search_deferred WHERE id = 1").fetchone()
            if row is None:
                return done
            after = row[0]
            upper = db.execute("SELECT id FROM items WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?",
                               [after, chunk - 1]).fetchone()
            upper_id = upper[0] if upper is not None else None  # None: the rest fits
            bounds = "id > ?" + (" AND id <= ?" if upper_id is not None else "")
            params = [after] + ([upper_id] if upper_id is not None else [])
            done += db.execute(f"SELECT count(*) FROM items WHERE {bounds}", params).fetchone()[0]
            db.execute(f"INSERT INTO items_fts (rowid, {_SEARCH}) SELECT id, {_SEARCH} "
                       f"FROM items WHERE {bounds}", params)
            if upper_id is None:
                db.execute("DELETE FROM search_deferred")
                return done
            db.execute("UPDATE search_deferred SET after_id = ? WHERE id = 1", [upper_id])


_SEARCH = ", ".join(f"[{c}]" for c in SEARCH_COLUMNS)
#: The columns a new item is inserted with (the rest take their defaults).
_NEW_ITEM_COLUMNS = ("id", "source_id", "identity", *FEED_FIELDS, "text_cut", "published_guessed",
                     "first_seen_at", "content_hash", "status", "tags", "score", "reasons",
                     "status_by", "triaged_at", "cluster_id", "borderline")
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


def _url_owners(db: sqlite_utils.Database, source_id: int, urls: Sequence[str],
                ) -> dict[str, int]:
    """URL -> the first item of another source published at it, for those of `urls` that are."""
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
    return owners


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
                 tag: str | None = None, borderline: bool | None = None
                 ) -> tuple[list[str], list[Any]]:
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
    if borderline:  # near the relevance threshold (triage/relevance.py)
        where.append("items.borderline = 1")
    if tag:
        where.append("EXISTS (SELECT 1 FROM json_each(items.tags) WHERE json_each.value = ?)")
        params.append(tag)
    return where, params


def query_items(db: sqlite_utils.Database, *, status: str | None = None,
                since: str | None = None, until: str | None = None,
                source: str | None = None, category: str | None = None,
                country: str | None = None, language: str | None = None,
                section: str | None = None, tag: str | None = None,
                borderline: bool | None = None, order: str = "newest", limit: int | None = None,
                offset: int = 0) -> list[dict[str, Any]]:
    """Items with their source's name (and category and country); filters combine with AND.

    The filters are `item_filters`'; `order` is one of ORDERS.
    """
    if order not in ORDERS:
        raise InputError(f"unknown order {order!r} (one of {', '.join(ORDERS)})")
    where, params = item_filters(status=status, since=since, until=until, source=source,
                                 category=category, country=country, language=language,
                                 section=section, tag=tag, borderline=borderline)
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
