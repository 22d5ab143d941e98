"""The `sources` table: registry rows synced from sources.toml, plus each source's health."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ..errors import NotFoundError
from .db import utcnow

#: Columns copied from sources.toml on every sync.
REGISTRY_COLUMNS = ("kind", "owner", "country", "category", "language", "interval_minutes",
                    "enabled")


def sync_sources(db: sqlite_utils.Database, registry: Iterable[Mapping[str, Any]]) -> None:
    """Make the table match the registry (dicts with SourceConfig's fields), keeping health.

    A URL changed in sources.toml replaces the stored one (and forgets its caching info); an
    unchanged one keeps the URL a permanent redirect may have moved it to. Sources no longer in
    the registry are kept (their items still point at them) with `in_registry = 0`.
    """
    now = utcnow()
    existing = {r["name"]: r for r in db["sources"].rows}
    seen: set[str] = set()
    with db.atomic():
        for cfg in registry:
            name = cfg["name"]
            seen.add(name)
            values = {k: cfg.get(k) for k in REGISTRY_COLUMNS}
            values["kind"] = values["kind"] or "feed"
            values["enabled"] = int(bool(cfg.get("enabled", True)))
            values["in_registry"] = 1
            old = existing.get(name)
            if old is None:
                db["sources"].insert(
                    {"name": name, "url": cfg["url"], "registry_url": cfg["url"],
                     "created_at": now, **values}
                )
                continue
            if old["registry_url"] != cfg["url"]:
                values.update(url=cfg["url"], registry_url=cfg["url"], etag=None,
                              last_modified=None, disabled_reason=None, next_fetch_at=None)
            if values["enabled"] and not old["enabled"]:
                # Re-enabled in the registry: a stale 410 decision should not keep it off.
                values["disabled_reason"] = None
            if any(old.get(k) != v for k, v in values.items()):
                db["sources"].update(old["id"], values)
        for name, old in existing.items():
            if name not in seen and old["in_registry"]:
                db["sources"].update(old["id"], {"in_registry": 0})


def get_source(db: sqlite_utils.Database, name: str) -> dict[str, Any]:
    """The row for `name`, or NotFoundError."""
    rows = list(db["sources"].rows_where("name = ?", [name], limit=1))
    if not rows:
        raise NotFoundError(f"no source named {name!r}")
    return rows[0]


def get_source_by_id(db: sqlite_utils.Database, source_id: int) -> dict[str, Any]:
    """The row with this id, or NotFoundError."""
    rows = list(db["sources"].rows_where("id = ?", [source_id], limit=1))
    if not rows:
        raise NotFoundError(f"no source with id {source_id}")
    return rows[0]


def sources_by_id(db: sqlite_utils.Database) -> dict[int, dict[str, Any]]:
    """Every source row (registry or not), keyed by id, in name order."""
    return {r["id"]: r for r in db["sources"].rows_where(order_by="name")}


def due_sources(db: sqlite_utils.Database, *, now: str | None = None, force: bool = False,
                names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Enabled registry sources whose `next_fetch_at` has passed (all of them with `force`).

    Naming sources fetches exactly those, due or not, enabled or not: the user asked for them.
    """
    if names is not None:
        wanted = list(names)
        rows = [get_source(db, n) for n in wanted]
        return rows
    now = now or utcnow()
    where = "enabled = 1 AND in_registry = 1 AND disabled_reason IS NULL"
    params: list[Any] = []
    if not force:
        where += " AND (next_fetch_at IS NULL OR next_fetch_at <= ?)"
        params.append(now)
    return list(db["sources"].rows_where(where, params, order_by="id"))


def record_health(db: sqlite_utils.Database, source_id: int, values: Mapping[str, Any]) -> None:
    """Update a source's state after a fetch (call inside the source's transaction).

    `values` may hold: last_status, last_outcome, last_error, last_error_kind, warning, etag,
    last_modified, url, consecutive_failures, last_fetched_at, last_success_at, next_fetch_at,
    newest_item_at, disabled_reason.
    """
    allowed = {k: v for k, v in values.items() if k in _HEALTH_COLUMNS}
    if allowed:
        # Plain SQL: sqlite-utils' update() re-reads the table's schema on every call, which
        # cost more than the update on a run of a thousand sources.
        assignments = ", ".join(f"[{k}] = ?" for k in allowed)
        db.execute(f"UPDATE sources SET {assignments} WHERE id = ?", [*allowed.values(),
                                                                      source_id])


_HEALTH_COLUMNS = frozenset(
    {"last_status", "last_outcome", "last_error", "last_error_kind", "warning", "etag",
     "last_modified", "url", "consecutive_failures", "last_fetched_at", "last_success_at",
     "next_fetch_at", "newest_item_at", "disabled_reason"}
)


def set_enabled(db: sqlite_utils.Database, name: str, enabled: bool) -> None:
    """Enable or disable a source in the database (enabling also clears a 410 decision)."""
    row = get_source(db, name)
    values: dict[str, Any] = {"enabled": int(enabled)}
    if enabled:
        values.update(disabled_reason=None, next_fetch_at=None, consecutive_failures=0)
    with db.atomic():
        db["sources"].update(row["id"], values)


def is_stale(row: Mapping[str, Any], now: datetime, stale_days: int) -> bool:
    """True when a source has had nothing new for `stale_days` (or never had anything).

    A source that has never been fetched successfully is not stale yet: it is failing or new.
    """
    if not row.get("last_success_at"):
        return False
    newest = row.get("newest_item_at")
    if not newest:
        return True
    return _parse(newest) < now - timedelta(days=stale_days)


def source_health(db: sqlite_utils.Database, *, stale_days: int,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Every registry source with its health, a `stale` flag and items of the last 14 days."""
    now = now or datetime.now(UTC)
    since = (now - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = dict(
        db.execute(
            "SELECT source_id, count(*) FROM items WHERE published_at >= ? GROUP BY source_id",
            [since],
        ).fetchall()
    )
    totals = dict(db.execute("SELECT source_id, count(*) FROM items GROUP BY source_id").fetchall())
    rows = []
    for row in db["sources"].rows_where("in_registry = 1", order_by="name"):
        row["stale"] = is_stale(row, now, stale_days)
        row["items_14d"] = counts.get(row["id"], 0)
        row["items_total"] = totals.get(row["id"], 0)
        rows.append(row)
    return rows


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))
