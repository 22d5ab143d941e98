"""Issue entries: a story included as one entry, items added, moved, dropped; the migration."""

from __future__ import annotations

from typing import Any

import pytest
from alliance_digest.errors import EditError, IssueFinalError, StaleEntry
from alliance_digest.pipeline import entries
from alliance_digest.store import editorial
from alliance_digest.store.items import store_entries
from alliance_digest.store.migrations import MIGRATIONS, migrate
from alliance_digest.store.search import search_items
from alliance_digest.triage.search import parse_query
from support import make_entry

OUTLETS = [
    {"name": "State", "url": "http://127.0.0.1/state", "category": "government", "language": "en"},
    {"name": "Japan Times", "url": "http://127.0.0.1/jt", "category": "news", "language": "en"},
    {"name": "Yonhap", "url": "http://127.0.0.1/yonhap", "category": "news", "language": "en"},
    {"name": "NHK", "url": "http://127.0.0.1/nhk", "category": "news", "language": "ja"},
]


def add_story(
    db: Any,
    key: int,
    titles: dict[str, str],
    *,
    day: str = "2026-11-17",
    summaries: dict[str, str] | None = None,
) -> list[int]:
    """One story: an item per outlet named in `titles`, the first one leading; their ids."""
    ids = []
    for n, (outlet, title) in enumerate(titles.items()):
        source_id = db.execute("SELECT id FROM sources WHERE name = ?", [outlet]).fetchone()[0]
        with db.atomic():
            store_entries(
                db,
                source_id,
                [
                    make_entry(
                        key * 10 + n,
                        title=title,
                        summary_text=(summaries or {}).get(outlet, ""),
                        published_at=f"{day}T0{n}:00:00Z",
                    )
                ],
            )
        ids.append(db.execute("SELECT max(id) FROM items").fetchone()[0])
    db.execute(
        f"UPDATE items SET cluster_id = ? WHERE id IN ({','.join('?' * len(ids))})", [ids[0], *ids]
    )
    db.conn.commit()
    return ids


@pytest.fixture
def newsroom(new_db):
    return new_db(*OUTLETS)


def status(db: Any, item_id: int) -> str:
    return db.execute("SELECT status FROM items WHERE id = ?", [item_id]).fetchone()[0]


def test_including_a_story_by_any_item_keeps_the_lead_and_one_item_per_other_outlet(newsroom):
    db = newsroom
    lead, jt, yonhap = add_story(
        db,
        1,
        {
            "State": "Joint Statement of the 2+2",
            "Japan Times": "Japan, US hold 2+2",
            "Yonhap": "US, Japan hold security talks",
        },
    )
    entry = entries.include(db, yonhap, editor="ana")
    assert [i["id"] for i in entry["items"]] == [lead, jt, yonhap]
    assert entry["items"][0]["role"] == "lead" and entry["lead_item_id"] == lead
    assert {status(db, i) for i in (lead, jt, yonhap)} == {"included"}
    with pytest.raises(EditError, match=f"already in entry {entry['id']}"):
        entries.include(db, jt, editor="ana")


def test_siblings_not_kept_are_used_in_the_entry_in_search_and_history(newsroom):
    db = newsroom
    lead, jt, yonhap = add_story(
        db,
        1,
        {
            "State": "Joint Statement of the 2+2 Okinawa",
            "Japan Times": "Japan, US hold 2+2 Okinawa",
            "Yonhap": "US, Japan hold talks Okinawa",
        },
    )
    entry = entries.include(db, lead, editor="ana", keep=[jt])
    assert [i["id"] for i in entry["items"]] == [lead, jt]
    assert [u["id"] for u in entry["unused"]] == [yonhap]
    assert status(db, yonhap) == "candidate"
    found = {r["id"]: r for r in search_items(db, parse_query("Okinawa"))}
    assert found[yonhap]["entry"] == f"used in entry {entry['id']}"
    assert found[jt]["entry"] == f"in entry {entry['id']}"
    assert [h["new"] for h in editorial.history(db, yonhap)] == [f"used in entry {entry['id']}"]


