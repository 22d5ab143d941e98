"""The `issues` and `issue_items` tables: numbering, windows, what goes in an issue, the archive.

    previous issues         = every recorded issue dated before the draft date
    volume, number          = issue_number(date, previous, first_year)   (pure)
    window                  = issue_window(date, previous)               (pure)
    items                   = included items published by the window's end that no *final*
                              issue holds, in section order, then rank, then date
    save_issue(...)         = one issue row per date, its items with their positions

The window's start is recorded for the archive and the editors; it does not bound the
selection, because an included item that missed its own window (its issue was never finalised,
or it was included late) still belongs in the next issue. Only finalising an issue freezes
its items out of every later one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from ..errors import IssueFinalError, IssueNumberError, IssueStateError, NotFoundError
from ..timestamps import utcnow
from .entries import assign_issue


@dataclass(frozen=True, slots=True)
class IssuePlan:
    """Where a draft for one date stands before anything is written."""

    date: date
    volume: int
    number: int
    #: The previous issue's date (exclusive); None for the first issue ever drafted.
    window_start: date | None
    #: The draft date itself (inclusive).
    window_end: date
    #: The issue already recorded for this date (a redraft updates it), else None.
    existing: dict[str, Any] | None


def as_date(value: date | str) -> date:
    """A date from a `date` or an ISO 'YYYY-MM-DD' string (the issues table stores strings)."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(value[:10])


def issue_volume(day: date, first_year: int) -> int:
    """Volume = year - first_year + 1: a new volume every January."""
    volume = day.year - first_year + 1
    if volume < 1:
        raise IssueNumberError(
            f"{day.isoformat()} is before [issue] first_year ({first_year}): no volume number"
        )
    return volume


def issue_number(day: date, previous_issues: Iterable[Mapping[str, Any]], first_year: int,
                 *, volume: int | None = None) -> tuple[int, int]:
    """(volume, number) for an issue dated `day`; pure.

    The number follows the highest number of an earlier issue of the same volume rather than
    counting them, so a series started by hand at "Vol 2.3" (`--number 3`) goes on at 2.4.
    """
    volume = volume if volume is not None else issue_volume(day, first_year)
    before = [int(p["number"]) for p in previous_issues
              if int(p["volume"]) == volume and as_date(p["date"]) < day]
    return volume, max(before, default=0) + 1


def issue_window(day: date, previous_issues: Iterable[Mapping[str, Any]],
                 ) -> tuple[date | None, date]:
    """(previous issue's date, exclusive; `day`, inclusive); pure. No previous issue: None."""
    earlier = [as_date(p["date"]) for p in previous_issues if as_date(p["date"]) < day]
    return (max(earlier) if earlier else None), day


def window_bounds(window_start: date | None, window_end: date) -> tuple[str | None, str]:
    """The window as `published_at` bounds: [start, end) ISO strings, dates read as UTC days."""
    start = (window_start + timedelta(days=1)).isoformat() if window_start else None
    return start, (window_end + timedelta(days=1)).isoformat()


def order_items(rows: Iterable[Mapping[str, Any]], sections: Sequence[str],
                ) -> list[Mapping[str, Any]]:
    """Issue order: configured section order (unknown or no section last), rank, then date."""
    place = {name.casefold(): i for i, name in enumerate(sections)}

    def key(row: Mapping[str, Any]) -> tuple[int, int, int, str, int]:
        section = (row.get("section") or "").strip().casefold()
        rank = row.get("rank")
        return (place.get(section, len(place)), rank is None, rank or 0,
                row.get("published_at") or "", int(row.get("id") or 0))

    return sorted(rows, key=key)


# --- reading -----------------------------------------------------------------------------------


