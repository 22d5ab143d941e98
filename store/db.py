"""Opening the database: pragmas, then migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ..errors import StoreError
from ..timestamps import utcnow as utcnow  # re-exported: store.items, runs, sources use it
from .migrations import migrate

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
        raise StoreError(f"{path}: cannot open database: {e}") from None
    except OSError as e:
        raise StoreError(f"{path}: cannot open database: {e.strerror}") from None


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
