"""`digest draft` and `digest issue`: drafting an issue, the archive, review and approval."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import DigestError
from ..settings import Settings
from . import _db, app, editor_name, out, print_json, route_prefect_logs, state

issue_app = typer.Typer(help="Drafted issues: the archive, review, approval, finalising.",
                        no_args_is_help=True)
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
    """Check the plan (one clear line for a final or approved issue or a taken number), then
    run the flow."""
    import asyncio

    from ..flows.serve import use_server

    api = use_server(settings)  # a temporary server starts while Prefect is imported
    from ..flows import draft as draft_flow
    from ..pipeline.draft import parse_date, plan_draft, today

    route_prefect_logs(settings)
    day = parse_date(date) if date else today(settings)
    with _db(settings) as db:
        plan_draft(db, settings, day, volume=volume, number=number)
    with api.connected():
        return asyncio.run(draft_flow.draft(
            date=day.isoformat(), out=str(out_dir.expanduser().resolve()) if out_dir else None,
            volume=volume, number=number,
            config=str(settings.config_path) if settings.config_path else None,
        ))


def print_draft_summary(summary: dict[str, Any]) -> None:
    """What a draft run wrote, for people."""
    out.print(f"Drafted Vol {summary['volume']}.{summary['number']} ({summary['date']}), "
              f"issue {summary['issue_id']}: {summary['items']} entries", soft_wrap=True)
    if summary["needs_writing"]:
        out.print(f"  [yellow]{summary['needs_writing']} still need writing[/yellow] "
                  "(paragraphs drafted from their items)", markup=True)
    for path in summary["paths"].values():
        out.print(f"  {path}", soft_wrap=True)
    for path in summary.get("exports", {}).values():  # the flow's PDF and Word files
        out.print(f"  {path}", soft_wrap=True)
    for path in summary["removed"]:
        out.print(f"  removed {path}", soft_wrap=True)


@issue_app.command("list")
def issue_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The archive: every issue with its number, date, status, items and files."""
    from ..pipeline.draft import stored_path
    from ..store.issues import all_issues, issue_paths

    settings = state.settings()
    with _db(settings, write=False) as db:
        rows = all_issues(db)
    if as_json:
        print_json(rows)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("id", "vol.num", "date", "window", "status", "items", "files"):
        table.add_column(col, overflow="fold")
    for r in rows:
        window = f"{r['window_start'] or '…'} – {r['window_end']}"
        files = _files_cell([str(stored_path(settings, p).resolve())
                             for p in issue_paths(r).values()])
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


def _what(issue: dict[str, Any]) -> str:
    return f"Vol {issue['volume']}.{issue['number']} ({issue['date']}, id {issue['id']})"


REF_HELP = "Issue id, or VOL.NUM such as 2.3."


@issue_app.command("finalize")
def issue_finalize(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    force: Annotated[bool, typer.Option(
        "--force", help="Finalise even though the issue is not approved.")] = False,
) -> None:
    """Mark an approved issue sent and freeze it: its items stay out of later issues."""
    from ..pipeline.review import finalize

    with _db(state.settings()) as db:
        issue, changed = finalize(db, ref, actor=editor_name(), force=force)
    out.print(f"{_what(issue)} is {'now' if changed else 'already'} final", soft_wrap=True)


@issue_app.command("submit")
def issue_submit(ref: Annotated[str, typer.Argument(help=REF_HELP)]) -> None:
    """Submit a draft for review (draft → review)."""
    from ..pipeline.review import submit

    with _db(state.settings()) as db:
        issue, changed = submit(db, ref, actor=editor_name())
    out.print(f"{_what(issue)} is {'now' if changed else 'already'} in review", soft_wrap=True)


@issue_app.command("approve")
def issue_approve(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    yes: Annotated[bool, typer.Option(
        "--yes", help="Approve without asking, even with open comments.")] = False,
) -> None:
    """Approve an issue in review; refused while a paragraph still needs writing."""
    from ..errors import OpenComments
    from ..pipeline.review import approve

    settings = state.settings()
    with _db(settings) as db:
        try:
            issue, changed = approve(db, settings, ref, actor=editor_name(),
                                     confirm_open_comments=yes)
        except OpenComments as e:
            if not sys.stdin.isatty() or not typer.confirm(f"{e}. Approve?", err=True):
                raise DigestError(f"{e} (pass --yes)") from None
            issue, changed = approve(db, settings, ref, actor=editor_name(),
                                     confirm_open_comments=True)
    out.print(f"{_what(issue)} is {'now' if changed else 'already'} approved", soft_wrap=True)


@issue_app.command("reopen")
def issue_reopen(ref: Annotated[str, typer.Argument(help=REF_HELP)]) -> None:
    """Send an issue in review or approved back to draft."""
    from ..pipeline.review import reopen

    with _db(state.settings()) as db:
        issue, changed = reopen(db, ref, actor=editor_name())
    out.print(f"{_what(issue)} is {'now' if changed else 'already'} a draft", soft_wrap=True)


@issue_app.command("discard")
def issue_discard(ref: Annotated[str, typer.Argument(help=REF_HELP)]) -> None:
    """Delete an unsent issue and its files: its number is free, its items unassigned."""
    from ..pipeline.review import discard

    settings = state.settings()
    with _db(settings) as db:
        issue, removed = discard(db, settings, ref, actor=editor_name())
    out.print(f"discarded {_what(issue)}; Vol {issue['volume']}.{issue['number']} is free",
              soft_wrap=True)
    for path in removed:
        # Stored paths are relative to the data folder ("data/../drafts/…"): say where it was.
        out.print(f"  removed {path.resolve()}", soft_wrap=True)


@issue_app.command("comment")
def issue_comment(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    entry: Annotated[str, typer.Argument(help="The entry commented on (its item id).")],
    text: Annotated[str, typer.Argument(help="The comment.")],
) -> None:
    """Comment on one entry of an issue; it stays open until resolved."""
    from ..pipeline.review import comment

    settings = state.settings()
    with _db(settings) as db:
        made = comment(db, settings, ref, entry, text, actor=editor_name())
    out.print(f"comment {made['id']} on entry {made['entry']}", soft_wrap=True)


@issue_app.command("resolve")
def issue_resolve(
    comment_id: Annotated[int, typer.Argument(help="Comment id (see `digest issue comments`).")],
) -> None:
    """Mark a comment resolved."""
    from ..pipeline.review import resolve

    with _db(state.settings()) as db:
        done = resolve(db, comment_id, actor=editor_name())
    out.print(f"comment {done['id']} resolved by {done['resolved_by']}", soft_wrap=True)


@issue_app.command("comments")
def issue_comments(
    ref: Annotated[str, typer.Argument(help=REF_HELP)],
    show_all: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """An issue's open comments (with --all, the resolved ones too)."""
    from ..store.issues import find_issue
    from ..store.review import comments

    with _db(state.settings()) as db:
        rows = comments(db, find_issue(db, ref)["id"], open_only=not show_all)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no open comments" if not show_all else "no comments")
    for r in rows:
        done = f" (resolved by {r['resolved_by']})" if r["resolved_at"] else ""
        gone = " (dropped)" if r["entry_dropped"] else ""
        out.print(f"{r['id']}  entry {r['entry']}{gone}  {r['author']}: {r['text']}{done}",
                  soft_wrap=True)
