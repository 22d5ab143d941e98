"""Review and approval: an issue's life from draft to sent, and who may move it.

    draft ──submit──▶ review ──approve──▶ approved ──finalize──▶ final (sent, frozen)
      ▲                 │                    │
      └─────reopen──────┴────────────────────┘          discard: any unsent issue, deleted

    roles       editors write, comment and submit; publishers also approve, reopen, discard
                and finalize (`may`, `require`). The CLI acts as a publisher: it runs with
                the machine owner's authority, recorded under the OS user.
    approve     refused while any paragraph is unwritten or has no headline
                (`unwritten_entries`, the ONE place that check lives); with open comments it
                must be confirmed
    desk issue  the open (unsent) issue if there is one, else the next scheduled draft date
                of `[schedule]` (`desk_issue`)

Every move, comment, resolution and settings change is an `issue_events` row
(store/review.py): `digest history` and the desk's Issue page show them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from ..errors import (
    ConfigError,
    DigestError,
    Forbidden,
    InputError,
    IssueFinalError,
    IssueNumberError,
    IssueStateError,
    NotReadyError,
    OpenComments,
)
from ..settings import Settings
from ..store import review as store
from ..store.issues import (
    IssuePlan,
    as_date,
    find_issue,
    hold_entries,
    issue_paths,
    plan_issue,
    save_issue,
)
from ..templates.render import entry_view
from .draft import stored_path
from .export import remove_stale_exports
from .preview import select_entries

#: Which role may take which step. Anything not listed is open to every signed-in account.
#: "send" is here for the sending step (issue 14): `require(role, "send")`.
PUBLISHER_ONLY = frozenset({"approve", "reopen", "discard", "finalize", "send"})
#: The role the CLI acts with: the machine owner's.
CLI_ROLE = "publisher"
MAX_COMMENT = 2000


def may(role: str | None, action: str) -> bool:
    """True when an account of `role` may take `action` (submit, approve, comment, …)."""
    if role not in ("editor", "publisher"):
        return False
    return action not in PUBLISHER_ONLY or role == "publisher"


def require(role: str | None, action: str) -> None:
    """Forbidden unless `role` may take `action`."""
    if not may(role, action):
        raise Forbidden(f"{action}: only a publisher may do this (you are {role or 'nobody'})")


# --- the paragraphs an approval checks ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paragraph:
    """One paragraph of the issue as the draft writes it, named by its entry."""

    entry: str
    headline: str
    title: str
    needs_writing: bool


def issue_paragraphs(db: sqlite_utils.Database, settings: Settings,
                     issue: Mapping[str, Any]) -> list[Paragraph]:
    """The issue's paragraphs as a (re)draft would write them: one per issue entry, selected
    as the draft selects them (pipeline.preview.select_entries) and shaped by the same
    templates.render.entry_view that prints them."""
    plan = plan_for(db, settings, issue)
    out = []
    for entry in select_entries(db, plan, settings.issue.sections):
        view = entry_view(entry)
        # A headline someone wrote (the entry's, else its lead item's): a drafted one is a
        # proposal, like a drafted paragraph, and does not pass approval.
        lead = (entry.get("items") or [{}])[0]
        written = (entry.get("headline") or lead.get("item_headline") or "").strip()
        out.append(Paragraph(entry=str(entry["id"]), headline=written, title=view.title,
                             needs_writing=view.needs_writing or not view.blurb.strip()))
    return out


def unwritten_entries(paragraphs: list[Paragraph]) -> list[str]:
    """The entries an approval must refuse: still `[DRAFT — needs writing]`, or no headline.

    Each named as 'entry 12 “its title” (needs writing, no headline)'.
    """
    named = []
    for p in paragraphs:
        why = [w for w, bad in (("needs writing", p.needs_writing),
                                ("no headline", not p.headline.strip())) if bad]
        if why:
            named.append(f"entry {p.entry} “{(p.headline or p.title)[:60]}” ({', '.join(why)})")
    return named


def plan_for(db: sqlite_utils.Database, settings: Settings,
             issue: Mapping[str, Any]) -> IssuePlan:
    """The plan of a recorded issue: its own date, volume and number."""
    return plan_issue(db, as_date(issue["date"]), settings.issue.first_year)


# --- state moves ---------------------------------------------------------------------------


def _move(db: sqlite_utils.Database, ref: str | int, action: str, allowed: tuple[str, ...],
          to_status: str, *, actor: str, role: str) -> tuple[dict[str, Any], bool]:
    require(role, action)
    issue = find_issue(db, ref)
    if issue["status"] == to_status:
        return issue, False
    if issue["status"] not in allowed:
        what = store.issue_label(issue)
        if issue["status"] == "final":
            raise IssueFinalError(f"{what} is final (sent): it cannot be {action}ed")
        raise IssueStateError(
            f"{what} is {issue['status']}: {action} needs it {' or '.join(allowed)}")
    return store.move_issue(db, issue, to_status, actor=actor, event=action), True


def submit(db: sqlite_utils.Database, ref: str | int, *, actor: str,
           role: str = CLI_ROLE) -> tuple[dict[str, Any], bool]:
    """draft → review: (the issue, whether it moved)."""
    return _move(db, ref, "submit", ("draft",), "review", actor=actor, role=role)


def approve(db: sqlite_utils.Database, settings: Settings, ref: str | int, *, actor: str,
            role: str = CLI_ROLE, confirm_open_comments: bool = False,
            ) -> tuple[dict[str, Any], bool]:
    """review → approved, refused (NotReadyError, naming them) while entries are unwritten.

    With open comments it raises OpenComments unless `confirm_open_comments`.
    """
    require(role, "approve")
    issue = find_issue(db, ref)
    if issue["status"] == "review":
        checked = select_entries(db, plan_for(db, settings, issue), settings.issue.sections)
        missing = unwritten_entries(issue_paragraphs(db, settings, issue))
        if missing:
            raise NotReadyError(
                f"{store.issue_label(issue)} cannot be approved: {len(missing)} "
                f"{'entry needs' if len(missing) == 1 else 'entries need'} work: "
                + "; ".join(missing), entries=missing)
        open_count = len(store.comments(db, issue["id"], open_only=True))
        if open_count and not confirm_open_comments:
            raise OpenComments(
                f"{store.issue_label(issue)} has {open_count} open comment"
                f"{'' if open_count == 1 else 's'}: confirm to approve anyway",
                count=open_count)
        # What is approved is what is sent: the exports and the email read the entries the
        # issue holds, so it holds those this check read (entries included since the draft
        # are in; entries dropped since are out).
        hold_entries(db, int(issue["id"]), checked)
    return _move(db, ref, "approve", ("review",), "approved", actor=actor, role=role)


def reopen(db: sqlite_utils.Database, ref: str | int, *, actor: str,
           role: str = CLI_ROLE) -> tuple[dict[str, Any], bool]:
    """review or approved → draft."""
    return _move(db, ref, "reopen", ("review", "approved"), "draft", actor=actor, role=role)


def finalize(db: sqlite_utils.Database, ref: str | int, *, actor: str, role: str = CLI_ROLE,
             force: bool = False) -> tuple[dict[str, Any], bool]:
    """approved → final (sent and frozen); `force` finalises an unapproved issue too."""
    allowed = ("draft", "review", "approved") if force else ("approved",)
    return _move(db, ref, "finalize", allowed, "final", actor=actor, role=role)


def discard(db: sqlite_utils.Database, settings: Settings, ref: str | int, *, actor: str,
            role: str = CLI_ROLE) -> tuple[dict[str, Any], list[Path]]:
    """Delete an unsent issue and its files; its number is free, its items unassigned.

    Returns the issue as it was and the files removed.
    """
    require(role, "discard")
    issue = find_issue(db, ref)
    if issue["status"] == "final":
        raise IssueFinalError(f"{store.issue_label(issue)} is final (sent): it cannot be "
                              "discarded")
    store.delete_issue(db, issue, actor=actor)
    removed = []
    for stored in issue_paths(issue).values():
        path = stored_path(settings, stored)
        if path.exists():
            path.unlink()
            removed.append(path)
    # The PDF and Word files the draft flow or `issue export` wrote beside them go too.
    removed += remove_stale_exports([stored_path(settings, p) for p in issue_paths(issue).values()])
    return issue, removed


# --- comments ------------------------------------------------------------------------------


def comment(db: sqlite_utils.Database, settings: Settings, ref: str | int, entry: str,
            text: str, *, actor: str, role: str = CLI_ROLE) -> dict[str, Any]:
    """A reviewer's comment on one entry (an entry of the issue, by its number)."""
    require(role, "comment")
    issue = find_issue(db, ref)
    if issue["status"] == "final":
        raise IssueFinalError(f"{store.issue_label(issue)} is final (sent)")
    entry = str(entry).strip()
    known = [p.entry for p in issue_paragraphs(db, settings, issue)]
    if entry not in known:
        raise InputError(f"{store.issue_label(issue)} has no entry {entry[:20]!r} "
                         f"(its entries: {', '.join(known[:30]) or 'none'})", field="entry")
    text = " ".join(str(text).split())
    if not text:
        raise InputError("a comment needs text", field="text")
    if len(text) > MAX_COMMENT:
        raise InputError(f"a comment is at most {MAX_COMMENT} characters", field="text")
    return store.add_comment(db, issue, entry, text, author=actor)


