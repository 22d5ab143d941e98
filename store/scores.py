"""Relevance scores in the `items` table: reading items to score, writing scores and statuses.

Triage decides; this module only moves rows. Statuses an editor set are protected here too, in
the UPDATE itself, so an editor's decision made while a rescore runs is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

#: Who triage writes into `status_by` when it changes a status.
TRIAGE = "triage"
#: The statuses triage moves items between.
TRIAGE_STATUSES = ("candidate", "filtered")

_COLUMNS = (
    "items.id, items.title, items.summary_text, items.url, items.guid, items.status, "
    "items.status_by, items.score, items.triaged_at, items.cluster_id, items.language, "
    "sources.name AS source_name, "
    "sources.category AS source_category, sources.owner AS source_owner, "
    "sources.country AS source_country"
)
_FROM = "FROM items JOIN sources ON sources.id = items.source_id"
# A row triage may move: not decided by an editor.
_TRIAGE_OWNED = (
    f"status IN ('{TRIAGE_STATUSES[0]}', '{TRIAGE_STATUSES[1]}') "
    f"AND (status_by IS NULL OR status_by = '{TRIAGE}')"
)


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    """What triage decided for one item."""

    item_id: int
    score: float
    #: JSON text of the reasons list.
    reasons: str
    #: "candidate" or "filtered": applied only when the row is still triage's to move.
    status: str
    triaged_at: str
    #: Near the relevance threshold (triage.relevance.Scored.borderline).
    borderline: bool = False


def is_triage_owned(row: dict[str, Any]) -> bool:
    """True when triage may change this row's status (candidate/filtered, not an editor's)."""
    return row["status"] in TRIAGE_STATUSES and row["status_by"] in (None, TRIAGE)


def items_to_score(db: sqlite_utils.Database, *, only_untriaged: bool = False,
                   item_ids: Iterable[int] | None = None,
                   batch_size: int = 2000) -> Iterator[list[dict[str, Any]]]:
    """Items with their source's name/category/owner/country, in batches ordered by id.

    `only_untriaged` keeps items never scored; `item_ids` keeps those items only.
    """
    if item_ids is not None:
        ids = sorted(set(item_ids))
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]
            marks = ",".join("?" * len(chunk))
            where = f"items.id IN ({marks})"
            if only_untriaged:
                where += " AND items.triaged_at IS NULL"
            rows = list(db.query(f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY items.id",
                                 chunk))
            if rows:
                yield rows
        return
    last = 0
    extra = " AND items.triaged_at IS NULL" if only_untriaged else ""
    while True:
        # Keyset pagination: each batch is one short query, whatever the table size.
        rows = list(db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE items.id > ?{extra} ORDER BY items.id LIMIT ?",
            [last, batch_size],
        ))
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def write_scores(db: sqlite_utils.Database, updates: Sequence[ScoreUpdate]) -> None:
    """Write scores and reasons for every item, and statuses where triage still owns the row.

    `status_by` becomes 'triage' on rows whose status changes. One transaction per call.
    """
    if not updates:
        return
    # SET expressions all see the row's old values, so status_by tests the old status.
    sql = (
        "UPDATE items SET score = ?, reasons = ?, triaged_at = ?, borderline = ?, "
        f"status_by = CASE WHEN {_TRIAGE_OWNED} AND status != ? THEN '{TRIAGE}' "
        "ELSE status_by END, "
        f"status = CASE WHEN {_TRIAGE_OWNED} THEN ? ELSE status END "
        "WHERE id = ?"
    )
    params = [(u.score, u.reasons, u.triaged_at, int(u.borderline), u.status, u.status, u.item_id)
              for u in updates]
    with db.atomic():
        db.conn.executemany(sql, params)


def items_by_url_or_guid(db: sqlite_utils.Database, *, urls: Iterable[str] = (),
                         guids: Iterable[str] = ()) -> tuple[dict[str, dict[str, Any]],
                                                             dict[str, dict[str, Any]]]:
    """Items (with source fields) keyed by url and by guid, for the given urls and guids.

    When several items share a url or guid, the oldest (lowest id) is kept.
    """
    by_url = _lookup(db, "url", sorted(set(urls)))
    by_guid = _lookup(db, "guid", sorted(set(guids)))
    return by_url, by_guid


def _lookup(db: sqlite_utils.Database, column: str, values: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.query(
            f"SELECT {_COLUMNS} {_FROM} WHERE items.{column} IN ({marks}) ORDER BY items.id",
            chunk,
        ):
            found.setdefault(row[column], row)
    return found
