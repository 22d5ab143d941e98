"""Editors' corrections to stories: merge two stories, or take an item out of its story.

A correction pins the items it touches (store.clusters): clustering never moves a pinned item
and never joins stories pinned apart, so rescoring and later collect runs keep it. Each item
that moves gets a `story` row in the audit trail (`digest history`).
"""

from __future__ import annotations

import sqlite_utils

from ..errors import InputError
from ..store import clusters
from ..store.editorial import write_lock
from ..timestamps import utcnow


def merge(db: sqlite_utils.Database, item_a: int, item_b: int, *, editor: str) -> int:
    """One story of the two items' stories; returns the id of its lead."""
    if item_a == item_b:
        raise InputError("give two different items to merge their stories")
    with write_lock(db):
        return clusters.merge_stories(db, item_a, item_b, editor=editor, now=utcnow())


def split(db: sqlite_utils.Database, item_id: int, *, editor: str) -> int:
    """The item on its own, apart from its old story; returns the old story's lead."""
    with write_lock(db):
        return clusters.split_from_story(db, item_id, editor=editor, now=utcnow())
