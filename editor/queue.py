"""What the queue page shows: filters from the query string, one page of items, their stories.

    filters  = QueueFilters.from_params(query string)        # validated, normalised
    rows     = search(q, filters)                             # when there is a search
             | day_ordered(query_items(filters))              # else newest day, best score first
    page     = rows[offset : offset + PAGE_SIZE] (+1 to know whether a next page exists)
    outlets  = other outlets of each row's story (cluster members and exact duplicates)

No COUNT(*): a count over 100,000 rows per request costs more than the page itself, and the
editor needs "is there more", not "how many".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any
from urllib.parse import urlencode

import sqlite_utils

from ..errors import InputError
from ..store.clusters import STORY_ITEMS_SHOWN, story_rows
from ..store.db import time_budget
from ..store.editorial import json_list
from ..store.entries import entry_marks
from ..store.items import other_sources, query_items, search_backlog
from ..store.migrations import ITEM_STATUSES
from ..triage.clusters import cluster_members
from ..triage.search import search

PAGE_SIZE = 50
#: Other outlets named per row; the rest are counted.
OUTLETS_SHOWN = 4
SORTS = ("day", "newest", "score")


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """The queue's query string, validated. Empty strings mean "no filter"."""

    status: str = "candidate"
    source: str = ""
    category: str = ""
    country: str = ""
    language: str = ""
    since: str = ""
    until: str = ""
    section: str = ""
    tag: str = ""
    q: str = ""
    #: "1": only items near the relevance threshold (triage marks them borderline).
    borderline: str = ""
    sort: str = "day"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> QueueFilters:
        """Read filters, dropping values that cannot be right instead of failing the page."""
        def text(key: str) -> str:
            return (params.get(key) or "").strip()[:200]

        status = text("status") or "candidate"
        if status != "all" and status not in ITEM_STATUSES:
            status = "candidate"
        sort = text("sort") or "day"
        if sort not in SORTS:
            sort = "day"
        try:
            page = max(1, min(int(text("page") or 1), 10_000))
        except ValueError:
            page = 1
        return cls(status=status, source=text("source"), category=text("category"),
                   country=text("country"), language=text("language"),
                   since=_iso_date(text("since")), until=_iso_date(text("until")),
                   section=text("section"), tag=text("tag"), q=text("q"), sort=sort, page=page,
                   borderline="1" if text("borderline") == "1" else "")

    def query_string(self, **changes: Any) -> str:
        """This filter set (with changes) as a query string, defaults left out."""
        values = asdict(replace(self, **changes))
        defaults = asdict(QueueFilters())
        return urlencode({k: v for k, v in values.items() if v != defaults[k]})

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE


def _iso_date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat() if value else ""
    except ValueError:
        return ""


@dataclass(slots=True)
class QueuePage:
    """One page of the queue."""

    rows: list[dict[str, Any]]
    has_next: bool
    error: str = ""
    #: Items a large collect stored that wait to be added to the search index (a search may
    #: miss them for those few seconds: the page says so).
    unindexed: int = 0


def load_page(db: sqlite_utils.Database, f: QueueFilters,
              sources: Mapping[int, Mapping[str, Any]], zone: tzinfo | None = None,
              budget: float | None = None) -> QueuePage:
    """One queue page: a row per story, with its outlets, best score and items.

    `zone` is the desk's time zone ([schedule] timezone): the since/until dates are its days.
    `budget`: seconds the listing or search may take before the page answers "search too
    broad" instead (`[editor] search_budget_seconds`).
    """
    query = _utc_days(f, zone) if zone is not None else f
    try:
        with time_budget(db, budget):
            if f.q:
                rows, has_next = _search_page(db, query, sources)
            else:
                rows, has_next = _browse_page(db, query)
    except InputError as e:
        # A search that cannot be read: the page says why and keeps the filters.
        return QueuePage(rows=[], has_next=False, error=str(e))
    for row in rows:
        _decorate(db, row)
    return QueuePage(rows=stories_of(db, rows), has_next=has_next,
                     unindexed=search_backlog(db) if f.q else 0)


def _utc_days(f: QueueFilters, zone: tzinfo) -> QueueFilters:
    """The filters with since/until read as days in `zone`, as UTC timestamps."""
    def bound(day: str, end: bool) -> str:
        if not day:
            return ""
        moment = datetime.combine(date.fromisoformat(day), time.max if end else time.min,
                                  tzinfo=zone).astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return replace(f, since=bound(f.since, False), until=bound(f.until, True))


