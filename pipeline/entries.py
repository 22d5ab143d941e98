"""Issue entries: what editors do with a story — include it, keep siblings, add, move, drop.

    include(item)         the item's story becomes one entry: its lead (the story's lead
                          unless another entry holds it) and the siblings kept — by default one
                          item from each other outlet; the story's other items are then "used
                          in entry N" (recorded in their history, shown in search)
    add(entry, item)      any item (found by search) joins an entry; one in another entry
                          must be moved instead
    move(item, entry)     from its entry to another (an entry left empty is deleted)
    drop(entry[, items])  the whole entry, or some of its items, out of the issue
    lead(entry, item)     which item leads (its link is the paragraph's first)
    update(entry, ...)    headline, key phrase, blurb, section, position, note — with the
                          version the editor's page showed, so a stale save is refused

Every change runs in one write transaction: items' statuses change through store.editorial
(an item is included exactly when an entry holds it), each item that joins or leaves gets an
`entry` row in its history, and the entry's version goes up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlite_utils

from ..errors import EditError, FieldConflict, InputError, NotFoundError
from ..store import clusters, editorial
from ..store import entries as store
from ..templates.render import drafted_nodes, entry_view, to_blurb
from ..timestamps import utcnow

#: The status an item dropped from an entry goes back to (an editor's "undo", kept by triage).
DROPPED_STATUS = "candidate"


def _story(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """The item's story (itself included), lead first, with sources."""
    item = editorial.get_item(db, item_id)
    lead = item.get("cluster_id") or item_id
    rows = [
        dict(r)
        for r in db.query(
            "SELECT items.id, items.source_id, items.status, items.published_at, items.cluster_id, "
            "sources.name AS source FROM items JOIN sources ON sources.id = items.source_id "
            "WHERE items.cluster_id = ? OR items.id IN (?, ?) "
            "ORDER BY items.id != ?, items.published_at, items.id",
            [lead, lead, item_id, lead],
        )
    ]
    return rows


def _record(
    db: sqlite_utils.Database, item_ids: Sequence[int], text: str, *, editor: str, now: str
) -> None:
    db.table("edits").insert_all(
        [
            {"item_id": i, "field": "entry", "old": None, "new": text, "editor": editor, "at": now}
            for i in item_ids
        ]
    )