def test_add_move_lead_and_drop(newsroom):
    db = newsroom
    a = add_story(db, 1, {"State": "Minister call", "Japan Times": "Ministers talk"})
    b = add_story(db, 2, {"Yonhap": "Exercise begins"}, day="2026-11-18")
    first = entries.include(db, a[0], editor="ana")
    second = entries.include(db, b[0], editor="ana")
    moved = entries.move(db, a[1], second["id"], editor="ana")
    assert [i["id"] for i in moved["items"]] == [b[0], a[1]]
    assert [i["id"] for i in entries.show(db, first["id"])["items"]] == [a[0]]
    led = entries.set_lead(db, second["id"], a[1], editor="ana")
    assert led["lead_item_id"] == a[1] and led["items"][0]["role"] == "lead"
    with pytest.raises(StaleEntry, match="reload it"):
        entries.update(
            db, second["id"], {"headline": "x"}, editor="bo", expected_version=second["version"]
        )
    left = entries.drop(db, second["id"], [a[1]], editor="ana")
    assert left is not None and left["lead_item_id"] == b[0]
    assert status(db, a[1]) == "candidate"
    with pytest.raises(EditError, match="is in no entry"):
        entries.move(db, a[1], first["id"], editor="ana")
    added = entries.add(db, first["id"], a[1], editor="ana")
    assert [i["id"] for i in added["items"]] == [a[0], a[1]]
    assert entries.drop(db, first["id"], editor="ana") is None
    assert status(db, a[0]) == status(db, a[1]) == "candidate"


def test_tagging_an_item_included_makes_it_a_one_item_entry_and_back(newsroom):
    db = newsroom
    [item] = add_story(db, 1, {"State": "Readout of a call"})
    editorial.update_item(db, item, {"status": "included", "headline": "A call"}, editor="ana")
    [entry] = entries.list_open(db)
    assert entry["headline"] == "A call" and [i["id"] for i in entry["items"]] == [item]
    editorial.update_item(db, item, {"status": "excluded"}, editor="ana")
    assert entries.list_open(db) == []


def test_entries_of_a_final_issue_do_not_change(newsroom):
    db = newsroom
    [item] = add_story(db, 1, {"State": "Readout"})
    entry = entries.include(db, item, editor="ana")
    db.execute(
        "INSERT INTO issues (title, volume, number, date, status, created_at) "
        "VALUES ('D', 1, 1, '2026-11-20', 'final', 'now')"
    )
    db.execute("UPDATE entries SET issue_id = 1")
    db.conn.commit()
    with pytest.raises(IssueFinalError, match="final"):
        entries.update(db, entry["id"], {"blurb": "x"}, editor="ana")


def test_migration_moves_included_items_into_one_item_entries(new_db, tmp_path):
    import sqlite_utils

    db = sqlite_utils.Database(tmp_path / "old.db")
    before = [step.__name__ for step in MIGRATIONS].index("_issue_entries")
    for step in MIGRATIONS[:before]:
        step(db)
    db.execute(f"PRAGMA user_version = {before}")
    db["sources"].insert({"name": "S", "url": "u", "registry_url": "u", "created_at": "t"})
    for n in (1, 2, 3):
        db["items"].insert(
            {
                "source_id": 1,
                "identity": f"i{n}",
                "title": f"T{n}",
                "url": f"https://x.test/{n}",
                "published_at": "2026-11-01",
                "first_seen_at": "t",
                "status": "included" if n == 1 else "candidate",
                "blurb": "Written." if n == 1 else None,
                "section": "Security",
                "rank": 2,
                "links": '[{"url": "https://x.test/3", "label": "Y"}]' if n == 1 else None,
            }
        )
    db.conn.commit()
    migrate(db)
    [entry] = list(db.query("SELECT * FROM entries"))
    assert (
        entry["id"],
        entry["lead_item_id"],
        entry["blurb"],
        entry["section"],
        entry["position"],
    ) == (1, 1, "Written.", "Security", 2)
    members = [
        (r["item_id"], r["role"]) for r in db.query("SELECT * FROM entry_items ORDER BY position")
    ]
    assert members == [(1, "lead"), (3, "sibling")]
    assert db["items"].get(3)["status"] == "included"
