"""Collect runs and per-source fetch records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlite_utils

from .db import utcnow

RUN_COUNTERS = ("sources_due", "sources_ok", "sources_not_modified", "sources_failed",
                "items_new", "items_updated")


def start_run(db: sqlite_utils.Database, *, forced: bool = False,
              source_filter: str | None = None, flow_run_id: str | None = None) -> int:
    """Insert a `running` row and return its id."""
    with db.atomic():
        table = db["runs"].insert(
            {"started_at": utcnow(), "status": "running", "forced": int(forced),
             "source_filter": source_filter, "flow_run_id": flow_run_id}
        )
    return int(table.last_pk)


def finish_run(db: sqlite_utils.Database, run_id: int, counts: Mapping[str, int], *,
               error: str | None = None) -> dict[str, Any]:
    """Close a run with its counters; `error` marks it failed."""
    values: dict[str, Any] = {k: int(counts.get(k, 0)) for k in RUN_COUNTERS}
    values.update(finished_at=utcnow(), status="failed" if error else "completed", error=error)
    with db.atomic():
        db["runs"].update(run_id, values)
    return dict(db["runs"].get(run_id))


def close_abandoned_runs(db: sqlite_utils.Database) -> int:
    """Mark runs left `running` by a killed process as failed; returns how many."""
    with db.atomic():
        cur = db.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?, "
            "error = 'interrupted (the process stopped before the run finished)' "
            "WHERE status = 'running'",
            [utcnow()],
        )
    return cur.rowcount


def record_fetch(db: sqlite_utils.Database, run_id: int, source_id: int,
                 values: Mapping[str, Any]) -> None:
    """One `fetches` row; call inside the transaction that stores the source's items."""
    row = {"run_id": run_id, "source_id": source_id, "fetched_at": utcnow()}
    row.update({k: v for k, v in values.items() if k in _FETCH_COLUMNS})
    # Plain SQL, not insert(): sqlite-utils re-reads the schema on every call (see
    # store.sources.record_health).
    db.execute(f"INSERT INTO fetches ({', '.join(f'[{k}]' for k in row)}) "
               f"VALUES ({', '.join('?' * len(row))})", list(row.values()))


_FETCH_COLUMNS = frozenset({"outcome", "http_status", "bytes", "duration_ms", "error",
                            "error_kind", "warning", "items_seen", "items_new", "items_updated"})


def run_fetches(db: sqlite_utils.Database, run_id: int) -> list[dict[str, Any]]:
    """A run's fetch records, each with its source's row, failures first then by name."""
    return list(db.query(
        "SELECT s.*, f.outcome, f.http_status, f.error, f.warning, f.items_new, f.items_updated,"
        " f.duration_ms FROM fetches f JOIN sources s ON s.id = f.source_id WHERE f.run_id = ?"
        " ORDER BY (f.outcome = 'failed') DESC, s.name",
        [run_id],
    ))

