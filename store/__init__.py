"""Store: the SQLite database (sqlite-utils) that holds sources' health, items, runs and fetches.

Plain functions that take a `sqlite_utils.Database` and return data. Knows nothing of HTTP or
parsing: the collect flow hands it plain dicts.

Importing this package imports sqlite-utils with numpy hidden (`_import_sqlite_utils`).
"""

from __future__ import annotations

import sys


def _import_sqlite_utils() -> None:
    """Import sqlite-utils without letting it import numpy (or pandas).

    sqlite-utils imports them when installed only to map their scalar types to column types
    when it creates a table from values; the store creates its tables from Python types and
    binds Python values (sqlite3 cannot bind numpy's anyway). numpy took a tenth of a second
    of every command's start, a tenth of an all-304 `digest collect` (issue 16); clustering,
    which needs it, imports it as usual afterwards. A no-op once either is imported.
    """
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        return
    hidden = [name for name in ("numpy", "pandas") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_sqlite_utils()
