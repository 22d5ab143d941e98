"""`digest draft` and `digest issue`: drafting an issue, the archive, finalising."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..settings import Settings
from . import _db, app, out, print_json, route_prefect_logs, state

issue_app = typer.Typer(help="Drafted issues: the archive and finalising.", no_args_is_help=True)
app.add_typer(issue_app, name="issue")


@app.command()
def draft(
    date: Annotated[str | None, typer.Option(
        help="Issue date, YYYY-MM-DD (default: today in [schedule] timezone).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the files (default: [issue] out_dir).")] = None,
    volume: Annotated[int | None, typer.Option(min=1, help="Override the volume.")] = None,
    number: Annotated[int | None, typer.Option(min=1, help="Override the number.")] = None,
) -> None:
    """Draft the issue for a date: its included items as .md, .html and .txt, recorded."""
    settings = state.settings()
    print_draft_summary(run_draft(settings, date=date, out_dir=out_dir, volume=volume,
                                  number=number))


def run_draft(settings: Settings, *, date: str | None = None, out_dir: Path | None = None,
              volume: int | None = None, number: int | None = None) -> dict[str, Any]:
    """Check the plan (one clear line for a final issue or a taken number), then run the flow."""
    import asyncio

    from ..flows.serve import use_server

    api = use_server(settings)  # a temporary server starts while Prefect is imported
    from ..flows import draft as draft_flow
    from ..pipeline.draft import parse_date, today
    from ..store.issues import plan_issue

    route_prefect_logs(settings)
    day = parse_date(date) if date else today(settings)
    with _db(settings) as db:
        plan_issue(db, day, settings.issue.first_year, volume=volume, number=number)
    with api.connected():
        return asyncio.run(draft_flow.draft(
            date=day.isoformat(), out=str(out_dir.expanduser().resolve()) if out_dir else None,
            volume=volume, number=number,
            config=str(settings.config_path) if settings.config_path else None,
        ))


def print_draft_summary(summary: dict[str, Any]) -> None:
    """What a draft run wrote, for people."""
    out.print(f"Drafted Vol {summary['volume']}.{summary['number']} ({summary['date']}), "
              f"issue {summary['issue_id']}: {summary['items']} items", soft_wrap=True)
    if summary["needs_writing"]:
        out.print(f"  [yellow]{summary['needs_writing']} still need writing[/yellow] "
                  "(paragraphs drafted from feed summaries)", markup=True)
    for path in summary["paths"].values():
        out.print(f"  {path}", soft_wrap=True)
    for path in summary["removed"]:
        out.print(f"  removed {path}", soft_wrap=True)


@issue_app.command("list")
def issue_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The archive: every issue with its number, date, status, items and files."""
    from ..store.issues import all_issues, issue_paths

    with _db(state.settings()) as db:
        rows = all_issues(db)
    if as_json:
        print_json(rows)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "vol.num", "date", "window", "status", "items", "files"):
        table.add_column(col, overflow="fold")
    for r in rows:
        window = f"{r['window_start'] or '…'} – {r['window_end']}"
        files = _files_cell(list(issue_paths(r).values()))
        table.add_row(str(r["id"]), f"{r['volume']}.{r['number']}", r["date"], window,
                      r["status"], str(r["items"]), files)
    out.print(table)
    out.print(f"{len(rows)} issues")


def _files_cell(paths: list[str]) -> str:
    """One issue's files, their shared folder and name written once: …/name.{md,html,txt}."""
    stems = {str(Path(p).with_suffix("")) for p in paths}
    if len(stems) != 1:
        return "\n".join(paths)
    return f"{stems.pop()}.{{{','.join(Path(p).suffix[1:] for p in paths)}}}"


@issue_app.command("finalize")
def issue_finalize(
    ref: Annotated[str, typer.Argument(help="Issue id, or VOL.NUM such as 2.3.")],
) -> None:
    """Freeze an issue: it cannot be redrafted and its items stay out of later issues."""
    from ..store.issues import finalize_issue

    with _db(state.settings()) as db:
        issue, changed = finalize_issue(db, ref)
    what = f"Vol {issue['volume']}.{issue['number']} ({issue['date']}, id {issue['id']})"
    out.print(f"{what} is {'now' if changed else 'already'} final", soft_wrap=True)

