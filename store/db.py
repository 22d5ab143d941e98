"""Opening the database: pragmas, then migrations; read-only opens; SQLite errors as one line.

Write commands open with `open_db` (and `open_for_writing` refuses a damaged file); read-only
commands use `open_db_readonly`, which works on a read-only data folder too. `sqlite_error`
turns what SQLite raises ("database is locked", "database disk image is malformed",
"attempt to write a readonly database") into a StoreError of one line.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlite_utils

from ..errors import DatabaseBusy, DatabaseDamaged, DigestError, SearchTooBroad, StoreError
from .migrations import MIGRATIONS, migrate, schema_version

#: How long a writer waits for another process's lock before giving up, in ms.
BUSY_TIMEOUT_MS = 10_000


def open_db(path: str | Path, *, migrate_schema: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database at `path`, with WAL, foreign keys and migrations.

    The connection may be used from another thread than the one that opened it (Prefect runs
    tasks in worker threads), but by one thread at a time.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        with db.ensure_autocommit_on():
            # WAL lets the editor desk read while a collect run writes; NORMAL sync is durable
            # across application crashes (kill -9), which is what we need.
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint the WAL every ~40 MB rather than every 4 MB (SQLite's default): a collect
        # run commits every few dozen sources, and each checkpoint rewrote (and synced) the
        # same index pages again; fewer of them made storing ~10% cheaper.
        db.execute("PRAGMA wal_autocheckpoint = 10000")
        db.execute("PRAGMA foreign_keys = ON")
        if migrate_schema:
            migrate(db)
        return db
    except sqlite3.DatabaseError as e:
        raise sqlite_error(e, path, doing="cannot open database") from None
    except OSError as e:
        raise StoreError(f"{path}: cannot open database: {e.strerror}") from None


#: Where the README says how to back the database up and restore it.
BACKUP_ADVICE = "README, section Backups"


def sqlite_error(error: sqlite3.Error, path: str | Path | None,
                 doing: str = "database error") -> DigestError:
    """The one line a user sees for an error SQLite raised (callers raise it `from None`)."""
    where = f"{path}: " if path else ""
    text = str(error)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return DatabaseBusy(
            f"{where}the database is busy: another process held its write lock for over "
            f"{BUSY_TIMEOUT_MS // 1000} s ({text}); try again when it has finished")
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        opening = f"{doing}: " if doing != "database error" else ""
        return DatabaseDamaged(
            f"{where}{opening}the database is damaged ({text}): run `digest check` to see what is "
            f"wrong, and restore a backup ({BACKUP_ADVICE})")
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{where}the database cannot be written here ({text}): this "
                          "command writes; run it where the data folder is writable")
    return StoreError(f"{where}{doing}: {text}")


def open_db_readonly(path: str | Path) -> sqlite_utils.Database:
    """Open the database for reading only (sqlite `mode=ro`), for commands that only read.

    Works in a read-only data folder: while a -wal file is there SQLite reads through it;
    without one (a cleanly closed database) `mode=ro` cannot create the shared-memory file
    and the file is opened `immutable` instead, which is safe as nothing here can write it.
    A missing or not yet migrated database is first created or migrated read-write (an
    error of one line if the folder is read-only).
    """
    path = Path(path)
    if not path.exists():
        open_db(path).close()
    db = _connect_readonly(path)
    try:
        behind = schema_version(db) < len(MIGRATIONS)
    except sqlite3.DatabaseError as e:
        db.close()
        raise sqlite_error(e, path, doing="cannot open database") from None
    if behind:
        db.close()
        open_db(path).close()
        db = _connect_readonly(path)
    return db


def writable(path: str | Path) -> bool:
    """Can this process write the database and its folder (journal, -wal and -shm files)?"""
    path = Path(path)
    folder_ok = os.access(path.parent, os.W_OK)
    return folder_ok and (not path.exists() or os.access(path, os.W_OK))


def with_memory_sessions(db: sqlite_utils.Database) -> sqlite_utils.Database:
    """Let a read-only connection log users in: `sessions` becomes a temporary table of this
    connection (temporary tables are found before the main database's), so store.users works
    unchanged and nothing is written to the file. The desk shares this one connection between
    its threads, so every request sees the same sessions; they end when the desk stops.
    """
    db.execute("CREATE TEMP TABLE IF NOT EXISTS sessions (token_hash TEXT PRIMARY KEY, "
               "user_id INTEGER, csrf_token TEXT, created_at TEXT, expires_at TEXT)")
    return db


def _connect_readonly(path: Path) -> sqlite_utils.Database:
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            wal = path.with_name(path.name + "-wal")
            if wal.exists() or os.access(path.parent, os.W_OK):
                raise
            conn = sqlite3.connect(uri + "&immutable=1", uri=True, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return sqlite_utils.Database(conn)
    except sqlite3.DatabaseError as e:
        raise sqlite_error(e, path, doing="cannot open database") from None


def integrity_problems(db: sqlite_utils.Database, *, quick: bool = False,
                       limit: int = 100, seconds: float | None = None) -> list[str] | None:
    """What SQLite's integrity_check (or the cheaper quick_check) finds wrong; [] if nothing.

    A file damaged badly enough that the check itself fails reports that error as its one
    problem. With `seconds`, a check still running then stops: None (nothing known).
    """
    pragma = "quick_check" if quick else "integrity_check"
    deadline = time.monotonic() + (seconds or 0.0)
    if seconds is not None:
        db.conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _BUDGET_STEPS)
    try:
        rows = [r[0] for r in db.execute(f"PRAGMA {pragma}({int(limit)})").fetchall()]
    except sqlite3.OperationalError as e:
        if seconds is not None and "interrupted" in str(e):
            return None
        return [str(e)]
    except sqlite3.DatabaseError as e:
        return [str(e)]
    finally:
        if seconds is not None:
            db.conn.set_progress_handler(None, 0)
    if rows == ["ok"]:
        return []
    # A row may hold several lines, under a "*** in database main ***" heading.
    return [line.strip() for row in rows for line in str(row).splitlines()
            if line.strip() and not line.startswith("***")]


#: Seconds a write command's quick_check may take (about 2 GB of database on this machine);
#: on a larger file it checks what it reaches, and damage beyond is still one line when met.
QUICK_CHECK_SECONDS = 3.0


def open_for_writing(path: str | Path) -> sqlite_utils.Database:
    """`open_db` for a command that writes, refusing a file `quick_check` finds damaged."""
    db = open_db(path)
    problems = integrity_problems(db, quick=True, limit=1, seconds=QUICK_CHECK_SECONDS)
    if problems:
        db.close()
        raise DatabaseDamaged(
            f"{path}: the database is damaged ({problems[0]}); nothing was written: run "
            f"`digest check` to see what is wrong, and restore a backup ({BACKUP_ADVICE})")
    return db


#: SQLite virtual-machine steps between two looks at the clock (a few hundred microseconds).
_BUDGET_STEPS = 20_000


@contextmanager
def time_budget(db: sqlite_utils.Database, seconds: float | None) -> Iterator[None]:
    """Interrupt the block's queries once they have run `seconds`: SearchTooBroad instead.

    A progress handler, so the statement stops where it is (sorting, scanning, ranking) and
    its connection stays usable. None: no budget.
    """
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + seconds
    db.conn.set_progress_handler(lambda: int(time.monotonic() > deadline), _BUDGET_STEPS)
    try:
        yield
    except sqlite3.OperationalError as e:
        if "interrupted" in str(e) and time.monotonic() > deadline:
            raise SearchTooBroad() from None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A transaction that holds the write lock from its start (BEGIN IMMEDIATE).

    For a writer that reads before it writes (the ids it will give, what is stored already):
    in a deferred transaction another connection's commit in between makes the first write
    fail (SQLITE_BUSY_SNAPSHOT); here other writers wait (busy timeout) instead. Nested
    `db.atomic()` blocks inside become savepoints. Commits on success, rolls back on error.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    db.conn.commit()