def include(
    db: sqlite_utils.Database,
    item_id: int,
    *,
    editor: str,
    keep: Sequence[int] | None = None,
    section: str | None = None,
    sections: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Include the story of `item_id` as one entry; returns the entry (as `show`).

    `keep` names the siblings to keep (items of the story); None keeps one item from each
    outlet other than the lead's (the earliest), leaving out excluded items and items other
    entries hold. An item already in an entry is refused with the entry's number.
    """
    editor_name = editorial._editor_name(editor)
    now = utcnow()
    with editorial.write_lock(db):
        held = store.entry_of(db, [item_id])
        if held:
            raise EditError(f"item {item_id} is already in entry {held[item_id]}")
        story = _story(db, item_id)
        taken = store.entry_of(db, [r["id"] for r in story])
        free = [r for r in story if r["id"] not in taken]
        lead = (
            free[0]
            if free[0]["id"] == (story[0]["cluster_id"] or story[0]["id"])
            else next(r for r in free if r["id"] == item_id)
        )
        if keep is None:
            outlets = {lead["source_id"]}
            kept = []
            for row in free:
                if row["id"] == lead["id"] or row["status"] == "excluded":
                    continue
                if row["source_id"] not in outlets:
                    outlets.add(row["source_id"])
                    kept.append(row["id"])
            if item_id != lead["id"] and item_id not in kept:
                kept.append(item_id)
        else:
            in_story = {r["id"] for r in story}
            stray = [i for i in keep if i not in in_story]
            if stray:
                raise EditError(
                    f"item {stray[0]} is not in the story of item {item_id}; "
                    "add it to the entry with `digest entry add`"
                )
            busy = [i for i in keep if i in taken]
            if busy:
                raise EditError(f"item {busy[0]} is already in entry {taken[busy[0]]}")
            kept = [i for i in dict.fromkeys(keep) if i != lead["id"]]
            if item_id != lead["id"] and item_id not in kept:
                kept.insert(0, item_id)
        lead_row = editorial.get_item(db, lead["id"])
        fields = {
            k: lead_row.get(k)
            for k in ("headline", "key_phrase", "blurb", "section")
            if lead_row.get(k)
        }
        if lead_row.get("rank") is not None:
            fields["position"] = lead_row["rank"]
        if section is not None:
            fields["section"] = editorial.validate_changes(
                {"section": section}, sections=sections
            ).get("section")
        entry_id = store.create_entry(
            db,
            lead_item_id=lead["id"],
            sibling_ids=kept,
            fields=fields,
            editor=editor_name,
            now=now,
        )
        members = [lead["id"], *kept]
        editorial.update_items(db, members, {"status": "included"}, editor=editor_name)
        _record(db, members, f"entry {entry_id}", editor=editor_name, now=now)
        others = [r["id"] for r in free if r["id"] not in members and r["status"] != "excluded"]
        if others:
            _record(db, others, f"used in entry {entry_id}", editor=editor_name, now=now)
    return show(db, entry_id)


def add(
    db: sqlite_utils.Database,
    entry_id: int,
    item_id: int,
    *,
    editor: str,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Any item into an entry (it becomes included)."""
    editor_name = editorial._editor_name(editor)
    now = utcnow()
    with editorial.write_lock(db):
        entry = _open_entry(db, entry_id, expected_version)
        editorial.get_item(db, item_id)
        held = store.entry_of(db, [item_id])
        if held:
            where = held[item_id]
            raise EditError(
                f"item {item_id} is already in entry {where}"
                + (
                    f"; move it with `digest entry move {item_id} {entry_id}`"
                    if where != entry_id
                    else ""
                )
            )
        store.add_item(db, entry["id"], item_id)
        editorial.update_items(db, [item_id], {"status": "included"}, editor=editor_name)
        store.touch(db, entry_id, editor=editor_name, now=now)
        _record(db, [item_id], f"entry {entry_id}", editor=editor_name, now=now)
    return show(db, entry_id)


def move(
    db: sqlite_utils.Database,
    item_id: int,
    entry_id: int,
    *,
    editor: str,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """An item from its entry to another; returns the entry it moved to."""
    editor_name = editorial._editor_name(editor)
    now = utcnow()
    with editorial.write_lock(db):
        _open_entry(db, entry_id, expected_version)
        held = store.entry_of(db, [item_id])
        if not held:
            editorial.get_item(db, item_id)
            raise EditError(
                f"item {item_id} is in no entry; add it with "
                f"`digest entry add {entry_id} {item_id}`"
            )
        source = held[item_id]
        if source == entry_id:
            raise EditError(f"item {item_id} is already in entry {entry_id}")
        _open_entry(db, source, None)
        left = store.remove_item(db, item_id, editor=editor_name)
        if left is not None:
            store.touch(db, left, editor=editor_name, now=now)
        store.add_item(db, entry_id, item_id)
        store.touch(db, entry_id, editor=editor_name, now=now)
        _record(
            db, [item_id], f"entry {entry_id} (from entry {source})", editor=editor_name, now=now
        )
    return show(db, entry_id)


def drop(
    db: sqlite_utils.Database,
    entry_id: int,
    item_ids: Sequence[int] = (),
    *,
    editor: str,
    expected_version: int | None = None,
) -> dict[str, Any] | None:
    """Items out of an entry (all of them: the entry is gone); returns what is left, or None."""
    editor_name = editorial._editor_name(editor)
    now = utcnow()
    with editorial.write_lock(db):
        entry = _open_entry(db, entry_id, expected_version)
        members = [
            r["item_id"]
            for r in db.query("SELECT item_id FROM entry_items WHERE entry_id = ?", [entry_id])
        ]
        targets = list(dict.fromkeys(item_ids)) or members
        stray = [i for i in targets if i not in members]
        if stray:
            raise EditError(f"item {stray[0]} is not in entry {entry_id}")
        for item_id in targets:
            store.remove_item(db, item_id, editor=editor_name)
        editorial.update_items(db, targets, {"status": DROPPED_STATUS}, editor=editor_name)
        _record(db, targets, f"dropped from entry {entry_id}", editor=editor_name, now=now)
        if len(targets) < len(members):
            store.touch(db, entry["id"], editor=editor_name, now=now)
            alive = True
        else:
            alive = False
    return show(db, entry_id) if alive else None


def set_lead(
    db: sqlite_utils.Database,
    entry_id: int,
    item_id: int,
    *,
    editor: str,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Make one of the entry's items its lead."""
    editor_name = editorial._editor_name(editor)
    with editorial.write_lock(db):
        _open_entry(db, entry_id, expected_version)
        store.set_lead(db, entry_id, item_id)
        store.touch(db, entry_id, editor=editor_name, now=utcnow())
    return show(db, entry_id)


def update(
    db: sqlite_utils.Database,
    entry_id: int,
    changes: Mapping[str, Any],
    *,
    editor: str,
    expected_version: int | None = None,
    sections: Sequence[str] | None = None,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write an entry's text fields (validated as an item's are); stale saves are refused.

    With `base` (the values the editor's page was showing) the check is per field, as the
    item form's (pipeline.save_item): only fields the editor changed are written, and only a
    field someone else also changed meanwhile, to something else, is a conflict (FieldConflict
    with both versions) — so a reorder (which writes `position`) never refuses a blurb save.
    Without it, any save since `expected_version` is refused (StaleEntry).
    Each changed field is recorded in the lead item's history as `entry.FIELD`.
    """
    if base is not None:
        changes = {k: v for k, v in changes.items() if _norm(v) != _norm(base.get(k))}
        expected_version = None
    editor_name = editorial._editor_name(editor)
    unknown = [k for k in changes if k not in store.ENTRY_FIELDS]
    if unknown:
        raise EditError(
            f"unknown entry field {unknown[0]!r} (one of {', '.join(store.ENTRY_FIELDS)})",
            field=unknown[0],
        )
    as_item = {("rank" if k == "position" else k): v for k, v in changes.items()}
    values = editorial.validate_changes(as_item, sections=sections)
    values = {("position" if k == "rank" else k): v for k, v in values.items()}
    now = utcnow()
    with editorial.write_lock(db):
        entry = _open_entry(db, entry_id, expected_version)
        if base is not None:
            conflicts = {
                k: (_norm(entry[k]), _norm(v))
                for k, v in values.items()
                if _norm(entry[k]) != _norm(base.get(k)) and _norm(entry[k]) != _norm(v)
            }
            if conflicts:
                raise FieldConflict(
                    entry_id, conflicts, edited_by=entry["edited_by"], kind="entry"
                )
        changed = {
            k: v
            for k, v in values.items()
            if (None if entry[k] is None else str(entry[k])) != (None if v is None else str(v))
        }
        if changed:
            store.touch(db, entry_id, editor=editor_name, now=now, values=changed)
            db.table("edits").insert_all(
                [
                    {
                        "item_id": entry["lead_item_id"],
                        "field": f"entry.{k}",
                        "old": None if entry[k] is None else str(entry[k]),
                        "new": None if v is None else str(v),
                        "editor": editor_name,
                        "at": now,
                    }
                    for k, v in changed.items()
                ]
            )
    return show(db, entry_id)


def from_draft(db: sqlite_utils.Database, entry_id: int, *, editor: str) -> dict[str, Any]:
    """"Start from the draft" from the shell: an entry's empty headline and paragraph take
    what the draft proposes (templates.render: drafted from its items, links inline), so it
    is written — the editor accepts the proposal — and no longer `[DRAFT — needs writing]`.
    Fields already written are kept."""
    entry = store.get_entry(db, entry_id)
    view = entry_view(entry)
    changes: dict[str, Any] = {}
    if not (entry.get("blurb") or "").strip() and view.needs_writing:
        changes["blurb"] = to_blurb(drafted_nodes(view))
    if not (entry.get("headline") or "").strip():
        changes["headline"] = view.headline
    if not changes:
        return show(db, entry_id)
    return update(db, entry_id, changes, editor=editor)


def _norm(value: Any) -> str | None:
    """A field's value as compared across a save: text, with empty meaning none."""
    return None if value is None or value == "" else str(value)


#: At most this many of a story's unused items are listed with an entry (the rest counted).
UNUSED_SHOWN = 200


def show(db: sqlite_utils.Database, entry_id: int) -> dict[str, Any]:
    """An entry with its items (lead first) and the story items it does not keep (`unused`,
    at most UNUSED_SHOWN of them; `unused_more` counts the rest)."""
    entry = store.get_entry(db, entry_id)
    member_ids = {r["id"] for r in entry["items"]}
    leads = sorted({r["cluster_id"] or r["id"] for r in entry["items"]})
    unused: list[dict[str, Any]] = []
    seen = set(member_ids)
    for lead in leads:
        if lead not in seen:
            row = editorial.get_item(db, lead)
            seen.add(lead)
            unused.append(
                {
                    k: row.get(k)
                    for k in (
                        "id",
                        "title",
                        "url",
                        "published_at",
                        "status",
                        "cluster_id",
                        "source",
                    )
                }
            )
        for row in clusters.cluster_members(db, lead):
            if row["id"] not in seen:
                seen.add(row["id"])
                unused.append(row)
    held = store.entry_of(db, [u["id"] for u in unused[:UNUSED_SHOWN]])
    for row in unused[:UNUSED_SHOWN]:
        row["entry_id"] = held.get(row["id"])
    entry["unused"] = unused[:UNUSED_SHOWN]
    entry["unused_more"] = max(0, len(unused) - UNUSED_SHOWN)
    return entry


def list_open(db: sqlite_utils.Database, *, issue_id: int | None = None) -> list[dict[str, Any]]:
    """Entries of one issue, else those no final issue holds (the coming issue's)."""
    return store.list_entries(db, issue_id=issue_id, open_only=issue_id is None)


def entry_for_item(db: sqlite_utils.Database, item_id: int) -> int | None:
    """The entry holding an item, if any."""
    return store.entry_of(db, [item_id]).get(item_id)


def _open_entry(
    db: sqlite_utils.Database, entry_id: int, expected_version: int | None
) -> dict[str, Any]:
    entry = store.entry_row(db, entry_id)
    store.check_open(db, entry)
    store.check_version(entry, expected_version)
    return entry


def parse_id(value: Any, what: str = "entry") -> int:
    """An id from user input, or one clear InputError."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise InputError(f"not an {what} id: {str(value)[:40]!r}", field=what) from None
    if number < 1:
        raise NotFoundError(f"no {what} with id {number}")
    return number
