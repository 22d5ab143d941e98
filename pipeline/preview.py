"""Previewing an issue: what a draft for a date would write, before anything is written.

    plan      = store.issues.plan_issue(date)            volume, number and window; a final
                                                         issue's date is refused here
    rows      = store.issues.select_issue_items(plan)    included items, in issue order
    view      = templates.render.issue_view_from_rows(rows)
    rendered  = templates.render.render_issue(view)      Markdown, email HTML and text

The draft (pipeline.draft) writes exactly this, and the desk shows it (pipeline.next_issue),
so what editors preview is what gets written. templates/ only renders the rows it is given;
the query is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import sqlite_utils

from ..settings import Settings
from ..store.issues import IssuePlan, plan_issue, select_issue_items
from ..templates.render import IssueView, Rendered, issue_view_from_rows, render_issue


@dataclass(frozen=True, slots=True)
class Preview:
    """An issue as a draft for its date would make it, before anything is written."""

    plan: IssuePlan
    #: The selected item rows, in issue order.
    rows: list[dict[str, Any]]
    view: IssueView
    rendered: Rendered


def preview_issue(db: sqlite_utils.Database, settings: Settings, day: date, *,
                  volume: int | None = None, number: int | None = None) -> Preview:
    """The issue a draft dated `day` would write (see the module docstring).

    Raises IssueFinalError for a final issue's date and IssueNumberError for a volume/number
    the issue cannot take.
    """
    plan = plan_issue(db, day, settings.issue.first_year, volume=volume, number=number)
    return preview_plan(db, settings, plan)


def preview_plan(db: sqlite_utils.Database, settings: Settings, plan: IssuePlan) -> Preview:
    """The issue for a plan already made: its items selected and rendered."""
    rows = select_issue_items(db, plan, settings.issue.sections)
    own = plan.existing or {}
    image = own.get("image_url") or None
    credit = own.get("image_credit") or None
    view = issue_view_from_rows(rows, settings, day=plan.date, volume=plan.volume,
                                number=plan.number, image_url=image,
                                image_credit=(credit or "") if image else None)
    return Preview(plan=plan, rows=rows, view=view,
                   rendered=render_issue(view, with_issue_settings(settings, own)))


def with_issue_settings(settings: Settings, issue: Mapping[str, Any]) -> Settings:
    """Settings with the issue's own footer (set in the desk) in place of the [issue] one."""
    if not issue.get("footer"):
        return settings
    return replace(settings, issue=replace(settings.issue, footer=str(issue["footer"])))
