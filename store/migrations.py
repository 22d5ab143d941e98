"""Schema versions. `PRAGMA user_version` holds the number of migrations applied.

Each migration is a function of the database, applied once, in order, inside one transaction.
Append new ones; never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from ..errors import StoreError

ITEM_STATUSES = ("candidate", "filtered", "shortlisted", "included", "excluded")
#: Statuses only an editor sets; feeds and triage never change them.
EDITOR_STATUSES = ("shortlisted", "included", "excluded")
#: Columns editors own: collection never writes them after insert.
EDITOR_FIELDS = ("section", "tags", "headline", "key_phrase", "blurb", "rank", "note")


def _initial(db: sqlite_utils.Database) -> None:
    db["sources"].create(
        {
            "id": int,
            "name": str,
            # Effective URL (a permanent redirect updates it); registry_url is sources.toml's.
            "url": str,
            "registry_url": str,
            "kind": str,
            "owner": str,
            "country": str,
            "category": str,
            "language": str,
            "interval_minutes": int,
            "enabled": int,
            # Why collection disabled it (410 Gone), independent of sources.toml's `enabled`.
            "disabled_reason": str,
            # 0 once the source is no longer in sources.toml; its items keep their source row.
            "in_registry": int,
            "etag": str,
            "last_modified": str,
            # Last HTTP status, and the outcome of the last fetch (ok, not_modified, failed).
            "last_status": int,
            "last_outcome": str,
            "last_error": str,
            "last_error_kind": str,
            "warning": str,
            "consecutive_failures": int,
            "last_fetched_at": str,
            "last_success_at": str,
            "next_fetch_at": str,
            "newest_item_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"name", "url", "registry_url", "kind", "enabled", "in_registry",
                  "consecutive_failures"},
        defaults={"kind": "feed", "enabled": 1, "in_registry": 1, "consecutive_failures": 0},
    )
    db["sources"].create_index(["name"], unique=True)

    db["runs"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            # running, completed, failed
            "status": str,
            "forced": int,
            "source_filter": str,
            "sources_due": int,
            "sources_ok": int,
            "sources_not_modified": int,
            "sources_failed": int,
            "items_new": int,
            "items_updated": int,
            "error": str,
            "flow_run_id": str,
        },
        pk="id",
        not_null={"started_at", "status"},
        defaults={"status": "running", "forced": 0, "sources_due": 0, "sources_ok": 0,
                  "sources_not_modified": 0, "sources_failed": 0, "items_new": 0,
                  "items_updated": 0},
    )

    db["items"].create(
        {
            "id": int,
            "source_id": int,
            # Unique within the source: guid:…, url:… or hash:… (see sources/normalise.py).
            "identity": str,
            "guid": str,
            "url": str,
            "title": str,
            "summary": str,
            "summary_text": str,
            "author": str,
            "language": str,
            "image_url": str,
            # Published, else updated, else first seen (then published_guessed = 1).
            "published_at": str,
            "published_guessed": int,
            "updated_at": str,
            "first_seen_at": str,
            "changed_at": str,
            "content_hash": str,
            "status": str,
            # Who set the status last: NULL (collect), 'triage', or an editor's name.
            "status_by": str,
            "section": str,
            # JSON array of strings.
            "tags": str,
            "headline": str,
            "key_phrase": str,
            "blurb": str,
            "rank": int,
            "note": str,
        },
        pk="id",
        foreign_keys=[("source_id", "sources", "id")],
        not_null={"source_id", "identity", "title", "published_at", "first_seen_at", "status",
                  "tags"},
        defaults={"status": "candidate", "tags": "[]", "published_guessed": 0},
    )
    db["items"].create_index(["source_id", "identity"], unique=True)
    db["items"].create_index(["published_at"])
    db["items"].create_index(["status", "published_at"])
    db["items"].create_index(["url"])

    db["fetches"].create(
        {
            "id": int,
            "run_id": int,
            "source_id": int,
            "fetched_at": str,
            "outcome": str,
            "http_status": int,
            "bytes": int,
            "duration_ms": int,
            "error": str,
            "error_kind": str,
            "warning": str,
            "items_seen": int,
            "items_new": int,
            "items_updated": int,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("source_id", "sources", "id")],
        not_null={"run_id", "source_id", "fetched_at", "outcome"},
        defaults={"bytes": 0, "items_seen": 0, "items_new": 0, "items_updated": 0},
    )
    db["fetches"].create_index(["source_id", "fetched_at"])
    db["fetches"].create_index(["run_id"])


def _triage(db: sqlite_utils.Database) -> None:
    """Relevance score with its reasons, story clusters, and the other outlets of an item."""
    db["items"].add_column("score", float)
    # JSON list of {"rule", "match", "weight"} objects: why the item scored what it did.
    db["items"].add_column("reasons", str)
    # The id of the item that leads this item's story cluster (itself when it leads).
    db["items"].add_column("cluster_id", int)
    db["items"].add_column("triaged_at", str)
    db["items"].create_index(["cluster_id"])
    db["items"].create_index(["score"])
    # Exact duplicates: one item, several sources that published the same canonical URL.
    # Keyed like items (source, identity) so a re-fetch of the second source finds it here.
    db["item_sources"].create(
        {"source_id": int, "identity": str, "item_id": int, "url": str, "first_seen_at": str},
        pk=("source_id", "identity"),
        foreign_keys=[("item_id", "items", "id"), ("source_id", "sources", "id")],
        not_null={"item_id", "source_id", "identity", "first_seen_at"},
    )
    db["item_sources"].create_index(["item_id"])


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_initial, _triage]


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations; returns the schema version. Refuses a newer database."""
    if schema_version(db) == len(MIGRATIONS):
        return len(MIGRATIONS)
    # IMMEDIATE takes the write lock first, so two processes starting at once (the desk and a
    # collect run) cannot both apply the same migration; the loser re-reads the version.
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        if version > len(MIGRATIONS):
            raise StoreError(
                f"database schema version {version} is newer than this program knows "
                f"({len(MIGRATIONS)}): upgrade alliance-digest"
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        db.rollback()
        raise
    db.commit()
    return len(MIGRATIONS)
