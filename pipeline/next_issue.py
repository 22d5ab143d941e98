"""The next issue as the desk works on it: its items by section, its preview, its order.

    plan     = the open issue's, else the next scheduled date's (pipeline.review.desk_plan)
    items    = store.issues.select_issue_items(plan)   # included, in issue order
    groups   = items by configured section, then "no section"
    preview  = pipeline.preview.preview_plan(plan)     # the draft's own selection and renderer
    order    = rank 1..n within each section, written through store.editorial
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from ..errors import DigestError, InputError
from ..settings import Settings
from ..store import editorial
from ..store.issues import IssuePlan, plan_issue, select_issue_items
from .preview import preview_plan
from .review import desk_plan


@dataclass
class Group:
    """One section of the issue with its items in order; name "" holds unsectioned items."""

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
    """The plan and the included items grouped by section in the configured order."""
    plan = plan or next_plan(db, settings)
    rows = select_issue_items(db, plan, settings.issue.sections)
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
    """Write rank = position (1-based) and the section for each item; returns how many changed.

    Only items whose rank or section differs are written, so one move audits one or two items
    rather than the whole issue. All of it in one transaction: a half-saved order would mix
    two orders.
    """
    wanted: dict[int, tuple[str | None, int]] = {}
    for name, ids in order:
        for position, item_id in enumerate(ids, start=1):
            if item_id in wanted:
                raise InputError(f"item {item_id} appears twice in the order")
            wanted[item_id] = (name, position)
    changed = 0
    with editorial.write_lock(db):
        for item_id, (name, position) in wanted.items():
            item = editorial.get_item(db, item_id)
            if item.get("status") != "included":
                raise InputError(f"item {item_id} is not included in the issue")
            changes: dict[str, Any] = {}
            if item.get("rank") != position:
                changes["rank"] = position
            if (item.get("section") or None) != name:
                changes["section"] = name
            if changes:
                editorial.update_item(db, item_id, changes, editor=editor,
                                      sections=list(sections))
                changed += 1
    return changed
