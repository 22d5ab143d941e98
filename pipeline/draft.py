"""Drafting an issue: select its items, render them, write the files, record the issue.

    preview   = pipeline.preview.preview_issue(db, settings, date), which the desk shows too:
                  plan      volume, number and window (a final issue is refused here, before
                            anything is written)
                  rows      included items published by the date that no final issue holds
                  rendered  render_issue(issue_view_from_rows(rows))
    files     = <title-slug>-vol-V-N_<date>.md/.html/.txt, staged next to their final names
    record    = the issue row and its items in one transaction; then the staged files replace
                the old ones, and files of an earlier draft under another name are removed

`draft_issue` does it all; the `draft` flow (flows/draft.py) wraps it and publishes the
Markdown as an artifact, and `digest draft` runs that flow.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils

from .. import files
from ..errors import ConfigError, DigestError, InputError
from ..settings import Settings
from ..store.db import open_db
from ..store.entries import list_entries
from ..store.issues import IssuePlan, approved_redraft, find_issue, plan_issue, save_issue
from ..store.lock import wait_for_finish
from ..templates.render import Rendered, entry_paragraph, entry_view
from .preview import order_entries, preview_issue

#: Output kinds and their file extensions, in the order they are listed.
EXTENSIONS = {"md": ".md", "html": ".html", "txt": ".txt"}


@dataclass(frozen=True, slots=True)
class DraftResult:
    """What one draft run wrote and recorded."""

    issue_id: int
    volume: int
    number: int
    date: dt.date
    status: str
    #: Paragraphs (issue entries) in the issue.
    items: int
    #: Entries whose paragraph was drafted from their items (no blurb yet).
    needs_writing: int
    #: Files written, by kind ("md", "html", "txt").
    paths: dict[str, Path]
    rendered: Rendered
    #: Files of the previous draft of this issue with another name in the same folder: removed.
    removed: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary: the flow's return value."""
        return {"issue_id": self.issue_id, "volume": self.volume, "number": self.number,
                "date": self.date.isoformat(), "status": self.status, "items": self.items,
                "needs_writing": self.needs_writing,
                "paths": {k: str(p) for k, p in self.paths.items()},
                "removed": [str(p) for p in self.removed]}


