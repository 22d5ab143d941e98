"""`digest`: the one front door. Parses arguments, calls down, prints; holds no logic of its own.

Prefect is imported only by the commands that run flows (it costs about a second to import).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import DigestError
from .settings import PACKAGE_DIR, Settings, load_settings

app = typer.Typer(
    name="digest",
    help="Alliance Digest: collect, triage and draft the US-Japan Alliance Digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sources_app = typer.Typer(help="The registry of sources and their health.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

# Markup off by default: feed titles and server messages may contain "[...]"; styled lines opt in
# with markup=True and escape() what they interpolate.
out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Options shared by every command."""

    config: str | None = None

    def settings(self) -> Settings:
        return load_settings(self.config)


state = State()


@app.callback()
def main_options(
    config: Annotated[
        str | None,
        typer.Option("--config", envvar="DIGEST_CONFIG",
                     help="digest.toml to use (default ./digest.toml, else the packaged one)."),
    ] = None,
) -> None:
    """Alliance Digest."""
    state.config = str(Path(config).expanduser().resolve()) if config else None


def main() -> None:
    """Console-script entry point: every DigestError becomes one line and exit status 1."""
    try:
        app()
    except DigestError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


@contextmanager
def _db(settings: Settings) -> Iterator[Any]:
    from .store.db import open_db

    db = open_db(settings.store_path)
    try:
        yield db
    finally:
        db.close()


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


# --- collect -----------------------------------------------------------------------------------


