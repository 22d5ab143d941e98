"""Turning a source on or off: the one path the desk's Sources page and `digest sources` share.

    registry  sources.toml first, when it is the user's (settings.config_path is set): it is the
              source of truth, and a choice only in the database would be undone by the next sync
    database  then the `sources` row; a source not collected yet has none, and that is fine

A use case because it joins sources/ (the registry file) and store/ (the row), which never
import each other.
"""

from __future__ import annotations

import sqlite_utils

from ..errors import NotFoundError
from ..settings import Settings
from ..sources.registry import set_enabled as registry_set_enabled
from ..store.sources import set_enabled as store_set_enabled


def set_source_enabled(db: sqlite_utils.Database | None, settings: Settings, name: str,
                       enabled: bool) -> None:
    """Enable or disable `name` in the user's sources.toml, then in the database (if given).

    NotFoundError when neither knows the source. The packaged default registry is not the
    user's to edit: with it only the database changes (the CLI refuses before calling this).
    """
    in_registry = settings.config_path is not None
    if in_registry:
        registry_set_enabled(settings.sources_file, name, enabled)
    if db is None:
        return
    try:
        store_set_enabled(db, name, enabled)
    except NotFoundError:
        # In the registry but not collected yet: the registry alone decides.
        if not in_registry:
            raise