def comment_issue(db: sqlite_utils.Database, comment_id: int) -> int:
    """The id of the issue a comment belongs to (NotFoundError for an unknown comment)."""
    return int(store.get_comment(db, comment_id)["issue_id"])


def resolve(db: sqlite_utils.Database, comment_id: int, *, actor: str,
            role: str = CLI_ROLE) -> dict[str, Any]:
    """Mark a comment resolved."""
    require(role, "comment")
    found = store.get_comment(db, comment_id)
    issue = find_issue(db, found["issue_id"])
    return store.resolve_comment(db, issue, found, actor=actor)


# --- the issue the desk works on -------------------------------------------------------------


def next_draft_date(settings: Settings, now: dt.datetime | None = None) -> dt.date:
    """The date of the next scheduled draft run ([schedule] draft_rrule from draft_start),
    today included, in [schedule] timezone."""
    from dateutil.rrule import rrulestr

    cfg = settings.schedule
    try:
        zone = ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[schedule] timezone: unknown time zone {cfg.timezone!r}") from None
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zone).replace(tzinfo=None)
    today_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        start = dt.datetime.fromisoformat(cfg.draft_start)
        rule = rrulestr(cfg.draft_rrule.strip(), dtstart=start)
        following = rule.after(today_start, inc=True)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"[schedule] draft_rrule/draft_start: {e}") from None
    return following.date() if following else local.date()


