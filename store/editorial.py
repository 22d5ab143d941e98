"""What editors decide about items: status, section, tags, text, links; with an audit trail.

Shared by the web desk and the `digest tag` CLI, so both validate and record the same way:

    update_item(db, id, changes, editor=, expected_version=)
        BEGIN IMMEDIATE                     # the write lock first: the version check and the
                                            # write cannot interleave with another save
        row = the item, or NotFoundError
        expected_version != row.version  -> StaleEdit naming who saved last and when
        values = validate(changes)          # EditError (one line) before anything is written
        changed = fields whose stored form differs
        one `edits` row per changed field; version + 1, edited_by, edited_at
        status changed -> status_by = editor (triage never moves it again)
    COMMIT

`update_items` applies the same changes to many items in one transaction: an unknown id or a
bad value anywhere changes nothing. `add_manual_item` stores an item an editor found by URL
under the "Added by editors" source, which collection never fetches.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlite_utils

from ..errors import DigestError, EditError, NotFoundError, StaleEdit
from ..texts import strip_bidi
from ..timestamps import utcnow
from ..urls import http_url
from . import entries
from .items import content_hash
from .migrations import EDITOR_FIELDS, EDITOR_STATUSES

__all__ = [
    "EDITABLE_FIELDS",
    "MANUAL_SOURCE",
    "SETTABLE_STATUSES",
    "EditError",
    "StaleEdit",
    "add_manual_item",
    "clean_tags",
    "find_item_by_url",
    "get_item",
    "history",
    "manual_source_id",
    "update_item",
    "update_items",
    "validate_changes",
    "write_lock",
]

#: Statuses an editor may set: their own three, and back to candidate.
SETTABLE_STATUSES = ("candidate", *EDITOR_STATUSES)
#: Every key `changes` may hold.
EDITABLE_FIELDS = ("status", *EDITOR_FIELDS)
#: The source row manual items live under: never in the registry, never fetched.
MANUAL_SOURCE = "Added by editors"
#: `status_by` value triage writes; an editor of that name would hand decisions back to triage.
_TRIAGE = "triage"

_MAX_TAGS = 20
_MAX_TAG = 64
_MAX_LINKS = 20
_MAX_RANK = 9999
#: Longest accepted value per text field (characters).
_MAX_TEXT = {"headline": 300, "key_phrase": 200, "blurb": 5000, "note": 5000,
             "image_credit": 300, "label": 300, "url": 2048}
#: Single-line fields: runs of whitespace (newlines included) become one space.
_ONE_LINE = ("headline", "key_phrase", "image_credit")
# The blurb's link syntax as templates/render.py reads it: [label](target).
_BLURB_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*([^)\s]*)\s*\)")
_SPACE = re.compile(r"\s+")


# --- reading -----------------------------------------------------------------------------------


def get_item(db: sqlite_utils.Database, item_id: int) -> dict[str, Any]:
    """One item with its source's name; `tags`, `links` and `reasons` decoded to lists."""
    rows = _read_items(db, [item_id])
    if not rows:
        raise NotFoundError(f"no item with id {item_id}")
    return rows[0]