def run_collect(settings: Settings, *, force: bool, names: list[str] | None,
                show_progress: bool = True) -> dict[str, Any]:
    """Validate config, registry and database up front (one clear line each), then run the flow."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .flows import collect as collect_flow
    from .sources.registry import load_registry
    from .store.db import open_db

    registry = {c.name for c in load_registry(settings.sources_file)}
    unknown = [n for n in names or [] if n not in registry]
    if unknown:
        raise DigestError(f"{settings.sources_file}: no source named {unknown[0]!r}")
    open_db(settings.store_path).close()

    bar = Progress(TextColumn("collecting"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err,
                   disable=not show_progress, transient=True)

    class BarProgress:
        task_id: Any = None

        def started(self, total: int) -> None:
            self.task_id = bar.add_task("collect", total=total, last="")

        def done(self, outcome: Any) -> None:
            if self.task_id is not None:
                bar.update(self.task_id, advance=1, last=outcome.name[:40])

    collect_flow.progress = BarProgress()
    try:
        with bar:
            return asyncio.run(
                collect_flow.collect_with_runner()(
                    force=force, sources=names or None,
                    config=str(settings.config_path) if settings.config_path else None,
                )
            )
    finally:
        collect_flow.progress = None


def print_run_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"Collect run {summary['id']}", show_header=True)
    for col in ("sources due", "ok", "not modified", "failed", "items new", "items updated"):
        table.add_column(col, justify="right")
    table.add_row(*(str(summary[k]) for k in (
        "sources_due", "sources_ok", "sources_not_modified", "sources_failed", "items_new",
        "items_updated")))
    out.print(table)
    for name, error in summary.get("failures", []):
        out.print(f"  [yellow]failed[/yellow] {escape(name)}: {escape(error)}", markup=True,
                  soft_wrap=True)


@app.command()
def collect(
    force: Annotated[bool, typer.Option("--force", help="Fetch every source, due or not.")] = False,
    source: Annotated[list[str] | None, typer.Option(
        "--source", help="Fetch only this source (repeatable).")] = None,
) -> None:
    """Fetch due sources, store new and changed items, and show a summary."""
    summary = run_collect(state.settings(), force=force, names=source)
    print_run_summary(summary)


# --- items -------------------------------------------------------------------------------------


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DigestError(f"--since: {value!r} is not a date (YYYY-MM-DD)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ITEM_JSON_FIELDS = ("id", "source", "url", "guid", "title", "published_at", "status",
                    "first_seen_at", "summary_text", "language", "image_url", "section", "tags",
                    "headline", "key_phrase", "blurb", "rank", "note")


@app.command()
def items(
    status: Annotated[str | None, typer.Option(
        help="candidate, filtered, shortlisted, included, excluded or all.")] = None,
    since: Annotated[str | None, typer.Option(help="Published on or after (YYYY-MM-DD).")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source's items.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (0 = all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List stored items, newest first."""
    from .store.items import query_items

    settings = state.settings()
    with _db(settings) as db:
        try:
            rows = query_items(db, status=status, since=_since(since), source=source,
                               limit=limit or None)
        except ValueError as e:
            raise DigestError(str(e)) from None
    if as_json:
        payload = [{k: r.get(k) for k in ITEM_JSON_FIELDS} for r in rows]
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=1) + "\n")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "published", "status", "source", "title"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["published_at"][:16].replace("T", " "), r["status"],
                      r["source"], r["title"])
    out.print(table)
    out.print(f"{len(rows)} items")


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
    from .sources.registry import load_registry
    from .store.sources import source_health

    settings = state.settings()
    registry = load_registry(settings.sources_file)
    health: dict[str, dict[str, Any]] = {}
    if settings.store_path.exists():
        with _db(settings) as db:
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
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "kind", "cc", "on", "last ok", "fails", "newest item", "14d", "health"):
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
    from .sources.batch import fetch_one
    from .sources.http import HostLimiter, make_session
    from .sources.registry import load_registry
    from .sources.types import FetchRequest

    settings = state.settings()
    registry = {c.name: c for c in load_registry(settings.sources_file)}
    cfg = registry.get(name)
    if cfg is None:
        raise DigestError(f"{settings.sources_file}: no source named {name!r}")
    request = FetchRequest(name=cfg.name, url=cfg.url, kind=cfg.kind, headers=dict(cfg.headers),
                           language=cfg.language or None, options=dict(cfg.options))
    with make_session(settings.http) as session:
        outcome = fetch_one(session, request, settings.http,
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
    for col in ("published", "title", "url"):
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
    from .sources.registry import add_source
    from .sources.types import SourceConfig

    settings = state.settings()
    add_source(_registry_path(settings, "change"), SourceConfig(
        name=name, url=url, kind=kind, owner=owner, country=country, category=category,
        language=language, interval_minutes=interval_minutes))
    out.print(f"added {name!r} to {settings.sources_file}")


def _set_enabled(name: str, enabled: bool) -> None:
    from .sources.registry import set_enabled

    settings = state.settings()
    set_enabled(_registry_path(settings, "change"), name, enabled)
    if settings.store_path.exists():
        from .store.sources import set_enabled as set_enabled_db

        # Not collected yet (NotFoundError): the registry alone decides.
        with _db(settings) as db, suppress(DigestError):
            set_enabled_db(db, name, enabled)
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
    from .sources.registry import import_opml, merge_imported

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
    from .sources.registry import export_opml, load_registry

    text = export_opml(load_registry(state.settings().sources_file))
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


# --- set-up and demo ---------------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the config.")] = Path("."),
) -> None:
    """Copy the default digest.toml and sources.toml into a folder, to edit them there."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("digest.toml", "sources.toml"):
        target = directory / name
        if target.exists():
            _fail(f"{target} exists already; nothing was changed")
    for name in ("digest.toml", "sources.toml"):
        shutil.copyfile(PACKAGE_DIR / name, directory / name)
    out.print(f"wrote {directory / 'digest.toml'} and {directory / 'sources.toml'}")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option(
        "--dir", help="Folder for the demo's config, database and drafts.")] = Path("digest-demo"),
) -> None:
    """Offline, end to end: serve bundled feeds on 127.0.0.1, collect them, show the results."""
    from .demo import run_demo

    def collect_all(settings: Settings) -> dict[str, Any]:
        summary = run_collect(settings, force=True, names=None)
        print_run_summary(summary)
        return summary

    run_demo(directory.resolve(), out, collect_all)


if __name__ == "__main__":
    main()
