"""`digest entry`: issue entries — a story included as one paragraph holding several items.

digest entry include ITEM [--keep ID …] [--lead-only] [--section NAME]
digest entry add ENTRY ITEM          any item (found with `digest search`) into an entry
digest entry move ITEM ENTRY         an item from its entry to another
digest entry drop ENTRY [ITEM …]     the whole entry, or some of its items
digest entry lead ENTRY ITEM         which item leads
digest entry list [--issue REF]      the coming issue's entries (or a recorded issue's)
digest entry show ENTRY              its items, the story's unused items, the paragraph
digest entry edit ENTRY… [--all] [--headline T] [--key-phrase T] [--blurb T] [--section S]
                  [--from-draft]     write an entry's paragraph (or accept the drafted one)
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import DigestError
from . import _db, app, editor_name, out, print_json, state

entry_app = typer.Typer(
    help="Issue entries: one paragraph, several items of one development.", no_args_is_help=True
)
app.add_typer(entry_app, name="entry")

_JSON = Annotated[bool, typer.Option("--json", help="Print the entry as JSON.")]


def _print_entry(entry: dict[str, Any] | None, as_json: bool, *, dropped: int = 0) -> None:
    if entry is None:
        if as_json:
            print_json(None)
        else:
            out.print(f"entry {dropped} dropped; its items are candidates again")
        return
    if as_json:
        print_json(entry)
        return
    head = entry.get("headline") or "(no headline yet)"
    issue = entry.get("issue")
    where = f"issue {issue['volume']}.{issue['number']}" if issue else "the coming issue"
    out.print(
        f"entry {entry['id']} · {where} · {entry.get('section') or 'no section'} · "
        f"version {entry['version']}: {head}",
        soft_wrap=True,
    )
    for item in entry["items"]:
        role = "lead   " if item["role"] == "lead" else "kept   "
        out.print(
            f"  {role}{item['id']:>6}  {item['source']} ({item['language'] or '?'})  "
            f"{item['published_at'][:10]}  {item['title']}",
            soft_wrap=True,
        )
    for item in entry.get("unused", []):
        mark = (
            f"in entry {item['entry_id']}"
            if item.get("entry_id")
            else f"used in entry {entry['id']}"
        )
        out.print(f"  {mark}: {item['id']}  {item['source']}  {item['title']}", soft_wrap=True)


@entry_app.command("include")
def entry_include(
    item: Annotated[int, typer.Argument(help="Any item of the story.")],
    keep: Annotated[
        list[int] | None,
        typer.Option(
            "--keep", help="A sibling to keep (repeatable); default: one item per other outlet."
        ),
    ] = None,
    lead_only: Annotated[bool, typer.Option("--lead-only", help="Keep no sibling.")] = False,
    section: Annotated[str | None, typer.Option(help="The entry's section.")] = None,
    as_json: _JSON = False,
) -> None:
    """Include a story: one entry with its lead and the siblings kept."""
    from ..pipeline.entries import include

    if keep and lead_only:
        raise DigestError("--keep and --lead-only contradict each other")
    settings = state.settings()
    with _db(settings) as db:
        entry = include(
            db,
            item,
            editor=editor_name(),
            keep=[] if lead_only else keep,
            section=section,
            sections=settings.issue.sections,
        )
    _print_entry(entry, as_json)


@entry_app.command("add")
def entry_add(
    entry: Annotated[int, typer.Argument(help="Entry id.")],
    item: Annotated[int, typer.Argument(help="Item id (any item, e.g. from `digest search`).")],
    as_json: _JSON = False,
) -> None:
    """Add an item to an entry."""
    from ..pipeline.entries import add

    with _db(state.settings()) as db:
        shown = add(db, entry, item, editor=editor_name())
    _print_entry(shown, as_json)


@entry_app.command("move")
def entry_move(
    item: Annotated[int, typer.Argument(help="Item id.")],
    entry: Annotated[int, typer.Argument(help="The entry it moves to.")],
    as_json: _JSON = False,
) -> None:
    """Move an item from its entry to another."""
    from ..pipeline.entries import move

    with _db(state.settings()) as db:
        shown = move(db, item, entry, editor=editor_name())
    _print_entry(shown, as_json)


@entry_app.command("drop")
def entry_drop(
    entry: Annotated[int, typer.Argument(help="Entry id.")],
    items: Annotated[
        list[int] | None, typer.Argument(help="Items to take out (default: the whole entry).")
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Drop an entry, or some of its items, from the issue (they become candidates)."""
    from ..pipeline.entries import drop

    with _db(state.settings()) as db:
        shown = drop(db, entry, items or (), editor=editor_name())
    _print_entry(shown, as_json, dropped=entry)


