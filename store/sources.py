"""The `sources` table: registry rows synced from sources.toml, plus each source's health."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import sqlite_utils

from ..errors import NotFoundError
from ..timestamps import utc_timestamp, utcnow

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


class Keep(Enum):
    """The value of a `SourceHealth` field that leaves its column as it is."""

    KEEP = "keep"


#: A `SourceHealth` field at KEEP is not written.
KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What one fetch changes on its source's row: `record_health` writes it field by field.

    Every field is a column of `sources`; a field at KEEP (the default) is left as it is. A
    name that is not a field cannot be given (TypeError), so nothing is dropped on the way.
    """

    #: The HTTP status of the last fetch; None when no response came.
    last_status: int | Keep | None = KEEP
    #: The last fetch's outcome: ok, not_modified or failed.
    last_outcome: str | Keep = KEEP
    #: When the source was last fetched, and last fetched without failing (ISO-8601 UTC).
    last_fetched_at: str | Keep = KEEP
    last_success_at: str | Keep = KEEP
    #: Failures in a row (0 after a success): the backoff grows with it.
    consecutive_failures: int | Keep = KEEP
    #: When the source is due again (ISO-8601 UTC).
    next_fetch_at: str | Keep = KEEP
    #: The last failure's one-line message and kind (`SourceErrorKind`); None after a success.
    last_error: str | Keep | None = KEEP
    last_error_kind: str | Keep | None = KEEP
    #: A problem that did not stop the source ("no items", "empty body"), or None.
    warning: str | Keep | None = KEEP
    #: The caching validators to send next time (If-None-Match, If-Modified-Since).
    etag: str | Keep | None = KEEP
    last_modified: str | Keep | None = KEEP
    #: Where the source is fetched from now (a permanent redirect moves it).
    url: str | Keep = KEEP
    #: The newest `published_at` among its items (ISO-8601 UTC): staleness is judged by it.
    newest_item_at: str | Keep = KEEP
    #: Why it is no longer fetched (410 Gone), or None.
    disabled_reason: str | Keep | None = KEEP


_HEALTH_FIELDS = tuple(f.name for f in fields(SourceHealth))


def record_health(db: sqlite_utils.Database, source_id: int, health: SourceHealth) -> None:
    """Write a fetch's changes to its source's row (call inside the source's transaction)."""
    if not isinstance(health, SourceHealth):
        raise TypeError(f"record_health takes a SourceHealth, not {type(health).__name__}")
    values = {f: v for f in _HEALTH_FIELDS if (v := getattr(health, f)) is not KEEP}
    if values:
        # Plain SQL: sqlite-utils' update() re-reads the table's schema on every call, which
        # cost more than the update on a run of a thousand sources.
        assignments = ", ".join(f"[{k}] = ?" for k in values)
        db.execute(f"UPDATE sources SET {assignments} WHERE id = ?", [*values.values(),
                                                                     source_id])


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
    since = utc_timestamp(now - timedelta(days=14))
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
