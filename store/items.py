"""The `items` table: writing parsed entries, and reading items back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from .db import utcnow
from .migrations import ITEM_STATUSES

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
                  now: str | None = None) -> tuple[int, int]:
    """Insert new entries and update changed ones for one source; returns (new, updated).

    `entries` are dicts with an `identity` and the feed-owned fields (sources.types.Entry as a
    dict). Editor-owned fields and the status are never touched on update. An entry without a
    date keeps the time it was first seen, and a later fetch that still has no date does not
    move it. Call inside a transaction (`db.atomic()`) to make the source's write atomic.
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
            new_rows.append(
                {"source_id": source_id, "identity": identity, **values,
                 "published_guessed": int(guessed), "first_seen_at": now,
                 "content_hash": content_hash(entry), "status": "candidate", "tags": "[]"}
            )
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
    if new_rows:
        db["items"].insert_all(new_rows, batch_size=500)
    return len(new_rows), updated


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


def query_items(db: sqlite_utils.Database, *, status: str | None = None,
                since: str | None = None, source: str | None = None,
                limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Items newest first, with their source's name; filters combine with AND.

    `status` may be "all"; `since` is an ISO date or datetime (UTC) compared to published_at.
    """
    where, params = ["1 = 1"], []
    if status and status != "all":
        if status not in ITEM_STATUSES:
            raise ValueError(
                f"unknown status {status!r} (one of {', '.join(ITEM_STATUSES)} or all)"
            )
        where.append("items.status = ?")
        params.append(status)
    if since:
        where.append("items.published_at >= ?")
        params.append(since)
    if source:
        where.append("sources.name = ?")
        params.append(source)
    sql = (
        "SELECT items.*, sources.name AS source FROM items "
        "JOIN sources ON sources.id = items.source_id "
        f"WHERE {' AND '.join(where)} ORDER BY items.published_at DESC, items.id DESC"
    )
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    rows = []
    for row in db.query(sql, params):
        row["tags"] = json.loads(row["tags"] or "[]")
        rows.append(row)
    return rows


def count_items(db: sqlite_utils.Database) -> dict[str, int]:
    """How many items are in each status."""
    return dict(db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
