"""Story clusters in the database: which items to cluster, their windows, and the writes.

`items.cluster_id` is the id of the item that leads the story. Every clustered item has one,
a story of one item included (it leads itself), so NULL means "not clustered yet" and finding
the next batch is an index lookup, not a scan of history. `item_tokens` holds each clustered
item's token set so that history is compared without being re-tokenised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ..errors import NotFoundError

#: Source categories whose items lead a story over the press reporting on them.
PRIMARY_CATEGORIES = ("government", "military")

#: SQLite's variable limit is 32766 since 3.32; stay well below it.
_CHUNK = 10_000


def _chunks(ids: Iterable[int]) -> Iterator[tuple[list[int], str]]:
    """`ids` in lists of at most _CHUNK, each with its "?,?,…" placeholders for an IN (…)."""
    ids = list(ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        yield chunk, ",".join("?" * len(chunk))


@dataclass(frozen=True, slots=True)
class ClusterRow:
    """A batch item as clustering needs it."""

    id: int
    #: Days (SQLite julianday), so windows are plain float comparisons.
    day: float
    #: Sort key of a story's lead: primary source first, then earliest, then lowest id.
    lead_key: tuple[int, float, int]
    title: str | None
    summary_text: str | None
    #: Its token set when computed before (`item_tokens_new`); the text is then not read.
    tokens: bytes | None = None
    source_id: int = -1


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """An item clustered earlier, in a batch's window."""

    id: int
    day: float
    #: Its stored keys; None when stale (its text changed): made again from the text.
    tokens: bytes | None
    #: Its story's lead id.
    cluster_id: int
    source_id: int
    lead_key: tuple[int, float, int]


def _lead_key(category: str | None, day: float, item_id: int) -> tuple[int, float, int]:
    return (0 if category in PRIMARY_CATEGORIES else 1, day, item_id)


def unclustered_ids(db: sqlite_utils.Database) -> list[int]:
    """Items waiting to be clustered, oldest first.

    Those never clustered (or detached for re-clustering), and those inserted already triaged
    as stories of their own, which wait in `item_tokens_new` (migration 6).
    """
    rows = db.execute(
        "SELECT id, published_at FROM items WHERE cluster_id IS NULL UNION "
        "SELECT items.id, items.published_at FROM item_tokens_new "
        "JOIN items ON items.id = item_tokens_new.item_id").fetchall()
    rows.sort(key=lambda r: (r[1], r[0]))
    return [r[0] for r in rows]


def batch_rows(db: sqlite_utils.Database, item_ids: Sequence[int]) -> list[ClusterRow]:
    """The batch's items with their text (or tokens made earlier), oldest first.

    Unknown ids are left out.
    """
    rows: list[ClusterRow] = []
    for chunk, marks in _chunks(item_ids):
        for item_id, day, category, title, text, tokens, source_id in db.execute(
            "SELECT items.id, julianday(items.published_at), sources.category, "
            "CASE WHEN new.tokens IS NULL THEN items.title END, "
            "CASE WHEN new.tokens IS NULL THEN items.summary_text END, new.tokens, "
            "items.source_id "
            "FROM items JOIN sources ON sources.id = items.source_id "
            "LEFT JOIN item_tokens_new AS new ON new.item_id = items.id "
            f"WHERE items.id IN ({marks})", chunk):
            rows.append(ClusterRow(item_id, day, _lead_key(category, day, item_id), title, text,
                                   tokens, source_id))
    rows.sort(key=lambda r: (r.day, r.id))
    return rows


def window_items(db: sqlite_utils.Database, first_day: float,
                 last_day: float) -> list[HistoryRow]:
    """Items clustered earlier and published in the window, with their keys and story.

    Reads the narrow item_tokens table by its day index and each item's row by its primary
    key: this is the part of a batch's cost that depends on history. Tokens are None when the
    item's text changed since (see the migration's trigger).
    """
    return [HistoryRow(item_id, day, tokens, cluster_id, source_id,
                       _lead_key(category, day, item_id))
            for item_id, day, tokens, cluster_id, source_id, category in db.execute(
                "SELECT t.item_id, t.day, t.tokens, items.cluster_id, items.source_id, "
                "sources.category FROM item_tokens AS t "
                "JOIN items ON items.id = t.item_id "
                "JOIN sources ON sources.id = items.source_id "
                "WHERE t.day BETWEEN ? AND ? AND items.cluster_id IS NOT NULL",
                [first_day, last_day])]


def pins(db: sqlite_utils.Database, item_ids: Sequence[int]) -> dict[int, int]:
    """{item id: pin} for the pinned ones among `item_ids` (an editor's story correction)."""
    out: dict[int, int] = {}
    for chunk, marks in _chunks(item_ids):
        out.update(db.execute(
            f"SELECT item_id, pin FROM story_pins WHERE item_id IN ({marks})", chunk).fetchall())
    return out


