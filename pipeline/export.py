"""Exporting a recorded issue as PDF or Word, beside the draft's other files.

    document  = issue_document(db, settings, issue)     numbering, lead image, paragraphs
                  paragraphs = issue_paragraphs(...)      the one reader of the issue's
                                                          paragraphs (headline + Markdown)
    pdf       = templates.formats.render_pdf(document)  the email template, printed
    docx      = templates.formats.render_docx(document)
    file      = <slug>-vol-V-N_<date>.pdf / .docx in the draft's folder (or --out)

The email (pipeline.send) and the archive (pipeline.publish) read the same document.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from .. import files
from ..errors import ExportError, InputError
from ..settings import Settings
from ..store.db import open_db
from ..store.entries import list_entries
from ..store.issues import as_date, find_issue, issue_paths
from ..templates.formats import IssueDocument, Paragraph, render_docx, render_pdf
from ..templates.render import issue_view_from_entries
from .draft import issue_paragraphs as draft_paragraphs
from .draft import issue_stem, out_folder

FORMATS = ("pdf", "docx")
#: The lead image is fetched for the PDF and the Word file with these limits.
IMAGE_TIMEOUT = 10
IMAGE_MAX_BYTES = 5 * 1024 * 1024


def issue_paragraphs(db: sqlite_utils.Database, settings: Settings,
                     issue: dict[str, Any]) -> list[Paragraph]:
    """Per paragraph of a recorded issue, its headline and Markdown: the draft's own
    (pipeline.draft.issue_paragraphs, one per issue entry), the one place delivery reads them."""
    return [Paragraph(headline=p.headline, markdown=p.markdown, needs_writing=p.unwritten)
            for p in draft_paragraphs(db, int(issue["id"]), sections=settings.issue.sections)]


def issue_document(db: sqlite_utils.Database, settings: Settings,
                   issue: dict[str, Any]) -> IssueDocument:
    """A recorded issue as the delivery formats take it: its entries, its own lead image,
    credit and footer where the desk set them (else the first entry's image, `[issue]`)."""
    entries = list_entries(db, issue_id=int(issue["id"]))
    image = issue.get("image_url") or None
    credit = issue.get("image_credit") or None
    view = issue_view_from_entries(entries, settings, day=as_date(issue["date"]),
                                   volume=int(issue["volume"]), number=int(issue["number"]),
                                   image_url=image,
                                   image_credit=(credit or "") if image else None)
    return IssueDocument(title=issue.get("title") or settings.issue.title,
                         volume=view.volume, number=view.number, date=view.date,
                         paragraphs=issue_paragraphs(db, settings, issue),
                         image_url=view.image_url, image_credit=view.image_credit,
                         image_alt=view.image_alt, footer=issue.get("footer") or None)


def export_stem(settings: Settings, issue: dict[str, Any]) -> str:
    return issue_stem(issue.get("title") or settings.issue.title, int(issue["volume"]),
                      int(issue["number"]), as_date(issue["date"]))


def export_folder(settings: Settings, issue: dict[str, Any],
                  out_dir: str | os.PathLike[str] | None) -> Path:
    """--out, else the folder of the draft's files, else [issue] out_dir."""
    if out_dir:
        return out_folder(settings, out_dir)
    paths = [Path(p) for p in issue_paths(issue).values()]
    if not paths:
        return out_folder(settings, None)
    # Stored paths may be relative to the data folder (the database's), never to the cwd.
    first = paths[0] if paths[0].is_absolute() else settings.data_dir / paths[0]
    return first.parent.resolve()


def image_fetcher() -> Any:
    """A fetcher for the lead image (WeasyPrint's, so it shares its proxy and decoding rules):
    http(s) only (a feed's `file:` URL must not read local files), a deadline, a size cap."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class ImageFetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            response = super().fetch(url, headers)
            try:
                data = response.read(IMAGE_MAX_BYTES + 1)
            finally:
                response.close()
            if len(data) > IMAGE_MAX_BYTES:
                raise ValueError(f"{url}: image larger than {IMAGE_MAX_BYTES} bytes")
            return URLFetcherResponse(response.url, data, response.headers, response.status)

    return ImageFetcher(timeout=IMAGE_TIMEOUT, allowed_protocols={"http", "https"})


def image_bytes(url: str) -> bytes | None:
    """The lead image's bytes for the PDF and the Word file, or None when it cannot be had
    (any failure: the image is left out and its credit stays)."""
    if not url:
        return None
    try:
        response = image_fetcher().fetch(url)
        return bytes(response.read())
    except Exception:
        return None


def render_format(doc: IssueDocument, settings: Settings, fmt: str,
                  image: bytes | None = None) -> bytes:
    """The bytes of one export format; `image` is the lead image (image_bytes), if had."""
    if fmt == "pdf":
        return render_pdf(doc, settings, image=image)
    if fmt == "docx":
        return render_docx(doc, settings, image=image)
    raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                     field="format")


def remove_stale_exports(removed: Sequence[Path]) -> list[Path]:
    """The PDF and Word files beside draft files a redraft removed (an old name): removed too."""
    gone = []
    for old in removed:
        for fmt in FORMATS:
            export = old.with_suffix(f".{fmt}")
            if export.is_file():
                export.unlink()
                gone.append(export)
    return gone


def write_file(path: Path, data: bytes) -> bool:
    """Write `path` safely (files.write_file: an exclusive temporary file renamed into place,
    never through a planted symlink); False (untouched) when it already holds `data`."""
    try:
        if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_file(path, data, keep_mode=False)
    except OSError as e:
        raise ExportError(f"{path.parent}: cannot write {path.name}: "
                          f"{e.strerror or e}") from None
    return True


def issue_file(db: sqlite_utils.Database, settings: Settings, ref: str | int,
               fmt: str) -> tuple[str, bytes]:
    """(file name, bytes) of an issue in one format, written nowhere: the desk's downloads."""
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                         field="format")
    issue = find_issue(db, ref)
    doc = issue_document(db, settings, issue)
    image = image_bytes(doc.image_url)
    return f"{export_stem(settings, issue)}.{fmt}", render_format(doc, settings, fmt, image)


def export_issue(settings: Settings, ref: str | int, fmt: str,
                 out_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write the issue `ref` (id or VOL.NUM) as PDF or Word; returns the file's path."""
    return export_formats(settings, ref, [fmt], out_dir)[fmt]


def export_formats(settings: Settings, ref: str | int, formats: Sequence[str] = FORMATS,
                   out_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write the issue in each of `formats`: {format: path}. The draft flow writes both."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}",
                             field="format")
    db = open_db(settings.store_path)
    try:
        issue = find_issue(db, ref)
        doc = issue_document(db, settings, issue)
    finally:
        db.close()
    folder = export_folder(settings, issue, out_dir)
    image = image_bytes(doc.image_url)  # once, for every format
    paths = {}
    for fmt in formats:
        paths[fmt] = folder / f"{export_stem(settings, issue)}.{fmt}"
        write_file(paths[fmt], render_format(doc, settings, fmt, image))
    return paths
