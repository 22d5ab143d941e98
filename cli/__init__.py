"""`digest`: the one front door. Parses arguments, calls down, prints; holds no logic of its own.

Each area's commands live in a module of this package (collect, sources, …) and register on
`app` when imported at the bottom of this file. Prefect is imported only by the commands that
run flows (it costs about a second to import).
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .. import store as _store  # noqa: F401  (first: sqlite-utils without numpy, see there)
from ..errors import DigestError
from ..settings import Settings, load_settings

app = typer.Typer(
    name="digest",
    help="Alliance Digest: collect, triage and draft the US-Japan Alliance Digest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Markup and emoji codes off by default: feed titles, server messages and rule names may hold
# "[...]" or ":japan:"; styled lines opt in
# with markup=True and escape() what they interpolate.
out = Console(highlight=False, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, markup=False, emoji=False)


class State:
    """Options shared by every command."""

    config: str | None = None
    #: `digest --verbose`: Prefect's own log lines on the console (else in the data folder).
    verbose: bool = False

    def settings(self) -> Settings:
        return load_settings(self.config)


state = State()


@app.callback()
def main_options(
    config: Annotated[
        str | None,
        typer.Option("--config", envvar="DIGEST_CONFIG",
                     help="digest.toml to use (default ./digest.toml, else the packaged one)."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v",
                     help="Show Prefect's own log lines (default: <data folder>/prefect.log)."),
    ] = False,
) -> None:
    """Alliance Digest."""
    from ..flows import quiet_prefect

    quiet_prefect(verbose)  # before any command imports Prefect, which reads its settings once
    state.config = str(Path(config).expanduser().resolve()) if config else None
    state.verbose = verbose


def route_prefect_logs(settings: Settings) -> None:
    """Unless --verbose, what Prefect would print goes to its log in the data folder.

    Call it once Prefect is imported, before a flow runs: commands print what the user needs
    (a summary, where the files are, what failed), not Prefect's internals.
    """
    if state.verbose:
        return
    from ..flows import PREFECT_LOG, log_prefect_to

    log_prefect_to(settings.data_dir / PREFECT_LOG)


def main() -> None:
    """Console-script entry point: every DigestError becomes one line and exit status 1.

    So does an error SQLite raises past the store's own handling ("database is locked",
    "database disk image is malformed"): one line naming the database and what to do.
    """
    import sqlite3

    try:
        app()
    except DigestError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, soft_wrap=True)
        sys.exit(1)
    except sqlite3.Error as e:
        from ..store.db import sqlite_error

        err.print(f"[red]error:[/red] {escape(str(sqlite_error(e, _store_path())))}",
                  markup=True, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


def _store_path() -> Path | None:
    """The database the command used, for an error message; None if settings cannot load."""
    try:
        return state.settings().store_path
    except DigestError:
        return None


@contextmanager
def _db(settings: Settings, *, write: bool = True) -> Iterator[Any]:
    """The store for one command: read-only (`write=False`, works in a read-only folder), or
    for writing, refused if `quick_check` finds it damaged."""
    from ..store.db import open_db_readonly, open_for_writing

    db = open_for_writing(settings.store_path) if write else open_db_readonly(
        settings.store_path)
    try:
        yield db
    finally:
        db.close()


def editor_name() -> str:
    """Who the CLI records as the editor: the OS user (it runs with the machine owner's say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        # No login name (containers without a passwd entry): still say where the edit came from.
        return "cli"


def print_json(data: Any) -> None:
    """Every command's --json output: UTF-8 text as is (日米, not \\u65e5), one-space indents."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _register() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from . import (  # noqa: F401
        collect,
        delivery,
        deployments,
        desk,
        drafting,
        editorial,
        entries,
        sources,
        triage,
    )


_register()
