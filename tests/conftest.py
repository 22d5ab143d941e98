"""Shared fixtures.

Add new fixtures below the HTTP block.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.flows import quiet_prefect
from alliance_digest.settings import HttpSettings
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
