"""The desk's delivery routes: an issue's PDF and Word downloads, a test send and the send.

    GET  /issues/{id}/export.pdf | export.docx   rendered now (pipeline.export.issue_file)
    POST /issues/{id}/send-test   address        publishers: one [TEST] copy, nothing recorded
    POST /issues/{id}/send        confirm        publishers: to [email] recipients, recorded

Who may send is pipeline.send.is_publisher; the server checks it (403), not only the page.
Errors (SMTP unreachable, not approved, …) go to the desk's one error handler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import InputError
from ..pipeline.export import issue_file
from ..pipeline.publish import send_and_publish
from ..pipeline.send import is_publisher
from ..store.deliveries import deliveries
from ..store.issues import all_issues, find_issue

if TYPE_CHECKING:
    from .app import Ctx

MEDIA_TYPES = {"pdf": "application/pdf",
               "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
#: Recorded issues listed on the Issue page, newest first.
LISTED = 8


def recorded_issues(ctx: Ctx) -> dict[str, Any]:
    """What the Issue page's delivery panel shows: recent issues, their deliveries, a message."""
    rows = list(reversed(all_issues(ctx.db)))[:LISTED]
    for row in rows:
        sent = deliveries(ctx.db, int(row["id"]))
        row["sent"] = sum(d["status"] == "sent" for d in sent)
        row["failed"] = len(sent) - row["sent"]
    message = ""
    params = ctx.request.query_params
    # Only ever say what the database says: no text from the URL is shown.
    for key, template in (("sent", "Vol {v}: {s} sent, {f} failed"),
                          ("tested", "A test of Vol {v} was sent")):
        ref = params.get(key, "")
        row = next((r for r in rows if str(r["id"]) == ref), None)
        if row:
            message = template.format(v=f"{row['volume']}.{row['number']}", s=row["sent"],
                                      f=row["failed"])
    return {"recorded": rows, "publisher": is_publisher(ctx.db, ctx.editor),
            "delivery_message": message}


def issue_export(ctx: Ctx) -> Response:
    """GET /issues/{id}/export.{pdf,docx}: the file, as `digest issue export` writes it."""
    fmt = ctx.request.path_params["fmt"]
    name, data = issue_file(ctx.db, ctx.settings, int(ctx.request.path_params["issue_id"]), fmt)
    return Response(data, media_type=MEDIA_TYPES.get(fmt, "application/octet-stream"),
                    headers={"content-disposition": f'attachment; filename="{name}"'})


def _refuse_non_publisher(ctx: Ctx) -> Response | None:
    if is_publisher(ctx.db, ctx.editor):
        return None
    return HTMLResponse("<p>Only a publisher can send issues.</p>", status_code=403)


def issue_send_test(ctx: Ctx) -> Response:
    """POST /issues/{id}/send-test: one [TEST] copy to the address given."""
    if refused := _refuse_non_publisher(ctx):
        return refused
    issue = find_issue(ctx.db, int(ctx.request.path_params["issue_id"]))
    address = str((ctx.form or FormData()).get("address") or "").strip()
    if not address:
        raise InputError("give the address to send the test to", field="address")
    send_and_publish(ctx.settings, int(issue["id"]), test=address, actor=ctx.editor)
    return RedirectResponse(f"/issue?tested={issue['id']}", status_code=303)


def issue_send(ctx: Ctx) -> Response:
    """POST /issues/{id}/send: the issue to its subscribers (approved issues only)."""
    if refused := _refuse_non_publisher(ctx):
        return refused
    issue = find_issue(ctx.db, int(ctx.request.path_params["issue_id"]))
    if (ctx.form or FormData()).get("confirm") != "1":
        raise InputError("tick the box to confirm sending to every subscriber", field="confirm")
    send_and_publish(ctx.settings, int(issue["id"]), actor=ctx.editor)
    return RedirectResponse(f"/issue?sent={issue['id']}", status_code=303)
