"""Search with a bounded cost: hostile sizes are cut when stored, searches have a time budget,
and the window of newest matches still finds what is older when the newest are filtered out."""

from __future__ import annotations

import json

import pytest
from alliance_digest.errors import SearchTooBroad
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline.collect import collect_once
from alliance_digest.settings import load_settings
from alliance_digest.sources.normalise import MAX_SUMMARY_CHARS, MAX_TITLE_CHARS
from alliance_digest.store import search as store_search
from alliance_digest.store.db import open_db
from alliance_digest.store.items import store_entries
from alliance_digest.store.sources import sync_sources
from alliance_digest.triage.search import search
from support import desk_login, digest, make_entry

HOSTILE_TITLE = "a" * 200_000
HOSTILE_SUMMARY = "alliance " * 16_000


def _hostile_feed() -> bytes:
    items = [
        f"<item><title>{HOSTILE_TITLE}</title><link>https://h.test/1</link><guid>h1</guid>"
        "<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>",
        f"<item><title>Alliance talks in Tokyo</title><link>https://h.test/2</link><guid>h2</guid>"
        f"<description>{HOSTILE_SUMMARY}</description>"
        "<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item>",
        "<item><title>Quad leaders meet</title><link>https://h.test/3</link><guid>h3</guid>"
        "<description>The alliance holds, aaa said.</description>"
        "<pubDate>Wed, 25 Nov 2026 10:00:00 GMT</pubDate></item>",
    ]
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>H</title>'
            + "".join(items) + "</channel></rss>").encode()


@pytest.fixture
def hostile(tmp_path):
    with FeedServer() as server:
        server.route("/h", body=_hostile_feed())
        (tmp_path / "sources.toml").write_text(
            f'[[source]]\nname = "H"\nurl = "{server.url("/h")}"\ncountry = "US"\n')
        (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n'
                                              "[http]\nmax_bytes = 4000000\n")
        summary = collect_once(load_settings(tmp_path / "digest.toml"), force=True)
    assert summary.run["items_new"] == 3
    return tmp_path


def test_hostile_sizes_are_cut_when_stored_and_the_cut_recorded(hostile):
    db = open_db(hostile / "data" / "digest.db")
    rows = {r["guid"]: r for r in db.query("SELECT guid, title, summary_text, text_cut FROM items")}
    db.close()
    assert len(rows["h1"]["title"]) == MAX_TITLE_CHARS
    assert json.loads(rows["h1"]["text_cut"]) == {"title": 200_000}
    assert len(rows["h2"]["summary_text"]) <= MAX_SUMMARY_CHARS
    assert json.loads(rows["h2"]["text_cut"])["summary"] >= 16_000 * 8
    assert rows["h3"]["text_cut"] is None


@pytest.mark.parametrize("order", ["relevance", "newest"])
def test_hostile_searches_answer_with_bounded_snippets(hostile, order):
    db = open_db(hostile / "data" / "digest.db")
    try:
        aaa = search(db, "aaa", order=order, status="all", budget=30.0)
        alliance = search(db, "alliance", order=order, status="all", budget=30.0)
    finally:
        db.close()
    assert {r["guid"] for r in aaa} == {"h1", "h3"}
    assert {r["guid"] for r in alliance} == {"h2", "h3"}
    for row in aaa + alliance:
        assert len(row["snippet"]) <= 2 * 160
        assert "<mark>" in row["snippet_html"]
    if order == "relevance":  # the item made of the word ranks first
        assert alliance[0]["guid"] == "h2"


def test_cli_search_of_hostile_items_is_a_short_table(hostile):
    found = json.loads(digest("search", "aaa", "--status", "all", "--json", cwd=hostile).stdout)
    assert [r["id"] for r in found] and all(len(r["snippet"]) <= 320 for r in found)


def _many(new_db, count: int):
    db = new_db("a")
    entries = [make_entry(n, title=f"Okinawa base report {n}" + (" XQ" if n == 0 else ""),
                          summary_text=f"Okinawa report number {n} on the alliance and US forces.",
                          published_at=f"2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}T10:00:00Z")
               for n in range(count)]
    with db.atomic():
        store_entries(db, 1, entries)
    return db


def test_a_search_past_its_budget_is_refused_in_one_line(new_db):
    db = _many(new_db, 3_000)
    # "XQ" is a short term, in the oldest item only: matched on the items' own text, row by
    # row from the newest — a scan of every item.
    with pytest.raises(SearchTooBroad, match="search too broad, add a term or a date range"):
        search(db, "XQ", status="all", order="newest", budget=1e-9)
    # The connection is left as it was: the same search without a budget answers.
    assert [r["guid"] for r in search(db, "XQ", status="all", order="newest")] == ["0"]


def test_the_window_reaches_further_back_when_filters_leave_the_page_short(new_db, monkeypatch):
    monkeypatch.setattr(store_search, "MATCH_WINDOW", 10)
    monkeypatch.setattr(store_search, "RANK_WINDOW", 10)
    db = _many(new_db, 300)
    with db.atomic():  # only the oldest stored items are shortlisted
        db.execute("UPDATE items SET status = 'shortlisted' WHERE id <= 5")
    for order in ("newest", "relevance"):
        found = search(db, "Okinawa", status="shortlisted", order=order, limit=50)
        assert sorted(r["id"] for r in found) == [1, 2, 3, 4, 5]
    newest = search(db, "Okinawa", status="all", order="newest", limit=3)
    assert [r["published_at"] for r in newest] == sorted(
        (r["published_at"] for r in newest), reverse=True)
    everything = search(db, "report", status="all", order="newest", limit=500)
    assert len(everything) == 300


