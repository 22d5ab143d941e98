"""Editors' changes to items (store.editorial) and reading a page's metadata (sources.pagemeta)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from alliance_digest.errors import (
    BinaryBody,
    EmptyBody,
    FetchError,
    HTTPNotFound,
    NotAFeed,
    NotFoundError,
)
from alliance_digest.feedserver import FeedServer
from alliance_digest.settings import HttpSettings
from alliance_digest.sources.addresses import AddressPolicy
from alliance_digest.sources.pagemeta import fetch_page_metadata, parse_page_metadata
from alliance_digest.store.db import open_db
from alliance_digest.store.editorial import (
    MANUAL_SOURCE,
    EditError,
    StaleEdit,
    add_manual_item,
    find_item_by_url,
    get_item,
    history,
    update_item,
    update_items,
)
from alliance_digest.store.items import store_entries
from alliance_digest.store.scores import is_triage_owned
from alliance_digest.store.sources import due_sources, sync_sources
from support import make_entry

SECTIONS = ["Diplomacy", "Defense & Security", "Economy & Technology", "Regional"]


def entry(n: int, **extra: Any) -> dict[str, Any]:
    return make_entry(n, summary=f"<p>Summary {n}</p>", summary_text=f"Summary {n}",
                      published_at=f"2026-11-2{n}T10:00:00Z", **extra)


@pytest.fixture
def db(new_db):
    database = new_db({"name": "Wire", "url": "https://news.test/feed", "category": "news"})
    source_id = database.execute("SELECT id FROM sources WHERE name = 'Wire'").fetchone()[0]
    with database.atomic():
        store_entries(database, source_id, [entry(1), entry(2), entry(3)])
    return database


def ids(db) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM items ORDER BY id")]


# --- update_item ---------------------------------------------------------------------------------


def test_update_records_one_audit_row_per_changed_field_and_bumps_version(db):
    first = ids(db)[0]
    changes = {"status": "included", "section": "diplomacy",
               "tags": ["2+2", " Okinawa ", "okinawa"], "headline": "  Allies  meet ",
               "rank": "2", "blurb": "The **2+2** [met](https://mofa.test/a)."}
    row = update_item(db, first, changes, editor="ann", expected_version=0, sections=SECTIONS)
    assert row["status"] == "included" and row["status_by"] == "ann"
    assert row["section"] == "Diplomacy"  # matched case-insensitively, stored as configured
    assert row["tags"] == ["2+2", "Okinawa"]
    assert row["headline"] == "Allies meet" and row["rank"] == 2
    assert row["version"] == 1 and row["edited_by"] == "ann" and row["edited_at"]
    assert row["source"] == "Wire"
    edits = history(db, first)
    assert {e["field"] for e in edits} == {"status", "section", "tags", "headline", "rank",
                                          "blurb"}
    status = next(e for e in edits if e["field"] == "status")
    assert (status["old"], status["new"], status["editor"]) == ("candidate", "included", "ann")
    assert json.loads(next(e for e in edits if e["field"] == "tags")["new"]) == ["2+2", "Okinawa"]

    # Saving the same values again changes nothing: no audit rows, same version.
    again = update_item(db, first, {"section": "Diplomacy", "rank": 2}, editor="bob",
                        expected_version=1, sections=SECTIONS)
    assert again["version"] == 1 and again["edited_by"] == "ann"
    assert len(history(db, first)) == 6


def test_stale_save_is_refused_naming_who_and_when(db):
    item = ids(db)[0]
    update_item(db, item, {"headline": "Ann's headline"}, editor="ann", expected_version=0)
    saved_at = get_item(db, item)["edited_at"]
    with pytest.raises(StaleEdit) as info:
        update_item(db, item, {"headline": "Bob's headline"}, editor="bob", expected_version=0)
    message = str(info.value)
    assert "ann" in message and saved_at in message and f"item {item}" in message
    assert info.value.edited_by == "ann" and info.value.version == 1
    assert get_item(db, item)["headline"] == "Ann's headline"
    assert [e["editor"] for e in history(db, item)] == ["ann"]
    # Based on the current version, the same save goes through.
    assert update_item(db, item, {"headline": "Bob's headline"}, editor="bob",
                       expected_version=1)["version"] == 2


def test_concurrent_saves_from_the_same_version_one_wins(tmp_path, db):
    """Two connections (the desk's workers) racing on one version: exactly one save lands."""
    item = ids(db)[0]
    path = tmp_path / "digest.db"
    results: list[str] = []
    barrier = threading.Barrier(4)

    def save(name: str) -> None:
        conn = open_db(path)
        try:
            barrier.wait()
            update_item(conn, item, {"note": f"by {name}"}, editor=name, expected_version=0)
            results.append("ok")
        except StaleEdit:
            results.append("stale")
        finally:
            conn.close()

    threads = [threading.Thread(target=save, args=(f"ed{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "stale", "stale", "stale"]
    assert get_item(db, item)["version"] == 1 and len(history(db, item)) == 1


@pytest.mark.parametrize(("changes", "needle"), [
    ({"section": "Sports"}, "unknown section 'Sports'"),
    ({"rank": -1}, "rank must be a whole number"),
    ({"rank": "first"}, "rank must be a whole number"),
    ({"rank": 2.5}, "rank must be a whole number"),
    ({"rank": True}, "rank must be a whole number"),
    ({"status": "filtered"}, "status must be one of candidate, shortlisted"),
    ({"links": [{"url": "javascript:alert(1)", "label": "x"}]}, "http(s)"),
    ({"links": ["data:text/html,hi"]}, "http(s)"),
    ({"links": [{"url": "https://a.test/", "label": "a", "onclick": "x"}]}, "unknown key"),
    ({"lead_image": "javascript:alert(1)"}, "lead_image must be an http(s) address"),
    ({"blurb": "Read [this](javascript:alert(1))"}, "blurb: link"),
    ({"headline": "x" * 301}, "headline is 301 characters long"),
    ({"tags": ["a,b"]}, "no commas"),
    ({"title": "Rewritten"}, "unknown field 'title'"),
    ({"version": 7}, "unknown field 'version'"),
])
def test_bad_values_are_one_line_errors_and_change_nothing(db, changes, needle):
    item = ids(db)[0]
    before = get_item(db, item)
    with pytest.raises(EditError) as info:
        update_item(db, item, {"headline": "fine", **changes}, editor="ann", sections=SECTIONS)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert info.value.field == (next(iter(changes)) if "unknown field" not in needle else None)
    assert isinstance(info.value, ValueError)
    assert get_item(db, item) == before and history(db, item) == []


def test_links_are_validated_deduplicated_and_stored_as_json(db):
    item = ids(db)[0]
    row = update_item(db, item, {"links": [
        {"url": "https://mofa.test/a", "label": " MOFA "}, "https://state.test/b",
        {"url": "https://mofa.test/a", "label": "dup"}]}, editor="ann")
    assert row["links"] == [{"url": "https://mofa.test/a", "label": "MOFA"},
                            {"url": "https://state.test/b", "label": ""}]
    raw = db.execute("SELECT links FROM items WHERE id = ?", [item]).fetchone()[0]
    assert json.loads(raw) == row["links"]
    assert update_item(db, item, {"links": []}, editor="ann")["links"] == []


def test_clearing_fields_and_unknown_item(db):
    item = ids(db)[0]
    update_item(db, item, {"headline": "H", "rank": 3, "note": "n"}, editor="ann")
    row = update_item(db, item, {"headline": "", "rank": "", "note": None}, editor="ann")
    assert (row["headline"], row["rank"], row["note"]) == (None, None, None)
    with pytest.raises(NotFoundError, match="no item with id 999"):
        update_item(db, 999, {"headline": "x"}, editor="ann")
    with pytest.raises(EditError, match="reserved"):
        update_item(db, item, {"status": "included"}, editor="triage")


def test_editor_status_keeps_triage_off_even_back_at_candidate(db):
    item = ids(db)[0]
    row = update_item(db, item, {"status": "excluded"}, editor="ann")
    assert row["status_by"] == "ann" and not is_triage_owned(row)
    row = update_item(db, item, {"status": "candidate"}, editor="bob")
    assert row["status"] == "candidate" and row["status_by"] == "bob"
    assert not is_triage_owned(row)


# --- update_items --------------------------------------------------------------------------------


def test_bulk_update_is_atomic_and_names_every_unknown_id(db):
    a, b, c = ids(db)
    with pytest.raises(NotFoundError) as info:
        update_items(db, [a, 998, b, 999], {"status": "included"}, editor="ann")
    assert "998, 999" in str(info.value) and "nothing was changed" in str(info.value)
    assert {get_item(db, i)["status"] for i in (a, b)} == {"candidate"}
    assert db.execute("SELECT count(*) FROM edits").fetchone()[0] == 0

    rows = update_items(db, [b, a, b], {"status": "shortlisted", "tags": ["Quad"]}, editor="ann")
    assert [r["id"] for r in rows] == [b, a]
    assert all(r["status"] == "shortlisted" and r["tags"] == ["Quad"] for r in rows)
    assert get_item(db, c)["status"] == "candidate"
    assert db.execute("SELECT count(*) FROM edits").fetchone()[0] == 4


def test_bulk_add_and_remove_tags_per_item(db):
    a, b, _ = ids(db)
    update_item(db, a, {"tags": ["Quad", "Okinawa"]}, editor="ann")
    rows = update_items(db, [a, b], {}, editor="ann", add_tags=["IPEF"], remove_tags=["okinawa"])
    assert rows[0]["tags"] == ["Quad", "IPEF"] and rows[1]["tags"] == ["IPEF"]
    with pytest.raises(EditError, match="nothing to change"):
        update_items(db, [a], {}, editor="ann")


def test_a_bad_value_in_bulk_changes_no_item(db):
    a, b, _ = ids(db)
    with pytest.raises(EditError):
        update_items(db, [a, b], {"status": "included", "rank": 10**6}, editor="ann")
    assert {get_item(db, i)["status"] for i in (a, b)} == {"candidate"}


# --- manual items --------------------------------------------------------------------------------


def test_manual_item_added_once_under_the_editors_source(db):
    item, created = add_manual_item(
        db, url="https://www.mod.go.jp/en/article/2026/11/a.html", title="  Minister visits ",
        summary="The minister <visited> Guam.", image_url="https://www.mod.go.jp/i.jpg",
        published_at="2026-11-25T01:00:00Z", editor="ann")
    assert created and item["origin"] == "manual" and item["source"] == MANUAL_SOURCE
    assert item["title"] == "Minister visits"
    assert item["summary_text"] == "The minister <visited> Guam."
    assert item["summary"] == "The minister &lt;visited&gt; Guam."
    assert item["status"] == "shortlisted" and item["status_by"] == "ann"
    assert item["published_guessed"] == 0 and item["published_at"] == "2026-11-25T01:00:00Z"
    assert [e["field"] for e in history(db, item["id"])] == ["added"]
    source = db.execute("SELECT kind, in_registry, enabled FROM sources WHERE name = ?",
                        [MANUAL_SOURCE]).fetchone()
    assert source == ("manual", 0, 0)
    assert MANUAL_SOURCE not in {r["name"] for r in due_sources(db, force=True)}

    again, created = add_manual_item(db, url="https://www.mod.go.jp/en/article/2026/11/a.html",
                                     title="Other", summary=None, image_url=None,
                                     published_at=None, editor="bob")
    assert not created and again["id"] == item["id"]
    assert db.execute("SELECT count(*) FROM items WHERE origin = 'manual'").fetchone()[0] == 1

    # A URL a feed already brought in returns the feed's item.
    feed_item, created = add_manual_item(db, url="https://news.test/2", title="x", summary=None,
                                         image_url=None, published_at=None, editor="ann")
    assert not created and feed_item["source"] == "Wire"
    # Re-syncing the registry leaves the editors' source alone.
    sync_sources(db, [{"name": "Wire", "url": "https://news.test/feed"}])
    assert db.execute("SELECT in_registry FROM sources WHERE name = ?",
                      [MANUAL_SOURCE]).fetchone()[0] == 0


def test_manual_item_without_date_is_marked_guessed_and_bad_url_refused(db):
    item, _ = add_manual_item(db, url="https://x.test/a", title="T", summary=None,
                              image_url="javascript:alert(1)", published_at=None, editor="ann")
    assert item["published_guessed"] == 1 and item["image_url"] is None
    with pytest.raises(EditError, match="http"):
        add_manual_item(db, url="ftp://x.test/a", title="T", summary=None, image_url=None,
                        published_at=None, editor="ann")
    with pytest.raises(EditError, match="title"):
        add_manual_item(db, url="https://x.test/b", title="  ", summary=None, image_url=None,
                        published_at=None, editor="ann")
    assert find_item_by_url(db, "https://x.test/b") is None


def test_find_item_by_url_sees_exact_duplicates_of_other_sources(db):
    first = ids(db)[0]
    db["item_sources"].insert({"source_id": 1, "identity": "guid:copy", "item_id": first,
                               "url": "https://copy.test/1", "first_seen_at": "2026-11-21"})
    assert find_item_by_url(db, "https://copy.test/1")["id"] == first


# --- page metadata -------------------------------------------------------------------------------

OG_PAGE = """<!doctype html><html lang="en"><head>
<meta charset="utf-8">
<title>Japan, US agree to upgrade command ties | The Japan Times</title>
<meta name="description" content="Plain description, used only without og.">
<meta property="og:site_name" content="The Japan Times">
<meta property="og:title" content="Japan, U.S. agree to upgrade command &amp;amp; control ties">
<meta property="og:description" content="Tokyo and Washington  agreed on Sunday
 to upgrade U.S. Forces Japan into a joint force headquarters.">
<meta property="og:image" content="/uploads/2026/11/usfj.jpg?utm_source=og">
<meta property="og:url" content="https://www.japantimes.co.jp/news/2026/11/24/japan/usfj-command/">
<meta property="article:published_time" content="2026-11-24T18:05:00+09:00">
<link rel="canonical" href="https://www.japantimes.co.jp/news/2026/11/24/japan/usfj-command/">
</head><body><h1>Japan, U.S. agree</h1><p>Body</p></body></html>"""

LD_PAGE = """<html><head>
<title>Readout of the Trilateral Meeting - United States Department of State</title>
<meta property="og:site_name" content="United States Department of State">
<script type="application/ld+json">{"@context":"https://schema.org","@graph":[
 {"@type":"WebSite","name":"United States Department of State","url":"https://www.state.gov/"},
 {"@type":"WebPage","name":"Readout - United States Department of State"},
 {"@type":["NewsArticle"],"headline":
  "Deputy Secretary's Trilateral Meeting with Japan and the Republic of Korea",
  "description":
  "Deputy Secretary Sherman hosted Vice Foreign Minister Mori and First Vice Minister Cho.",
  "image":[{"@type":"ImageObject","url":"https://www.state.gov/wp-content/uploads/tri.jpg"}],
  "datePublished":"2023-02-13T21:30:00-05:00"}]}
</script>
<script type="application/ld+json">{ this is not json </script>
<link rel="canonical" href="https://www.state.gov/">
</head><body><time datetime="2020-01-01">old</time></body></html>"""

BARE_PAGE = """<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">
<title>防衛大臣の訪米について｜防衛省</title></head>
<body><article><time datetime="2026-11-20T09:00:00+09:00" pubdate>令和8年11月20日</time>
<img src="/img/a.png"></article></body></html>"""


def test_open_graph_page():
    meta = parse_page_metadata(OG_PAGE.encode(), {"Content-Type": "text/html"},
                               "https://www.japantimes.co.jp/news/2026/11/24/japan/usfj-command/?utm_medium=x")
    assert meta == {
        "title": "Japan, U.S. agree to upgrade command & control ties",
        "description": "Tokyo and Washington agreed on Sunday to upgrade U.S. Forces Japan "
                       "into a joint force headquarters.",
        "image": "https://www.japantimes.co.jp/uploads/2026/11/usfj.jpg",
        "published_at": "2026-11-24T09:05:00Z",
        "canonical_url": "https://www.japantimes.co.jp/news/2026/11/24/japan/usfj-command/",
    }


def test_json_ld_article_wins_over_webpage_and_home_page_canonical_is_ignored():
    url = "https://www.state.gov/deputy-secretary-trilateral/"
    meta = parse_page_metadata(LD_PAGE.encode(), {}, url)
    assert meta["title"].startswith("Deputy Secretary's Trilateral Meeting")
    assert meta["description"].startswith("Deputy Secretary Sherman hosted")
    assert meta["image"] == "https://www.state.gov/wp-content/uploads/tri.jpg"
    assert meta["published_at"] == "2023-02-14T02:30:00Z"
    assert meta["canonical_url"] == url


def test_page_with_only_a_title_and_time_in_shift_jis():
    body = BARE_PAGE.encode("cp932")
    meta = parse_page_metadata(body, {"Content-Type": "text/html"},
                               "https://www.mod.go.jp/j/press/news/2026/11/20a.html")
    assert meta["title"] == "防衛大臣の訪米について｜防衛省"
    assert meta["published_at"] == "2026-11-20T00:00:00Z"
    assert meta["description"] is None and meta["image"] is None


def test_site_name_is_trimmed_from_a_plain_title():
    page = (b'<title>Talks open | Kyodo News</title>'
            b'<meta property="og:site_name" content="Kyodo News">')
    assert parse_page_metadata(page, {}, "https://k.test/a")["title"] == "Talks open"


def test_not_a_page():
    with pytest.raises(EmptyBody):
        parse_page_metadata(b"  \n", {}, "https://x.test/")
    with pytest.raises(BinaryBody):
        parse_page_metadata(b"%PDF-1.7 ...", {}, "https://x.test/a.pdf")


def test_fetch_page_metadata_from_a_real_server(feed_server: FeedServer, fast_http: HttpSettings):
    feed_server.route("/article", body=OG_PAGE.encode(), content_type="text/html; charset=utf-8")
    feed_server.route("/short", status=301, redirect_to="/article")
    loopback = AddressPolicy.from_settings(False, ["127.0.0.1/32"])
    meta = fetch_page_metadata(feed_server.url("/short"), fast_http, loopback)
    assert meta["title"] == "Japan, U.S. agree to upgrade command & control ties"
    assert meta["url"] == feed_server.url("/article")
    # The page's canonical URL is another site's: the fetched address stands.
    assert meta["canonical_url"] == feed_server.url("/article")
    sent = feed_server.requests_for("/article")[-1].headers
    assert sent["User-Agent"] == fast_http.user_agent and "text/html" in sent["Accept"]

    feed_server.route("/missing", status=404)
    with pytest.raises(HTTPNotFound):
        fetch_page_metadata(feed_server.url("/missing"), fast_http, loopback)
    feed_server.route("/doc.pdf", body=b"%PDF-1.7", content_type="application/pdf")
    with pytest.raises(NotAFeed, match="application/pdf"):
        fetch_page_metadata(feed_server.url("/doc.pdf"), fast_http, loopback)
    feed_server.route("/slow", body=OG_PAGE.encode(), content_type="text/html", delay=2)
    with pytest.raises(FetchError):
        fetch_page_metadata(feed_server.url("/slow"), fast_http, loopback)
