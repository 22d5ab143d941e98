"""An issue's review: its state moves, comments, per-issue settings and its audit trail.

    issues.status        draft → review → approved → final (reopen: back to draft)
    issue_events         one row per state move, comment, resolution, settings change, discard
    issue_comments       reviewers' comments on an entry; open until resolved (or until
                         the entry is gone: resolved by whoever dropped it)

The rules (who may, from which state, what must be written first) are in pipeline/review.py;
this module only writes what it is told, each change and its event in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlite_utils

from ..errors import NotFoundError
from ..timestamps import utcnow

#: Every value `issues.status` takes, in the order an issue moves through them.
ISSUE_STATUSES = ("draft", "review", "approved", "final")
#: Per-issue settings the desk edits (besides date and number, which renumber the issue).
ISSUE_SETTINGS = ("image_url", "image_credit", "footer")


def issue_label(issue: Mapping[str, Any]) -> str:
    """'Vol 5.2 (2026-12-08)': how events and messages name an issue."""
    return f"Vol {issue['volume']}.{issue['number']} ({issue['date']})"


def _event(db: sqlite_utils.Database, issue: Mapping[str, Any], event: str, actor: str, *,
           from_status: str | None = None, to_status: str | None = None,
           entry: str | None = None, detail: str | None = None, at: str | None = None) -> None:
    db["issue_events"].insert({
        "issue_id": issue["id"], "issue": issue_label(issue), "event": event,
        "from_status": from_status, "to_status": to_status, "entry": entry, "detail": detail,
        "actor": actor, "at": at or utcnow()})


def move_issue(db: sqlite_utils.Database, issue: Mapping[str, Any], to_status: str, *,
               actor: str, event: str) -> dict[str, Any]:
    """Set the issue's status (and who moved it when), with its event; returns the new row.

    The status is compared inside the transaction: two publishers approving at once, or a
    draft run finalising meanwhile, move it once.
    """
    now = utcnow()
    with db.atomic():
        current = db.execute("SELECT status FROM issues WHERE id = ?", [issue["id"]]).fetchone()
        if current is None:
            raise NotFoundError(f"no issue {issue['id']}")
        values: dict[str, Any] = {"status": to_status, "status_by": actor, "status_at": now,
                                  "updated_at": now}
        if to_status == "final":
            values["finalized_at"] = now
        db["issues"].update(issue["id"], values)
        _event(db, issue, event, actor, from_status=current[0], to_status=to_status, at=now)
    return dict(db["issues"].get(issue["id"]))


def delete_issue(db: sqlite_utils.Database, issue: Mapping[str, Any], *, actor: str) -> None:
    """Delete an issue, its item list and comments; its entries (and so their items) stay
    included, unassigned, for the next issue."""
    with db.atomic():
        db.execute("UPDATE entries SET issue_id = NULL WHERE issue_id = ?", [issue["id"]])
        db.execute("DELETE FROM issue_comments WHERE issue_id = ?", [issue["id"]])
        db.execute("DELETE FROM issue_items WHERE issue_id = ?", [issue["id"]])
        db.execute("DELETE FROM issues WHERE id = ?", [issue["id"]])
        _event(db, issue, "discard", actor, from_status=issue["status"])


def update_settings(db: sqlite_utils.Database, issue: Mapping[str, Any],
                    values: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """Write the issue's changed settings (date, volume, number, image, credit, footer).

    One event per changed field; the unique indexes on date and on (volume, number) refuse a
    taken one (the caller checks first, to say which issue holds it).
    """
    now = utcnow()
    changed = {k: v for k, v in values.items() if issue.get(k) != v}
    if not changed:
        return dict(issue)
    with db.atomic():
        db["issues"].update(issue["id"], {**changed, "updated_at": now})
        updated = dict(db["issues"].get(issue["id"]))
        for key, value in changed.items():
            _event(db, updated, "settings", actor, entry=key,
                   detail=f"{issue.get(key) or '—'} → {value or '—'}", at=now)
    return updated


def add_comment(db: sqlite_utils.Database, issue: Mapping[str, Any], entry: str, text: str, *,
                author: str) -> dict[str, Any]:
    """A reviewer's comment on one entry of the issue; open until resolved."""
    now = utcnow()
    with db.atomic():
        comment_id = db["issue_comments"].insert({
            "issue_id": issue["id"], "entry": entry, "text": text, "author": author,
            "created_at": now}).last_pk
        _event(db, issue, "comment", author, entry=entry, detail=text, at=now)
    return dict(db["issue_comments"].get(comment_id))


