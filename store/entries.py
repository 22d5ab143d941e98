"""Issue entries: the paragraphs of an issue, each holding the items of one development.

    entries       id, issue_id (NULL until a draft assigns it), section, position, headline,
                  key_phrase, blurb, note, lead_item_id, version (stale checks), who and when
    entry_items   entry_id, item_id (an item is in one entry at most), position, role
                  ('lead' or 'sibling'); the lead is position 1

The rule the desk, the CLI and the draft share: an item is `included` exactly when it is in
an entry. store.editorial keeps it when a status changes (`on_status_change`); the use cases
(pipeline/entries.py) add and move items here and set their status through store.editorial.

An item of a story whose other items make an entry, but which no entry holds, is "used in
entry N" (`used_in`): not excluded, only not needed; search and history show it as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from ..errors import EditError, IssueFinalError, NotFoundError, StaleEntry
from .review import resolve_entry_comments

#: The fields an editor writes on an entry.
ENTRY_FIELDS = ("headline", "key_phrase", "blurb", "section", "position", "note")

_CHUNK = 500

_ITEM_SELECT = (
    "SELECT items.id, items.url, items.title, items.summary_text, items.language, "
    "items.published_at, items.status, items.version, items.cluster_id, items.score, "
    "items.image_url, "
    "items.lead_image, items.image_credit, items.headline AS item_headline, "
    "items.blurb AS item_blurb, items.key_phrase AS item_key_phrase, "
    "sources.name AS source, sources.category AS source_category, "
    "sources.language AS source_language, entry_items.entry_id, entry_items.position, "
    "entry_items.role FROM entry_items JOIN items ON items.id = entry_items.item_id "
    "JOIN sources ON sources.id = items.source_id "
)


# --- reading -----------------------------------------------------------------------------------


def entry_row(db: sqlite_utils.Database, entry_id: int) -> dict[str, Any]:
    """The entries row, or NotFoundError."""
    rows = list(db.query("SELECT * FROM entries WHERE id = ?", [entry_id]))
    if not rows:
        raise NotFoundError(f"no entry with id {entry_id}")
    return rows[0]


def entry_items(
    db: sqlite_utils.Database, entry_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """{entry id: its items, lead first, then by position}, with source name and language."""
    out: dict[int, list[dict[str, Any]]] = {int(i): [] for i in entry_ids}
    ids = list(out)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in db.query(
            _ITEM_SELECT + f"WHERE entry_items.entry_id IN ({marks}) "
            "ORDER BY entry_items.entry_id, entry_items.role != 'lead', "
            "entry_items.position, items.id",
            chunk,
        ):
            row["language"] = row["language"] or row.pop("source_language", None) or ""
            row.pop("source_language", None)
            out[row["entry_id"]].append(row)
    return out


def get_entry(db: sqlite_utils.Database, entry_id: int) -> dict[str, Any]:
    """An entry with its `items` (lead first) and its issue's row under `issue` (or None)."""
    entry = entry_row(db, entry_id)
    entry["items"] = entry_items(db, [entry_id])[entry_id]
    entry["issue"] = None
    if entry["issue_id"] is not None:
        rows = list(db.query("SELECT * FROM issues WHERE id = ?", [entry["issue_id"]]))
        entry["issue"] = rows[0] if rows else None
    return entry


def list_entries(
    db: sqlite_utils.Database, *, issue_id: int | None = None, open_only: bool = False
) -> list[dict[str, Any]]:
    """Entries with their items: of one issue, else every one not in a final issue (open_only),
    else all; ordered by issue, section, position, id."""
    where, params = [], []
    if issue_id is not None:
        where.append("entries.issue_id = ?")
        params.append(issue_id)
    elif open_only:
        where.append(
            "NOT EXISTS (SELECT 1 FROM issues WHERE issues.id = entries.issue_id "
            "AND issues.status = 'final')"
        )
    sql = "SELECT entries.* FROM entries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += (
        " ORDER BY entries.issue_id IS NULL, entries.issue_id, entries.position IS NULL, "
        "entries.position, entries.id"
    )
    rows = list(db.query(sql, params))
    items = entry_items(db, [r["id"] for r in rows])
    for row in rows:
        row["items"] = items[row["id"]]
    return rows


