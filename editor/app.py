"""The editor desk: a small Starlette app where editors triage, write and order the issue.

    request  → SecurityHeaders (CSP, nosniff, no framing) → route
    route    → body read (form or JSON) → worker thread:
                 session from the cookie (store.users)     else /login or 401
                 CSRF token for every POST                 else 403
                 the page's work, through the use cases (pipeline/), store/ and triage/
    changes  → store.editorial (versioned, audited in `edits`)
    errors   → one handler maps the error tree (errors.py): InputError 400, Forbidden 403,
               NotFoundError 404, ConflictError 409, anything else 500 (a template's failure
               names the template);
               a page for page routes, {"error": ...} for /api/ routes

Pages are server-rendered jinja2 (autoescaped); desk.js adds keyboard triage and posts JSON
with the X-CSRF-Token header, updating rows in place. The issue preview is the draft's own
renderer (templates/render.py) shown in a sandboxed frame.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..errors import (
    ConflictError,
    DigestError,
    FieldConflict,
    Forbidden,
    InputError,
    IssueStateError,
    NotFoundError,
    OpenComments,
    StaleEdit,
    StaleSave,
    TemplateRenderError,
)
from ..pipeline import next_issue, review
from ..pipeline.add_url import add_by_url, url_policy
from ..pipeline.enable_source import set_source_enabled
from ..pipeline.save_item import save_fields
from ..settings import Settings
from ..store import editorial, users
from ..store import review as review_store
from ..store.db import (
    open_db,
    open_db_readonly,
    sqlite_error,
    with_memory_sessions,
    writable,
)
from ..store.editorial import SETTABLE_STATUSES
from ..store.entries import entry_marks, entry_of
from ..store.items import other_sources
from ..store.sources import get_source_by_id, source_health, sources_by_id
from ..templates.render import parse_links, safe_url
from ..triage.clusters import cluster_members
from ..triage.model import model_warning
from . import delivery, entry_pages, story_pages
from .guard import (
    DEVICE_COOKIE,
    DEVICE_DAYS,
    LOGIN_TOKEN_SECONDS,
    BodyLimit,
    LoginLimits,
    Signer,
    add_error_code,
    alert_text,
    based_on_versions,
    device_id,
    server_key,
)
from .markup import blurb_preview_html, summary_html
from .queue import PAGE_SIZE, QueueFilters, load_page
from .security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SecurityHeaders,
    safe_next,
    tokens_match,
)

HERE = Path(__file__).resolve().parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The largest JSON body the desk accepts (a reorder of a big issue is a few kB).
MAX_JSON_BYTES = 256 * 1024
#: The issue preview's own policy: no script at all, inline styles allowed (the email's CSS is
#: inlined), framable by the desk only, and sandboxed, so even a renderer bug could not run code.
PREVIEW_PATH = "/issue/preview"
PREVIEW_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; "
        "img-src https: data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
        "sandbox allow-popups allow-popups-to-escape-sandbox"
    ),
    "x-frame-options": "SAMEORIGIN",
}


# --- the app's state ---------------------------------------------------------------------------


class Desk:
    """What every request shares: settings, templates, the login limiter, DB connections.

    One SQLite connection per worker thread: opening one per request costs more than a
    queue page query, and a connection must not be used by two threads at once.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limiter = LoginLimits(settings.editor.login_attempts,
                                   settings.editor.login_window_minutes * 60)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        #: The desk shows times, and reads dates, in [schedule] timezone.
        self.zone: tzinfo = desk_zone(settings)
        env = self.templates.env
        env.filters.update(when=lambda value: format_when(value, self.zone),
                           blurb=blurb_preview_html, summary=summary_html, safe_url=safe_url,
                           score_band=score_band, weight=format_weight)
        env.globals.update(issue_title=settings.issue.title, page_size=PAGE_SIZE,
                           zone_name=settings.schedule.timezone)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite_utils.Database] = []
        #: A database this process cannot write (a read-only copy or mount): the desk still
        #: shows it, opened read-only, with sessions kept in memory; changes answer one line.
        self.read_only = not writable(settings.store_path)
        self._shared: sqlite_utils.Database | None = None
        if self.read_only:
            self._shared = with_memory_sessions(open_db_readonly(settings.store_path))
            self._connections.append(self._shared)
        else:
            # Open once up front: migrations run here, not inside the first request.
            open_db(settings.store_path).close()
        self.signer = Signer(server_key(settings.data_dir))

    def db(self) -> sqlite_utils.Database:
        """This thread's connection to the store (read-only: the one shared connection)."""
        if self._shared is not None:
            return self._shared
        db = getattr(self._local, "db", None)
        if db is None:
            db = open_db(self.settings.store_path)
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        """Close every connection the worker threads opened."""
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()