def open_issue(db: sqlite_utils.Database) -> dict[str, Any] | None:
    """The unsent issue being worked on: the latest-dated one that is not final."""
    rows = list(db.query("SELECT * FROM issues WHERE status != 'final' ORDER BY date DESC "
                         "LIMIT 1"))
    return rows[0] if rows else None


@dataclass
class DeskIssue:
    """What the desk's Issue page shows of the issue being prepared."""

    plan: IssuePlan
    #: The recorded issue (None while the date has no draft yet).
    issue: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    #: Settings as the issue will use them: its own, else the [issue] defaults.
    footer: str = ""
    image_url: str = ""
    image_credit: str = ""

    @property
    def status(self) -> str:
        return str(self.issue["status"]) if self.issue else "not drafted"


def desk_plan(db: sqlite_utils.Database, settings: Settings,
              now: dt.datetime | None = None) -> IssuePlan:
    """The open draft's plan if there is one, else the next scheduled date's (or the first
    day after it whose issue is not final)."""
    current = open_issue(db)
    if current is not None:
        return plan_for(db, settings, current)
    day = next_draft_date(settings, now)
    last_error: DigestError | None = None
    for offset in range(7):
        try:
            return plan_issue(db, day + dt.timedelta(days=offset), settings.issue.first_year)
        except DigestError as e:
            last_error = e
    assert last_error is not None
    raise last_error


