"""Retry the clustering triage set aside (`digest triage retry`), every item whatever its
attempts, in small chunks, with the collect lock held (one writer at a time)."""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from ..store.db import open_for_writing
from ..store.lock import collect_lock
from ..triage.run import cluster_new


def retry_set_aside(settings: Settings) -> dict[str, Any]:
    """Cluster every waiting and set-aside item now, without a time budget.

    Returns `triage.run.cluster_new`'s counts: what is still set aside failed again.
    """
    with collect_lock(settings.store_path):
        db = open_for_writing(settings.store_path)
        try:
            return cluster_new(db, budget_seconds=None, retry_all=True)
        finally:
            db.close()
