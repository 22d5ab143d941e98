"""Saving an editor's form for one item, field by field.

    mine       = fields whose typed value differs from the value the form was loaded with
    conflicts  = those of `mine` that someone else changed meanwhile, to something else
    write      = `mine` minus conflicts, in one locked transaction (store.editorial)

So a reorder (which writes `rank`) never conflicts with a blurb save from another tab, and a
real conflict names each field with both versions, writing nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlite_utils

from ..errors import FieldConflict
from ..store import editorial


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def save_fields(db: sqlite_utils.Database, item_id: int, *, base: Mapping[str, Any],
                typed: Mapping[str, Any], changes: Mapping[str, Any],
                form_values: Callable[[Mapping[str, Any]], Mapping[str, Any]], editor: str,
                sections: list[str] | None = None) -> list[str]:
    """Write the fields the editor changed (typed != base); returns their names.

    `form_values(item)` gives an item's values as the form shows them (comparable with
    `typed` and `base`); `changes` holds each field's value as the store takes it. Raises
    FieldConflict when a changed field was also changed by someone else since `base`.
    """
    with editorial.write_lock(db):
        item = editorial.get_item(db, item_id)
        now = form_values(item)
        mine = [f for f in typed if f in base and typed[f] != base[f]]
        conflicts = {f: (_shown(now.get(f)), _shown(typed[f])) for f in mine
                     if now.get(f) != base[f] and now.get(f) != typed[f]}
        if conflicts:
            raise FieldConflict(item_id, conflicts, edited_by=item.get("edited_by"))
        wanted = {f: changes[f] for f in mine if f in changes and now.get(f) != typed[f]}
        if wanted:
            editorial.update_item(db, item_id, wanted, editor=editor, sections=sections)
    return list(wanted)
