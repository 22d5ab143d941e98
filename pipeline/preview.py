"""Previewing an issue: what a draft for a date would write, before anything is written.

    plan      = store.issues.plan_issue(date)            volume, number and window; a final
                                                         issue's date is refused here
    entries   = select_entries(plan)                     the issue entries (one paragraph
                                                         each, several items), in issue order;
                                                         of an approved issue, those it holds
                                                         (what its approval checked and what
                                                         is sent), not entries included since
    rows      = their items, entry by entry, lead first  (what `issue_items` records)
    view      = templates.render.issue_view_from_entries(entries)
    rendered  = templates.render.render_issue(view)      Markdown, email HTML and text

The draft (pipeline.draft) writes exactly this, and the desk shows it (pipeline.next_issue),
so what editors preview is what gets written. templates/ only renders the rows it is given;
the query is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import sqlite_utils

from ..settings import Settings
from ..store import entries as entry_store
from ..store.issues import IssuePlan, order_items, plan_issue, window_bounds
from ..templates.render import IssueView, Rendered, issue_view_from_entries, render_issue


@dataclass(frozen=True, slots=True)
class Preview:
    """An issue as a draft for its date would make it, before anything is written."""

    plan: IssuePlan
    #: The items of the selected entries, entry by entry (lead first).
    rows: list[dict[str, Any]]
    view: IssueView
    rendered: Rendered
    #: The selected entries (store.entries' shape, with `items`), in issue order.
    entries: list[dict[str, Any]] = field(default_factory=list)


def preview_issue(db: sqlite_utils.Database, settings: Settings, day: date, *,
                  volume: int | None = None, number: int | None = None) -> Preview:
    """The issue a draft dated `day` would write (see the module docstring).

    Raises IssueFinalError for a final issue's date and IssueNumberError for a volume/number
    the issue cannot take.
    """
    plan = plan_issue(db, day, settings.issue.first_year, volume=volume, number=number)
    return preview_plan(db, settings, plan)


def preview_plan(db: sqlite_utils.Database, settings: Settings, plan: IssuePlan) -> Preview:
    """The issue for a plan already made: its items selected and rendered.

    An approved issue is previewed as it will be sent: the entries it holds (the approval
    fixed them; pipeline.export and pipeline.send read the same), in issue order.
    """
    own = plan.existing or {}
    if own.get("status") == "approved":
        entries = order_entries(entry_store.list_entries(db, issue_id=int(own["id"])),
                                settings.issue.sections)
    else:
        entries = select_entries(db, plan, settings.issue.sections)
    rows = [item for entry in entries for item in entry["items"]]
    image = own.get("image_url") or None
    credit = own.get("image_credit") or None
    view = issue_view_from_entries(entries, settings, day=plan.date, volume=plan.volume,
                                   number=plan.number, image_url=image,
                                   image_credit=(credit or "") if image else None)
    return Preview(plan=plan, rows=rows, view=view,
                   rendered=render_issue(view, with_issue_settings(settings, own)),
                   entries=entries)


def select_entries(db: sqlite_utils.Database, plan: IssuePlan, sections: Sequence[str]
                   ) -> list[dict[str, Any]]:
    """The entries of the planned issue in issue order: configured section order (others
    last), position, then the lead's date (store.issues.order_items' order)."""
    _, end = window_bounds(plan.window_start, plan.window_end)
    rows = entry_store.select_for_issue(
        db, end=end, own_issue_id=plan.existing["id"] if plan.existing else None)
    keyed = {id(r): {"section": r["section"], "rank": r["position"],
                     "published_at": r["lead_published_at"], "id": r["id"], "row": r}
             for r in rows}
    return [k["row"] for k in order_items(keyed.values(), sections)]


def with_issue_settings(settings: Settings, issue: Mapping[str, Any]) -> Settings:
    """Settings with the issue's own footer (set in the desk) in place of the [issue] one."""
    if not issue.get("footer"):
        return settings
    return replace(settings, issue=replace(settings.issue, footer=str(issue["footer"])))


def order_entries(rows: list[dict[str, Any]], sections: Sequence[str]) -> list[dict[str, Any]]:
    """Entries in issue order (store.issues.order_items on section, position, lead date)."""
    keyed = [{"section": r["section"], "rank": r["position"],
              "published_at": (r["items"][0]["published_at"] if r["items"] else ""),
              "id": r["id"], "row": r} for r in rows]
    return [k["row"] for k in order_items(keyed, sections)]
