"""Collecting, listing items, set-up and the demo."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import CollectRunning, DatabaseDamaged, DigestError
from ..settings import PACKAGE_DIR, Settings
from ..timestamps import utc_timestamp
from . import _db, _fail, app, err, out, print_json, route_prefect_logs, state

# --- collect -----------------------------------------------------------------------------------


#: `digest collect`'s exit status when the run completed but triage set items aside.
SET_ASIDE_EXIT = 3


def run_collect(settings: Settings, *, force: bool, names: list[str] | None,
                show_progress: bool = True, record_later: bool = True) -> dict[str, Any]:
    """Validate config, registry and database up front (one clear line each), then collect.

    With `record_later` and no Dask cluster, the collect use case runs at once and a detached
    process records it in Prefect afterwards (`flows.record`): on the server that runs
    (PREFECT_API_URL, a running `digest serve`), else on a temporary server of its own, off
    the command's clock either way. Else (Dask, or not `record_later`: the demo) the collect
    flow runs on that server or a temporary one.
    """
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..flows.serve import configured_api_url, use_server
    from ..pipeline.scale_check import check_scheduler, remote_workers_warning
    from ..sources.registry import load_registry
    from ..store.db import open_for_writing
    from ..store.lock import FINISH, lock_holder
    from ..triage.rules import load_rules

    registry = {c.name for c in load_registry(settings.sources_file)}
    unknown = [n for n in names or [] if n not in registry]
    if unknown:
        raise DigestError(f"{settings.sources_file}: no source named {unknown[0]!r}")
    load_rules(settings)  # a broken relevance.toml is one clear line, before Prefect starts
    open_for_writing(settings.store_path).close()
    check_scheduler(settings.scale)  # a dead Dask scheduler: one line, at once
    holder = lock_holder(settings.store_path)
    if holder and holder.purpose != FINISH:  # before Prefect starts: say so at once
        raise CollectRunning(holder.pid, holder.since)
    if holder:
        err.print(f"waiting for the last run's search index and stories (pid {holder.pid}) "
                  "to be completed first", soft_wrap=True)
    bar = Progress(TextColumn("collecting"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err,
                   disable=not show_progress or not err.is_terminal, transient=True)

    class BarProgress:
        task_id: Any = None

        def started(self, total: int) -> None:
            self.task_id = bar.add_task("collect", total=total, last="")

        def done(self, outcome: Any) -> None:
            if self.task_id is not None:
                bar.update(self.task_id, advance=1, last=outcome.name[:40])

    config = str(settings.config_path) if settings.config_path else None
    if record_later and not settings.scale.dask_address:
        with bar:
            return collect_now_record_later(settings, force=force, names=names,
                                            progress=BarProgress(), config=config,
                                            api_url=configured_api_url(settings))
    api = use_server(settings)  # a temporary server starts while Prefect is imported
    if warning := remote_workers_warning(settings.scale, api.url):
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", markup=True, soft_wrap=True)
    from ..flows import collect as collect_flow

    route_prefect_logs(settings)
    with api.connected(), bar, collect_flow.reporting_to(BarProgress()):
        summary: dict[str, Any] = asyncio.run(
            collect_flow.collect_with_runner()(force=force, sources=names or None, config=config)
        )
    if "skipped" in summary:  # another collect took the lock after the check above
        raise CollectRunning(summary.get("pid"), summary.get("since"))
    return summary


def collect_now_record_later(settings: Settings, *, force: bool, names: list[str] | None,
                             progress: Any, config: str | None,
                             api_url: str | None = None) -> dict[str, Any]:
    """The collect use case in this process; Prefect records the run after the command.

    The run is the same as the flow's (`collect_once` with its default batches and triage);
    only its record in Prefect comes later, from a detached process (`flows.record`), which
    first adds a large run's items to the search index and clusters them. It records on
    `api_url` (a server that runs anyway), else on a temporary server it starts.
    """
    from ..flows.record import hand_off
    from ..pipeline.collect import FINISH_LATER_ABOVE, collect_once, health_report

    summary = collect_once(settings, force=force, names=names or None, progress=progress,
                           finish_later_above=FINISH_LATER_ABOVE)
    result = summary.as_dict()
    try:
        hand_off(settings, result, {"force": force, "sources": names or None, "config": config},
                 health_report(settings, summary.run_id), api_url=api_url)
    except OSError as e:  # the run is stored; only its record in Prefect is missing
        err.print(f"warning: collect run {summary.run_id} is stored but will not appear in "
                  f"Prefect: {e}", soft_wrap=True)
    return result


def print_run_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"Collect run {summary['id']}", show_header=True)
    for col in ("sources due", "ok", "not modified", "failed", "items new", "items updated"):
        table.add_column(col, justify="right")
    table.add_row(*(str(summary[k]) for k in (
        "sources_due", "sources_ok", "sources_not_modified", "sources_failed", "items_new",
        "items_updated")))
    out.print(table)
    triaged = summary.get("triage")
    if triaged:
        stories = (f"indexing the {triaged['pending']} new items for search and grouping them "
                   "into stories continue in the background (seconds; a collect or draft "
                   "started meanwhile waits for them)" if triaged.get("pending") else
                   f"{triaged['in_stories']} items in {triaged['stories']} multi-outlet stories")
        out.print(f"triage: {triaged['candidates']} new candidates, {triaged['filtered']} "
                  f"filtered; {stories}"
                  + (f"; relevance model {triaged['model']}" if triaged.get("model") else ""))
        if triaged.get("model_warning"):
            out.print(f"  [yellow]warning[/yellow] {escape(triaged['model_warning'])}",
                      markup=True, soft_wrap=True)
    if triaged and (triaged.get("set_aside_total") or triaged.get("triage_error")):
        err.print(f"[yellow]triage set aside[/yellow] {triaged.get('set_aside', 0)} items this "
                  f"run, {triaged.get('set_aside_total', 0)} waiting in all (stored and listed; "
                  f"{triaged.get('retrying', 0)} retried by later runs, the rest by `digest triage "
                  f"retry`): {escape(triaged.get('triage_error') or 'earlier runs')}",
                  markup=True, soft_wrap=True)
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
    triaged = summary.get("triage") or {}
    if triaged.get("set_aside") or triaged.get("triage_error"):
        raise typer.Exit(SET_ASIDE_EXIT)  # stored, but not all clustered: say so to cron


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
    return utc_timestamp(parsed)


ITEM_JSON_FIELDS = ("id", "source", "url", "guid", "title", "published_at", "status", "score",
                    "reasons", "cluster_id",
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
    from ..store.items import query_items

    settings = state.settings()
    with _db(settings, write=False) as db:
        rows = query_items(db, status=status, since=_since(since), source=source,
                           limit=limit or None)
    if as_json:
        payload = [{k: r.get(k) for k in ITEM_JSON_FIELDS} for r in rows]
        print_json(payload)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "published (UTC)", "status", "source", "title"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["published_at"][:16].replace("T", " "), r["status"],
                      r["source"], r["title"])
    out.print(table)
    out.print(f"{len(rows)} items")


# --- the database's health ----------------------------------------------------------------------


@app.command()
def check() -> None:
    """Run SQLite's integrity check on the database and say what is wrong, if anything."""
    from ..store.db import BACKUP_ADVICE, integrity_problems, open_db_readonly

    settings = state.settings()
    if not settings.store_path.exists():
        _fail(f"{settings.store_path}: no database there yet")
    try:
        with contextlib.closing(open_db_readonly(settings.store_path)) as db:
            problems = integrity_problems(db) or []
    except DatabaseDamaged as e:  # too damaged to open: that is the one problem
        problems = [str(e.__cause__ or e).split(": ", 1)[-1]]
    if not problems:
        out.print(f"{settings.store_path}: ok (integrity check found nothing wrong)",
                  soft_wrap=True)
        return
    for line in problems:
        out.print(f"  {line}", soft_wrap=True)
    _fail(f"{settings.store_path}: the integrity check found {len(problems)} problem"
          f"{'s' if len(problems) != 1 else ''} (listed above, at most 100): restore a "
          f"backup ({BACKUP_ADVICE})")


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
    from ..demo import run_demo
    from .drafting import run_draft

    def collect_all(settings: Settings) -> dict[str, Any]:
        # The draft starts a Prefect server in this process anyway: the collect shares it.
        return run_collect(settings, force=True, names=None, record_later=False)

    run_demo(directory.resolve(), out, collect_all, run_draft)