@dataclass
class Ctx:
    """One authenticated request, as the page functions see it."""

    request: Request
    desk: Desk
    db: sqlite_utils.Database
    session: dict[str, Any]
    form: FormData | None = None
    data: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def editor(self) -> str:
        return str(self.session["user_name"])

    @property
    def csrf(self) -> str:
        return str(self.session["csrf_token"])

    @property
    def role(self) -> str:
        """'editor' or 'publisher', read from the account on every request."""
        return str(self.session.get("role") or "editor")

    @property
    def settings(self) -> Settings:
        return self.desk.settings

    def render(self, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
        """A page with the session's user and CSRF token available to the template."""
        full = {"editor": self.editor, "role": self.role, "csrf_token": self.csrf,
                "path": self.request.url.path, **context}
        return self.desk.templates.TemplateResponse(self.request, name, full,
                                                    status_code=status)


Handler = Callable[[Ctx], Response]


def desk_route(handler: Handler, *, api: bool = False
               ) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a page function: read the body, then authenticate, check CSRF and run it.

    The body is read on the event loop (it is async); the rest runs in a worker thread
    because SQLite calls block.
    """
    async def endpoint(request: Request) -> Response:
        form: FormData | None = None
        data: Any = None
        if request.method not in SAFE_METHODS:
            if api:
                body = await request.body()
                if len(body) > MAX_JSON_BYTES:
                    return JSONResponse({"error": "request too large"}, status_code=413)
                try:
                    data = json.loads(body or b"{}")
                except ValueError:
                    return JSONResponse({"error": "body is not JSON"}, status_code=400)
            else:
                form = await request.form()
        desk: Desk = request.app.state.desk
        return await run_in_threadpool(_run, handler, desk, request, form, data, api)

    return endpoint


def _run(handler: Handler, desk: Desk, request: Request, form: FormData | None, data: Any,
         api: bool) -> Response:
    db = desk.db()
    token = request.cookies.get(SESSION_COOKIE)
    session = users.get_session(db, token) if token else None
    if session is None:
        if api:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    ctx = Ctx(request=request, desk=desk, db=db, session=dict(session), form=form, data=data)
    # For the error handler, so an error page still shows who is logged in.
    request.state.session = ctx.session
    if request.method not in SAFE_METHODS:
        given = request.headers.get("x-csrf-token")
        if given is None and form is not None:
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not tokens_match(ctx.csrf, given):
            message = "missing or wrong CSRF token: reload the page and try again"
            if api:
                return JSONResponse({"error": message}, status_code=403)
            return HTMLResponse(f"<p>{message}</p>", status_code=403)
    return handler(ctx)


# --- errors ------------------------------------------------------------------------------------


def error_status(error: DigestError) -> int:
    """The HTTP status for an error of the tree: 403, 404, 400, 409, else 500."""
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, InputError):
        return 400
    if isinstance(error, ConflictError):
        return 409
    return 500


ERROR_HEADINGS = {400: "Not accepted", 403: "Not allowed", 404: "Not found",
                  409: "Changed meanwhile", 500: "Something went wrong"}


def digest_error(request: Request, error: Exception) -> Response:
    """The desk's one mapping of the error tree to responses (see the module docstring).

    Pages that want to keep what the user typed (the item form) catch their own errors first.
    """
    assert isinstance(error, DigestError)
    status = error_status(error)
    desk: Desk = request.app.state.desk
    message = error_message(error, desk.zone)
    if request.url.path.startswith("/api/"):
        body: dict[str, Any] = {"error": message}
        if isinstance(error, FieldConflict):
            body["fields"] = {k: {"theirs": a, "yours": b} for k, (a, b) in error.fields.items()}
        return JSONResponse(body, status_code=status)
    session = getattr(request.state, "session", None) or {}
    template = error.template if isinstance(error, TemplateRenderError) else None
    framed = request.url.path == PREVIEW_PATH
    context = {
        "editor": session.get("user_name", ""), "csrf_token": session.get("csrf_token", ""),
        "path": request.url.path, "message": message, "framed": framed,
        "heading": ("The issue template could not be rendered" if template is not None
                    else ERROR_HEADINGS[status]),
        "template": template,
    }
    response = desk.templates.TemplateResponse(request, "error.html", context,
                                               status_code=status)
    if framed:
        response.headers.update(PREVIEW_HEADERS)
    return response


def error_message(error: DigestError, zone: tzinfo) -> str:
    """The error's line for the desk: a stale save's time as the desk shows every time (in
    [schedule] timezone, labelled: format_when), not the stored UTC timestamp."""
    if isinstance(error, StaleSave):
        return error.describe(lambda value: format_when(value, zone))
    return str(error)


def store_failure(request: Request, error: Exception) -> Response:
    """An error SQLite raised past the store ("database is locked", "malformed"): one line,
    as any StoreError, never a traceback."""
    assert isinstance(error, sqlite3.Error)
    desk: Desk = request.app.state.desk
    return digest_error(request, sqlite_error(error, desk.settings.store_path))


# --- template helpers --------------------------------------------------------------------------


def desk_zone(settings: Settings) -> tzinfo:
    """The zone the desk shows times in: [schedule] timezone (UTC if it is not a zone)."""
    try:
        return ZoneInfo(settings.schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_when(value: str | None, zone: tzinfo = UTC) -> str:
    """'Jan 05 09:30 EST' for an ISO timestamp, in `zone` and labelled with it; the date only
    (no zone) when it is not this year's. A date without a time stays a date."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        if len(value) <= 10:
            return value
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    if local.year != datetime.now(zone).year:
        return local.strftime("%Y-%m-%d")
    return local.strftime("%b %d %H:%M ") + (local.tzname() or "UTC")


def score_band(score: float | None) -> str:
    """A CSS class for a score: high, mid (at the usual threshold), low."""
    if score is None:
        return "none"
    return "high" if score >= 12 else "mid" if score >= 6 else "low"


def format_weight(value: Any) -> str:
    """'+3', '-1.5': a reason's weight with its sign."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    text = f"{number:+.1f}".rstrip("0").rstrip(".")
    return text


# --- the queue ---------------------------------------------------------------------------------


def queue_page(ctx: Ctx) -> Response:
    """GET /: the candidates, filters, search and keyboard triage.

    A search the parser cannot read shows the queue with its filters and the reason, as 400.
    """
    params = ctx.request.query_params
    filters = QueueFilters.from_params(params)
    # The coming issue's window by default: since the last issue's date (a `since` in the
    # address, even empty, is the editor's choice). Dates are days in [schedule] timezone.
    window = _coming_window(ctx)
    if "since" not in params and window["since"]:
        filters = replace(filters, since=window["since"])
    sources = sources_by_id(ctx.db)
    page = load_page(ctx.db, filters, sources, ctx.desk.zone,
                     budget=ctx.settings.editor.search_budget_seconds)
    values = list(sources.values())
    options = {
        "sources": [s["name"] for s in values],
        "categories": sorted({s["category"] for s in values if s.get("category")}),
        "countries": sorted({s["country"] for s in values if s.get("country")}),
        "languages": sorted({s["language"] for s in values if s.get("language")}),
    }
    return ctx.render("queue.html", {
        "filters": filters, "page": page, "options": options,
        "statuses": ("candidate", "shortlisted", "included", "excluded", "filtered", "all"),
        "sections": ctx.settings.issue.sections,
        "add_error": alert_text(ctx.request.query_params.get("add_error")),
        "window": window, "timezone": ctx.settings.schedule.timezone,
        "model_warning": model_warning(ctx.db),
    }, status=400 if page.error else 200)


def _coming_window(ctx: Ctx) -> dict[str, Any]:
    """The coming issue's window: from the day after the last issue's date (None: no issue
    yet, so no default), with that issue's date for the label."""
    try:
        plan = next_issue.next_plan(ctx.db, ctx.settings)
    except DigestError:
        return {"since": "", "after": None}
    if plan.window_start is None:
        return {"since": "", "after": None}
    return {"since": (plan.window_start + timedelta(days=1)).isoformat(),
            "after": plan.window_start.isoformat()}


def set_status(ctx: Ctx) -> Response:
    """POST /api/items/status {ids, versions, status}: one decision for one or many items,
    atomically; `versions` (one per id) are those the decision was based on, and any item
    saved since refuses the whole change (409, like a stale item form)."""
    data = ctx.data if isinstance(ctx.data, dict) else {}
    ids = data.get("ids")
    status = data.get("status")
    if (not isinstance(ids, list) or not ids or len(ids) > 500
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise InputError("ids must be a list of 1 to 500 item ids", field="ids")
    versions = based_on_versions(ids, data.get("versions"))
    # The store checks the status (EditError, a 400) along with everything else.
    editorial.update_items(ctx.db, ids, {"status": status}, editor=ctx.editor,
                           sections=ctx.settings.issue.sections, expected_versions=versions)
    items = [_item_state(editorial.get_item(ctx.db, i)) for i in ids]
    return JSONResponse({"items": items})


def _item_state(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("id", "status", "status_by", "version", "rank", "section")}


# --- one item ----------------------------------------------------------------------------------


def _item_id(ctx: Ctx) -> int:
    try:
        return int(ctx.request.path_params["item_id"])
    except (KeyError, ValueError):
        raise NotFoundError("no such item") from None


def _link_choices(db: sqlite_utils.Database, item: Mapping[str, Any]
                  ) -> list[dict[str, str]]:
    """Extra source links an editor may pick: the story's other outlets and exact duplicates."""
    choices: dict[str, dict[str, str]] = {}
    for m in cluster_members(db, item["id"]):
        url = safe_url(m.get("url"))
        if url and url != item.get("url"):
            choices.setdefault(url, {"url": url, "label": m.get("source") or "",
                                     "title": m.get("title") or ""})
    for o in other_sources(db, item["id"]):
        url = safe_url(o.get("url"))
        if url and url != item.get("url"):
            choices.setdefault(url, {"url": url, "label": o.get("source") or "", "title": ""})
    return list(choices.values())


def _tags_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            return [t.strip() for t in value.split(",") if t.strip()]
    return [str(t) for t in value or []]


def item_form_values(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's editor fields as the form shows and posts them (text, links as URLs)."""
    def text(name: str) -> str:
        return str(item.get(name) or "").replace("\r\n", "\n").strip()

    return {
        "headline": text("headline"), "key_phrase": text("key_phrase"),
        "blurb": text("blurb"), "section": text("section"),
        "tags": ", ".join(_tags_list(item.get("tags"))),
        "rank": "" if item.get("rank") is None else str(item["rank"]),
        "note": text("note"), "lead_image": text("lead_image"),
        "image_credit": text("image_credit"),
        "links": [x["url"] for x in parse_links(item.get("links"))],
        "status": text("status"),
    }


def item_page(ctx: Ctx, *, values: Mapping[str, Any] | None = None, error: str = "",
              status: int = 200, conflicts: list[dict[str, Any]] | None = None,
              base: Mapping[str, Any] | None = None) -> Response:
    """GET /items/{id}: the item, its story, and the editor's fields.

    After a refused save, `values` are what the editor typed and `base` what the form is now
    based on; `conflicts` lists fields with both versions, shown side by side.
    """
    item = editorial.get_item(ctx.db, _item_id(ctx))
    choices = _link_choices(ctx.db, item)
    loaded = item_form_values(item)
    current: dict[str, Any] = {**loaded, "version": item.get("version") or 0}
    if values:
        current.update(values)
    # Links already chosen stay listed even if the story's membership changed since.
    known = {c["url"] for c in choices}
    for link in parse_links(item.get("links")):
        if link["url"] not in known:
            choices.append({"url": link["url"], "label": link["label"], "title": ""})
    members = cluster_members(ctx.db, item["id"])
    history = editorial.history(ctx.db, item["id"])
    reasons = item.get("reasons")
    if isinstance(reasons, str):
        try:
            reasons = json.loads(reasons or "[]")
        except ValueError:
            reasons = []
    return ctx.render("item.html", {
        "item": item, "form": current, "choices": choices, "members": members,
        "others": other_sources(ctx.db, item["id"]), "history": history[::-1][:30],
        "why": [r for r in reasons or [] if isinstance(r, dict)],
        "sections": ctx.settings.issue.sections, "statuses": SETTABLE_STATUSES,
        "error": error, "saved": ctx.request.query_params.get("saved") == "1",
        "story_message": story_pages.STORY_MESSAGES.get(
            ctx.request.query_params.get("story", ""), ""),
        "source": item.get("source") or _source_name(ctx.db, item),
        "entry_mark": entry_marks(ctx.db, [item["id"]]).get(item["id"], ""),
        "base_json": json.dumps(base if base is not None else loaded, ensure_ascii=False),
        "conflicts": conflicts or [], "neighbours": _neighbours(ctx, item["id"]),
        "comments": _entry_comments(ctx.db, int(item["id"])),
    }, status=status)


def _entry_comments(db: sqlite_utils.Database, item_id: int) -> list[dict[str, Any]]:
    """Open review comments on the entry that holds the item (none when no entry does)."""
    entry_id = entry_of(db, [item_id]).get(item_id)
    return review_store.entry_comments(db, str(entry_id)) if entry_id is not None else []


def _neighbours(ctx: Ctx, item_id: int) -> dict[str, Any]:
    """The previous and next entries in issue order, for moving on after a save."""
    _, groups = next_issue.grouped(ctx.db, ctx.settings)
    # The issue's entries, each by its lead item (the item page of the paragraph's source).
    ids = [int(e["items"][0]["id"]) for g in groups for e in g.items if e.get("items")]
    if item_id not in ids:
        return {}
    at = ids.index(item_id)
    return {"prev": ids[at - 1] if at > 0 else None,
            "next": ids[at + 1] if at + 1 < len(ids) else None,
            "at": at + 1, "of": len(ids)}


def _source_name(db: sqlite_utils.Database, item: Mapping[str, Any]) -> str:
    """The name of the item's source; "" when the row says none or the source is gone."""
    try:
        return str(get_source_by_id(db, item["source_id"])["name"])
    except (NotFoundError, KeyError):
        return ""


def item_get(ctx: Ctx) -> Response:
    """GET /items/{id}; after an add whose page could not be fetched, say so."""
    unfetched = ctx.request.query_params.get("fetched") == "0"
    return item_page(ctx, error=FETCH_FAILED if unfetched else "")


def item_save(ctx: Ctx) -> Response:
    """POST /items/{id}: save the fields the editor changed (pipeline.save_item).

    A field someone else changed meanwhile is a 409 showing both versions; a value the store
    will not take is a 400. Either way the form comes back with what the editor typed, so no
    text is lost. A form without `base` (an old page) falls back to the version check.
    """
    item_id = _item_id(ctx)
    form = ctx.form or FormData()
    item = editorial.get_item(ctx.db, item_id)

    def text(name: str, limit: int = 5000) -> str:
        value = form.get(name)
        return value.replace("\r\n", "\n").strip()[:limit] if isinstance(value, str) else ""

    submitted: dict[str, Any] = {k: text(k) for k in (
        "headline", "key_phrase", "blurb", "section", "tags", "rank", "note", "lead_image",
        "image_credit", "status")}
    submitted["blurb"] = text("blurb", 20_000)
    picked = [v for v in form.getlist("links") if isinstance(v, str)]
    submitted["links"] = picked
    try:
        version = int(text("version"))
    except ValueError:
        version = -1
    base: dict[str, Any] | None = None
    try:
        loaded = json.loads(text("base", 100_000) or "null")
        base = loaded if isinstance(loaded, dict) else None
    except ValueError:
        base = None

    if base is not None and not submitted["status"]:
        # A status the form cannot choose (candidate, filtered) posts "": not a change.
        submitted["status"] = base.get("status", "")

    def refuse(message: str, code: int, **extra: Any) -> Response:
        return item_page(ctx, values={**submitted, "version": version}, error=message,
                         status=code, base=extra.pop("new_base", base), **extra)

    labels = {c["url"]: c["label"] for c in _link_choices(ctx.db, item)}
    labels.update({x["url"]: x["label"] for x in parse_links(item.get("links"))})
    links = [{"url": u, "label": labels[u]} for u in dict.fromkeys(picked) if u in labels]

    changes: dict[str, Any] = {
        "headline": submitted["headline"] or None,
        "key_phrase": submitted["key_phrase"] or None,
        "blurb": submitted["blurb"] or None,
        "section": submitted["section"] or None,
        "tags": list(dict.fromkeys(t.strip() for t in submitted["tags"].split(",")
                                   if t.strip())),
        "rank": submitted["rank"] or None, "note": submitted["note"] or None,
        "lead_image": submitted["lead_image"] or None,
        "image_credit": submitted["image_credit"] or None, "links": links,
    }
    if submitted["status"] and submitted["status"] != item.get("status"):
        changes["status"] = submitted["status"]
    changes.setdefault("status", item.get("status"))
    try:
        # The store checks every value (section, status, rank, URLs): one set of rules.
        if base is None:
            editorial.update_item(ctx.db, item_id, changes, editor=ctx.editor,
                                  expected_version=version,
                                  sections=ctx.settings.issue.sections)
        else:
            save_fields(ctx.db, item_id, base=base, typed=submitted, changes=changes,
                        form_values=item_form_values, editor=ctx.editor,
                        sections=ctx.settings.issue.sections)
    except FieldConflict as e:
        now = item_form_values(editorial.get_item(ctx.db, item_id))
        # Fields the editor did not touch show (and are based on) the saved value; the ones
        # typed keep the typed text, now based on the saved value, so saving again wins.
        kept = {f: (submitted[f] if base and submitted[f] != base.get(f) else now[f])
                for f in submitted}
        rows = [{"field": f, "theirs": theirs or "", "yours": yours or ""}
                for f, (theirs, yours) in e.fields.items()]
        return item_page(ctx, values={**kept, "version": version}, status=409,
                         error=f"Not saved: {e}. Your text is kept in the form; save again "
                               "to keep yours.", conflicts=rows, base=now)
    except StaleEdit as e:
        return refuse(f"Not saved: {error_message(e, ctx.desk.zone)}. Your text is kept "
                      "below; reload to see their changes.", 409)
    except InputError as e:
        return refuse(str(e), 400)
    return RedirectResponse(f"/items/{item_id}?saved=1", status_code=303)


def blurb_preview(ctx: Ctx) -> Response:
    """POST /api/blurb-preview {text}: the blurb as it will read (bold and links only)."""
    data = ctx.data if isinstance(ctx.data, dict) else {}
    text = data.get("text")
    if not isinstance(text, str):
        raise InputError("text must be a string", field="text")
    return JSONResponse({"html": str(blurb_preview_html(text[:20_000]))})


FETCH_FAILED = ("The page could not be fetched, so this item is titled by its URL: "
                "write its headline.")


def item_add(ctx: Ctx) -> Response:
    """POST /items/add: store a page as a manual item (pipeline.add_url), open its page.

    A page that cannot be fetched is still added, titled by its URL; its page then says why.
    """
    form = ctx.form or FormData()
    raw = form.get("url")
    try:
        added = add_by_url(ctx.db, raw.strip() if isinstance(raw, str) else "",
                           ctx.settings.http, editor=ctx.editor,
                           addresses=url_policy(ctx.settings.editor))
    except DigestError as e:
        # A code, never the text: the queue page says only what ALERTS holds.
        return RedirectResponse("/?add_error=" + add_error_code(e), status_code=303)
    # A flag, not the error's text: the page never shows arbitrary text from its address.
    flag = "?fetched=0" if added.fetch_error else ""
    return RedirectResponse(f"/items/{added.item['id']}{flag}", status_code=303)


# --- the issue ---------------------------------------------------------------------------------


def issue_page(ctx: Ctx, *, error: str = "", confirm: str = "", status: int = 200,
               typed: Mapping[str, str] | None = None) -> Response:
    """GET /issue: the issue being prepared — the open draft, else the next scheduled date —
    its included items by section to reorder, its preview, its review state and comments.

    `error`, `confirm` and `typed` come from a refused review step or settings form, so the
    page says why and keeps what was typed.
    """
    desk_issue = review.desk_issue(ctx.db, ctx.settings)
    plan, groups = next_issue.grouped(ctx.db, ctx.settings, desk_issue.plan)
    done = ctx.request.query_params.get("done", "")
    return ctx.render("issue.html", {
        "plan": plan, "groups": groups, "desk": desk_issue,
        "can": {a: review.may(ctx.role, a) for a in (
            "submit", "approve", "reopen", "discard", "comment", "settings")},
        "error": error, "confirm": confirm, "typed": typed or {},
        "done": DONE_MESSAGES.get(done, ""),
        "images": _entry_images(groups),
        "default_footer": ctx.settings.issue.footer,
        **delivery.recorded_issues(ctx),
    }, status=status)


#: What the Issue page says after a step (a fixed text per step: no text from the URL).
DONE_MESSAGES = {
    "submit": "Submitted for review.", "approve": "Approved.", "reopen": "Reopened as a draft.",
    "discard": "Discarded: its number is free and its items are unassigned.",
    "comment": "Comment added.", "resolve": "Comment resolved.", "settings": "Settings saved.",
    "record": "Draft recorded: it can now be reviewed.",
}


def _entry_images(groups: list[next_issue.Group]) -> list[dict[str, str]]:
    """Images of the issue's entries an editor may pick as the lead image."""
    seen: dict[str, dict[str, str]] = {}
    for g in groups:
        for entry in g.items:
            for it in entry.get("items") or [entry]:
                url = safe_url(it.get("lead_image") or it.get("image_url"))
                if url and url not in seen:
                    seen[url] = {"url": url,
                                 "credit": it.get("image_credit") or it.get("source") or "",
                                 "label": str(entry.get("headline") or it.get("title") or "")}
    return list(seen.values())


def _issue_id(ctx: Ctx) -> int:
    try:
        return int(ctx.request.path_params["issue_id"])
    except (KeyError, ValueError):
        raise NotFoundError("no such issue") from None


def _form_text(ctx: Ctx, name: str, limit: int = 5000) -> str:
    value = (ctx.form or FormData()).get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _issue_step(step: Callable[[Ctx, int], Any]) -> Handler:
    """A review step posted from the Issue page: done → back to it with a message; refused
    (wrong state, unwritten entries, open comments, a bad value) → the page with the reason.
    A role that may not take the step gets 403 from the error handler."""
    def handler(ctx: Ctx) -> Response:
        name = step.__name__.removeprefix("_step_")
        try:
            step(ctx, _issue_id(ctx))
        except OpenComments as e:
            return issue_page(ctx, confirm=str(e), status=409)
        except (IssueStateError, InputError) as e:
            typed = {k: v for k, v in (ctx.form or FormData()).items()
                     if isinstance(v, str) and k != "csrf_token"}
            return issue_page(ctx, error=str(e), status=error_status(e), typed=typed)
        return RedirectResponse(f"/issue?done={name}", status_code=303)
    return handler


def _step_submit(ctx: Ctx, issue_id: int) -> None:
    review.submit(ctx.db, issue_id, actor=ctx.editor, role=ctx.role)


def _step_approve(ctx: Ctx, issue_id: int) -> None:
    review.approve(ctx.db, ctx.settings, issue_id, actor=ctx.editor, role=ctx.role,
                   confirm_open_comments=_form_text(ctx, "confirm") == "1")


def _step_reopen(ctx: Ctx, issue_id: int) -> None:
    review.reopen(ctx.db, issue_id, actor=ctx.editor, role=ctx.role)


def _step_discard(ctx: Ctx, issue_id: int) -> None:
    review.discard(ctx.db, ctx.settings, issue_id, actor=ctx.editor, role=ctx.role)


def _step_comment(ctx: Ctx, issue_id: int) -> None:
    review.comment(ctx.db, ctx.settings, issue_id, _form_text(ctx, "entry", 40),
                   _form_text(ctx, "text", review.MAX_COMMENT + 1), actor=ctx.editor,
                   role=ctx.role)


def _step_resolve(ctx: Ctx, issue_id: int) -> None:
    try:
        comment_id = int(ctx.request.path_params["comment_id"])
    except (KeyError, ValueError):
        raise NotFoundError("no such comment") from None
    if review.comment_issue(ctx.db, comment_id) != issue_id:
        raise NotFoundError(f"issue {issue_id} has no comment {comment_id}")
    review.resolve(ctx.db, comment_id, actor=ctx.editor, role=ctx.role)


def _step_settings(ctx: Ctx, issue_id: int) -> None:
    values = {k: _form_text(ctx, k) for k in ("date", "number", "image_url", "image_credit",
                                              "footer")}
    picked = _form_text(ctx, "image_pick")
    if picked and not values["image_url"]:
        values["image_url"] = picked
    review.save_settings(ctx.db, ctx.settings, issue_id, values, actor=ctx.editor,
                         role=ctx.role)


def issue_record(ctx: Ctx) -> Response:
    """POST /issue/record: record the planned issue (no files yet) so it can be reviewed."""
    review.require(ctx.role, "submit")
    plan = review.desk_plan(ctx.db, ctx.settings)
    review.record_issue(ctx.db, ctx.settings, plan, actor=ctx.editor)
    return RedirectResponse("/issue?done=record", status_code=303)


def issue_preview(ctx: Ctx) -> Response:
    """GET /issue/preview: the email HTML as the draft renders it, for the desk's frame.

    Served with PREVIEW_HEADERS (its error page too, so the frame can show it).
    """
    html = next_issue.preview_html(ctx.db, ctx.settings)
    return HTMLResponse(html, headers=PREVIEW_HEADERS)


def issue_order(ctx: Ctx) -> Response:
    """POST /api/issue/order {sections: [{name, ids}]}: ranks (and sections) from the order."""
    data = ctx.data if isinstance(ctx.data, dict) else {}
    groups = data.get("sections")
    if not isinstance(groups, list):
        raise InputError("sections must be a list", field="sections")
    order: list[tuple[str | None, list[int]]] = []
    allowed = set(ctx.settings.issue.sections)
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("ids"), list):
            raise InputError("each section needs a name and ids", field="sections")
        name = g.get("name") or None
        if name is not None and name not in allowed:
            raise InputError(f"unknown section {name!r}", field="sections")
        ids = g["ids"]
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise InputError("ids must be item ids", field="sections")
        order.append((name, ids))
    changed = next_issue.save_order(ctx.db, order, editor=ctx.editor,
                                    sections=ctx.settings.issue.sections)
    return JSONResponse({"changed": changed})


# --- sources -----------------------------------------------------------------------------------


def sources_page(ctx: Ctx) -> Response:
    """GET /sources: each source's health, with enable/disable."""
    rows = source_health(ctx.db, stale_days=ctx.settings.collect.stale_days)
    # Only ever say what happened to a source that exists: no arbitrary text from the URL.
    changed = ctx.request.query_params.get("changed", "")
    row = next((r for r in rows if r["name"] == changed), None)
    message = f"{row['name']} {'enabled' if row['enabled'] else 'disabled'}" if row else ""
    return ctx.render("sources.html", {
        "rows": rows, "persisted": ctx.settings.config_path is not None, "message": message,
    })


def source_toggle(ctx: Ctx) -> Response:
    """POST /sources/{name}/enabled: in sources.toml when it is the user's, then the database.

    pipeline.enable_source does both, in the same order as `digest sources enable/disable`.
    """
    name = ctx.request.path_params["name"]
    form = ctx.form or FormData()
    set_source_enabled(ctx.db, ctx.settings, name, form.get("enabled") == "1")
    return RedirectResponse("/sources?changed=" + quote(name), status_code=303)


# --- logging in and out ------------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _login_form(desk: Desk, request: Request, *, error: str = "", status: int = 200,
                username: str = "") -> Response:
    token = request.cookies.get(LOGIN_COOKIE)
    if not desk.signer.valid(token, "login", max_age=LOGIN_TOKEN_SECONDS / 2):
        token = desk.signer.issue("login")
    db = desk.db()
    context = {"csrf_token": token, "error": error, "username": username,
               "next": safe_next(request.query_params.get("next")),
               "no_accounts": users.user_count(db) == 0, "editor": ""}
    response = desk.templates.TemplateResponse(request, "login.html", context,
                                               status_code=status)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=_secure(request), path="/login", max_age=3600)
    return response


