"""Learned relevance models (`relevance_models`) and the decisions they learn from.

A model is stored as a blob with what it was trained on and how it did; the row marked
`current` is in force. Triage (triage/model.py) makes and reads the blobs; this module only
moves rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import sqlite_utils

from ..timestamps import utcnow
from .migrations import EDITOR_STATUSES


def save_model(db: sqlite_utils.Database, blob: bytes, meta: Mapping[str, Any]) -> int:
    """Store a model and make it the current one; returns its version (the row id)."""
    with db.atomic():
        db.execute("UPDATE relevance_models SET current = 0 WHERE current = 1")
        cur = db.execute(
            "INSERT INTO relevance_models (format, trained_at, labels_relevant, "
            "labels_not_relevant, from_editors, from_shipped, cv_precision, cv_recall, "
            "threshold, band, seconds, current, model) VALUES (?,?,?,?,?,?,?,?,?,?,?,1,?)",
            [meta["format"], meta.get("trained_at") or utcnow(), meta["labels_relevant"],
             meta["labels_not_relevant"], meta["from_editors"], meta["from_shipped"],
             meta["cv_precision"], meta["cv_recall"], meta["threshold"], meta["band"],
             meta["seconds"], blob],
        )
        return int(cur.lastrowid or 0)


def current_model(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The current model's row (blob included), or None when none was trained."""
    if "relevance_models" not in db.table_names():
        return None
    rows = list(db.query("SELECT * FROM relevance_models WHERE current = 1 "
                         "ORDER BY id DESC LIMIT 1"))
    return rows[0] if rows else None


def model_rows(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every stored model without its blob, newest first."""
    return list(db.query(
        "SELECT id, format, trained_at, labels_relevant, labels_not_relevant, from_editors, "
        "from_shipped, cv_precision, cv_recall, threshold, band, seconds, current, "
        "length(model) AS size FROM relevance_models ORDER BY id DESC"))


def editor_decisions(db: sqlite_utils.Database, batch_size: int = 2000
                     ) -> Iterator[dict[str, Any]]:
    """Items an editor decided (included, shortlisted, excluded) with their text and source.

    Items nobody decided are not labels, whatever triage made of them.
    """
    marks = ",".join("?" * len(EDITOR_STATUSES))
    last = 0
    while True:
        rows = list(db.query(
            "SELECT items.id, items.url, items.title, items.summary_text, items.status, "
            "sources.name AS source_name, sources.category AS source_category, "
            "sources.owner AS source_owner, sources.country AS source_country "
            "FROM items JOIN sources ON sources.id = items.source_id "
            f"WHERE items.status IN ({marks}) AND items.id > ? ORDER BY items.id LIMIT ?",
            [*EDITOR_STATUSES, last, batch_size]))
        if not rows:
            return
        yield from rows
        last = rows[-1]["id"]


def decisions_since(db: sqlite_utils.Database, since: str | None) -> int:
    """Editors' status decisions (include, shortlist, exclude) recorded after `since`."""
    marks = ",".join("?" * len(EDITOR_STATUSES))
    sql = f"SELECT count(*) FROM edits WHERE field = 'status' AND new IN ({marks})"
    params: list[Any] = list(EDITOR_STATUSES)
    if since:
        sql += " AND at > ?"
        params.append(since)
    return int(db.execute(sql, params).fetchone()[0])


def current_model_key(db: sqlite_utils.Database) -> tuple[Any, ...] | None:
    """What identifies the current model's row without reading its blob, or None."""
    if "relevance_models" not in db.table_names():
        return None
    row = db.execute("SELECT id, format, trained_at, length(model), hex(substr(model, 1, 16)) "
                     "FROM relevance_models WHERE current = 1 ORDER BY id DESC LIMIT 1"
                     ).fetchone()
    path = db.execute("PRAGMA database_list").fetchone()[2]
    return (path, *row) if row else None
