"""The next issue as the desk works on it: its items by section, its preview, its order.

    plan     = the open issue's, else the next scheduled date's (pipeline.review.desk_plan)
    entries  = pipeline.preview.select_entries(plan)   # the issue entries, in issue order
    groups   = entries by configured section, then "no section"
    preview  = pipeline.preview.preview_plan(plan)     # the draft's own selection and renderer
    order    = position 1..n within each section, written through pipeline.entries
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from ..errors import DigestError, InputError, NotFoundError
from ..settings import Settings
from ..store import editorial
from ..store import entries as entry_store
from ..store.issues import IssuePlan, plan_issue
from ..templates.render import entry_view
from . import entries
from .preview import preview_plan, select_entries
from .review import desk_plan


@dataclass
class Group:
    """One section of the issue with its entries in order; name "" holds unsectioned ones.

    Each entry carries its `items` (lead first) and `view` (templates.render.entry_view:
    the headline as the draft prints it, and whether it still needs writing).
    """

    name: str
    items: list[dict[str, Any]] = field(default_factory=list)


def next_plan(db: sqlite_utils.Database, settings: Settings,
              today: date | None = None) -> IssuePlan:
    """The plan of the issue being prepared: the open (unsent) issue if there is one, else the
    next scheduled draft date (pipeline.review.desk_plan); `today` plans that day instead.

    A day whose issue is final already cannot be redrafted; the desk then plans the next one.
    """
    if today is None:
        return desk_plan(db, settings)
    last_error: DigestError | None = None
    for offset in range(7):
        try:
            return plan_issue(db, today + timedelta(days=offset), settings.issue.first_year)
        except DigestError as e:
            last_error = e
    assert last_error is not None
    raise last_error


def grouped(db: sqlite_utils.Database, settings: Settings, plan: IssuePlan | None = None,
            ) -> tuple[IssuePlan, list[Group]]:
    """The plan and the issue's entries grouped by section in the configured order."""
    plan = plan or next_plan(db, settings)
    rows = select_entries(db, plan, settings.issue.sections)
    # An approved issue holds the entries its approval checked, and only those are sent: an
    # entry included since is listed, marked `not_sent`, until a reopen and a new approval.
    approved = plan.existing if plan.existing and plan.existing["status"] == "approved" else None
    for row in rows:
        row["view"] = entry_view(row)
        row["not_sent"] = approved is not None and row.get("issue_id") != approved["id"]
    groups = [Group(name) for name in settings.issue.sections]
    by_key = {g.name.casefold(): g for g in groups}
    loose = Group("")
    for row in rows:
        by_key.get((row.get("section") or "").strip().casefold(), loose).items.append(row)
    return plan, [*groups, loose]


def preview_html(db: sqlite_utils.Database, settings: Settings) -> str:
    """The next issue's email HTML, rendered exactly as the draft renders it."""
    return preview_plan(db, settings, next_plan(db, settings)).rendered.html


def save_order(db: sqlite_utils.Database, order: Sequence[tuple[str | None, Sequence[int]]], *,
               editor: str, sections: Sequence[str]) -> int:
    """Write position (1-based) and section for each entry; returns how many changed.

    Only entries whose position or section differs are written. All of it in one
    transaction: a half-saved order would mix two orders.
    """
    wanted: dict[int, tuple[str | None, int]] = {}
    for name, ids in order:
        for position, entry_id in enumerate(ids, start=1):
            if entry_id in wanted:
                raise InputError(f"entry {entry_id} appears twice in the order")
            wanted[entry_id] = (name, position)
    changed = 0
    with editorial.write_lock(db):
        for entry_id, (name, position) in wanted.items():
            try:
                entry = entry_store.entry_row(db, entry_id)
            except NotFoundError:
                raise InputError(f"entry {entry_id} is not in the issue") from None
            changes: dict[str, Any] = {}
            if entry.get("position") != position:
                changes["position"] = position
            if (entry.get("section") or None) != name:
                changes["section"] = name
            if changes:
                entries.update(db, entry_id, changes, editor=editor, sections=list(sections))
                changed += 1
    return changed


def neighbours(db: sqlite_utils.Database, settings: Settings, entry_id: int
               ) -> dict[str, Any]:
    """The entries before and after one in issue order (for "‹ previous" / "next ›" after a
    save), with its place: {"prev", "next", "at", "of"}; {} when it is not in the issue."""
    _, groups = grouped(db, settings)
    ids = [int(e["id"]) for g in groups for e in g.items]
    if entry_id not in ids:
        return {}
    at = ids.index(entry_id)
    return {"prev": ids[at - 1] if at > 0 else None,
            "next": ids[at + 1] if at + 1 < len(ids) else None,
            "at": at + 1, "of": len(ids)}
