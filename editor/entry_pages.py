"""The desk's issue entries: the entry page and its JSON routes (pipeline/entries.py below).

    GET  /entries/{id}                 the entry: its items side by side, its fields, the
                                       paragraph as the draft prints it, "start from the draft"
    POST /api/entries/include          {item_id, keep?}: include an item's story as an entry
    POST /api/entries/{id}             {version, headline, key_phrase, blurb, section, note}
    POST /api/entries/{id}/preview     {headline, key_phrase, blurb}: the paragraph exactly as
                                       the draft would print it with this text, and its length
    POST /api/entries/{id}/items       {item_id}: add any item
    POST /api/entries/{id}/move        {item_id}: move an item here from its entry
    POST /api/entries/{id}/drop        {item_ids?}: drop items (none given: the whole entry)
    POST /api/entries/{id}/lead        {item_id}: choose the lead

Every POST carries the session's CSRF token (X-CSRF-Token), as the desk's other JSON routes.
Changes that name a `version` are refused (409) when the entry was saved since.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import InputError, NotFoundError
from ..pipeline import entries, next_issue
from ..templates.render import DRAFT_MARKER, drafted_nodes, entry_paragraph, entry_view, to_blurb

if TYPE_CHECKING:
    from .app import Ctx

#: The seed issue's paragraphs run about this many words; the page's counter shows the range.
WORDS_MIN, WORDS_MAX = 60, 130


def _entry_id(ctx: Ctx) -> int:
    try:
        return int(ctx.request.path_params["entry_id"])
    except (KeyError, ValueError):
        raise NotFoundError("no such entry") from None


def _data(ctx: Ctx) -> dict[str, Any]:
    return ctx.data if isinstance(ctx.data, dict) else {}


def _int(data: Mapping[str, Any], key: str, *, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{key} must be a whole number", field=key)
    return value


def _ids(data: Mapping[str, Any], key: str) -> list[int]:
    value = data.get(key) or []
    if (
        not isinstance(value, list)
        or len(value) > 200
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    ):
        raise InputError(f"{key} must be a list of item ids", field=key)
    return value


def _shown(entry: Mapping[str, Any], **overrides: str) -> dict[str, Any]:
    """The paragraph of an entry as the draft prints it (with unsaved text, if given)."""
    view = entry_view({**entry, **overrides})
    para = entry_paragraph(view)
    words = para["words"]
    marker = f'<span class="marker">{DRAFT_MARKER}</span> ' if para["unwritten"] else ""
    return {
        "headline": view.headline,
        "markdown": para["markdown"],
        "text": para["text"],
        "html": marker + para["html"],
        "unwritten": para["unwritten"],
        "words": words,
        "in_range": WORDS_MIN <= words <= WORDS_MAX,
    }


def _drafted(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What "start from the draft" puts in the fields: the paragraph drafted from the items."""
    view = entry_view({**entry, "blurb": None})
    return {"blurb": to_blurb(drafted_nodes(view)), "headline": view.headline}


def _summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "version",
        "issue_id",
        "section",
        "position",
        "headline",
        "key_phrase",
        "blurb",
        "lead_item_id",
    )
    return {
        **{k: entry.get(k) for k in keys},
        "items": [
            {
                k: i.get(k)
                for k in (
                    "id",
                    "role",
                    "source",
                    "language",
                    "title",
                    "url",
                    "published_at",
                    "status",
                    "version",
                )
            }
            for i in entry.get("items", [])
        ],
        "url": f"/entries/{entry['id']}",
    }


def entry_page(ctx: Ctx) -> Response:
    """GET /entries/{id}."""
    entry = entries.show(ctx.db, _entry_id(ctx))
    return ctx.render(
        "entry.html",
        {
            "entry": entry,
            "neighbours": next_issue.neighbours(ctx.db, ctx.settings, int(entry["id"])),
            "shown": _shown(entry),
            "drafted": _drafted(entry),
            "sections": ctx.settings.issue.sections,
            "words_min": WORDS_MIN,
            "words_max": WORDS_MAX,
            "draft_marker": DRAFT_MARKER,
        },
    )