def test_the_cli_and_desk_say_search_too_broad(tmp_path):
    from alliance_digest.editor.app import create_app
    from alliance_digest.store.users import add_user
    from starlette.testclient import TestClient

    (tmp_path / "digest.toml").write_text(
        '[store]\npath = "data/digest.db"\n[editor]\nsearch_budget_seconds = 0.000000001\n')
    (tmp_path / "sources.toml").write_text("")
    db = open_db(tmp_path / "data" / "digest.db")
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])
    store_entries(db, 1, [make_entry(n, title=f"Report {n} on forces" + (" XQ" if n == 0 else ""),
                                     published_at="2026-01-01T10:00:00Z")
                          for n in range(3_000)])
    add_user(db, "alice", "correct horse battery")
    db.close()
    cli = digest("search", "XQ", "--status", "all", cwd=tmp_path, check=False)
    assert cli.returncode == 1
    assert cli.stderr.strip() == "error: search too broad, add a term or a date range"
    with TestClient(create_app(load_settings(tmp_path / "digest.toml"))) as client:
        desk_login(client, "alice", "correct horse battery")
        page = client.get("/", params={"q": "XQ", "status": "all"})
    assert page.status_code == 400
    assert "search too broad, add a term or a date range" in page.text


def test_the_migration_cuts_texts_stored_before_the_caps(tmp_path):
    import sqlite_utils
    from alliance_digest.store import migrations

    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    for number, step in enumerate(migrations.MIGRATIONS[:7], start=1):
        step(old)
        old.execute(f"PRAGMA user_version = {number}")
    sync_sources(old, [{"name": "a", "url": "http://127.0.0.1/a"}])
    for n, title, text in ((1, "a" * 200_000, "alliance " * 16_000),
                           (2, "Quad leaders meet", "aaa")):  # as an older version stored them
        old["items"].insert({"id": n, "source_id": 1, "identity": f"guid:{n}", "guid": str(n),
                             "url": f"https://e.test/{n}", "title": title,
                             "summary": "<p>x</p>", "summary_text": text,
                             "published_at": "2026-01-01T00:00:00Z",
                             "first_seen_at": "2026-01-01T00:00:00Z", "content_hash": "x",
                             "status": "candidate", "tags": "[]"})
    old.conn.commit()
    old.close()
    db = open_db(path)  # applies the migration that cuts
    rows = {r["id"]: r for r in db.query("SELECT id, title, summary, summary_text, text_cut "
                                         "FROM items")}
    assert len(rows[1]["title"]) == 1000 and len(rows[1]["summary_text"]) == 20_000
    assert json.loads(rows[1]["text_cut"]) == {"title": 200_000, "summary": 16_000 * 9}
    assert rows[1]["summary"].startswith("alliance alliance")
    assert rows[2]["text_cut"] is None and rows[2]["title"] == "Quad leaders meet"
    # The index follows: the cut text is what a search finds.
    assert [r["id"] for r in search(db, "aaa", status="all")] == [1, 2]
    db.close()


def test_the_cli_and_desk_say_when_new_items_wait_for_the_search_index(tmp_path):
    """A large collect leaves its items' indexing to the process after the command: for
    those seconds a search says what it cannot find yet, and finds it once indexed."""
    from alliance_digest.editor.app import create_app
    from alliance_digest.store.db import write_transaction
    from alliance_digest.store.items import defer_search_index, index_backlog
    from alliance_digest.store.users import add_user
    from starlette.testclient import TestClient

    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    (tmp_path / "sources.toml").write_text("")
    db = open_db(tmp_path / "data" / "digest.db")
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])
    store_entries(db, 1, [make_entry("old", title="Okinawa governor meets envoy",
                                     published_at="2026-01-01T10:00:00Z")])
    with write_transaction(db):
        defer_search_index(db)
        store_entries(db, 1, [make_entry(n, title=f"Okinawa report {n}",
                                         published_at="2026-01-02T10:00:00Z") for n in range(3)])
    add_user(db, "alice", "correct horse battery")
    db.close()

    def desk_search() -> str:
        with TestClient(create_app(load_settings(tmp_path / "digest.toml"))) as client:
            desk_login(client, "alice", "correct horse battery")
            page = client.get("/", params={"q": "Okinawa", "status": "all", "since": ""})
        assert page.status_code == 200
        return page.text

    cli = digest("search", "Okinawa", "--status", "all", cwd=tmp_path)
    assert "1 results" in cli.stdout
    assert "note: 3 items the last collect stored are still being added to the search index" \
        in " ".join(cli.stderr.split())
    assert "3 items the last collect stored are still being added" in desk_search()

    db = open_db(tmp_path / "data" / "digest.db")
    assert index_backlog(db) == 3
    db.close()
    cli = digest("search", "Okinawa", "--status", "all", cwd=tmp_path)
    assert "4 results" in cli.stdout and not cli.stderr
    page = desk_search()
    assert "still being added" not in page and "Okinawa report 2" in page