async def favicon(_request: Request) -> Response:
    """GET /favicon.ico: browsers ask for it whatever the page links; the desk's is an SVG."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


async def login_get(request: Request) -> Response:
    """GET /login: the form, with a CSRF token tied to a pre-session cookie."""
    desk: Desk = request.app.state.desk
    return await run_in_threadpool(_login_form, desk, request)


async def login_post(request: Request) -> Response:
    """POST /login: CSRF, rate limit (429), password, then a session cookie."""
    desk: Desk = request.app.state.desk
    form = await request.form()
    return await run_in_threadpool(_login, desk, request, form)


def _login(desk: Desk, request: Request, form: FormData) -> Response:
    def field_(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    cookie = request.cookies.get(LOGIN_COOKIE)
    # Double submit, and signed by this server: a value the client made up is refused.
    if (not tokens_match(cookie, field_("csrf_token"))
            or not desk.signer.valid(cookie, "login", max_age=LOGIN_TOKEN_SECONDS)):
        return HTMLResponse("<p>missing or wrong CSRF token: reload the login page</p>",
                            status_code=403)
    username = field_("username").strip()[:200]
    address = _client(request)
    device_cookie = request.cookies.get(DEVICE_COOKIE)
    device = (device_id(device_cookie) if device_cookie and desk.signer.valid(
        device_cookie, "device", username.casefold(), max_age=DEVICE_DAYS * 86400) else None)
    if desk.limiter.blocked(username, address, device):
        minutes = desk.settings.editor.login_window_minutes
        return _login_form(desk, request, username=username, status=429,
                           error=f"Too many failed logins: wait up to {minutes} minutes.")
    db = desk.db()
    account = users.authenticate(db, username, field_("password")) if username else None
    if account is None:
        desk.limiter.failed(username, address, device)
        return _login_form(desk, request, username=username, status=401,
                           error="Wrong user name or password.")
    desk.limiter.succeeded(username, address, device)
    token, _csrf = users.create_session(db, account["name"], desk.settings.editor.session_hours)
    target = safe_next(field_("next") or request.query_params.get("next"))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=_secure(request), path="/",
                        max_age=desk.settings.editor.session_hours * 3600)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    response.set_cookie(DEVICE_COOKIE, desk.signer.issue("device", account["name"].casefold()),
                        httponly=True, samesite="strict", secure=_secure(request),
                        path="/login", max_age=DEVICE_DAYS * 86400)
    return response


def logout(ctx: Ctx) -> Response:
    """POST /logout: end the session server-side and drop the cookie."""
    token = ctx.request.cookies.get(SESSION_COOKIE)
    if token:
        users.delete_session(ctx.db, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=_secure(ctx.request))
    return response


# --- the app -----------------------------------------------------------------------------------


def create_app(settings: Settings) -> Starlette:
    """The desk for these settings (opens and migrates the store once, up front)."""
    desk = Desk(settings)
    routes = [
        Route("/", desk_route(queue_page)),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/login", login_get, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", desk_route(logout), methods=["POST"]),
        Route("/items/add", desk_route(item_add), methods=["POST"]),
        Route("/items/{item_id:int}", desk_route(item_get), methods=["GET"]),
        Route("/items/{item_id:int}", desk_route(item_save), methods=["POST"]),
        Route("/issue", desk_route(issue_page)),
        Route("/issue/record", desk_route(issue_record), methods=["POST"]),
        *[Route(f"/issues/{{issue_id:int}}/{name}", desk_route(_issue_step(step)),
                methods=["POST"])
          for name, step in (("submit", _step_submit), ("approve", _step_approve),
                             ("reopen", _step_reopen), ("discard", _step_discard),
                             ("comments", _step_comment), ("settings", _step_settings))],
        Route("/issues/{issue_id:int}/comments/{comment_id:int}/resolve",
              desk_route(_issue_step(_step_resolve)), methods=["POST"]),
        Route("/issue/preview", desk_route(issue_preview)),
        Route("/issues/{issue_id:int}/export.{fmt:str}", desk_route(delivery.issue_export)),
        Route("/issues/{issue_id:int}/send-test", desk_route(delivery.issue_send_test),
              methods=["POST"]),
        Route("/issues/{issue_id:int}/send", desk_route(delivery.issue_send), methods=["POST"]),
        Route("/sources", desk_route(sources_page)),
        Route("/sources/{name:path}/enabled", desk_route(source_toggle), methods=["POST"]),
        Route("/api/items/status", desk_route(set_status, api=True), methods=["POST"]),
        Route("/api/blurb-preview", desk_route(blurb_preview, api=True), methods=["POST"]),
        Route("/api/issue/order", desk_route(issue_order, api=True), methods=["POST"]),
        *entry_pages.routes(desk_route),
        *story_pages.routes(desk_route),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        desk.close()

    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={DigestError: digest_error,
                                        sqlite3.Error: store_failure})
    app.state.desk = desk
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # outermost: a 413 carries the headers too
    return app

