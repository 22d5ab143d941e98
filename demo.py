"""`digest demo`: the whole pipeline, offline, on a bundled snapshot of realistic feeds.

    serve demo_data/feeds on 127.0.0.1 (a real HTTP server, random port)
    write digest.toml + sources.toml into the demo folder, pointing at that server
    run the collect flow on every source (it triages what it stored)
    show source health and the top candidates with the reasons they scored
    include the top few stories, as an editor would, and run the draft flow
    print the draft's files and how to open the editor desk on the demo data
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from .feedserver import FeedServer
from .pipeline.entries import include
from .pipeline.entries import update as update_entry
from .settings import DEFAULT_CONFIG, PACKAGE_DIR, Settings, load_settings
from .store.db import open_db
from .store.items import count_items, query_items
from .store.sources import source_health
from .timestamps import utc_timestamp

DEMO_DATA = PACKAGE_DIR / "demo_data"


def command_hint(argv0: str) -> str:
    """The digest command as the user ran it (e.g. .venv/bin/digest), for hints to copy.

    A path is made absolute: the hints begin with a `cd` into the demo folder.
    """
    if Path(argv0).name != "digest":
        return "digest"
    return os.path.abspath(argv0) if os.sep in argv0 else argv0


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


#: How many top stories the demo includes in its draft, as an editor would.
DEMO_INCLUDED = 5


_MARK_RE = re.compile(r"\w*\d\w*(?:[+-]\w+)+|[A-Z]{3,}\w*")
_WORD_RE = re.compile(r"[A-Za-z]{4,}")


def _marks(titles: list[str]) -> set[str]:
    """What names a development in titles: "2+2", "ILEX 23-1", "DICAS" and its long words."""
    found: set[str] = set()
    for title in titles:
        found |= {m.casefold() for m in _MARK_RE.findall(title)}
    return found


def _same_development(a: list[str], b: list[str]) -> bool:
    """Two stories' titles tell one development: a shared name ("2+2", "DICAS"), or most of
    the shorter one's long words in common."""
    if _marks(a) & _marks(b):
        return True
    words_a = {w.casefold() for t in a for w in _WORD_RE.findall(t)}
    words_b = {w.casefold() for t in b for w in _WORD_RE.findall(t)}
    small = min(len(words_a), len(words_b))
    return bool(small) and len(words_a & words_b) / small >= 0.6


def include_top_stories(db: Any, settings: Settings, n: int = DEMO_INCLUDED) -> list[int]:
    """Include `n` distinct recent developments as issue entries, in configured sections.

    Stories are told apart by their lead (`cluster_id`). Among the best-scoring stories of the
    last two weeks, those reported by the most outlets go first, and a story whose titles name
    the same development as one already chosen (a reaction piece to the 2+2 the issue already
    tells) is passed over. Each entry keeps one item from every other outlet, as an editor
    would. Returns the entries' ids, best score first.
    """
    newest = query_items(db, status="candidate", limit=1)
    if not newest:
        return []
    # The last two weeks of the snapshot, as a bi-weekly issue would cover.
    since = utc_timestamp(datetime.fromisoformat(newest[0]["published_at"].replace("Z", "+00:00"))
                          - timedelta(days=14))
    best: dict[int, dict[str, Any]] = {}
    for row in query_items(db, status="candidate", order="score", since=since, limit=500):
        best.setdefault(row["cluster_id"] or row["id"], row)
        if len(best) == 8 * n:
            break
    members = {lead: list(db.query(
        "SELECT items.title, items.source_id FROM items WHERE cluster_id = ? OR id = ?",
        [lead, lead])) for lead in best}
    ranked = sorted(best, key=lambda lead: (-len({m["source_id"] for m in members[lead]}),
                                            -(best[lead]["score"] or 0)))
    chosen: list[int] = []
    for lead in ranked:
        titles = [m["title"] for m in members[lead]]
        if any(_same_development(titles, [m["title"] for m in members[c]]) for c in chosen):
            continue
        chosen.append(lead)
        if len(chosen) == n:
            break
    chosen.sort(key=lambda lead: -(best[lead]["score"] or 0))
    sections = settings.issue.sections
    made = []
    for rank, lead in enumerate(chosen, start=1):
        entry = include(db, best[lead]["id"], editor="demo",
                        section=sections[(rank - 1) % len(sections)] if sections else None,
                        sections=sections)
        update_entry(db, entry["id"], {"position": rank}, editor="demo", sections=sections)
        made.append(int(entry["id"]))
    return made


