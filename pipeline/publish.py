"""The public archive: a static folder of the sent (final) issues, with an Atom feed.

    issues      store.archive.final_issues, newest first
    per issue   issues/<stem>.html   the email HTML (pipeline.export.issue_document)
                issues/<stem>.pdf    its PDF (rendered once: a final issue is frozen)
    index.html  by volume, newest first (templates/archive.html.j2)
    feed.xml    Atom (feedgen), one entry per issue, dated when it was sent

Links are relative, so the folder can be served from anywhere ([publish] base_url, when set,
makes the feed's links absolute, as feed readers prefer). Every file is compared with what is
there and written only when it differs, so re-publishing changes only what changed; pages of
issues no longer in the archive are removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import escape

from ..errors import ConfigError, ExportError
from ..settings import Settings
from ..store.archive import final_issues
from ..store.db import open_db
from ..templates.formats import render_email, render_pdf
from ..templates.render import _environment, _user_templates, long_date
from .draft import slugify
from .export import export_stem, image_bytes, issue_document, write_file
from .send import SendResult, send_issue

ISSUES_DIR = "issues"


@dataclass
class PublishResult:
    folder: Path
    issues: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Path] = field(default_factory=list)


def site_folder(settings: Settings, out_dir: str | os.PathLike[str] | None) -> Path:
    if out_dir:
        return Path(out_dir).expanduser().resolve()
    if not settings.publish.out_dir:
        raise ConfigError("digest publish: give --out DIR or set [publish] out_dir")
    return settings.resolve(settings.publish.out_dir).resolve()


def publish_site(settings: Settings, out_dir: str | os.PathLike[str] | None) -> PublishResult:
    """Write (or bring up to date) the archive in `out_dir`, else [publish] out_dir."""
    folder = site_folder(settings, out_dir)
    result = PublishResult(folder=folder)
    db = open_db(settings.store_path)
    try:
        issues = final_issues(db)
        docs = [(issue, issue_document(db, settings, issue)) for issue in issues]
    finally:
        db.close()
    try:
        (folder / ISSUES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"{folder}: cannot write the archive: {e.strerror or e}") from None
    entries = []
    keep = set()
    for issue, doc in docs:
        stem = export_stem(settings, issue)
        page, pdf = f"{ISSUES_DIR}/{stem}.html", f"{ISSUES_DIR}/{stem}.pdf"
        keep |= {page, pdf}
        _write(result, folder / page, render_email(doc, settings).html.encode("utf-8"))
        if (folder / pdf).is_file():
            result.unchanged += 1  # a final issue is frozen: its PDF stays as first written
        else:
            image = image_bytes(doc.image_url)
            _write(result, folder / pdf, render_pdf(doc, settings, image=image))
        entries.append({"issue": issue, "doc": doc, "page": page, "pdf": pdf,
                        "vol_num": doc.vol_num, "date_text": long_date(doc.date),
                        "headlines": [p.headline for p in doc.paragraphs]})
        result.issues.append(doc.vol_num)
    _write(result, folder / "index.html", _index(settings, entries).encode("utf-8"))
    _write(result, folder / "feed.xml", _feed(settings, entries))
    for path in sorted((folder / ISSUES_DIR).glob("*")):
        if path.suffix in (".html", ".pdf") and f"{ISSUES_DIR}/{path.name}" not in keep:
            path.unlink(missing_ok=True)
            result.removed.append(path)
    return result


def send_and_publish(settings: Settings, ref: str | int, *, test: str | None = None,
                     on_delivery: Callable[[str, bool, str], None] | None = None,
                     actor: str = "digest") -> tuple[SendResult, PublishResult | None]:
    """Send an issue (pipeline.send.send_issue); when it went out to subscribers and
    [publish] out_dir is set, bring the archive up to date. The CLI and the desk both use this.
    """
    result = send_issue(settings, ref, test=test, on_delivery=on_delivery, actor=actor)
    site = None
    if result.sent and not result.test and settings.publish.out_dir:
        site = publish_site(settings, None)
    return result, site


def _write(result: PublishResult, path: Path, data: bytes) -> None:
    if write_file(path, data):
        result.written.append(path)
    else:
        result.unchanged += 1


def _index(settings: Settings, entries: list[dict[str, Any]]) -> str:
    volumes: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        volumes.setdefault(entry["doc"].volume, []).append(entry)
    env = _environment(_user_templates(settings))
    return env.get_template("archive.html.j2").render(
        title=settings.issue.title,
        volumes=[{"number": v, "issues": volumes[v]} for v in sorted(volumes, reverse=True)])


def _feed(settings: Settings, entries: list[dict[str, Any]]) -> bytes:
    """The Atom feed; dated by the issues' send times, so an unchanged archive is unchanged."""
    from feedgen.feed import FeedGenerator

    base = settings.publish.base_url.rstrip("/")
    slug = slugify(settings.issue.title)

    def href(path: str) -> str:
        return f"{base}/{path}" if base else path

    fg = FeedGenerator()
    fg.id(f"{base}/" if base else f"urn:alliance-digest:{slug}")
    fg.title(settings.issue.title)
    fg.subtitle(f"Every issue of {settings.issue.title} as it was sent")
    fg.link(href=href("index.html"), rel="alternate")
    fg.link(href=href("feed.xml"), rel="self")
    fg.language("en")
    stamps = [_stamp(e["issue"]) for e in entries]
    fg.updated(max(stamps) if stamps else "2000-01-01T00:00:00Z")
    for entry, stamp in zip(reversed(entries), reversed(stamps), strict=True):
        doc = entry["doc"]
        item = fg.add_entry()
        item.id(href(entry["page"]) if base else
                f"urn:alliance-digest:{slug}:vol-{doc.volume}-{doc.number}")
        item.title(f"{doc.title} Vol {doc.vol_num} — {entry['date_text']}")
        # One link only: feedgen 1.0 drops a link's rel, so a second (the PDF) would read as
        # the entry's page. The PDF is linked from the content instead.
        item.link(href=href(entry["page"]))
        item.content(_entry_html(entry["headlines"], href(entry["pdf"])), type="html")
        item.updated(stamp)
        item.published(stamp)
        item.summary("; ".join(entry["headlines"]) or "(no items)")
    return fg.atom_str(pretty=True)


def _entry_html(headlines: list[str], pdf: str) -> str:
    items = "".join(f"<li>{escape(h)}</li>" for h in headlines)
    return f'<ul>{items}</ul><p><a href="{escape(pdf)}">PDF</a></p>'


def _stamp(issue: dict[str, Any]) -> str:
    """When an issue was sent (finalised); its date for one finalised before that was kept."""
    value = issue.get("finalized_at") or f"{issue['date']}T00:00:00Z"
    return value if value.endswith("Z") or "+" in value[10:] else value + "Z"