def all_issues(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every issue, oldest first, with its item count."""
    return list(db.query(
        "SELECT issues.*, (SELECT count(*) FROM issue_items WHERE issue_id = issues.id) "
        "AS items FROM issues ORDER BY date"
    ))


def issue_for_date(db: sqlite_utils.Database, day: date) -> dict[str, Any] | None:
    """The issue recorded for this date, if any."""
    rows = list(db.query("SELECT * FROM issues WHERE date = ?", [day.isoformat()]))
    return rows[0] if rows else None


def find_issue(db: sqlite_utils.Database, ref: str | int) -> dict[str, Any]:
    """An issue by id ("7") or by volume.number ("2.3"); NotFoundError names what was asked."""
    text = str(ref).strip()
    try:
        if "." in text:
            vol, num = (int(part) for part in text.split(".", 1))
            rows = list(db.query("SELECT * FROM issues WHERE volume = ? AND number = ?",
                                 [vol, num]))
        else:
            rows = list(db.query("SELECT * FROM issues WHERE id = ?", [int(text)]))
    except ValueError:
        raise NotFoundError(f"{text!r} is not an issue id or VOL.NUM (like 2.3)") from None
    if not rows:
        raise NotFoundError(f"no issue {text}")
    return rows[0]


_ITEM_COLUMNS = (
    "items.id, items.url, items.title, items.summary_text, items.image_url, items.published_at, "
    "items.status, items.section, items.rank, items.headline, items.key_phrase, items.blurb, "
    "items.lead_image, items.image_credit, items.links, sources.name AS source"
)


# --- planning and selecting --------------------------------------------------------------------


def plan_issue(db: sqlite_utils.Database, day: date, first_year: int, *,
               volume: int | None = None, number: int | None = None) -> IssuePlan:
    """Number and window for a draft dated `day`, refusing what could not be recorded.

    A redraft keeps the issue's recorded volume and number unless new ones are given: a number
    set by hand once (`--number 3`) must survive the next scheduled redraft.
    """
    issues = all_issues(db)
    existing = next((i for i in issues if i["date"] == day.isoformat()), None)
    if existing and existing["status"] == "final":
        raise IssueFinalError(
            f"issue {existing['volume']}.{existing['number']} of {existing['date']} "
            "is final and cannot be redrafted"
        )
    if (volume is not None and volume < 1) or (number is not None and number < 1):
        raise IssueNumberError("volume and number must be 1 or more")
    previous = [i for i in issues if i["date"] < day.isoformat()]
    if existing and volume is None and number is None:
        vol, num = int(existing["volume"]), int(existing["number"])
    else:
        vol, num = issue_number(day, previous, first_year, volume=volume)
        num = number if number is not None else num
    taken = next((i for i in issues if (i["volume"], i["number"]) == (vol, num)
                  and i["date"] != day.isoformat()), None)
    if taken:
        raise IssueNumberError(
            f"Vol {vol}.{num} is already the issue of {taken['date']} (id {taken['id']}); "
            "pass --volume/--number to choose another"
        )
    start, end = issue_window(day, previous)
    return IssuePlan(date=day, volume=vol, number=num, window_start=start, window_end=end,
                     existing=existing)


def select_issue_items(db: sqlite_utils.Database, plan: IssuePlan,
                       sections: Sequence[str]) -> list[dict[str, Any]]:
    """The included items for the planned issue, in issue order (see the module docstring)."""
    _, end = window_bounds(plan.window_start, plan.window_end)
    own_id = plan.existing["id"] if plan.existing else -1
    rows = db.query(
        f"SELECT {_ITEM_COLUMNS} FROM items JOIN sources ON sources.id = items.source_id "
        "WHERE items.status = 'included' AND items.published_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM issue_items ii JOIN issues i ON i.id = ii.issue_id "
        "  WHERE ii.item_id = items.id AND i.status = 'final' AND i.id != ?)",
        [end, own_id],
    )
    return [dict(r) for r in order_items(rows, sections)]


# --- writing -----------------------------------------------------------------------------------


def save_issue(db: sqlite_utils.Database, plan: IssuePlan, *, title: str,
               item_ids: Sequence[int], paths: Mapping[str, str],
               entry_ids: Sequence[int] = ()) -> dict[str, Any]:
    """Record the drafted issue (created, or updated for the same date) and its items, atomically.

    `paths` maps "md", "html" and "txt" to the files written. Returns the issue row; its
    "previous_paths" holds the files the issue had before, so the caller can remove the stale.
    """
    now = utcnow()
    values = {
        "title": title, "volume": plan.volume, "number": plan.number,
        "date": plan.date.isoformat(),
        "window_start": plan.window_start.isoformat() if plan.window_start else None,
        "window_end": plan.window_end.isoformat(),
        "md_path": paths.get("md"), "html_path": paths.get("html"),
        "txt_path": paths.get("txt"), "updated_at": now,
    }
    with db.atomic():
        # Re-read inside the transaction: the desk may have finalised it since the plan.
        current = issue_for_date(db, plan.date)
        if current and current["status"] == "final":
            raise IssueFinalError(
                f"issue {current['volume']}.{current['number']} of {current['date']} "
                "is final and cannot be redrafted"
            )
        if current and current["status"] == "approved":
            raise approved_redraft(current)
        if current:
            issue_id = int(current["id"])
            db["issues"].update(issue_id, values)
            db.execute("DELETE FROM issue_items WHERE issue_id = ?", [issue_id])
        else:
            issue_id = int(db["issues"].insert(
                {**values, "status": "draft", "created_at": now}).last_pk)
        db["issue_items"].insert_all(
            [{"issue_id": issue_id, "item_id": item_id, "position": pos}
             for pos, item_id in enumerate(dict.fromkeys(item_ids), start=1)]
        )
        # The issue's entries, in its order (store/entries.py).
        assign_issue(db, issue_id, entry_ids)
    row = dict(db["issues"].get(issue_id))
    row["previous_paths"] = issue_paths(current) if current else {}
    return row


def approved_redraft(issue: Mapping[str, Any]) -> IssueStateError:
    """The refusal of a redraft of an approved issue: its approval fixed what is sent (the
    entries it holds), and a redraft would rewrite them and its files behind the approval;
    like any other change to what is sent, it goes through a reopen."""
    vol_num = f"{issue['volume']}.{issue['number']}"
    return IssueStateError(
        f"issue {vol_num} of {issue['date']} is approved and cannot be redrafted: "
        f"reopen it first (digest issue reopen {vol_num})")


def hold_entries(db: sqlite_utils.Database, issue_id: int, entries: Sequence[Mapping[str, Any]]
                 ) -> None:
    """Make a recorded issue hold these entries (with their items), in this order, as a
    redraft would record them but without writing its files: what an approval checked."""
    item_ids = [item["id"] for e in entries for item in e["items"]]
    with db.atomic():
        db.execute("DELETE FROM issue_items WHERE issue_id = ?", [issue_id])
        db["issue_items"].insert_all(
            [{"issue_id": issue_id, "item_id": item_id, "position": pos}
             for pos, item_id in enumerate(dict.fromkeys(item_ids), start=1)]
        )
        assign_issue(db, issue_id, [e["id"] for e in entries])


def finalize_issue(db: sqlite_utils.Database, ref: str | int) -> tuple[dict[str, Any], bool]:
    """Freeze an issue: (the issue, whether it changed). Finalising twice changes nothing."""
    issue = find_issue(db, ref)
    if issue["status"] == "final":
        return issue, False
    with db.atomic():
        db["issues"].update(issue["id"], {"status": "final", "finalized_at": utcnow(),
                                          "updated_at": utcnow()})
    return dict(db["issues"].get(issue["id"])), True


def issue_paths(issue: Mapping[str, Any]) -> dict[str, str]:
    """The files recorded for an issue, by kind ("md", "html", "txt")."""
    return {kind: issue[f"{kind}_path"] for kind in ("md", "html", "txt")
            if issue.get(f"{kind}_path")}
