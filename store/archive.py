"""Reading recorded issues back for delivery: the sent issues."""

from __future__ import annotations

from typing import Any

import sqlite_utils


def final_issues(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Sent (final) issues, newest first: the public archive."""
    return [dict(r) for r in db.query(
        "SELECT * FROM issues WHERE status = 'final' ORDER BY volume DESC, number DESC, "
        "date DESC")]
