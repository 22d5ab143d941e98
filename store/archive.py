"""Reading recorded issues back for delivery: an issue's items in order, the sent issues."""

from __future__ import annotations

from typing import Any

import sqlite_utils

from .issues import _ITEM_COLUMNS


def issue_item_rows(db: sqlite_utils.Database, issue_id: int) -> list[dict[str, Any]]:
    """The items recorded in an issue, in the issue's order (as the draft selected them)."""
    return [dict(r) for r in db.query(
        f"SELECT {_ITEM_COLUMNS} FROM issue_items ii JOIN items ON items.id = ii.item_id "
        "JOIN sources ON sources.id = items.source_id WHERE ii.issue_id = ? "
        "ORDER BY ii.position", [issue_id])]


def final_issues(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Sent (final) issues, newest first: the public archive."""
    return [dict(r) for r in db.query(
        "SELECT * FROM issues WHERE status = 'final' ORDER BY volume DESC, number DESC, "
        "date DESC")]