def api_include(ctx: Ctx) -> Response:
    """POST /api/entries/include {item_id, keep?}."""
    data = _data(ctx)
    item_id = _int(data, "item_id")
    assert item_id is not None
    keep = _ids(data, "keep") if "keep" in data else None
    entry = entries.include(
        ctx.db, item_id, editor=ctx.editor, keep=keep, sections=ctx.settings.issue.sections
    )
    return JSONResponse({"entry": _summary(entry)})


def api_save(ctx: Ctx) -> Response:
    """POST /api/entries/{id}: the entry's text fields, refused (409) when stale."""
    data = _data(ctx)
    changes = {
        k: data[k] for k in ("headline", "key_phrase", "blurb", "section", "note") if k in data
    }
    for key, value in changes.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{key} must be text", field=key)
        if value == "":
            changes[key] = None
    if not changes:
        raise InputError("nothing to save")
    entry = entries.update(
        ctx.db,
        _entry_id(ctx),
        changes,
        editor=ctx.editor,
        expected_version=_int(data, "version", required=False),
        sections=ctx.settings.issue.sections,
        base=_base(data),
    )
    return JSONResponse({"entry": _summary(entry), "shown": _shown(entry)})


def _base(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values the page was showing when the editor started (`base`), for per-field checks."""
    base = data.get("base")
    if base is None:
        return None
    if not isinstance(base, dict) or not all(
        isinstance(v, str | None) for v in base.values()
    ):
        raise InputError("base must map fields to text", field="base")
    return base


def api_preview(ctx: Ctx) -> Response:
    """POST /api/entries/{id}/preview: the paragraph with the editor's unsaved text."""
    data = _data(ctx)
    entry = entries.show(ctx.db, _entry_id(ctx))
    overrides: dict[str, str] = {}
    for key in ("headline", "key_phrase", "blurb"):
        value = data.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise InputError(f"{key} must be text", field=key)
            overrides[key] = value[:20_000]
    return JSONResponse(_shown(entry, **overrides))


def _item_change(action: Callable[..., Any]) -> Callable[[Ctx], Response]:
    def handler(ctx: Ctx) -> Response:
        data = _data(ctx)
        entry = action(ctx, _entry_id(ctx), data, _int(data, "version", required=False))
        return JSONResponse({"entry": _summary(entry) if entry else None})

    return handler


api_add = _item_change(
    lambda ctx, eid, data, version: entries.add(
        ctx.db, eid, _int(data, "item_id"), editor=ctx.editor, expected_version=version
    )
)
api_move = _item_change(
    lambda ctx, eid, data, version: entries.move(
        ctx.db, _int(data, "item_id"), eid, editor=ctx.editor, expected_version=version
    )
)
api_drop = _item_change(
    lambda ctx, eid, data, version: entries.drop(
        ctx.db, eid, _ids(data, "item_ids"), editor=ctx.editor, expected_version=version
    )
)
api_lead = _item_change(
    lambda ctx, eid, data, version: entries.set_lead(
        ctx.db, eid, _int(data, "item_id"), editor=ctx.editor, expected_version=version
    )
)


def routes(desk_route: Callable[..., Any]) -> list[Route]:
    """The entry routes, wrapped by the desk's own route wrapper (session, CSRF, errors)."""
    return [
        Route("/entries/{entry_id:int}", desk_route(entry_page), methods=["GET"]),
        Route("/api/entries/include", desk_route(api_include, api=True), methods=["POST"]),
        Route("/api/entries/{entry_id:int}", desk_route(api_save, api=True), methods=["POST"]),
        Route(
            "/api/entries/{entry_id:int}/preview",
            desk_route(api_preview, api=True),
            methods=["POST"],
        ),
        Route("/api/entries/{entry_id:int}/items", desk_route(api_add, api=True), methods=["POST"]),
        Route("/api/entries/{entry_id:int}/move", desk_route(api_move, api=True), methods=["POST"]),
        Route("/api/entries/{entry_id:int}/drop", desk_route(api_drop, api=True), methods=["POST"]),
        Route("/api/entries/{entry_id:int}/lead", desk_route(api_lead, api=True), methods=["POST"]),
    ]
