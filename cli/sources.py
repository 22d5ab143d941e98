"""`digest sources`: the registry and its health."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import DigestError
from ..files import write_file
from ..settings import Settings
from . import _db, _fail, app, err, out, print_json, state

sources_app = typer.Typer(help="The registry of sources and their health.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

# --- sources -----------------------------------------------------------------------------------


def _registry_path(settings: Settings, action: str) -> Path:
    if settings.uses_packaged_default:
        raise DigestError(
            f"cannot {action} the packaged registry: run 'digest init' to create a digest.toml "
            "and sources.toml here, or pass --config"
        )
    return settings.sources_file


@sources_app.command("list")
def sources_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Every source with its health: last success, last error, failures, newest item, stale."""
    from ..sources.registry import load_registry
    from ..store.sources import source_health

    settings = state.settings()
    registry = load_registry(settings.sources_file)
    health: dict[str, dict[str, Any]] = {}
    if settings.store_path.exists():
        with _db(settings, write=False) as db:
            health = {r["name"]: r for r in source_health(
                db, stale_days=settings.collect.stale_days)}
    rows = []
    for cfg in registry:
        h = health.get(cfg.name, {})
        rows.append({
            "name": cfg.name, "kind": cfg.kind, "url": h.get("url") or cfg.url,
            "country": cfg.country, "category": cfg.category, "language": cfg.language,
            "enabled": cfg.enabled and not h.get("disabled_reason"),
            "disabled_reason": h.get("disabled_reason"),
            "last_success_at": h.get("last_success_at"), "last_status": h.get("last_status"),
            "last_error": h.get("last_error"), "warning": h.get("warning"),
            "consecutive_failures": h.get("consecutive_failures", 0),
            "newest_item_at": h.get("newest_item_at"), "stale": h.get("stale", False),
            "items_14d": h.get("items_14d", 0), "next_fetch_at": h.get("next_fetch_at"),
        })
    if as_json:
        print_json(rows)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "kind", "cc", "on", "last ok (UTC)", "fails", "newest item", "14d",
                "health"):
        table.add_column(col, overflow="fold")
    for r in rows:
        health_note = r["last_error"] or r["warning"] or ""
        if r["disabled_reason"]:
            health_note = f"disabled: {r['disabled_reason']}"
        if r["stale"]:
            health_note = f"STALE {health_note}"
        table.add_row(
            r["name"], r["kind"], r["country"], "yes" if r["enabled"] else "no",
            (r["last_success_at"] or "never")[:16].replace("T", " "),
            str(r["consecutive_failures"]), (r["newest_item_at"] or "")[:10], str(r["items_14d"]),
            health_note,
        )
    out.print(table)
    stale = sum(1 for r in rows if r["stale"])
    failing = sum(1 for r in rows if r["consecutive_failures"])
    out.print(f"{len(rows)} sources, {sum(r['enabled'] for r in rows)} enabled, "
              f"{failing} failing, {stale} stale (nothing new for "
              f"{settings.collect.stale_days} days)")


@sources_app.command("check")
def sources_check(
    name: Annotated[str, typer.Argument(help="Source name from the registry.")],
) -> None:
    """Fetch one source now (unconditionally) and show what would be stored; stores nothing."""
    from ..pipeline.collect import request_for
    from ..sources.batch import fetch_one
    from ..sources.http import HostLimiter, make_session
    from ..sources.registry import load_registry

    settings = state.settings()
    registry = {c.name: c for c in load_registry(settings.sources_file)}
    cfg = registry.get(name)
    if cfg is None:
        raise DigestError(f"{settings.sources_file}: no source named {name!r}")
    with make_session(settings.http) as session:
        outcome = fetch_one(session, request_for(None, cfg), settings.http,
                            HostLimiter(settings.http.per_host_concurrency))
    out.print(f"{cfg.name}: {outcome.status}, HTTP {outcome.http_status}, {outcome.bytes} bytes, "
              f"{outcome.duration_ms} ms", soft_wrap=True)
    if outcome.permanent_url:
        out.print(f"  moved permanently to {outcome.permanent_url}")
    if outcome.error:
        _fail(f"{cfg.name}: {outcome.error}")
    for w in outcome.warnings:
        out.print(f"  [yellow]warning:[/yellow] {escape(w)}", markup=True, soft_wrap=True)
    entries = outcome.feed.entries if outcome.feed else ()
    table = Table(show_header=True, header_style="bold")
    for col in ("published (UTC)", "title", "url"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row((e.published_at or "(no date)")[:16].replace("T", " "), e.title,
                      e.url or "")
    out.print(table)
    out.print(f"{len(entries)} items would be stored")


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument()],
    url: Annotated[str, typer.Argument()],
    kind: Annotated[str, typer.Option(help="feed, json or page.")] = "feed",
    owner: Annotated[str, typer.Option()] = "",
    country: Annotated[str, typer.Option()] = "",
    category: Annotated[str, typer.Option()] = "",
    language: Annotated[str, typer.Option()] = "",
    interval_minutes: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Add a feed to sources.toml (json and page sources need their options: edit the file)."""
    from ..sources.registry import add_source
    from ..sources.types import SourceConfig

    settings = state.settings()
    add_source(_registry_path(settings, "change"), SourceConfig(
        name=name, url=url, kind=kind, owner=owner, country=country, category=category,
        language=language, interval_minutes=interval_minutes))
    out.print(f"added {name!r} to {settings.sources_file}")


def _set_enabled(name: str, enabled: bool) -> None:
    from ..pipeline.enable_source import set_source_enabled

    settings = state.settings()
    _registry_path(settings, "change")  # refuses the packaged registry
    if settings.store_path.exists():
        with _db(settings) as db:
            set_source_enabled(db, settings, name, enabled)
    else:
        set_source_enabled(None, settings, name, enabled)
    out.print(f"{'enabled' if enabled else 'disabled'} {name!r}")


@sources_app.command("disable")
def sources_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Stop fetching a source (kept in sources.toml with enabled = false)."""
    _set_enabled(name, False)


@sources_app.command("enable")
def sources_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Fetch a source again (also clears a 410 Gone decision)."""
    _set_enabled(name, True)


@sources_app.command("import-opml")
def sources_import_opml(
    file: Annotated[Path, typer.Argument(help="OPML file exported by a feed reader.")],
) -> None:
    """Add every feed of an OPML file to sources.toml (names already present are skipped)."""
    from ..sources.registry import import_opml, merge_imported

    settings = state.settings()
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DigestError(f"{file}: cannot read: {e.strerror}") from None
    added, skipped = merge_imported(_registry_path(settings, "change"), import_opml(data))
    out.print(f"imported {added} sources into {settings.sources_file}; {skipped} skipped")


@sources_app.command("export-opml")
def sources_export_opml(
    output: Annotated[Path | None, typer.Option("--out", help="Write here, not stdout.")] = None,
) -> None:
    """Print the registry's feeds as OPML 2.0."""
    from ..sources.registry import export_opml, load_registry

    text = export_opml(load_registry(state.settings().sources_file))
    if output:
        try:
            write_file(output, text)  # a temporary file renamed into place, never a symlink
        except OSError as e:
            raise DigestError(f"{output}: cannot write: {e.strerror or e}") from None
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


