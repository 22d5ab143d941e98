"""The editor desk's CLI twin: `digest tag`, `digest history`, `digest add-url`, `digest users`.

Edits made here are recorded under the operating-system user's name, exactly as the web desk
records its logged-in editor's. Passwords come from stdin (or a hidden prompt), never from an
argument: arguments end up in shell history and in `ps` output.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import DigestError
from . import _db, app, editor_name, err, out, print_json, state

users_app = typer.Typer(help="Editor accounts for the web desk.", no_args_is_help=True)
app.add_typer(users_app, name="users")


# --- tag ---------------------------------------------------------------------------------------


@app.command()
def tag(
    ids: Annotated[list[int], typer.Argument(help="Item ids (see `digest items`).")],
    include: Annotated[bool, typer.Option("--include", help="Put in the issue.")] = False,
    exclude: Annotated[bool, typer.Option("--exclude", help="Keep out of the issue.")] = False,
    shortlist: Annotated[bool, typer.Option("--shortlist", help="Consider for the issue.")] = False,
    candidate: Annotated[bool, typer.Option(
        "--candidate", help="Undo a decision (triage still leaves the item alone).")] = False,
    section: Annotated[str | None, typer.Option(help="Section ('' clears).")] = None,
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", help="Set the tag list, replacing the old one (repeatable).")] = None,
    clear_tags: Annotated[bool, typer.Option("--clear-tags", help="Remove every tag.")] = False,
    add_tags: Annotated[list[str] | None, typer.Option(
        "--add-tag", help="Add a tag, keeping the others (repeatable).")] = None,
    remove_tags: Annotated[list[str] | None, typer.Option(
        "--remove-tag", help="Remove a tag (repeatable).")] = None,
    headline: Annotated[str | None, typer.Option(help="Headline ('' clears).")] = None,
    key_phrase: Annotated[str | None, typer.Option(
        "--key-phrase", help="Phrase bolded in the details ('' clears).")] = None,
    blurb: Annotated[str | None, typer.Option(
        help="Details paragraph: **bold** and [links](https://…) only ('' clears).")] = None,
    rank: Annotated[str | None, typer.Option(
        help="Order within the section, 0-9999, lower first ('' clears).")] = None,
    note: Annotated[str | None, typer.Option(help="Note for other editors ('' clears).")] = None,
    image: Annotated[str | None, typer.Option(
        help="Lead image URL for the issue ('' clears).")] = None,
    image_credit: Annotated[str | None, typer.Option(
        "--image-credit", help="Who the image is from ('' clears).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
) -> None:
    """Decide about items: status, section, tags and text. All items change, or none."""
    from ..store.editorial import update_items

    statuses = [s for s, on in (("included", include), ("excluded", exclude),
                                ("shortlisted", shortlist), ("candidate", candidate)) if on]
    if len(statuses) > 1:
        raise DigestError("choose one of --include, --exclude, --shortlist, --candidate")
    if tags and clear_tags:
        raise DigestError("--tag and --clear-tags contradict each other")
    changes: dict[str, Any] = {}
    if statuses:
        changes["status"] = statuses[0]
    if tags is not None or clear_tags:
        changes["tags"] = list(tags or [])
    for field, value in (("section", section), ("headline", headline),
                         ("key_phrase", key_phrase), ("blurb", blurb), ("rank", rank),
                         ("note", note), ("lead_image", image), ("image_credit", image_credit)):
        if value is not None:
            changes[field] = value
    if not changes and not add_tags and not remove_tags:
        raise DigestError("nothing to change: give a status (--include, …) or a field to set")
    settings = state.settings()
    with _db(settings) as db:
        rows = update_items(db, ids, changes, editor=editor_name(),
                            sections=settings.issue.sections,
                            add_tags=add_tags or (), remove_tags=remove_tags or ())
    if as_json:
        print_json(rows)
        return
    for r in rows:
        details = [r["status"], r["section"] or "no section"]
        if r["tags"]:
            details.append("tags: " + ", ".join(r["tags"]))
        if r["rank"] is not None:
            details.append(f"rank {r['rank']}")
        out.print(f"{r['id']}  {' · '.join(details)}  {r['headline'] or r['title']}",
                  soft_wrap=True)


# --- history -----------------------------------------------------------------------------------


@app.command()
def history(
    item: Annotated[int | None, typer.Argument(help="Item id.")] = None,
    issue: Annotated[str | None, typer.Option(
        "--issue", help="An issue's trail instead (id or VOL.NUM; 'all' for every issue).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Every change editors made to an item, or an issue's review trail (--issue)."""
    from ..store.editorial import history as item_history

    if (item is None) == (issue is None):
        raise DigestError("give an item id, or --issue N")
    if issue is not None:
        _issue_history(issue, as_json)
        return
    assert item is not None
    with _db(state.settings(), write=False) as db:
        rows = item_history(db, item)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print(f"item {item} has not been edited")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("at", "editor", "field", "old", "new"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["at"].replace("T", " ").rstrip("Z"), r["editor"], r["field"],
                      _short(r["old"]), _short(r["new"]))
    out.print(table)


