"""The store on a real SQLite file: schema, migrations, item writes, source health."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from alliance_digest.errors import NotFoundError, StoreError
from alliance_digest.store import items, sources
from alliance_digest.store.db import open_db
from alliance_digest.store.migrations import MIGRATIONS, schema_version
from alliance_digest.timestamps import utc_timestamp
from support import make_entry


def test_schema_is_versioned_readable_and_uses_wal(tmp_path):
    d = open_db(tmp_path / "x.db")
    assert schema_version(d) == len(MIGRATIONS)
    assert {"sources", "items", "runs", "fetches"} <= set(d.table_names())
    assert d.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert d.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    cols = {c.name for c in d["items"].columns}
    assert {"id", "source_id", "guid", "url", "title", "summary", "published_at",
            "first_seen_at", "status", "section", "tags", "headline", "key_phrase", "blurb",
            "rank", "note"} <= cols
    scols = {c.name for c in d["sources"].columns}
    assert {"name", "url", "etag", "last_modified", "last_status", "last_error",
            "consecutive_failures", "next_fetch_at"} <= scols
    d.close()
    # Re-opening applies nothing twice.
    assert schema_version(open_db(tmp_path / "x.db")) == len(MIGRATIONS)


def test_newer_database_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "n.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this program"):
        open_db(tmp_path / "n.db")


def test_not_a_database_is_one_clear_error(tmp_path):
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        open_db(p)


def test_refetch_is_idempotent_and_updates_only_feed_fields(db):
    sid = sources.get_source(db, "a")["id"]
    with db.atomic():
        assert items.store_entries(db, sid, [make_entry("guid:1", title="Old")]) == (1, 0)
    item = items.query_items(db)[0]
    db["items"].update(item["id"], {"status": "included", "status_by": "ed", "headline": "H",
                                    "blurb": "B", "tags": '["x"]', "rank": 2, "section": "Def",
                                    "key_phrase": "k", "note": "n"})
    assert items.store_entries(db, sid, [make_entry("guid:1", title="Old")]) == (0, 0)
    assert items.store_entries(db, sid, [make_entry("guid:1", title="New")]) == (0, 1)
    row = items.query_items(db)[0]
    assert row["title"] == "New"
    assert (row["status"], row["headline"], row["blurb"], row["tags"], row["rank"],
            row["section"], row["key_phrase"], row["note"]) == (
        "included", "H", "B", ["x"], 2, "Def", "k", "n")
    assert db["items"].count == 1


def test_undated_entry_keeps_first_seen_date(db):
    sid = sources.get_source(db, "a")["id"]
    items.store_entries(db, sid, [make_entry("hash:1")], now="2026-01-01T00:00:00Z")
    items.store_entries(db, sid, [make_entry("hash:1", summary_text="changed")],
                        now="2026-02-01T00:00:00Z")
    row = items.query_items(db)[0]
    assert row["published_at"] == "2026-01-01T00:00:00Z" and row["published_guessed"] == 1
    items.store_entries(db, sid, [make_entry("hash:1", published_at="2025-12-31T10:00:00Z")])
    row = items.query_items(db)[0]
    assert row["published_at"] == "2025-12-31T10:00:00Z" and row["published_guessed"] == 0


def test_query_filters(db):
    sources.sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"},
                              {"name": "b", "url": "http://127.0.0.1/b"}])
    a, b = (sources.get_source(db, n)["id"] for n in "ab")
    items.store_entries(db, a, [make_entry("guid:1", published_at="2026-01-01T00:00:00Z")])
    items.store_entries(db, b, [make_entry("guid:2", published_at="2026-03-01T00:00:00Z")])
    assert [r["identity"] for r in items.query_items(db)] == ["guid:2", "guid:1"]
    assert [r["source"] for r in items.query_items(db, source="a")] == ["a"]
    assert len(items.query_items(db, since="2026-02-01")) == 1
    assert items.query_items(db, status="included") == []
    with pytest.raises(ValueError, match="unknown status"):
        items.query_items(db, status="bogus")


def test_sync_keeps_redirected_url_until_registry_changes(db):
    row = sources.get_source(db, "a")
    sources.record_health(db, row["id"], sources.SourceHealth(url="http://127.0.0.1/moved",
                                                             etag='"e"'))
    sources.sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])
    assert sources.get_source(db, "a")["url"] == "http://127.0.0.1/moved"
    sources.sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/new"}])
    row = sources.get_source(db, "a")
    assert row["url"] == "http://127.0.0.1/new" and row["etag"] is None


def test_removed_sources_are_kept_but_not_due(db):
    sources.sync_sources(db, [{"name": "b", "url": "http://127.0.0.1/b"}])
    assert sources.get_source(db, "a")["in_registry"] == 0
    assert [r["name"] for r in sources.due_sources(db)] == ["b"]


def test_due_sources_respects_next_fetch_and_disabled(db):
    sources.sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"},
                              {"name": "b", "url": "http://127.0.0.1/b"},
                              {"name": "c", "url": "http://127.0.0.1/c", "enabled": False}])
    later = utc_timestamp(datetime.now(UTC) + timedelta(hours=1))
    sources.record_health(db, sources.get_source(db, "a")["id"],
                          sources.SourceHealth(next_fetch_at=later))
    sources.record_health(db, sources.get_source(db, "b")["id"],
                          sources.SourceHealth(disabled_reason="410 Gone"))
    assert sources.due_sources(db) == []
    assert [r["name"] for r in sources.due_sources(db, force=True)] == ["a"]
    assert [r["name"] for r in sources.due_sources(db, names=["c"])] == ["c"]
    with pytest.raises(NotFoundError):
        sources.due_sources(db, names=["nope"])
    sources.set_enabled(db, "b", True)
    assert sources.get_source(db, "b")["disabled_reason"] is None


def test_stale_flag(db):
    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert not sources.is_stale({"last_success_at": None}, now, 30)
    assert sources.is_stale({"last_success_at": "x", "newest_item_at": None}, now, 30)
    assert sources.is_stale({"last_success_at": "x", "newest_item_at": "2026-10-01T00:00:00Z"},
                            now, 30)
    assert not sources.is_stale(
        {"last_success_at": "x", "newest_item_at": "2026-11-20T00:00:00Z"}, now, 30)


def test_same_url_from_two_sources_is_one_item_with_both_sources(db):
    sources.sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"},
                              {"name": "b", "url": "http://127.0.0.1/b"}])
    a, b = (sources.get_source(db, n)["id"] for n in "ab")
    story = "https://www.mofa.go.jp/press/release/1.html"
    assert items.store_entries(db, a, [make_entry("guid:a1", url=story)]) == (1, 0)
    assert items.store_entries(db, b, [make_entry("guid:b1", url=story),
                                       make_entry("guid:b2", url="https://x.test/2")]) == (1, 0)
    # Re-fetching the second source neither duplicates nor re-merges.
    assert items.store_entries(db, b, [make_entry("guid:b1", url=story)]) == (0, 0)
    assert db["items"].count == 2
    first = next(r for r in items.query_items(db) if r["url"] == story)
    assert [o["source"] for o in items.other_sources(db, first["id"])] == ["b"]