def texts(db: sqlite_utils.Database, item_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """{id: (title, summary_text)} for recomputing stale tokens."""
    out: dict[int, tuple[str, str]] = {}
    for chunk, marks in _chunks(item_ids):
        out.update((r[0], (r[1], r[2])) for r in db.execute(
            f"SELECT id, title, summary_text FROM items WHERE id IN ({marks})", chunk))
    return out


def save_tokens(db: sqlite_utils.Database, rows: Iterable[tuple[int, float, bytes]]) -> None:
    """Store (item_id, day, tokens), replacing older ones (and tokens made before clustering)."""
    rows = list(rows)
    db.conn.executemany(
        "INSERT OR REPLACE INTO item_tokens (item_id, day, tokens) VALUES (?, ?, ?)", rows)
    for chunk, marks in _chunks(r[0] for r in rows):
        db.execute(f"DELETE FROM item_tokens_new WHERE item_id IN ({marks})", chunk)


@dataclass(frozen=True, slots=True)
class StoryInfo:
    """An existing story as a batch sees it: its lead and its extent in time."""

    lead_key: tuple[int, float, int]
    first_day: float
    last_day: float


def stories(db: sqlite_utils.Database, cluster_ids: Iterable[int]) -> dict[int, StoryInfo]:
    """Lead and time span of each existing story (only the few a batch links to)."""
    out: dict[int, StoryInfo] = {}
    for chunk, marks in _chunks(sorted(set(cluster_ids))):
        spans = {cid: (lo, hi) for cid, lo, hi in db.execute(
            "SELECT cluster_id, min(julianday(published_at)), max(julianday(published_at)) "
            f"FROM items WHERE cluster_id IN ({marks}) GROUP BY cluster_id", chunk)}
        for item_id, day, category in db.execute(
            "SELECT items.id, julianday(items.published_at), sources.category FROM items "
            f"JOIN sources ON sources.id = items.source_id WHERE items.id IN ({marks})", chunk):
            lo, hi = spans.get(item_id, (day, day))
            out[item_id] = StoryInfo(_lead_key(category, day, item_id), lo, hi)
    return out


def detach(db: sqlite_utils.Database, item_ids: Sequence[int]) -> None:
    """Take items out of their stories so they can be clustered again.

    A story whose lead leaves keeps its other members, led by the best of them.
    """
    for chunk, marks in _chunks(item_ids):
        leads = [r[0] for r in db.execute(
            f"SELECT DISTINCT cluster_id FROM items WHERE id IN ({marks}) "
            "AND cluster_id IS NOT NULL", chunk)]
        db.execute(f"UPDATE items SET cluster_id = NULL WHERE id IN ({marks})", chunk)
        for lead in leads:
            rest = db.execute(
                "SELECT items.id FROM items JOIN sources ON sources.id = items.source_id "
                "WHERE items.cluster_id = ? ORDER BY "
                f"CASE WHEN sources.category IN {PRIMARY_CATEGORIES!r} THEN 0 ELSE 1 END, "
                "julianday(items.published_at), items.id LIMIT 1", [lead]).fetchone()
            if rest and rest[0] != lead:
                db.execute("UPDATE items SET cluster_id = ? WHERE cluster_id = ?", [rest[0], lead])


def assign(db: sqlite_utils.Database, assignments: Iterable[tuple[int, int]],
           relead: Iterable[tuple[int, int]] = ()) -> None:
    """Write (item_id, lead_id) pairs, and move whole stories (old_lead, new_lead) to new leads."""
    db.conn.executemany("UPDATE items SET cluster_id = ? WHERE cluster_id = ?",
                        [(new, old) for old, new in relead])
    # Only rows whose lead changes: rewriting an item's row costs a page write, and most new
    # items stay the story of their own they were inserted as.
    db.conn.executemany("UPDATE items SET cluster_id = ? WHERE id = ? AND cluster_id IS NOT ?",
                        [(lead, item_id, lead) for item_id, lead in assignments])


def cluster_members(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The other items of `item_id`'s story, lead first, with their source's name."""
    row = db.execute("SELECT cluster_id FROM items WHERE id = ?", [item_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no item with id {item_id}")
    if row[0] is None:
        return []
    return list(db.query(
        "SELECT items.id, items.title, items.url, items.published_at, items.status, "
        "items.cluster_id, items.id = items.cluster_id AS is_lead, "
        "sources.name AS source, sources.category AS source_category "
        "FROM items JOIN sources ON sources.id = items.source_id "
        "WHERE items.cluster_id = ? AND items.id != ? "
        "ORDER BY is_lead DESC, items.published_at, items.id",
        [row[0], item_id],
    ))


def leads_of(db: sqlite_utils.Database, item_ids: Sequence[int]) -> dict[int, int]:
    """{item id: its story's lead id} for the clustered ones among `item_ids`."""
    out: dict[int, int] = {}
    for chunk, marks in _chunks(item_ids):
        out.update(db.execute(
            f"SELECT id, cluster_id FROM items WHERE id IN ({marks}) AND cluster_id IS NOT NULL",
            chunk).fetchall())
    return out


def story_sizes(db: sqlite_utils.Database, lead_ids: Sequence[int]) -> dict[int, int]:
    """How many items each story has, by lead id (for lists showing "+3 outlets")."""
    out: dict[int, int] = {}
    for chunk, marks in _chunks(lead_ids):
        out.update(db.execute(
            f"SELECT cluster_id, count(*) FROM items WHERE cluster_id IN ({marks}) "
            "GROUP BY cluster_id", chunk).fetchall())
    return out


# --- editors' corrections ---------------------------------------------------------------------


def _story_of(db: sqlite_utils.Database, item_id: int) -> int:
    row = db.execute("SELECT cluster_id FROM items WHERE id = ?", [item_id]).fetchone()
    if row is None:
        raise NotFoundError(f"no item with id {item_id}")
    return row[0] if row[0] is not None else item_id


def story_members(db: sqlite_utils.Database, lead: int) -> list[int]:
    """The ids of the story led by `lead` (the lead included)."""
    return [r[0] for r in db.execute(
        "SELECT id FROM items WHERE cluster_id = ? OR id = ? ORDER BY id", [lead, lead])]


def _best_lead(db: sqlite_utils.Database, ids: Sequence[int]) -> int:
    best: tuple[tuple[int, float, int], int] | None = None
    for chunk, marks in _chunks(ids):
        for item_id, day, category in db.execute(
                "SELECT items.id, julianday(items.published_at), sources.category FROM items "
                "JOIN sources ON sources.id = items.source_id "
                f"WHERE items.id IN ({marks})", chunk):
            key = (_lead_key(category, day, item_id), item_id)
            best = key if best is None or key < best else best
    if best is None:
        raise NotFoundError("no such items")
    return best[1]


def _pin(db: sqlite_utils.Database, ids: Sequence[int], lead: int, editor: str,
         now: str) -> None:
    """Put `ids` in the story led by `lead`, pinned there, one audit row per item that moves."""
    old = leads_of(db, ids)
    db.conn.executemany(
        "INSERT OR REPLACE INTO story_pins (item_id, pin, pinned_by, pinned_at) "
        "VALUES (?, ?, ?, ?)", [(i, lead, editor, now) for i in ids])
    db.conn.executemany("UPDATE items SET cluster_id = ? WHERE id = ?",
                        [(lead, i) for i in ids])
    db.conn.executemany(
        "INSERT INTO edits (item_id, field, old, new, editor, at) VALUES (?, 'story', ?, ?, ?, ?)",
        [(i, str(old.get(i, i)), str(lead), editor, now) for i in ids if old.get(i) != lead])


def merge_stories(db: sqlite_utils.Database, item_a: int, item_b: int, *, editor: str,
                  now: str) -> int:
    """Make the stories of two items one, pinned (kept by later runs); returns its lead's id."""
    stories = {_story_of(db, item_a), _story_of(db, item_b)}
    members = sorted({m for lead in stories for m in story_members(db, lead)})
    lead = _best_lead(db, members)
    _pin(db, members, lead, editor, now)
    return lead


def split_from_story(db: sqlite_utils.Database, item_id: int, *, editor: str,
                     now: str) -> int:
    """Take an item out of its story into one of its own; both stay apart from now on.

    Returns the lead of what is left of the old story (the item itself if it was alone).
    """
    lead = _story_of(db, item_id)
    rest = [m for m in story_members(db, lead) if m != item_id]
    _pin(db, [item_id], item_id, editor, now)
    if lead == item_id:  # it led the story: its cluster_id stays, its story does not
        db.execute("INSERT INTO edits (item_id, field, old, new, editor, at) "
                   "VALUES (?, 'story', ?, ?, ?, ?)",
                   [item_id, f"{lead} (with {len(rest)} more)", str(item_id), editor, now])
    if not rest:
        return item_id
    new_lead = _best_lead(db, rest)
    _pin(db, rest, new_lead, editor, now)
    return new_lead


#: At most this many items of one story are listed on a queue row (the rest are counted).
STORY_ITEMS_SHOWN = 30


def story_rows(db: sqlite_utils.Database, lead_ids: Sequence[int]
               ) -> dict[int, list[dict[str, Any]]]:
    """{lead id: the story's items, lead first, then best score} for queue rows: id, title,
    url, status, score, published_at, version (for stale checks), source and language (the
    item's, else its source's)."""
    out: dict[int, list[dict[str, Any]]] = {int(i): [] for i in lead_ids}
    for chunk, marks in _chunks(list(out)):
        for row in db.query(
            "SELECT items.id, items.title, items.url, items.status, items.score, "
            "items.published_at, coalesce(items.version, 0) AS version, "
            "coalesce(items.cluster_id, items.id) AS lead, "
            "sources.name AS source, coalesce(items.language, sources.language, '') AS language "
            "FROM items JOIN sources ON sources.id = items.source_id "
            f"WHERE items.cluster_id IN ({marks}) OR items.id IN ({marks}) "
            "ORDER BY items.id != coalesce(items.cluster_id, items.id), items.score DESC, "
            "items.id", [*chunk, *chunk]):
            lead = row.pop("lead")
            bucket = out.get(lead)
            if bucket is not None and len(bucket) < 500:
                bucket.append(row)
    return out