def entry_of(db: sqlite_utils.Database, item_ids: Iterable[int]) -> dict[int, int]:
    """{item id: the entry holding it} for those of `item_ids` an entry holds."""
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    out: dict[int, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        out.update(
            db.execute(
                f"SELECT item_id, entry_id FROM entry_items WHERE item_id IN ({marks})", chunk
            ).fetchall()
        )
    return out


def used_in(db: sqlite_utils.Database, item_ids: Iterable[int]) -> dict[int, int]:
    """{item id: entry id} for items no entry holds whose story has an item in an entry.

    Those are "used in entry N": their development is in the issue through its other outlets.
    The lowest entry id wins when a story's items went to several entries. Linear in the
    items asked about: each story is looked up once, from the (small) entry_items side, so a
    story of thousands of templated items costs no more than a small one.
    """
    ids = list(dict.fromkeys(int(i) for i in item_ids))
    story: dict[int, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        story.update(
            db.execute(
                f"SELECT id, cluster_id FROM items WHERE id IN ({marks}) "
                "AND cluster_id IS NOT NULL",
                chunk,
            ).fetchall()
        )
    held = entry_of(db, story)
    leads = sorted(set(story.values()))
    story_entry: dict[int, int] = {}
    for start in range(0, len(leads), _CHUNK):
        chunk = leads[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        # CROSS JOIN keeps SQLite's loop on entry_items (editors' picks), never on a story.
        story_entry.update(
            db.execute(
                "SELECT o.cluster_id, min(ei.entry_id) FROM entry_items ei CROSS JOIN items o "
                f"ON o.id = ei.item_id WHERE o.cluster_id IN ({marks}) GROUP BY o.cluster_id",
                chunk,
            ).fetchall()
        )
    return {
        item: story_entry[lead]
        for item, lead in story.items()
        if item not in held and lead in story_entry
    }


def entry_marks(db: sqlite_utils.Database, item_ids: Iterable[int]) -> dict[int, str]:
    """{item id: "in entry N" or "used in entry N"} for the items concerned, for lists."""
    ids = list(item_ids)
    marks = {i: f"used in entry {e}" for i, e in used_in(db, ids).items()}
    marks.update({i: f"in entry {e}" for i, e in entry_of(db, ids).items()})
    return marks


# --- writing (inside the caller's transaction) -------------------------------------------------


def create_entry(
    db: sqlite_utils.Database,
    *,
    lead_item_id: int,
    sibling_ids: Sequence[int],
    fields: Mapping[str, Any],
    editor: str,
    now: str,
) -> int:
    """A new entry led by `lead_item_id` with `sibling_ids` kept; returns its id.

    Items already in another entry are refused (move them instead): EditError.
    """
    ids = [lead_item_id, *[i for i in dict.fromkeys(sibling_ids) if i != lead_item_id]]
    taken = entry_of(db, ids)
    if taken:
        item_id, entry_id = next(iter(taken.items()))
        raise EditError(
            f"item {item_id} is already in entry {entry_id}; move it with "
            f"`digest entry move {item_id} ENTRY`"
        )
    values = {k: fields.get(k) for k in ENTRY_FIELDS if k in fields}
    # SQLite gives a deleted highest rowid again; reviewers' comments and the trail name
    # entries by number, so a new entry takes a number none of them has named either.
    entry_id = 1 + max(
        int(db.execute(sql).fetchone()[0] or 0)
        for sql in (
            "SELECT max(id) FROM entries",
            "SELECT max(CAST(entry AS INTEGER)) FROM issue_comments",
            "SELECT max(CAST(entry AS INTEGER)) FROM issue_events",
        )
    )
    db.execute(
        "INSERT INTO entries (id, lead_item_id, version, created_by, created_at, edited_by, "
        "edited_at) VALUES (?, ?, 1, ?, ?, ?, ?)",
        [entry_id, lead_item_id, editor, now, editor, now],
    )
    if values:
        db["entries"].update(entry_id, values)
    db.conn.executemany(
        "INSERT INTO entry_items (entry_id, item_id, position, role) VALUES (?, ?, ?, ?)",
        [
            (entry_id, item_id, pos, "lead" if pos == 1 else "sibling")
            for pos, item_id in enumerate(ids, start=1)
        ],
    )
    return entry_id


def check_open(db: sqlite_utils.Database, entry: Mapping[str, Any]) -> None:
    """Refuse to change an entry of a final issue (IssueFinalError)."""
    if entry.get("issue_id") is None:
        return
    row = db.execute(
        "SELECT status, volume, number FROM issues WHERE id = ?", [entry["issue_id"]]
    ).fetchone()
    if row and row[0] == "final":
        raise IssueFinalError(
            f"entry {entry['id']} is in issue {row[1]}.{row[2]}, which is "
            "final: its entries cannot change"
        )


def check_version(entry: Mapping[str, Any], expected: int | None) -> None:
    """StaleEntry when the entry was saved since the editor's page showed `expected`."""
    if expected is not None and int(expected) != int(entry["version"] or 0):
        raise StaleEntry(
            int(entry["id"]),
            expected_version=int(expected),
            version=int(entry["version"] or 0),
            edited_by=entry["edited_by"],
            edited_at=entry["edited_at"],
        )


def touch(
    db: sqlite_utils.Database,
    entry_id: int,
    *,
    editor: str,
    now: str,
    values: Mapping[str, Any] | None = None,
) -> None:
    """Write `values` (if any) and bump the entry's version."""
    db.execute(
        "UPDATE entries SET version = version + 1, edited_by = ?, edited_at = ? WHERE id = ?",
        [editor, now, entry_id],
    )
    if values:
        db["entries"].update(entry_id, dict(values))


def add_item(db: sqlite_utils.Database, entry_id: int, item_id: int) -> None:
    """Put an item (in no entry) last among the entry's siblings."""
    row = db.execute(
        "SELECT coalesce(max(position), 0) FROM entry_items WHERE entry_id = ?", [entry_id]
    ).fetchone()
    db.execute(
        "INSERT INTO entry_items (entry_id, item_id, position, role) VALUES (?, ?, ?, 'sibling')",
        [entry_id, item_id, int(row[0]) + 1],
    )


def remove_item(db: sqlite_utils.Database, item_id: int, *, editor: str) -> int | None:
    """Take an item out of its entry; returns that entry's id if it still has items.

    When the lead leaves, the next item leads; an entry left without items is deleted, and
    its open review comments are resolved by `editor` (store.review.resolve_entry_comments).
    """
    row = db.execute("SELECT entry_id FROM entry_items WHERE item_id = ?", [item_id]).fetchone()
    if row is None:
        return None
    entry_id = int(row[0])
    # A sent issue is frozen: its items stay in their entries (IssueFinalError).
    check_open(db, entry_row(db, entry_id))
    db.execute("DELETE FROM entry_items WHERE item_id = ?", [item_id])
    rest = [
        r[0]
        for r in db.execute(
            "SELECT item_id FROM entry_items WHERE entry_id = ? ORDER BY role != 'lead', position, "
            "item_id",
            [entry_id],
        )
    ]
    if not rest:
        db.execute("DELETE FROM entries WHERE id = ?", [entry_id])
        resolve_entry_comments(db, str(entry_id), actor=editor)
        return None
    lead = db.execute("SELECT lead_item_id FROM entries WHERE id = ?", [entry_id]).fetchone()[0]
    if lead == item_id:
        set_lead(db, entry_id, rest[0])
    else:
        _renumber(db, entry_id, rest)
    return entry_id


def set_lead(db: sqlite_utils.Database, entry_id: int, item_id: int) -> None:
    """Make one of the entry's items its lead (position 1); the others keep their order."""
    ids = [
        r[0]
        for r in db.execute(
            "SELECT item_id FROM entry_items WHERE entry_id = ? ORDER BY role != 'lead', position, "
            "item_id",
            [entry_id],
        )
    ]
    if item_id not in ids:
        raise EditError(f"item {item_id} is not in entry {entry_id}")
    ids.remove(item_id)
    db.execute("UPDATE entries SET lead_item_id = ? WHERE id = ?", [item_id, entry_id])
    _renumber(db, entry_id, [item_id, *ids])


def _renumber(db: sqlite_utils.Database, entry_id: int, ordered: Sequence[int]) -> None:
    db.conn.executemany(
        "UPDATE entry_items SET position = ?, role = ? WHERE entry_id = ? AND item_id = ?",
        [
            (pos, "lead" if pos == 1 else "sibling", entry_id, item_id)
            for pos, item_id in enumerate(ordered, start=1)
        ],
    )


def ensure_entry(
    db: sqlite_utils.Database, item: Mapping[str, Any], *, editor: str, now: str
) -> int:
    """The entry holding an item just included, made for it alone (with its editor's fields)
    when none holds it yet."""
    held = entry_of(db, [int(item["id"])])
    if held:
        return held[int(item["id"])]
    fields = {
        "headline": item.get("headline"),
        "key_phrase": item.get("key_phrase"),
        "blurb": item.get("blurb"),
        "section": item.get("section"),
        "position": item.get("rank"),
    }
    return create_entry(
        db,
        lead_item_id=int(item["id"]),
        sibling_ids=[],
        fields={k: v for k, v in fields.items() if v is not None},
        editor=editor,
        now=now,
    )


#: Item fields that are an entry's own when the item leads it (rank is its position).
LEAD_FIELDS = {"headline": "headline", "key_phrase": "key_phrase", "blurb": "blurb",
               "section": "section", "rank": "position"}


def follow_lead(db: sqlite_utils.Database, item_id: int, changed: Mapping[str, Any]) -> None:
    """Copy an item's changed paragraph fields to the entry it leads (if it leads one)."""
    values = {LEAD_FIELDS[k]: v for k, v in changed.items() if k in LEAD_FIELDS}
    if not values:
        return
    row = db.execute("SELECT id FROM entries WHERE lead_item_id = ?", [item_id]).fetchone()
    if row is not None:
        check_open(db, entry_row(db, int(row[0])))  # a sent issue's paragraphs are frozen
        db["entries"].update(row[0], values)


def assign_issue(db: sqlite_utils.Database, issue_id: int, entry_ids: Sequence[int]) -> None:
    """Record which entries a drafted issue holds, in issue order (position = 1..n).

    Entries the issue held before but no longer does go back to the next issue (NULL).
    """
    keep = set(entry_ids)
    for (entry_id,) in db.execute(
        "SELECT id FROM entries WHERE issue_id = ?", [issue_id]
    ).fetchall():
        if entry_id not in keep:
            db.execute("UPDATE entries SET issue_id = NULL WHERE id = ?", [entry_id])
    db.conn.executemany(
        "UPDATE entries SET issue_id = ?, position = ? WHERE id = ?",
        [(issue_id, pos, entry_id) for pos, entry_id in enumerate(entry_ids, start=1)],
    )


def select_for_issue(
    db: sqlite_utils.Database, *, end: str, own_issue_id: int | None
) -> list[dict[str, Any]]:
    """Entries for an issue whose window ends before `end` (ISO), with their items.

    Every entry that no other *final* issue holds and whose lead was published before `end`
    (as items were selected before entries: only finalising freezes an entry out).
    """
    rows = list(
        db.query(
            "SELECT entries.*, lead.published_at AS lead_published_at FROM entries "
            "JOIN items lead ON lead.id = entries.lead_item_id "
            "WHERE lead.published_at < ? AND NOT EXISTS (SELECT 1 FROM issues WHERE "
            "issues.id = entries.issue_id AND issues.status = 'final' AND issues.id != ?)",
            [end, own_issue_id if own_issue_id is not None else -1],
        )
    )
    items = entry_items(db, [r["id"] for r in rows])
    for row in rows:
        row["items"] = items[row["id"]]
    return rows
