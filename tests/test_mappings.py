"""Sources say when their mapping is wrong, and a feed repeating an entry stores it once.

Collected for real (a loopback server, collect_once, the SQLite store), then read back through
the fetch rows and `digest sources list`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.errors import InvalidFeed
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline.collect import collect_once
from alliance_digest.settings import load_settings
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.sources.jsonapi import parse_json
from alliance_digest.sources.pages import parse_page
from alliance_digest.sources.registry import load_registry
from alliance_digest.store.db import open_db
from support import SHARED, digest

REAL = SHARED / "corpus" / "real"
ITEMS = [
    {
        "title": {"rendered": f"Alliance story {n}"},
        "link": f"https://e.test/{n}",
        "published": f"2026-11-2{n}T10:00:00Z",
    }
    for n in range(1, 4)
]


def collect(
    folder: Path,
    body: bytes,
    table: str,
    *,
    kind: str = "json",
    content_type: str = "application/json",
) -> dict[str, Any]:
    """Serve `body` as the one source (its `[source.KIND]` table given), collect, return the
    fetch row."""
    with FeedServer() as server:
        server.route("/src", body=body, content_type=content_type)
        (folder / "sources.toml").write_text(
            f'[[source]]\nname = "Wire"\nurl = "{server.url("/src")}"\nkind = "{kind}"\n'
            + (f"[source.{kind}]\n{table}" if table else ""),
            encoding="utf-8",
        )
        config = folder / "digest.toml"
        config.write_text('[store]\npath = "data/digest.db"\n')
        with ThreadPoolExecutor(1) as threads:
            from alliance_digest.sources.batch import fetch_batch

            collect_once(
                load_settings(config),
                force=True,
                submit_batch=lambda job: threads.submit(fetch_batch, job.requests, job.http),
                triage=lambda *_: {},
            )
    db = open_db(folder / "data" / "digest.db")
    try:
        row = dict(next(iter(db.query("SELECT * FROM fetches ORDER BY id DESC LIMIT 1"))))
        row["stored"] = db["items"].count
    finally:
        db.close()
    return row


def test_a_title_path_matching_nothing_fails_the_fetch_and_stores_nothing(tmp_path: Path):
    row = collect(tmp_path, json.dumps(ITEMS).encode(), 'title = "title.rendred"\nlink = "link"\n')
    assert row["outcome"] == "failed" and row["stored"] == 0
    assert "title path 'title.rendred' found in 0 of 3 items" in row["error"]
    (listed,) = json.loads(digest("sources", "list", "--json", cwd=tmp_path).stdout)
    assert "title path 'title.rendred' found in 0 of 3 items" in listed["last_error"]


def test_a_link_path_matching_nothing_fails_too() -> None:
    with pytest.raises(InvalidFeed, match="link path 'permalink' found in 0 of 3 items"):
        parse_json(
            json.dumps(ITEMS).encode(),
            {},
            "https://e.test/api",
            "en",
            {"title": "title.rendered", "link": "permalink"},
        )


def test_a_wrong_date_path_is_a_warning_on_the_fetch_and_the_source(tmp_path: Path):
    row = collect(
        tmp_path,
        json.dumps(ITEMS).encode(),
        'title = "title.rendered"\nlink = "link"\ndate = "date_gmt"\n',
    )
    assert row["outcome"] == "ok" and row["stored"] == 3
    assert row["warning"] == "date path 'date_gmt' found in 0 of 3 items"
    (listed,) = json.loads(digest("sources", "list", "--json", cwd=tmp_path).stdout)
    assert listed["warning"] == "date path 'date_gmt' found in 0 of 3 items"
    assert "(UTC)" in digest("sources", "list", cwd=tmp_path).stdout
    assert "published (UTC)" in digest("items", "--status", "all", cwd=tmp_path).stdout


def test_a_mismatched_date_format_is_a_warning() -> None:
    feed = parse_json(
        json.dumps(ITEMS).encode(),
        {},
        "https://e.test/api",
        "en",
        {"title": "title.rendered", "link": "link", "date": "published", "date_format": "%d/%m/%Y"},
    )
    assert feed.warnings == (
        "date path 'published' read as a date in 0 of 3 items (date_format '%d/%m/%Y')",
    )
    good = parse_json(
        json.dumps(ITEMS).encode(),
        {},
        "https://e.test/api",
        "en",
        {"title": "title.rendered", "link": "link", "date": "published"},
    )
    assert good.warnings == () and all(e.published_at for e in good.entries)


PAGE = b"""<html><body><ul>
<li class="news"><a href="/a/1">First story</a><span class="when">2026-11-21</span></li>
<li class="news"><a href="/a/2">Second story</a><span class="when">2026-11-22</span></li>
</ul></body></html>"""


def test_a_date_selector_matching_nothing_is_a_warning() -> None:
    feed = parse_page(
        PAGE, {}, "https://p.test/list", "en", {"item_selector": "li.news", "date_selector": "time"}
    )
    assert len(feed.entries) == 2
    assert feed.warnings == ("date_selector 'time' found in 0 of 2 items",)
    feed = parse_page(
        PAGE,
        {},
        "https://p.test/list",
        "en",
        {"item_selector": "li.news", "date_selector": "span.when"},
    )
    assert feed.warnings == () and all(e.published_at for e in feed.entries)
    feed = parse_page(
        PAGE, {}, "https://p.test/list", "en", {"item_selector": "li.news", "title_selector": "h3"}
    )
    assert feed.warnings == ("title_selector 'h3' found in 0 of 2 items",)
    assert [e.title for e in feed.entries] == ["First story", "Second story"]  # link text


def test_a_page_source_with_only_item_selector(tmp_path: Path) -> None:
    registry = tmp_path / "sources.toml"
    registry.write_text(
        '[[source]]\nname = "P"\nurl = "https://p.test/list"\nkind = "page"\n'
        '[source.page]\nitem_selector = "li.news"\n'
    )
    (source,) = load_registry(registry)
    assert source.options == {"item_selector": "li.news"}
    row = collect(
        tmp_path, PAGE, 'item_selector = "li.news"\n', kind="page", content_type="text/html"
    )
    assert row["outcome"] == "ok" and row["stored"] == 2


FEED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>'
    + b"".join(
        b"<item><title>Japan, US hold 2+2</title><link>https://e.test/1</link>"
        b"<guid>g1</guid><description>Talks.</description>"
        b"<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
        for _ in range(4)
    )
    + b"<item><title>Japan, US hold 2+2</title><link>https://e.test/1</link><guid>g1</guid>"
    b"<description>Talks, updated.</description>"
    b"<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"
)


def test_an_entry_repeated_within_a_feed_is_stored_once(tmp_path: Path) -> None:
    row = collect(tmp_path, FEED, "", kind="feed", content_type="application/rss+xml")
    # Four copies are one item; the fifth says something else under the same guid: kept.
    assert row["outcome"] == "ok" and row["stored"] == 2


@pytest.mark.skipif(not REAL.is_dir(), reason="the shared corpus is not here")
def test_al_monitor_repeats_are_stored_once() -> None:
    body = (REAL / "fastfeedparser" / "benchmark_data" / "72fea1ebfd02e90a").read_bytes()
    feed = parse_feed(body, {}, "https://www.al-monitor.com/rss")
    links = [e.url for e in feed.entries]
    assert len(links) == len(set(links)) == 11  # 20 entries in the file