def history(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """Every recorded edit of an item, oldest first (id, field, old, new, editor, at)."""
    if db.execute("SELECT 1 FROM items WHERE id = ?", [item_id]).fetchone() is None:
        raise NotFoundError(f"no item with id {item_id}")
    return list(db.query(
        "SELECT id, item_id, field, old, new, editor, at FROM edits WHERE item_id = ? "
        "ORDER BY at, id", [item_id]))


def find_item_by_url(db: sqlite_utils.Database, url: str) -> dict[str, Any] | None:
    """The item stored under this canonical URL, by any source (exact duplicates included)."""
    row = db.execute("SELECT min(id) FROM items WHERE url = ?", [url]).fetchone()
    item_id = row[0] if row else None
    if item_id is None:
        # A second outlet's copy of an item is recorded in item_sources, not as an item.
        row = db.execute("SELECT min(item_id) FROM item_sources WHERE url = ?", [url]).fetchone()
        item_id = row[0] if row else None
    return get_item(db, item_id) if item_id is not None else None


_SELECT = ("SELECT items.*, sources.name AS source, sources.category AS source_category, "
           "sources.country AS source_country FROM items "
           "JOIN sources ON sources.id = items.source_id ")


def _read_items(db: sqlite_utils.Database, item_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Items in the order asked (missing ones left out), JSON columns decoded."""
    found: dict[int, dict[str, Any]] = {}
    ids = list(dict.fromkeys(item_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.query(_SELECT + f"WHERE items.id IN ({marks})", chunk):
            found[row["id"]] = _decoded(row)
    return [found[i] for i in ids if i in found]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    row["tags"] = json_list(row.get("tags"))
    row["links"] = [x for x in json_list(row.get("links")) if isinstance(x, dict)]
    if "reasons" in row:
        row["reasons"] = json_list(row.get("reasons"))
    return row


def json_list(value: str | None) -> list[Any]:
    """A JSON-list column (tags, links, reasons) decoded; [] for NULL, junk or a non-list."""
    try:
        data = json.loads(value or "[]")
    except ValueError:
        return []
    return data if isinstance(data, list) else []


# --- validation --------------------------------------------------------------------------------


def validate_changes(changes: Mapping[str, Any], *,
                     sections: Sequence[str] | None = None) -> dict[str, Any]:
    """The changes in the form they are stored in (tags and links as JSON text, blanks as None).

    Raises EditError naming the first unknown field or bad value. `sections` is the allowed
    list (settings.issue.sections, matched case-insensitively); None accepts any name.
    """
    unknown = [k for k in changes if k not in EDITABLE_FIELDS]
    if unknown:
        raise EditError(f"unknown field {unknown[0]!r} (editable: {', '.join(EDITABLE_FIELDS)})")
    values: dict[str, Any] = {}
    for field, value in changes.items():
        try:
            values[field] = _VALIDATORS[field](value, sections)
        except EditError as e:
            e.field = field
            raise
    return values


def _status(value: Any, _sections: Sequence[str] | None) -> str:
    if value not in SETTABLE_STATUSES:
        raise EditError(f"status must be one of {', '.join(SETTABLE_STATUSES)}, got {value!r}")
    return str(value)


def _section(value: Any, sections: Sequence[str] | None) -> str | None:
    text = _text("section", value, 100)
    if text is None or sections is None:
        return text
    for name in sections:
        if name.casefold() == text.casefold():
            return name
    raise EditError(f"unknown section {text!r} (one of {', '.join(sections)})")


def _tags(value: Any, _sections: Sequence[str] | None) -> str:
    return json.dumps(clean_tags(value), ensure_ascii=False)


def clean_tags(value: Any) -> list[str]:
    """Tags as a list: a list of strings or one comma-separated string; trimmed, deduplicated."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise EditError(f"tags must be a list of words, got {value!r}")
    tags: list[str] = []
    seen: set[str] = set()
    for tag in value:
        if not isinstance(tag, str):
            raise EditError(f"tags must be text, got {tag!r}")
        tag = _SPACE.sub(" ", tag).strip()
        if not tag:
            continue
        if "," in tag or len(tag) > _MAX_TAG:
            raise EditError(f"tag {tag[:80]!r} must be at most {_MAX_TAG} characters, no commas")
        if tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    if len(tags) > _MAX_TAGS:
        raise EditError(f"at most {_MAX_TAGS} tags, got {len(tags)}")
    return tags


def _rank(value: Any, _sections: Sequence[str] | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise EditError(f"rank must be a whole number from 0 to {_MAX_RANK}, got {value!r}")
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= _MAX_RANK:
        raise EditError(f"rank must be a whole number from 0 to {_MAX_RANK}, got {value!r}")
    return value


def _text(field: str, value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise EditError(f"{field} must be text, got {value!r}")
    text = _SPACE.sub(" ", value) if field in _ONE_LINE or field == "section" else value
    # Bidi overrides would make the text display as something else (texts.py).
    text = strip_bidi(text).replace("\r\n", "\n").strip()
    if not text:
        return None
    if any(ord(c) < 0x20 and c not in "\n\t" for c in text):
        raise EditError(f"{field} holds control characters")
    limit = limit or _MAX_TEXT[field]
    if len(text) > limit:
        raise EditError(f"{field} is {len(text)} characters long (at most {limit})")
    return text


def _blurb(value: Any, _sections: Sequence[str] | None) -> str | None:
    text = _text("blurb", value)
    for m in _BLURB_LINK.finditer(text or ""):
        if _http_url(m.group(2)) is None:
            raise EditError(
                f"blurb: link [{m.group(1)[:40]}]({m.group(2)[:80]}) must point to an "
                "http(s) address"
            )
    return text


def _url_field(field: str) -> Any:
    def check(value: Any, _sections: Sequence[str] | None) -> str | None:
        text = _text(field, value, _MAX_TEXT["url"])
        if text is None:
            return None
        url = _http_url(text)
        if url is None:
            raise EditError(f"{field} must be an http(s) address, got {text[:80]!r}")
        return url
    return check


def _http_url(value: str | None) -> str | None:
    """urls.http_url, and short enough to store (at most 2048 characters); else None."""
    url = http_url(value)
    return url if url is not None and len(url) <= _MAX_TEXT["url"] else None


def _links(value: Any, _sections: Sequence[str] | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError:
            raise EditError("links must be a JSON list of {\"url\", \"label\"} objects") from None
    if not isinstance(value, list | tuple):
        raise EditError(f"links must be a list, got {value!r}"[:200])
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for entry in value:
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, Mapping):
            raise EditError(f"a link must be a URL or {{\"url\", \"label\"}}, got {entry!r}"[:200])
        extra = set(entry) - {"url", "label"}
        if extra:
            raise EditError(f"a link has unknown key {sorted(extra)[0]!r} (url, label)")
        raw = entry.get("url")
        url = _http_url(raw if isinstance(raw, str) else None)
        if url is None:
            raise EditError(f"link {str(raw)[:80]!r} must be an http(s) address")
        label = _text("label", _SPACE.sub(" ", str(entry.get("label") or ""))) or ""
        if url not in seen:
            seen.add(url)
            links.append({"url": url, "label": label})
    if len(links) > _MAX_LINKS:
        raise EditError(f"at most {_MAX_LINKS} links, got {len(links)}")
    return json.dumps(links, ensure_ascii=False) if links else None


_VALIDATORS: dict[str, Any] = {
    "status": _status,
    "section": _section,
    "tags": _tags,
    "headline": lambda v, _s: _text("headline", v),
    "key_phrase": lambda v, _s: _text("key_phrase", v),
    "blurb": _blurb,
    "rank": _rank,
    "note": lambda v, _s: _text("note", v),
    "lead_image": _url_field("lead_image"),
    "image_credit": lambda v, _s: _text("image_credit", v),
    "links": _links,
}


# --- writing -----------------------------------------------------------------------------------


@contextlib.contextmanager
def write_lock(db: sqlite_utils.Database) -> Iterator[None]:
    """A transaction that holds the write lock from its first statement.

    sqlite-utils' atomic() begins DEFERRED: a save that read the version and then found another
    process had written since would fail to upgrade its lock (SQLITE_BUSY) instead of waiting.
    Nested inside an open transaction it becomes a savepoint of that one.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


def update_item(db: sqlite_utils.Database, item_id: int, changes: Mapping[str, Any], *,
                editor: str, expected_version: int | None = None,
                sections: Sequence[str] | None = None) -> dict[str, Any]:
    """Apply an editor's changes to one item and return the updated item (as `get_item`).

    `expected_version` is the `version` the editor's page showed; when the item has been saved
    since, StaleEdit says by whom and when, and nothing is written. Unknown item:
    NotFoundError; bad field or value: EditError. Fields whose value does not change are not
    recorded and, if none changes, the version stays.
    """
    return update_items(db, [item_id], changes, editor=editor, sections=sections,
                        expected_versions={item_id: expected_version})[0]


def update_items(db: sqlite_utils.Database, item_ids: Sequence[int],
                 changes: Mapping[str, Any], *, editor: str,
                 sections: Sequence[str] | None = None,
                 add_tags: Sequence[str] = (), remove_tags: Sequence[str] = (),
                 expected_versions: Mapping[int, int | None] | None = None,
                 ) -> list[dict[str, Any]]:
    """Apply the same changes to several items at once: all of them or, on any error, none.

    `add_tags`/`remove_tags` edit each item's own tag list (after `changes["tags"]`, when given).
    Unknown ids raise NotFoundError listing every one of them. Returns the items in the order
    given (each id once).
    """
    editor = _editor_name(editor)
    values = validate_changes(changes, sections=sections)
    adding, removing = clean_tags(list(add_tags)), clean_tags(list(remove_tags))
    ids = list(dict.fromkeys(_item_id(i) for i in item_ids))
    if not ids:
        raise EditError("no item ids given")
    if not values and not adding and not removing:
        raise EditError("nothing to change")
    now = utcnow()
    with write_lock(db):
        rows = {r["id"]: r for r in _raw_rows(db, ids)}
        missing = [i for i in ids if i not in rows]
        if missing:
            listed = ", ".join(map(str, missing))
            message = (f"no item with id {listed}" if len(missing) == 1
                       else f"no items with ids {listed}")
            raise NotFoundError(message + ("; nothing was changed" if len(ids) > 1 else ""))
        for item_id in ids:
            row = rows[item_id]
            expected = (expected_versions or {}).get(item_id)
            if expected is not None and int(expected) != int(row["version"] or 0):
                raise StaleEdit(item_id, expected_version=int(expected),
                                version=int(row["version"] or 0), edited_by=row["edited_by"],
                                edited_at=row["edited_at"])
            wanted = dict(values)
            if adding or removing:
                wanted["tags"] = _edit_tags(wanted.get("tags", row["tags"]), adding, removing)
            _write(db, row, wanted, editor=editor, now=now)
    return _read_items(db, ids)


def _item_id(value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise EditError(f"not an item id: {str(value)[:40]!r}") from None


def _editor_name(editor: str) -> str:
    name = (editor or "").strip()
    if not name:
        raise EditError("an edit needs the editor's name")
    if name == _TRIAGE:
        raise EditError(f"{_TRIAGE!r} is reserved for automatic triage; edit under another name")
    return name


def _raw_rows(db: sqlite_utils.Database, ids: Sequence[int]) -> list[dict[str, Any]]:
    cols = ", ".join(("id", "version", "edited_by", "edited_at", "status_by", *EDITABLE_FIELDS))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        rows.extend(db.query(f"SELECT {cols} FROM items WHERE id IN ({marks})", chunk))
    return rows


def _edit_tags(stored: str | None, adding: list[str], removing: list[str]) -> str:
    tags = [t for t in json_list(stored) if isinstance(t, str)]
    drop = {t.casefold() for t in removing}
    tags = [t for t in tags if t.casefold() not in drop]
    return json.dumps(clean_tags(tags + adding), ensure_ascii=False)


def _write(db: sqlite_utils.Database, row: Mapping[str, Any], wanted: Mapping[str, Any], *,
           editor: str, now: str) -> None:
    """Write the fields that really change, one audit row each, and bump the version."""
    changed = {f: v for f, v in wanted.items() if _differs(f, row[f], v)}
    if not changed:
        return
    update: dict[str, Any] = dict(changed)
    if "status" in changed:
        update["status_by"] = editor
        # An item is included exactly when an issue entry holds it (store/entries.py).
        if changed["status"] == "included":
            entries.ensure_entry(db, {**row, **changed}, editor=editor, now=now)
        elif row["status"] == "included":
            entries.remove_item(db, int(row["id"]), editor=editor)
    update.update(version=int(row["version"] or 0) + 1, edited_by=editor, edited_at=now)
    db.table("items").update(row["id"], update)
    # The lead item's page (and `digest tag`) still edits its entry's paragraph: the fields
    # the draft prints come from the entry, so they follow.
    entries.follow_lead(db, int(row["id"]), changed)
    db.table("edits").insert_all(
        [{"item_id": row["id"], "field": f, "old": _stored(row[f]), "new": _stored(v),
          "editor": editor, "at": now} for f, v in changed.items()]
    )


def _differs(field: str, old: Any, new: Any) -> bool:
    if field == "tags":
        # Tags written by other code may be spelt differently ("[]" vs "[ ]"): compare lists.
        return bool(json_list(old) != json_list(new))
    return _stored(old) != _stored(new)


def _stored(value: Any) -> str | None:
    """The text an edits row holds for a value (and the form changes are compared in)."""
    return None if value is None else str(value)


# --- manual items ------------------------------------------------------------------------------


def manual_source_id(db: sqlite_utils.Database) -> int:
    """The id of the "Added by editors" source, created (disabled, outside the registry) if new."""
    row = db.execute("SELECT id FROM sources WHERE name = ?", [MANUAL_SOURCE]).fetchone()
    if row is not None:
        return int(row[0])
    # kind 'manual', enabled 0 and in_registry 0: due_sources() never picks it, and the
    # registry sync never touches a name sources.toml does not hold.
    return _insert(db, "sources", {
        "name": MANUAL_SOURCE, "url": "", "registry_url": "", "kind": "manual",
        "owner": "Editors", "enabled": 0, "in_registry": 0, "created_at": utcnow()})


def add_manual_item(db: sqlite_utils.Database, *, url: str, title: str,
                    summary: str | None = None, image_url: str | None = None,
                    published_at: str | None = None, editor: str,
                    status: str = "shortlisted") -> tuple[dict[str, Any], bool]:
    """Store an item an editor found by URL; returns (item, created).

    `url` should be canonical (sources.normalise.canonical_url, or the page's own canonical
    URL): an item already stored under it, by any source, is returned with created=False and
    nothing is written. `summary` is plain text; `published_at` ISO-8601 UTC or None (then now,
    marked as guessed). The item starts `status` (shortlisted: someone chose it) with
    status_by = editor, so triage leaves it alone, and one `edits` row records who added it.
    """
    editor = _editor_name(editor)
    link = _http_url(url)
    if link is None:
        raise EditError(f"not an http(s) address: {url[:200]!r}")
    title_text = strip_bidi(_SPACE.sub(" ", title or "")).strip()
    if not title_text:
        raise EditError("a manual item needs a title")
    status = _status(status, None)
    image = _http_url(image_url) if image_url else None
    # Capped as feed summaries are (sources/normalise.py MAX_SUMMARY_CHARS).
    summary_text = strip_bidi(_SPACE.sub(" ", summary or "")).strip()[:20_000]
    now = utcnow()
    with write_lock(db):
        existing = find_item_by_url(db, link)
        if existing is not None:
            return existing, False
        entry = {"guid": None, "url": link, "title": title_text[:1000],
                 "summary": html.escape(summary_text, quote=False), "summary_text": summary_text,
                 "author": None, "language": None, "image_url": image,
                 "published_at": published_at or now, "updated_at": None}
        item_id = _insert(db, "items", {
            "source_id": manual_source_id(db), "identity": f"url:{link}", **entry,
            "published_guessed": int(not published_at), "first_seen_at": now,
            "content_hash": content_hash(entry), "status": status, "status_by": editor,
            "tags": "[]", "origin": "manual", "version": 1, "edited_by": editor,
            "edited_at": now,
        })
        db.table("edits").insert({"item_id": item_id, "field": "added", "old": None, "new": link,
                            "editor": editor, "at": now})
    return get_item(db, item_id), True


def _insert(db: sqlite_utils.Database, table: str, row: Mapping[str, Any]) -> int:
    """Insert one row; its new id."""
    pk = db.table(table).insert(dict(row)).last_pk
    if pk is None:  # pragma: no cover - every table here has an integer key
        raise DigestError(f"{table}: insert returned no id")
    return int(pk)
