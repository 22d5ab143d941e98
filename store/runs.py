"""Collect runs and per-source fetch records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import sqlite_utils

from ..timestamps import utcnow

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


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One source's fetch in a run, as `record_fetch` writes it to `fetches`."""

    #: ok, not_modified or failed; with the HTTP status when a response came.
    outcome: str
    http_status: int | None = None
    #: When it failed: the one-line message and its kind (`SourceErrorKind`).
    error: str | None = None
    error_kind: str | None = None
    #: Problems that did not stop the source, joined with "; ".
    warning: str | None = None
    #: Body bytes received (after decompression), and how long fetching and parsing took.
    bytes: int = 0
    duration_ms: int = 0
    #: Entries in the feed, and how many were stored as new items or changed stored ones.
    items_seen: int = 0
    items_new: int = 0
    items_updated: int = 0


_FETCH_FIELDS = tuple(f.name for f in fields(FetchRecord))
# Plain SQL, not insert(): sqlite-utils re-reads the schema on every call (see
# store.sources.record_health).
_INSERT_FETCH = (
    f"INSERT INTO fetches (run_id, source_id, fetched_at, {', '.join(_FETCH_FIELDS)}) "
    f"VALUES ({', '.join('?' * (3 + len(_FETCH_FIELDS)))})"
)


def record_fetch(db: sqlite_utils.Database, run_id: int, source_id: int,
                 record: FetchRecord) -> None:
    """One `fetches` row; call inside the transaction that stores the source's items."""
    if not isinstance(record, FetchRecord):
        raise TypeError(f"record_fetch takes a FetchRecord, not {type(record).__name__}")
    db.execute(_INSERT_FETCH, [run_id, source_id, utcnow(),
                               *(getattr(record, f) for f in _FETCH_FIELDS)])


def run_fetches(db: sqlite_utils.Database, run_id: int) -> list[dict[str, Any]]:
    """A run's fetch records, each with its source's row, failures first then by name."""
    return list(db.query(
        "SELECT s.*, f.outcome, f.http_status, f.error, f.warning, f.items_new, f.items_updated,"
        " f.duration_ms FROM fetches f JOIN sources s ON s.id = f.source_id WHERE f.run_id = ?"
        " ORDER BY (f.outcome = 'failed') DESC, s.name",
        [run_id],
    ))

