"""Items set aside by triage (`triage_set_aside`, migration 8): what waits, and the runs' note.

Clustering marks a chunk here (`mark`) before it runs and lets go of it (`release`) once
written, so a chunk that fails, runs out of time or takes its process down stays here, with
its attempts and last error, instead of blocking the next run (see triage/run.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from ..timestamps import utcnow
from .clusters import _chunks


def mark(db: sqlite_utils.Database, item_ids: Sequence[int], error: str) -> None:
    """Record an attempt at `item_ids` (one more each), with `error` as its outcome so far."""
    now = utcnow()
    with db.atomic():
        for chunk, _marks in _chunks(item_ids):
            db.conn.executemany(
                "INSERT INTO triage_set_aside (item_id, attempts, error, set_aside_at, "
                "last_tried_at) VALUES (?, 1, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET "
                "attempts = attempts + 1, error = excluded.error, "
                "last_tried_at = excluded.last_tried_at",
                [(item_id, error, now, now) for item_id in chunk])


def park(db: sqlite_utils.Database, item_ids: Sequence[int], error: str) -> None:
    """Set aside items not tried yet (their attempts stay as they were, zero if new)."""
    now = utcnow()
    with db.atomic():
        for chunk, _marks in _chunks(item_ids):
            db.conn.executemany(
                "INSERT INTO triage_set_aside (item_id, attempts, error, set_aside_at, "
                "last_tried_at) VALUES (?, 0, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET "
                "error = excluded.error", [(item_id, error, now, now) for item_id in chunk])


def note_error(db: sqlite_utils.Database, item_ids: Sequence[int], error: str) -> None:
    """Set the last error of items already marked (the attempt is counted already)."""
    with db.atomic():
        for chunk, marks in _chunks(item_ids):
            db.execute(f"UPDATE triage_set_aside SET error = ? WHERE item_id IN ({marks})",
                       [error, *chunk])


def release(db: sqlite_utils.Database, item_ids: Sequence[int]) -> None:
    """Forget items that are triaged now."""
    with db.atomic():
        for chunk, marks in _chunks(item_ids):
            db.execute(f"DELETE FROM triage_set_aside WHERE item_id IN ({marks})", chunk)


def tried_ids(db: sqlite_utils.Database) -> set[int]:
    """Items set aside after a try (those a budget never reached count as waiting anew)."""
    return {r[0] for r in db.execute("SELECT item_id FROM triage_set_aside WHERE attempts > 0")}


def due_for_retry(db: sqlite_utils.Database, *, max_attempts: int | None,
                  limit: int | None) -> list[int]:
    """Set-aside items to try again, fewest attempts and oldest first (all with None)."""
    sql = "SELECT item_id FROM triage_set_aside"
    params: list[Any] = []
    if max_attempts is not None:
        sql += " WHERE attempts < ?"
        params.append(max_attempts)
    sql += " ORDER BY attempts, item_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [r[0] for r in db.execute(sql, params)]


def waiting(db: sqlite_utils.Database, max_attempts: int) -> dict[str, Any]:
    """How many items are set aside, how many later runs will still retry, the last error."""
    total, retrying = db.execute(
        "SELECT count(*), coalesce(sum(attempts < ?), 0) FROM triage_set_aside",
        [max_attempts]).fetchone()
    last = db.execute("SELECT error FROM triage_set_aside ORDER BY last_tried_at DESC "
                      "LIMIT 1").fetchone()
    return {"set_aside": total, "retrying": retrying, "error": last[0] if last else None}


def note_run(db: sqlite_utils.Database, run_id: int, count: int, error: str | None) -> None:
    """Say on the run's row how many items its triage set aside, and why."""
    with db.atomic():
        db.execute("UPDATE runs SET triage_set_aside = ?, triage_error = ? WHERE id = ?",
                   [count, error, run_id])