def parse_date(value: str) -> dt.date:
    """A --date value (YYYY-MM-DD) as a date, or one clear error."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"--date: {value!r} is not a date (YYYY-MM-DD)", field="date") from None


def today(settings: Settings) -> dt.date:
    """Today where the desk works ([schedule] timezone): the scheduled run drafts that date."""
    try:
        zone = ZoneInfo(settings.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"[schedule] timezone: unknown time zone {settings.schedule.timezone!r}") from None
    return dt.datetime.now(zone).date()


def slugify(text: str) -> str:
    """'US-Japan Alliance Digest' -> 'us-japan-alliance-digest' (ASCII; 'digest' if none left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "digest"


def issue_stem(title: str, volume: int, number: int, day: dt.date) -> str:
    """File name without extension: us-japan-alliance-digest-vol-2-3_2023-02-14."""
    return f"{slugify(title)}-vol-{volume}-{number}_{day.isoformat()}"


def out_folder(settings: Settings, out_dir: str | os.PathLike[str] | None) -> Path:
    """--out as given (relative to the working folder), else [issue] out_dir next to the config."""
    folder = Path(out_dir).expanduser() if out_dir else settings.resolve(settings.issue.out_dir)
    return folder.resolve()


def stored_path(settings: Settings, stored: str) -> Path:
    """A recorded file path: relative ones are relative to the data folder."""
    path = Path(stored)
    return path if path.is_absolute() else settings.data_dir / path


def path_to_store(settings: Settings, path: Path) -> str:
    """How a written file is recorded: relative to the data folder (where the database is),
    so the project folder can move without its archive pointing elsewhere."""
    return os.path.relpath(path, settings.data_dir.resolve())


def stage_files(rendered: Rendered, folder: Path, stem: str) -> dict[str, files.Staged]:
    """Write each output to a temporary file beside its final name (files.stage: created
    exclusively, never through a planted symlink): {kind: staged}."""
    texts = {"md": rendered.markdown, "html": rendered.html, "txt": rendered.text}
    staged: dict[str, files.Staged] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for kind, ext in EXTENSIONS.items():
            staged[kind] = files.stage(folder / f"{stem}{ext}", texts[kind].encode("utf-8"))
    except OSError as e:
        discard_staged(staged)
        raise DigestError(f"{folder}: cannot write the issue files: "
                          f"{e.strerror or e}") from None
    return staged


def discard_staged(staged: dict[str, files.Staged]) -> None:
    """Remove staged files that will not be used."""
    for one in staged.values():
        files.discard(one)


def plan_draft(db: sqlite_utils.Database, settings: Settings, day: dt.date, *,
               volume: int | None = None, number: int | None = None) -> IssuePlan:
    """The plan of a (re)draft for `day`, refusing what it may not write: a final issue
    (store.issues.plan_issue), a taken number, and an approved issue (reopen it first)."""
    plan = plan_issue(db, day, settings.issue.first_year, volume=volume, number=number)
    if plan.existing and plan.existing["status"] == "approved":
        raise approved_redraft(plan.existing)
    return plan


def draft_issue(settings: Settings, *, day: dt.date | None = None,
                out_dir: str | os.PathLike[str] | None = None, volume: int | None = None,
                number: int | None = None) -> DraftResult:
    """Draft (or redraft) the issue dated `day`: files written and the issue recorded.

    Files are staged first and moved into place only once the issue is recorded, so a refused
    or failed draft never overwrites the files of an existing issue. A large collect's stories
    still being grouped after its command (flows/record.py) are waited for first.
    """
    day = day or today(settings)
    wait_for_finish(settings.store_path)  # on timeout, draft what is grouped: nothing is lost
    db = open_db(settings.store_path)
    try:
        plan_draft(db, settings, day, volume=volume, number=number)
        preview = preview_issue(db, settings, day, volume=volume, number=number)
        plan, rows = preview.plan, preview.rows
        stem = issue_stem(settings.issue.title, plan.volume, plan.number, day)
        folder = out_folder(settings, out_dir)
        staged = stage_files(preview.rendered, folder, stem)
        try:
            issue = save_issue(db, plan, title=settings.issue.title,
                               item_ids=[r["id"] for r in rows],
                               entry_ids=[e["id"] for e in preview.entries],
                               paths={k: path_to_store(settings, one.final)
                                      for k, one in staged.items()})
        except BaseException:
            discard_staged(staged)
            raise
        for one in staged.values():
            files.commit(one)
    finally:
        db.close()
    paths = {k: one.final for k, one in staged.items()}
    removed = []
    for stored in issue["previous_paths"].values():
        old = stored_path(settings, stored).resolve()
        # Only an earlier draft's file in the folder written now is replaced; files elsewhere
        # (another --out, a folder the user moved them to) are not this run's to delete.
        if old not in paths.values() and old.parent == folder:
            old.unlink(missing_ok=True)
            removed.append(old)
    return DraftResult(issue_id=issue["id"], volume=plan.volume, number=plan.number, date=day,
                       status=issue["status"], items=len(preview.entries),
                       needs_writing=sum(item.needs_writing for item in preview.view.items),
                       paths=paths, removed=removed, rendered=preview.rendered)



@dataclass(frozen=True, slots=True)
class EntryParagraph:
    """One issue entry as the draft prints it: the seam review, approval and export read."""

    entry_id: int
    headline: str
    #: The paragraph in Markdown, exactly as the draft prints it after the draft marker.
    markdown: str
    #: True while the entry has no blurb: the paragraph was drafted from its items and is
    #: printed behind "[DRAFT — needs writing]".
    unwritten: bool
    html: str
    text: str
    section: str


def issue_paragraphs(db: sqlite_utils.Database, issue_id: int | None, *,
                     sections: Sequence[str] = ()) -> list[EntryParagraph]:
    """Each entry of an issue, in issue order: id, headline, paragraph, whether unwritten.

    `issue_id` is a recorded issue (its entries); None means the coming issue: every entry no
    final issue holds. Both are ordered by `sections`, position, date, as the desk's Issue page
    shows them: the desk numbers positions within each section, so position alone would mix
    the sections of a recorded issue reordered after its draft.
    The desk's entry preview and the draft's Details both come from here (templates/render).
    """
    if issue_id is None:
        rows = order_entries(list_entries(db, open_only=True), sections)
    else:
        find_issue(db, issue_id)
        rows = order_entries(list_entries(db, issue_id=issue_id), sections)
    out = []
    for entry in rows:
        view = entry_view(entry)
        shown = entry_paragraph(view)
        out.append(EntryParagraph(entry_id=int(entry["id"]), headline=view.headline or view.title,
                                  markdown=shown["markdown"], unwritten=shown["unwritten"],
                                  html=shown["html"], text=shown["text"], section=view.section))
    return out

