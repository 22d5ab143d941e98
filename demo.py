"""`digest demo`: the whole pipeline, offline, on a bundled snapshot of realistic feeds.

    serve demo_data/feeds on 127.0.0.1 (a real HTTP server, random port)
    write digest.toml + sources.toml into the demo folder, pointing at that server
    run the collect flow on every source
    show what was stored, which sources failed or warned, and where everything is
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .feedserver import FeedServer
from .settings import DEFAULT_CONFIG, PACKAGE_DIR, Settings, load_settings
from .store.db import open_db
from .store.items import count_items, query_items
from .store.sources import source_health

DEMO_DATA = PACKAGE_DIR / "demo_data"


def write_demo_config(directory: Path, base_url: str) -> Path:
    """Write the demo's digest.toml and sources.toml (pointing at `base_url`); returns the toml."""
    directory.mkdir(parents=True, exist_ok=True)
    template = (DEMO_DATA / "sources.toml").read_text(encoding="utf-8")
    (directory / "sources.toml").write_text(
        template.replace("{base}", base_url.rstrip("/")), encoding="utf-8"
    )
    config = directory / "digest.toml"
    shutil.copyfile(DEFAULT_CONFIG, config)
    return config


def why(reasons: list[dict[str, Any]], n: int = 3) -> str:
    """The strongest few reasons, as "rule: match (+weight)"."""
    best = sorted(reasons, key=lambda r: -abs(r.get("weight", 0)))[:n]
    return "; ".join(f"{r.get('rule')}: {r.get('match')} ({r.get('weight', 0):+g})" for r in best)


def run_demo(directory: Path, console: Console,
             collect: Callable[[Settings], dict[str, Any]]) -> Settings:
    """Serve the snapshot, collect it into `directory`, and print a tour of the results."""
    with FeedServer(DEMO_DATA) as server:
        config = write_demo_config(directory, server.base_url)
        settings = load_settings(config)
        console.print(f"Serving the demo snapshot at {server.base_url} (offline, loopback only)")
        summary = collect(settings)
    db = open_db(settings.store_path)
    try:
        health = source_health(db, stale_days=settings.collect.stale_days)
        table = Table(title="Sources", show_header=True, header_style="bold")
        for col in ("source", "outcome", "items", "note"):
            table.add_column(col, overflow="fold")
        for h in health:
            note = h["last_error"] or h["warning"] or ""
            if h["stale"]:
                note = f"stale: newest item {(h['newest_item_at'] or 'never')[:10]}; {note}"
            table.add_row(h["name"], h["last_outcome"] or "-", str(h["items_total"]), note)
        console.print(table)
        top = Table(title="Top candidates, with why", show_header=True, header_style="bold")
        for col in ("score", "source", "title", "why"):
            top.add_column(col, overflow="fold")
        for r in query_items(db, status="candidate", order="score", limit=10):
            top.add_row(f"{r['score']:.1f}", r["source"], r["title"], why(r["reasons"]))
        console.print(top)
        counts = count_items(db)
    finally:
        db.close()
    console.print(
        f"Stored {sum(counts.values())} items ({summary['items_new']} new this run) from "
        f"{summary['sources_ok']} sources; {summary['sources_failed']} failed.\n"
        f"Database: {settings.store_path}\nConfig:   {config}\n"
        f"Next: cd {directory} && digest items --json | head"
    )
    return settings
