"""The `deliveries` table: who has been sent which issue, and what the SMTP server said.

One row per (issue, recipient), written the moment the server answers for that recipient, so
a run that dies mid-list leaves a true record and the next run sends only to the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlite_utils

from ..timestamps import utcnow

STATUSES = ("sent", "failed")


def deliveries(db: sqlite_utils.Database, issue_id: int) -> list[dict[str, Any]]:
    """Every delivery of an issue, in the order they were first tried."""
    return [dict(r) for r in db.query(
        "SELECT recipient, status, reply, attempts, at FROM deliveries WHERE issue_id = ? "
        "ORDER BY id", [issue_id])]


def sent_to(db: sqlite_utils.Database, issue_id: int) -> set[str]:
    """Recipients (lower-cased) who already have the issue: never sent it again."""
    return {r[0].lower() for r in db.execute(
        "SELECT recipient FROM deliveries WHERE issue_id = ? AND status = 'sent'", [issue_id])}


def record(db: sqlite_utils.Database, issue_id: int, recipient: str, status: str,
           reply: str) -> None:
    """Record one recipient's outcome (a retry updates its row), committed at once."""
    if status not in STATUSES:
        raise ValueError(f"delivery status must be one of {STATUSES}, not {status!r}")
    with db.atomic():
        db.execute(
            "INSERT INTO deliveries (issue_id, recipient, status, reply, attempts, at) "
            "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT (issue_id, recipient) DO UPDATE SET "
            "status = excluded.status, reply = excluded.reply, attempts = attempts + 1, "
            "at = excluded.at",
            [issue_id, recipient.lower(), status, reply[:500], utcnow()])


def record_many(db: sqlite_utils.Database, issue_id: int, recipients: Iterable[str],
                status: str, reply: str) -> None:
    """The same outcome for several recipients (those a dropped connection never reached)."""
    for recipient in recipients:
        record(db, issue_id, recipient, status, reply)
