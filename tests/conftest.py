"""Shared fixtures.

Add new fixtures below the HTTP block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.flows import quiet_prefect
from alliance_digest.settings import HttpSettings
from alliance_digest.store.db import open_db
from alliance_digest.store.sources import sync_sources
from support import SITE_FEED, collect_into

quiet_prefect()  # as the `digest` command does, before any test imports Prefect

# --- HTTP: a real local server and settings small enough for fast tests ----------------------


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer on 127.0.0.1 (random port), stopped after the test."""
    with FeedServer() as server:
        yield server


@pytest.fixture
def fast_http() -> HttpSettings:
    """HttpSettings with sub-second timeouts and a 64 KiB body cap."""
    return HttpSettings(
        connect_timeout=1.0,
        read_timeout=0.5,
        total_timeout=1.0,
        max_bytes=64 * 1024,
        max_redirects=3,
        per_host_concurrency=2,
        max_connections=8,
    )


# --- A configured folder with collected items ------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder with digest.toml, sources.toml and a database holding two collected items."""
    collect_into(tmp_path, {"Feed": SITE_FEED})
    return tmp_path


# --- Databases: the one factory --------------------------------------------------------------

@pytest.fixture
def new_db(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """new_db(*sources, name="digest.db"): a migrated database in tmp_path holding `sources`.

    A source is a registry row (dict) or a bare name (url http://127.0.0.1/NAME). Every
    database made is closed after the test.
    """
    opened: list[Any] = []

    def make(*source_rows: str | dict[str, Any], name: str = "digest.db") -> Any:
        db = open_db(tmp_path / name)
        opened.append(db)
        if source_rows:
            sync_sources(db, [row if isinstance(row, dict)
                              else {"name": row, "url": f"http://127.0.0.1/{row}"}
                              for row in source_rows])
        return db

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def db(new_db: Callable[..., Any]) -> Any:
    """A migrated database with one source, "a" (files needing other sources override this)."""
    return new_db("a")