def source_notes(health: list[dict[str, Any]]) -> list[str]:
    """One line for each source that needs a look: failed, stale or warned (none: nothing).

    A note is its parts joined, so a part that is empty leaves no stray separator.
    """
    lines = []
    for h in health:
        parts = []
        if h["last_outcome"] == "failed":
            parts.append(f"failed: {h['last_error'] or 'unknown error'}")
        if h["stale"]:
            parts.append(f"stale: newest item {(h['newest_item_at'] or 'never')[:10]}")
        if h["warning"]:
            parts.append(h["warning"])
        if parts:
            lines.append(f"{h['name']}: {h['items_total']} items; {'; '.join(parts)}")
    return lines


#: Top candidates the demo lists, one line each.
DEMO_TOP = 5


def draft_files(drafted: dict[str, Any]) -> list[str]:
    """The files a draft run wrote, for the summary: the Markdown, HTML and text, then the
    PDF and Word files the draft flow exported beside them — only those that are there; one
    `stem.{md,html,…}` line when they share a name."""
    files = [*map(str, drafted["paths"].values()),
             *(str(p) for p in drafted.get("exports", {}).values() if Path(p).is_file())]
    stems = {str(Path(p).with_suffix("")) for p in files}
    if len(stems) != 1:
        return files
    return [f"{stems.pop()}.{{{','.join(Path(p).suffix[1:] for p in files)}}}"]


def run_demo(directory: Path, console: Console,
             collect: Callable[[Settings], dict[str, Any]],
             draft: Callable[[Settings], dict[str, Any]]) -> Settings:
    """Serve the snapshot, collect and triage it into `directory`, draft an issue, and tour it.

    Prints a short summary: what was stored, the sources that need a look, the top
    candidates with their strongest reason, the draft's files and how to go on from there.
    """
    with FeedServer(DEMO_DATA) as server:
        config = write_demo_config(directory, server.base_url)
        settings = load_settings(config)
        console.print(f"Serving the demo snapshot at {server.base_url} (offline, loopback only)")
        summary = collect(settings)
    db = open_db(settings.store_path)
    try:
        notes = source_notes(source_health(db, stale_days=settings.collect.stale_days))
        top = query_items(db, status="candidate", order="score", limit=DEMO_TOP)
        counts = count_items(db)
        included = include_top_stories(db, settings)
    finally:
        db.close()
    triaged = summary.get("triage") or {}
    say = functools.partial(console.print, soft_wrap=True)
    say(f"Stored {sum(counts.values())} items ({summary['items_new']} new this run) from "
        f"{summary['sources_ok']} sources; {summary['sources_failed']} failed. Triage: "
        f"{triaged.get('candidates', 0)} candidates, {triaged.get('filtered', 0)} filtered, "
        f"{triaged.get('in_stories', 0)} items in {triaged.get('stories', 0)} "
        "multi-outlet stories.")
    if notes:
        say(f"Sources to look at ({len(notes)} of {summary['sources_due']}):")
        for line in notes:
            say(f"  {line}")
    say("Top candidates, with their strongest reason:")
    for r in top:
        say(f"  {r['score']:5.1f}  {r['source']}: {r['title']}  [{why(r['reasons'], 1)}]")
    drafted = draft(settings)
    shown = draft_files(drafted)
    say(f"Included the top {len(included)} stories as issue entries (each with its other "
        f"outlets), as an editor would, and drafted Vol {drafted['volume']}.{drafted['number']} "
        f"({drafted['date']}): {drafted['items']} entries, {drafted['needs_writing']} still to "
        "write:")
    for path in shown:
        say(f"  {path}")
    digest = command_hint(sys.argv[0])
    say(f"Database: {settings.store_path} (config: {config})\n"
        "Open the editor desk on the demo data:\n"
        f"  cd {directory}\n"
        f"  {digest} users add editor   # asks for a password (8+ characters)\n"
        f"  {digest} editor             # then open http://{settings.editor.host}:"
        f"{settings.editor.port}/\n"
        f"More there: {digest} entry list, {digest} items, {digest} search 日米, "
        f"{digest} sources list, {digest} issue list; `{digest} users add NAME --role "
        "publisher` for an account that approves and sends")
    return settings