def get_comment(db: sqlite_utils.Database, comment_id: int) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM issue_comments WHERE id = ?", [comment_id]))
    if not rows:
        raise NotFoundError(f"no comment {comment_id}")
    return rows[0]


def resolve_comment(db: sqlite_utils.Database, issue: Mapping[str, Any],
                    comment: Mapping[str, Any], *, actor: str) -> dict[str, Any]:
    """Mark a comment resolved (resolving twice changes nothing)."""
    if comment.get("resolved_at"):
        return dict(comment)
    with db.atomic():
        _resolve(db, issue, comment, actor=actor, now=utcnow())
    return dict(db["issue_comments"].get(comment["id"]))


def _resolve(db: sqlite_utils.Database, issue: Mapping[str, Any], comment: Mapping[str, Any],
             *, actor: str, now: str, why: str = "") -> None:
    """Mark one open comment resolved and write its `resolve` event (`why` ends the detail)."""
    db["issue_comments"].update(comment["id"], {"resolved_by": actor, "resolved_at": now})
    _event(db, issue, "resolve", actor, entry=comment["entry"],
           detail=f"comment {comment['id']}: {comment['text']}{why}", at=now)


def resolve_entry_comments(db: sqlite_utils.Database, entry: str, *, actor: str,
                           now: str | None = None) -> int:
    """Resolve the open comments on an entry that is gone (its last item dropped, moved or
    taken out from the queue), as `actor`; returns how many.

    Nobody can act on them any more: left open they would count against an approval and
    clutter the Issue page for good. Each gets its `resolve` event, saying why. Runs in the
    caller's transaction (the one that deletes the entry).
    """
    rows = list(db.query(
        "SELECT c.*, i.volume, i.number, i.date FROM issue_comments c "
        "JOIN issues i ON i.id = c.issue_id WHERE c.entry = ? AND c.resolved_at IS NULL "
        "ORDER BY c.id", [str(entry)]))
    now = now or utcnow()
    for row in rows:
        issue = {"id": row["issue_id"], "volume": row["volume"], "number": row["number"],
                 "date": row["date"]}
        _resolve(db, issue, row, actor=actor, now=now, why=f" (entry {entry} dropped)")
    return len(rows)


def comments(db: sqlite_utils.Database, issue_id: int, *, open_only: bool = False,
             ) -> list[dict[str, Any]]:
    """The issue's comments, oldest first (only the open ones if asked); `entry_dropped` is 1
    for a comment whose entry is gone (its comments were resolved when it was dropped)."""
    where = " AND c.resolved_at IS NULL" if open_only else ""
    return list(db.query(
        "SELECT c.*, e.id IS NULL AS entry_dropped FROM issue_comments c "
        "LEFT JOIN entries e ON e.id = CAST(c.entry AS INTEGER) "
        f"WHERE c.issue_id = ?{where} ORDER BY c.created_at, c.id", [issue_id]))


def events(db: sqlite_utils.Database, issue_id: int | None = None, *, limit: int = 200,
           ) -> list[dict[str, Any]]:
    """State moves, comments and settings changes, newest first (of one issue, or all)."""
    if issue_id is None:
        return list(db.query("SELECT * FROM issue_events ORDER BY at DESC, id DESC LIMIT ?",
                             [limit]))
    return list(db.query(
        "SELECT * FROM issue_events WHERE issue_id = ? ORDER BY at DESC, id DESC LIMIT ?",
        [issue_id, limit]))


def entry_comments(db: sqlite_utils.Database, entry: str) -> list[dict[str, Any]]:
    """Open comments on one entry in any unsent issue, oldest first (for its item page)."""
    return list(db.query(
        "SELECT c.* FROM issue_comments c JOIN issues i ON i.id = c.issue_id "
        "WHERE c.entry = ? AND c.resolved_at IS NULL AND i.status != 'final' "
        "ORDER BY c.created_at, c.id", [entry]))