def _issue_history(ref: str, as_json: bool) -> None:
    """State moves, comments and settings changes of one issue (or all), newest first."""
    from ..store.issues import find_issue
    from ..store.review import events

    with _db(state.settings()) as db:
        issue_id = None if ref == "all" else int(find_issue(db, ref)["id"])
        rows = events(db, issue_id)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no review events yet")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("at", "who", "issue", "event", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows:
        move = f"{r['from_status']} → {r['to_status']}" if r["to_status"] else ""
        detail = " ".join(x for x in (move, f"entry {r['entry']}" if r["entry"] else "",
                                      _short(r["detail"]) if r["detail"] else "") if x)
        table.add_row(r["at"].replace("T", " ").rstrip("Z"), r["actor"], r["issue"],
                      r["event"], detail)
    out.print(table)


def _short(value: str | None, limit: int = 80) -> str:
    if value is None:
        return "—"
    text = " ".join(value.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- add-url -----------------------------------------------------------------------------------


@app.command("add-url")
def add_url(
    url: Annotated[str, typer.Argument(help="The article's address (http or https).")],
    title: Annotated[str | None, typer.Option(
        help="Title to use instead of the page's.")] = None,
    no_fetch: Annotated[bool, typer.Option(
        "--no-fetch", help="Do not fetch the page (needs --title).")] = False,
) -> None:
    """Add an item no feed announced; prints its id (an already stored URL prints that item's).

    A page that cannot be fetched is still added, titled by its URL, with a warning (as the
    desk does): rename it with `digest tag ID --headline …`.
    """
    from ..pipeline.add_url import add_by_url, url_policy

    if no_fetch and not title:
        raise DigestError("--no-fetch needs --title")
    settings = state.settings()
    with _db(settings) as db:
        added = add_by_url(db, url, settings.http, editor=editor_name(), title=title,
                           fetch=not no_fetch, addresses=url_policy(settings.editor))
    item = added.item
    if added.fetch_error:
        err.print(f"[yellow]warning:[/yellow] could not fetch the page, added it titled by "
                  f"its URL: {escape(added.fetch_error)}", markup=True, soft_wrap=True)
    if added.created:
        err.print(f"added item {item['id']}: {item['title']}", soft_wrap=True)
    else:
        err.print(f"already stored as item {item['id']} ({item['source']}): {item['title']}",
                  soft_wrap=True)
    out.print(str(item["id"]))


# --- users -------------------------------------------------------------------------------------


def _read_password(password_stdin: bool, *, confirm: bool = True) -> str:
    """The password from stdin (one line, its newline dropped), else a hidden prompt."""
    if password_stdin:
        text = sys.stdin.readline()
        return text[:-1].removesuffix("\r") if text.endswith("\n") else text
    if not sys.stdin.isatty():
        raise DigestError("pass the password on stdin with --password-stdin "
                          "(it is never taken as an argument)")
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat it: ") != first:
        raise DigestError("the passwords differ; nothing was changed")
    return first


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name: letters, digits, '.', '_', '-'.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from stdin (one line).")] = False,
    role: Annotated[str, typer.Option(
        help="editor (writes and submits) or publisher (also approves, reopens, discards)."
    )] = "editor",
) -> None:
    """Create an account for the web desk."""
    from ..store.users import add_user

    password = _read_password(password_stdin)
    with _db(state.settings()) as db:
        user = add_user(db, name, password, role)
    out.print(f"added user {user['name']} ({user['role']})")


@users_app.command("set-role")
def users_set_role(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help="editor or publisher.")],
) -> None:
    """Make an account an editor or a publisher."""
    from ..store.users import set_role

    with _db(state.settings()) as db:
        user = set_role(db, name, role)
    out.print(f"{user['name']} is now {user['role']}")


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Every account, with when it last logged in."""
    from ..store.users import list_users

    with _db(state.settings(), write=False) as db:
        rows = list_users(db)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no users yet: add one with 'digest users add NAME'")
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "role", "created", "last login"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["role"], r["created_at"], r["last_login_at"] or "never")
    out.print(table)


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Delete an account and end its sessions (its past edits keep its name)."""
    from ..store.users import remove_user

    with _db(state.settings()) as db:
        remove_user(db, name)
    out.print(f"removed user {name}")


@users_app.command("set-password")
def users_set_password(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from stdin (one line).")] = False,
) -> None:
    """Replace an account's password; its open sessions end."""
    from ..store.users import set_password

    password = _read_password(password_stdin)
    with _db(state.settings()) as db:
        set_password(db, name, password)
    out.print(f"password of {name} changed")
