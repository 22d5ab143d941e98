"""`digest issue export|send|deliveries` and `digest publish`: delivering issues."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import DeliveryError
from . import app, editor_name, out, print_json, state
from .drafting import issue_app


@issue_app.command("export")
def issue_export(
    ref: Annotated[str, typer.Argument(help="Issue id, or VOL.NUM such as 2.3.")],
    fmt: Annotated[str, typer.Option("--format", help="pdf or docx.")] = "pdf",
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the file (default: beside the draft's files).")] = None,
) -> None:
    """Write an issue as PDF (the email's look, Letter or A4) or Word (links and bold kept)."""
    from ..pipeline.export import export_issue

    path = export_issue(state.settings(), ref, fmt.strip().lower(), out_dir)
    out.print(str(path), soft_wrap=True)


@issue_app.command("send")
def issue_send(
    ref: Annotated[str, typer.Argument(help="Issue id, or VOL.NUM such as 2.3.")],
    test: Annotated[str | None, typer.Option(
        "--test", metavar="ADDRESS",
        help="Send one copy marked [TEST] to this address (any state; nothing recorded).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Email an approved issue to its subscribers; a re-run sends only to those not sent yet."""
    from ..pipeline.publish import send_and_publish

    settings = state.settings()

    def progress(recipient: str, ok: bool, reply: str) -> None:
        if not as_json:
            out.print(f"  {'sent  ' if ok else 'FAILED'} {recipient}  {reply}", soft_wrap=True)

    result, site = send_and_publish(settings, ref, test=test, on_delivery=progress,
                                    actor=editor_name())
    if as_json:
        print_json(result.summary())
    else:
        what = "Test of" if result.test else "Sent"
        out.print(f"{what} Vol {result.vol_num}: {len(result.sent)} sent, "
                  f"{len(result.failed)} failed"
                  + (f", {result.already_sent} had it already" if result.already_sent else "")
                  + ("; the issue is final" if result.final and not result.test else ""),
                  soft_wrap=True)
    if site is not None:
        out.print(f"Archive updated: {site.folder}", soft_wrap=True)
    if result.stopped:
        raise DeliveryError(f"{result.stopped}; {len(result.not_tried)} not tried: run "
                            f"'digest issue send {ref}' again to send to the rest")


@issue_app.command("deliveries")
def issue_deliveries_cmd(
    ref: Annotated[str, typer.Argument(help="Issue id, or VOL.NUM such as 2.3.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Who was sent the issue, who failed and what the SMTP server said."""
    from ..pipeline.send import issue_deliveries

    issue, rows = issue_deliveries(state.settings(), ref)
    if as_json:
        print_json(rows)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("recipient", "status", "reply", "tries", "at"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["recipient"], r["status"], r["reply"] or "", str(r["attempts"]), r["at"])
    out.print(table)
    sent = sum(r["status"] == "sent" for r in rows)
    out.print(f"Vol {issue['volume']}.{issue['number']} ({issue['status']}): {sent} sent, "
              f"{len(rows) - sent} failed", soft_wrap=True)


@app.command()
def publish(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder of the public archive (default: publish.out_dir).")] = None,
) -> None:
    """Write the public archive of sent issues: index, pages, PDFs and an Atom feed."""
    from ..pipeline.publish import publish_site

    site = publish_site(state.settings(), out_dir)
    out.print(f"{site.folder}: {len(site.issues)} issues, {len(site.written)} files written, "
              f"{site.unchanged} unchanged", soft_wrap=True)
    for path in site.written:
        out.print(f"  {path}", soft_wrap=True)