def desk_issue(db: sqlite_utils.Database, settings: Settings,
               now: dt.datetime | None = None) -> DeskIssue:
    """The desk's issue: plan, recorded row, trail, comments and effective settings."""
    plan = desk_plan(db, settings, now)
    issue = plan.existing
    result = DeskIssue(plan=plan, issue=issue, footer=settings.issue.footer)
    if issue:
        result.events = store.events(db, issue["id"])
        result.comments = store.comments(db, issue["id"])
        result.footer = issue.get("footer") or settings.issue.footer
        result.image_url = issue.get("image_url") or ""
        result.image_credit = issue.get("image_credit") or ""
    return result


def record_issue(db: sqlite_utils.Database, settings: Settings, plan: IssuePlan, *,
                 actor: str) -> dict[str, Any]:
    """Record the planned issue without writing files, so it can be reviewed from the desk.

    The next `digest draft` for its date writes the files and keeps its state.
    """
    if plan.existing:
        return plan.existing
    entries = select_entries(db, plan, settings.issue.sections)
    issue = save_issue(db, plan, title=settings.issue.title,
                       item_ids=[item["id"] for e in entries for item in e["items"]],
                       entry_ids=[e["id"] for e in entries], paths={})
    issue.pop("previous_paths", None)
    return issue


def save_settings(db: sqlite_utils.Database, settings: Settings, ref: str | int,
                  values: Mapping[str, str], *, actor: str,
                  role: str = CLI_ROLE) -> dict[str, Any]:
    """Change an unsent issue's date, number, lead image and credit, footer.

    Empty image, credit or footer fall back to the [issue] defaults (the first entry's image).
    A date or number another issue holds is refused, naming it.
    """
    require(role, "settings")
    issue = find_issue(db, ref)
    if issue["status"] == "final":
        raise IssueFinalError(f"{store.issue_label(issue)} is final (sent)")
    wanted: dict[str, Any] = {}
    day_text = (values.get("date") or "").strip()
    if day_text and day_text != issue["date"]:
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            raise InputError(f"date: {day_text[:20]!r} is not a date (YYYY-MM-DD)",
                             field="date") from None
        other = db.execute("SELECT id, volume, number FROM issues WHERE date = ? AND id != ?",
                           [day.isoformat(), issue["id"]]).fetchone()
        if other:
            raise IssueNumberError(f"{day.isoformat()} already has issue Vol "
                                   f"{other[1]}.{other[2]} (id {other[0]})")
        wanted["date"] = day.isoformat()
        wanted["window_end"] = day.isoformat()
    number_text = (values.get("number") or "").strip()
    if number_text and number_text != str(issue["number"]):
        try:
            number = int(number_text)
        except ValueError:
            raise InputError(f"number: {number_text[:20]!r} is not a number",
                             field="number") from None
        if number < 1:
            raise IssueNumberError("the number must be 1 or more")
        other = db.execute("SELECT id, date FROM issues WHERE volume = ? AND number = ? "
                           "AND id != ?", [issue["volume"], number, issue["id"]]).fetchone()
        if other:
            raise IssueNumberError(f"Vol {issue['volume']}.{number} is already the issue of "
                                   f"{other[1]} (id {other[0]})")
        wanted["number"] = number
    from ..templates.render import safe_url

    image = (values.get("image_url") or "").strip()
    if image and not safe_url(image):
        raise InputError("lead image: give an http(s) address", field="image_url")
    wanted["image_url"] = image or None
    wanted["image_credit"] = (values.get("image_credit") or "").strip()[:300] or None
    footer = (values.get("footer") or "").strip()[:2000]
    wanted["footer"] = None if not footer or footer == settings.issue.footer.strip() else footer
    return store.update_settings(db, issue, wanted, actor=actor)