def stories_of(db: sqlite_utils.Database, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per story, in the order its first item came: the story's lead title, its
    outlets (name and language) as chips, its best score, its items (`story`), and the
    "in entry N" / "used in entry N" mark of the row's item."""
    order: list[int] = []
    first: dict[int, dict[str, Any]] = {}
    for row in rows:
        key = int(row.get("cluster_id") or row["id"])
        if key not in first:
            first[key] = row
            order.append(key)
    items = story_rows(db, order)
    marks = entry_marks(db, [i["id"] for key in order for i in items[key]] or
                        [first[k]["id"] for k in order])
    out = []
    for key in order:
        row = first[key]
        members = items[key] or [{"id": row["id"], "title": row["title"], "url": row["url"],
                                  "status": row["status"], "score": row.get("score"),
                                  "published_at": row["published_at"],
                                  "version": row.get("version") or 0,
                                  "source": row.get("source"),
                                  "language": row.get("language") or ""}]
        for m in members:
            m["entry"] = marks.get(m["id"])
        lead = members[0]
        chips: dict[str, dict[str, str]] = {}
        for m in members:
            chips.setdefault(f"{m['source']}|{m['language']}",
                             {"source": m["source"] or "", "language": m["language"] or ""})
        scores = [m["score"] for m in members if m.get("score") is not None]
        row.update(
            story_id=key, lead_title=lead["title"] if lead["id"] == key else row["title"],
            chips=list(chips.values()), best_score=max(scores) if scores else row.get("score"),
            story=members[:STORY_ITEMS_SHOWN],
            story_more=max(0, len(members) - STORY_ITEMS_SHOWN),
            story_ids=[m["id"] for m in members if m["status"] != "excluded" or
                       m["id"] == row["id"]],
            # The version each was shown at, in story_ids' order: a bulk decision carries them
            # and is refused for an item another editor changed since (a stale save).
            story_versions=[m.get("version") or 0 for m in members
                            if m["status"] != "excluded" or m["id"] == row["id"]],
            entry=marks.get(row["id"]) or next((m["entry"] for m in members if m["entry"]),
                                               None),
        )
        out.append(row)
    return out


def _browse_page(db: sqlite_utils.Database, f: QueueFilters
                 ) -> tuple[list[dict[str, Any]], bool]:
    kwargs: dict[str, Any] = dict(
        status=f.status, since=f.since or None, until=f.until or None, source=f.source or None,
        category=f.category or None, country=f.country or None, language=f.language or None,
        section=f.section or None, tag=f.tag or None, borderline=bool(f.borderline))
    want = f.offset + PAGE_SIZE + 1
    if f.sort == "score":
        rows = query_items(db, order="score", limit=PAGE_SIZE + 1, offset=f.offset, **kwargs)
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    if f.sort == "newest":
        rows = query_items(db, order="newest", limit=PAGE_SIZE + 1, offset=f.offset, **kwargs)
        return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    # "day": newest day first, best score first within a day. The first `want` rows by date
    # (an index walk) end on some day D; everything before D is among them, so reading the
    # rest of day D as well gives every row the page can need, without sorting the table.
    head = query_items(db, order="newest", limit=want, **kwargs)
    if len(head) == want:
        last_day = head[-1]["published_at"][:10]
        head = [r for r in head if r["published_at"][:10] > last_day]
        kwargs["since"] = max(filter(None, [f.since, last_day + "T00:00:00Z"]))
        kwargs["until"] = min(filter(None, [f.until, last_day + "T23:59:59Z"]))
        head += query_items(db, order="newest", **kwargs)
    # Two stable sorts: best score (then newest) first, then by day, newest day first.
    head.sort(key=lambda r: (r.get("score") or 0.0, r["published_at"], r["id"]), reverse=True)
    head.sort(key=lambda r: r["published_at"][:10], reverse=True)
    page = head[f.offset:f.offset + PAGE_SIZE]
    return page, len(head) > f.offset + PAGE_SIZE


def _search_page(db: sqlite_utils.Database, f: QueueFilters,
                 sources: Mapping[int, Mapping[str, Any]]
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Search results narrowed by the other filters (in SQL, as browsing does).

    "best score" keeps relevance order (bm25); the desk's other orders show the newest
    matches first, which the index serves without ranking every match of a common word.
    """
    rows = search(
        db, f.q, status=None if f.status == "all" else f.status, limit=PAGE_SIZE + 1,
        offset=f.offset, order="relevance" if f.sort == "score" else "newest",
        source=f.source or None, category=f.category or None, country=f.country or None,
        language=f.language or None, section=f.section or None, tag=f.tag or None,
        since=f.since or None, until=f.until or None, borderline=bool(f.borderline) or None,
    )
    _add_source_fields(rows, sources)
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _add_source_fields(rows: list[dict[str, Any]],
                       sources: Mapping[int, Mapping[str, Any]]) -> None:
    for r in rows:
        src = sources.get(r["source_id"], {})
        r["source_language"] = src.get("language")
        if isinstance(r.get("reasons"), str):
            r["reasons"] = json_list(r["reasons"])


def _decorate(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """Add `outlets` (other sources of the story), `why` (reasons) and display helpers."""
    names: list[str] = []
    if row.get("cluster_id") is not None:
        names += [m["source"] for m in cluster_members(db, row["id"])]
    names += [o["source"] for o in other_sources(db, row["id"])]
    distinct = [n for n in dict.fromkeys(names) if n != row.get("source")]
    row["outlets"] = distinct[:OUTLETS_SHOWN]
    row["outlets_more"] = max(0, len(distinct) - OUTLETS_SHOWN)
    reasons = row.get("reasons")
    if isinstance(reasons, str):
        reasons = json_list(reasons)
    row["why"] = [r for r in reasons or [] if isinstance(r, dict)]
    # A search snippet that only repeats the title adds a line and says nothing.
    snippet = (row.get("snippet") or "").strip("…").strip()
    if snippet and snippet in (row.get("title") or ""):
        row["snippet_html"] = ""
