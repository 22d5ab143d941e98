"""Editors correct stories from the desk (pipeline/stories.py below), as `digest story` does.

    POST /items/{id}/split             the item out of its story, into one of its own
    POST /items/{id}/merge  other=N    the item's story and item N's story made one
    POST /api/stories/merge {item_ids} the stories of several items (queue rows) made one

A correction pins the items it moves, so rescoring and later collect runs keep it. The forms
carry the session's CSRF token like every other form; the JSON route its X-CSRF-Token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import InputError, NotFoundError
from ..pipeline import stories

if TYPE_CHECKING:
    from .app import Ctx

#: At most this many stories are merged in one request (a page of queue rows).
MAX_MERGED = 100


def _item_id(ctx: Ctx) -> int:
    try:
        return int(ctx.request.path_params["item_id"])
    except (KeyError, ValueError):
        raise NotFoundError("no such item") from None


def item_split(ctx: Ctx) -> Response:
    """POST /items/{id}/split: the item on its own; back to its page, which says so."""
    item_id = _item_id(ctx)
    stories.split(ctx.db, item_id, editor=ctx.editor)
    return RedirectResponse(f"/items/{item_id}?story=split", status_code=303)


def item_merge(ctx: Ctx) -> Response:
    """POST /items/{id}/merge with `other`: one story of the two items' stories."""
    item_id = _item_id(ctx)
    raw = (ctx.form or FormData()).get("other")
    text = raw.strip().lstrip("#") if isinstance(raw, str) else ""
    if not text.isdigit():
        raise InputError("give the number of an item of the other story (#123)", field="other")
    stories.merge(ctx.db, item_id, int(text), editor=ctx.editor)
    return RedirectResponse(f"/items/{item_id}?story=merged", status_code=303)


def api_merge(ctx: Ctx) -> Response:
    """POST /api/stories/merge {item_ids: [a, b, …]}: one story of all their stories."""
    data: Any = ctx.data if isinstance(ctx.data, dict) else {}
    ids = data.get("item_ids")
    if (not isinstance(ids, list) or len(ids) < 2 or len(ids) > MAX_MERGED
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise InputError(f"item_ids must list 2 to {MAX_MERGED} item numbers",
                         field="item_ids")
    first, *rest = dict.fromkeys(ids)
    if not rest:
        raise InputError("give items of two different stories to merge", field="item_ids")
    lead = first
    for other in rest:
        lead = stories.merge(ctx.db, first, other, editor=ctx.editor)
    return JSONResponse({"lead": lead, "merged": len(rest) + 1})


#: What the item page says after a correction (a fixed text per code, never from the URL).
STORY_MESSAGES = {
    "split": "Taken out of its story: it stands alone, and later runs keep it so.",
    "merged": "The two stories are one now, and later runs keep them together.",
}


def routes(desk_route: Callable[..., Any]) -> list[Route]:
    """The story routes, wrapped by the desk's route wrapper (session, CSRF, errors)."""
    return [
        Route("/items/{item_id:int}/split", desk_route(item_split), methods=["POST"]),
        Route("/items/{item_id:int}/merge", desk_route(item_merge), methods=["POST"]),
        Route("/api/stories/merge", desk_route(api_merge, api=True), methods=["POST"]),
    ]