@entry_app.command("lead")
def entry_lead(
    entry: Annotated[int, typer.Argument(help="Entry id.")],
    item: Annotated[int, typer.Argument(help="The item to lead (one of the entry's).")],
    as_json: _JSON = False,
) -> None:
    """Choose which of an entry's items leads."""
    from ..pipeline.entries import set_lead

    with _db(state.settings()) as db:
        shown = set_lead(db, entry, item, editor=editor_name())
    _print_entry(shown, as_json)


@entry_app.command("list")
def entry_list(
    issue: Annotated[
        str | None,
        typer.Option(help="A recorded issue (id or VOL.NUM); default: the coming issue."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The coming issue's entries (or a recorded issue's), in issue order."""
    from ..pipeline.draft import order_entries
    from ..pipeline.entries import list_open
    from ..store.issues import find_issue

    settings = state.settings()
    with _db(settings) as db:
        issue_id = int(find_issue(db, issue)["id"]) if issue else None
        rows = list_open(db, issue_id=issue_id)
    # A recorded issue too: the desk numbers positions within each section.
    rows = order_entries(rows, settings.issue.sections)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no entries yet: include a story with `digest entry include ITEM`")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("entry", "section", "headline / lead", "items", "outlets"):
        table.add_column(col, overflow="fold")
    for r in rows:
        lead = r["items"][0] if r["items"] else {}
        table.add_row(
            str(r["id"]),
            r["section"] or "—",
            r["headline"] or lead.get("title") or "—",
            str(len(r["items"])),
            ", ".join(dict.fromkeys(i["source"] for i in r["items"])),
        )
    out.print(table)


@entry_app.command("edit")
def entry_edit(
    entries: Annotated[list[int] | None, typer.Argument(help="Entry ids.")] = None,
    all_entries: Annotated[
        bool, typer.Option("--all", help="Every entry of the coming issue.")
    ] = False,
    headline: Annotated[str | None, typer.Option(help="The one-line headline.")] = None,
    key_phrase: Annotated[
        str | None, typer.Option(help="Words of the paragraph to bold where they stand.")
    ] = None,
    blurb: Annotated[
        str | None, typer.Option(help="The paragraph: **bold** and [words](https://…).")
    ] = None,
    section: Annotated[str | None, typer.Option(help="One of [issue] sections.")] = None,
    from_draft: Annotated[
        bool,
        typer.Option(
            "--from-draft",
            help="Take the drafted headline and paragraph where the entry has none "
            "(the desk's “Start from the draft”, accepted as written).",
        ),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Write entries' headline, key phrase, paragraph or section; recorded under your OS user."""
    from ..pipeline import entries as use
    from ..pipeline.draft import order_entries

    settings = state.settings()
    changes = {k: v for k, v in (("headline", headline), ("key_phrase", key_phrase),
                                 ("blurb", blurb), ("section", section)) if v is not None}
    if not changes and not from_draft:
        raise DigestError("nothing to write: give --headline, --key-phrase, --blurb, "
                          "--section or --from-draft")
    with _db(settings) as db:
        ids = list(entries or [])
        if all_entries:
            ids += [r["id"] for r in order_entries(use.list_open(db), settings.issue.sections)]
        if not ids:
            raise DigestError("which entries? give their ids or --all")
        shown = []
        for entry_id in dict.fromkeys(ids):
            if changes:
                use.update(db, entry_id, {k: v or None for k, v in changes.items()},
                           editor=editor_name(), sections=settings.issue.sections)
            entry = (use.from_draft(db, entry_id, editor=editor_name()) if from_draft
                     else use.show(db, entry_id))
            shown.append(entry)
    if as_json:
        print_json(shown)
        return
    for entry in shown:
        _print_entry(entry, False)


@entry_app.command("show")
def entry_show(
    entry: Annotated[int, typer.Argument(help="Entry id.")],
    as_json: _JSON = False,
) -> None:
    """An entry: its items, the story's items it does not use, and its paragraph as drafted."""
    from ..pipeline.entries import show
    from ..templates.render import DRAFT_MARKER, entry_paragraph, entry_view

    with _db(state.settings()) as db:
        shown = show(db, entry)
    view = entry_view(shown)
    drafted = entry_paragraph(view)
    shown["paragraph"] = drafted["markdown"]
    shown["drafted_headline"] = view.headline
    shown["unwritten"] = drafted["unwritten"]
    if as_json:
        print_json(shown)
        return
    _print_entry(shown, False)
    marker = f"[{DRAFT_MARKER}] " if drafted["unwritten"] else ""
    out.print(f"\n{view.headline}\n{marker}{drafted['markdown']}", soft_wrap=True)
