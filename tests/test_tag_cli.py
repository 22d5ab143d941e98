"""`digest tag`, `digest history` and `digest add-url` on a configured folder."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.store.db import open_db
from alliance_digest.store.items import store_entries
from alliance_digest.store.sources import sync_sources
from support import digest, make_entry


def entry(n: int) -> dict[str, Any]:
    return make_entry(n, published_at=f"2026-11-2{n}T10:00:00Z")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """digest.toml with two custom sections, and a database holding items 1-3."""
    (tmp_path / "digest.toml").write_text(
        '[store]\npath = "data/digest.db"\n\n[issue]\nsections = ["Diplomacy", "Defense"]\n'
        # add-url's test page server is on loopback: admitted by name, like an intranet host.
        '[editor]\nallowed_url_networks = ["127.0.0.1"]\n')
    db = open_db(tmp_path / "data" / "digest.db")
    sync_sources(db, [{"name": "Wire", "url": "https://news.test/feed"}])
    with db.atomic():
        store_entries(db, 1, [entry(1), entry(2), entry(3)])
    db.close()
    return tmp_path


def item(folder: Path, item_id: int) -> dict[str, Any]:
    db = open_db(folder / "data" / "digest.db")
    try:
        row = db.execute("SELECT status, status_by, section, tags, headline, rank, version "
                         "FROM items WHERE id = ?", [item_id]).fetchone()
    finally:
        db.close()
    keys = ("status", "status_by", "section", "tags", "headline", "rank", "version")
    return dict(zip(keys, row, strict=True))


def test_tag_sets_fields_and_history_shows_them(folder: Path):
    done = digest("tag", "1", "2", "--include", "--section", "defense", "--tag", "2+2",
                  "--tag", "Okinawa", "--headline", "Allies meet", "--rank", "1", cwd=folder)
    assert "1  included · Defense" in done.stdout and "tags: 2+2, Okinawa" in done.stdout
    me = getpass.getuser()
    for n in (1, 2):
        row = item(folder, n)
        assert row["status"] == "included" and row["status_by"] == me
        assert row["section"] == "Defense" and json.loads(row["tags"]) == ["2+2", "Okinawa"]
        assert row["version"] == 1
    assert item(folder, 3)["status"] == "candidate"

    digest("tag", "1", "--add-tag", "Quad", "--remove-tag", "okinawa", "--rank", "", cwd=folder)
    row = item(folder, 1)
    assert json.loads(row["tags"]) == ["2+2", "Quad"] and row["rank"] is None

    shown = digest("history", "1", cwd=folder).stdout
    for word in ("status", "candidate", "included", "section", "Defense", "headline", me):
        assert word in shown
    rows = json.loads(digest("history", "1", "--json", cwd=folder).stdout)
    assert [r["field"] for r in rows].count("tags") == 2 and rows[0]["editor"] == me
    assert "has not been edited" in digest("history", "3", cwd=folder).stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["1", "99", "--include"], "no item with id 99"),
    (["1", "--section", "Sports"], "unknown section 'Sports' (one of Diplomacy, Defense)"),
    (["1", "--rank", "top"], "rank must be a whole number"),
    (["1", "--include", "--exclude"], "choose one of"),
    (["1"], "nothing to change"),
    (["1", "--image", "javascript:alert(1)"], "http(s)"),
    (["1", "--include", "--blurb", "[x](javascript:alert(1))"], "blurb: link"),
])
def test_tag_refuses_bad_input_in_one_line_and_changes_nothing(folder: Path, args, needle):
    done = digest("tag", *args, cwd=folder, check=False)
    assert done.returncode == 1, done.stdout
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert item(folder, 1)["status"] == "candidate" and item(folder, 1)["version"] == 0


def test_history_of_unknown_item(folder: Path):
    done = digest("history", "42", cwd=folder, check=False)
    assert done.returncode == 1 and "no item with id 42" in done.stderr


def test_add_url_fetches_the_page_once(folder: Path):
    page = (b'<html><head><meta property="og:title" content="Minister visits Guam">'
            b'<meta property="og:description" content="A first visit.">'
            b'<meta property="article:published_time" content="2026-11-25T10:00:00+09:00">'
            b'</head><body></body></html>')
    with FeedServer() as server:
        server.route("/news/a.html", body=page, content_type="text/html; charset=utf-8")
        url = server.url("/news/a.html") + "?utm_source=x"
        first = digest("add-url", url, cwd=folder)
        new_id = int(first.stdout.strip())
        assert "added item" in first.stderr and "Minister visits Guam" in first.stderr
        again = digest("add-url", server.url("/news/a.html"), cwd=folder)
        assert int(again.stdout.strip()) == new_id and "already stored" in again.stderr
        assert server.hits("/news/a.html") == 1
        server.route("/gone", status=404)
        # A page that cannot be fetched is still added, titled by its URL, with a warning.
        failed = digest("add-url", server.url("/gone"), cwd=folder)
        assert "warning" in failed.stderr and "404" in failed.stderr
        assert f"added item {failed.stdout.strip()}: {server.url('/gone')}" in failed.stderr
    assert digest("add-url", "https://news.test/2", cwd=folder).stdout.strip() == "2"
    rows = json.loads(digest("items", "--json", "--status", "all", cwd=folder).stdout)
    added = next(r for r in rows if r["id"] == new_id)
    assert added["source"] == "Added by editors" and added["status"] == "shortlisted"
    assert added["published_at"] == "2026-11-25T01:00:00Z"
    bad = digest("add-url", "javascript:alert(1)", cwd=folder, check=False)
    assert bad.returncode == 1 and "not an http(s) address" in bad.stderr
