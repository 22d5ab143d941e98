"""The editor desk over HTTP (Starlette's TestClient) on a real SQLite file.

Safety first: no session → login; forged POSTs → 403; login rate limit → 429; stale saves
refused naming who saved; every change audited; CSP on every response; hostile feed content
shown as text. Then the pages and JSON endpoints editors use.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alliance_digest.editor.app import create_app, format_when
from alliance_digest.settings import Settings, load_settings
from alliance_digest.store import editorial
from alliance_digest.store.clusters import assign
from alliance_digest.store.db import open_db
from alliance_digest.store.items import store_entries
from alliance_digest.store.scores import ScoreUpdate, write_scores
from alliance_digest.store.sources import sync_sources
from alliance_digest.store.users import add_user
from starlette.testclient import TestClient
from support import make_entry

PASSWORD = "correct horse battery"
HOSTILE_TITLE = "<script>alert(1)</script> Okinawa base talks"

SOURCES = [
    {"name": "NHK World", "url": "https://nhk.test/feed", "country": "JP", "category": "news",
     "language": "en"},
    {"name": "State Dept", "url": "https://state.test/feed", "country": "US",
     "category": "government", "language": "en"},
    {"name": "Kyodo", "url": "https://kyodo.test/feed", "country": "JP", "category": "news",
     "language": "en"},
]


def _entry(n: int, title: str, *, url: str | None = None, summary: str = "",
           day: int = 20) -> dict[str, Any]:
    return make_entry(n, url=url or f"https://e.test/{n}", title=title,
                      summary=summary or f"<p>Summary of item {n}.</p>",
                      summary_text=summary or f"Summary of item {n}.",
                      published_at=f"2026-01-{day:02d}T{n % 24:02d}:00:00Z")


def build_desk(folder: Path, *, attempts: int = 3) -> Settings:
    """A configured folder: three sources, a dozen scored items (one story across outlets,
    one hostile title, one javascript: link), and the account alice."""
    (folder / "sources.toml").write_text(
        "".join(f'[[source]]\nname = "{s["name"]}"\nurl = "{s["url"]}"\ncountry = "{s["country"]}"'
                f'\ncategory = "{s["category"]}"\nlanguage = "{s["language"]}"\n\n'
                for s in SOURCES), encoding="utf-8")
    (folder / "digest.toml").write_text(
        f'[store]\npath = "data/digest.db"\n[editor]\nlogin_attempts = {attempts}\n'
        # The tests' page server is on loopback: admitted by name, as an intranet host would be.
        'login_window_minutes = 15\nallowed_url_networks = ["127.0.0.1/32"]\n',
        encoding="utf-8")
    settings = load_settings(folder / "digest.toml")
    db = open_db(settings.store_path)
    sync_sources(db, SOURCES)
    ids = {r["name"]: r["id"] for r in db["sources"].rows}
    with db.atomic():
        store_entries(db, ids["NHK World"], [
            _entry(1, "Japan and US hold 2+2 security talks in Tokyo", day=21),
            _entry(2, HOSTILE_TITLE, day=21,
                   summary='<p onclick="alert(2)">Talks <script>alert(3)</script>'
                           '<a href="javascript:alert(4)">click</a> went on.</p>'),
            _entry(3, "Javascript link item", url="javascript:alert(5)", day=20),
            *[_entry(n, f"Routine item number {n} about alliance logistics", day=19)
              for n in range(4, 12)],
        ])
        store_entries(db, ids["State Dept"], [
            _entry(101, "Secretary meets Japanese counterpart for 2+2", day=21,
                   url="https://state.test/2plus2"),
        ])
        store_entries(db, ids["Kyodo"], [
            _entry(201, "Japan, US ministers hold 2+2 in Tokyo", day=21,
                   url="https://kyodo.test/2plus2"),
        ])
    rows = {r["guid"]: r["id"] for r in db["items"].rows}
    reasons = json.dumps([{"rule": "combo:japan+us", "match": "Japan, US", "weight": 6},
                          {"rule": "group:defense", "match": "2+2", "weight": 3}])
    write_scores(db, [ScoreUpdate(i, 9.0 if g in ("1", "101", "201") else 6.5, reasons,
                                  "candidate", "2026-01-21T00:00:00Z") for g, i in rows.items()])
    with db.atomic():
        lead = rows["1"]
        assign(db, [(rows["1"], lead), (rows["101"], lead), (rows["201"], lead)])
    add_user(db, "alice", PASSWORD)
    add_user(db, "bob", PASSWORD)
    db.close()
    return settings


def item_id(settings: Settings, guid: str) -> int:
    db = open_db(settings.store_path)
    try:
        return int(db.execute("SELECT id FROM items WHERE guid = ?", [guid]).fetchone()[0])
    finally:
        db.close()


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf_token field in the page"
    return m.group(1)


def login(client: TestClient, user: str = "alice", password: str = PASSWORD) -> str:
    """Log in; returns the session's CSRF token (from the queue page's meta tag)."""
    page = client.get("/login")
    r = client.post("/login", data={"username": user, "password": password,
                                    "csrf_token": csrf_from(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    queue = client.get("/")
    m = re.search(r'<meta name="csrf-token" content="([^"]+)"', queue.text)
    assert m
    return m.group(1)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_desk(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


# --- safety ------------------------------------------------------------------------------------


def test_pages_redirect_to_login_and_json_gets_401_without_a_session(
        client: TestClient) -> None:
    for path in ("/", "/issue", "/sources", "/items/1", "/issue/preview"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
    r = client.post("/api/items/status", json={"ids": [1], "status": "included"})
    assert r.status_code == 401
    assert client.get("/login").status_code == 200
    assert client.get("/static/desk.js").status_code == 200


def test_forged_posts_are_refused(client: TestClient, settings: Settings) -> None:
    csrf = login(client)
    one = item_id(settings, "4")
    # JSON without the header, with a wrong one; a form without the field.
    assert client.post("/api/items/status",
                       json={"ids": [one], "status": "included"}).status_code == 403
    assert client.post("/api/items/status", json={"ids": [one], "status": "included"},
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(f"/items/{one}", data={"headline": "x", "version": "0"}).status_code == 403
    assert client.post(f"/items/{one}", data={"headline": "x", "version": "0",
                                              "csrf_token": "forged"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    # Nothing changed, and the right token works.
    assert editorial.history(open_db(settings.store_path), one) == []
    r = client.post("/api/items/status", json={"ids": [one], "versions": [0],
                                               "status": "included"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert r.json()["items"][0]["status"] == "included"


def test_login_needs_the_login_forms_csrf_token(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                    "csrf_token": "guessed"}, follow_redirects=False)
    assert r.status_code == 403
    assert "desk_session" not in client.cookies


def test_login_attempts_are_rate_limited_per_user_and_per_address(
        client: TestClient) -> None:
    token = csrf_from(client.get("/login").text)

    def attempt(user: str, password: str) -> int:
        return client.post("/login", data={"username": user, "password": password,
                                           "csrf_token": token},
                           follow_redirects=False).status_code

    assert [attempt("alice", "wrong password") for _ in range(3)] == [401, 401, 401]
    # Used up for alice from this address: even the right password is not checked now.
    assert attempt("alice", PASSWORD) == 429
    # Another user on the same address is not locked out (the address has its own, larger,
    # limit; tests/test_desk_edges.py has the rest).
    assert attempt("bob", PASSWORD) == 303


def test_login_limit_counts_each_user_name(settings: Settings) -> None:
    app = create_app(settings)
    limiter = app.state.desk.limiter
    for n in range(9):  # three times login_attempts, from as many addresses
        limiter.failed("alice", f"10.0.0.{n}")
    assert limiter.blocked("alice", "10.0.0.99")
    assert not limiter.blocked("bob", "10.0.0.99")


def test_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    page = client.get("/login")
    assert "httponly" in page.headers["set-cookie"].lower()
    r = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                    "csrf_token": csrf_from(page.text)},
                    follow_redirects=False)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("desk_session="))
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http here; https adds Secure


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = login(client)
    assert client.post("/logout", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    client.cookies.clear()
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_redirects_only_to_local_paths(client: TestClient) -> None:
    page = client.get("/login?next=//evil.test/x")
    r = client.post("/login", data={"username": "alice", "password": PASSWORD,
                                    "csrf_token": csrf_from(page.text),
                                    "next": "//evil.test/x"}, follow_redirects=False)
    assert r.headers["location"] == "/"


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for r in (client.get("/login"), client.get("/", follow_redirects=False),
              client.get("/static/desk.css"), client.get("/nope")):
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_pages_hold_no_inline_script_or_handlers(client: TestClient, settings: Settings) -> None:
    login(client)
    for path in ("/", "/issue", "/sources", f"/items/{item_id(settings, '1')}", "/login"):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), path


def test_hostile_feed_content_is_shown_as_text(client: TestClient, settings: Settings) -> None:
    login(client)
    queue = client.get("/").text
    assert "<script>alert(1)</script>" not in queue
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Okinawa base talks" in queue
    page = client.get(f"/items/{item_id(settings, '2')}").text
    assert "<script>alert(1)</script>" not in page
    assert "alert(3)" not in page           # summary's script dropped by nh3
    assert "onclick" not in page
    assert "javascript:" not in page


def test_javascript_links_are_never_rendered(client: TestClient, settings: Settings) -> None:
    csrf = login(client)
    queue = client.get("/").text
    assert "javascript:" not in queue
    assert "Javascript link item" in queue  # shown, as text only
    one = item_id(settings, "4")
    # A blurb link to javascript: is refused by the store; the preview shows text only.
    r = client.post("/api/blurb-preview", json={"text": "see [this](javascript:alert(1))"},
                    headers={"X-CSRF-Token": csrf})
    assert "javascript:" not in r.json()["html"]
    assert "this" in r.json()["html"]
    page = client.get(f"/items/{one}").text
    r = client.post(f"/items/{one}", data={"csrf_token": csrf_from(page),
                                           "version": "0",
                                           "blurb": "see [this](javascript:alert(1))"})
    assert r.status_code == 400
    assert "http(s)" in r.text


# --- editing -----------------------------------------------------------------------------------


def _form(html: str) -> dict[str, str]:
    return {"csrf_token": csrf_from(html),
            "version": re.search(r'name="version" value="(\d+)"', html).group(1)}  # type: ignore[union-attr]


def test_saving_an_item_writes_through_editorial_with_an_audit_trail(
        client: TestClient, settings: Settings) -> None:
    login(client)
    one = item_id(settings, "1")
    page = client.get(f"/items/{one}").text
    # The story's other outlets are offered as extra links.
    assert "https://state.test/2plus2" in page and "https://kyodo.test/2plus2" in page
    r = client.post(f"/items/{one}", data={
        **_form(page), "headline": "US and Japan hold 2+2", "key_phrase": "2+2 talks",
        "blurb": "The **2+2 talks** [met](https://e.test/1) in Tokyo.",
        "section": "Defense & Security", "tags": "2+2, defense", "rank": "2",
        "note": "lead story", "status": "included", "links": ["https://kyodo.test/2plus2"],
        "image_credit": "NHK"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    db = open_db(settings.store_path)
    item = editorial.get_item(db, one)
    assert item["headline"] == "US and Japan hold 2+2"
    assert item["status"] == "included" and item["status_by"] == "alice"
    assert item["tags"] == ["2+2", "defense"]
    assert item["links"] == [{"url": "https://kyodo.test/2plus2", "label": "Kyodo"}]
    assert item["rank"] == 2 and item["version"] == 1
    fields = {h["field"] for h in editorial.history(db, one)}
    assert {"headline", "blurb", "section", "tags", "rank", "status", "links"} <= fields
    assert all(h["editor"] == "alice" for h in editorial.history(db, one))
    page = client.get(f"/items/{one}?saved=1").text
    assert "<strong>2+2 talks</strong>" in page  # the rendered blurb preview


def test_a_stale_save_is_refused_naming_who_saved(settings: Settings) -> None:
    one = item_id(settings, "5")
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        login(a, "alice")
        login(b, "bob")
        page_a = a.get(f"/items/{one}").text
        page_b = b.get(f"/items/{one}").text
        assert b.post(f"/items/{one}", data={**_form(page_b), "headline": "Bob's"},
                      follow_redirects=False).status_code == 303
        r = a.post(f"/items/{one}", data={**_form(page_a), "headline": "Alice's",
                                          "blurb": "Alice's long paragraph"})
        assert r.status_code == 409
        assert "Not saved: item" in r.text and "changed by bob" in r.text
        # Said in the desk's zone and labelled, as every time on the desk.
        saved_at = editorial.get_item(open_db(settings.store_path), one)["edited_at"]
        assert saved_at not in r.text
        assert f"changed by bob at {format_when(saved_at, ZoneInfo('America/New_York'))}" in r.text
        assert "Alice&#39;s" in r.text  # her text is kept in the form
        assert "Alice&#39;s long paragraph</textarea>" in r.text
    db = open_db(settings.store_path)
    assert editorial.get_item(db, one)["headline"] == "Bob's"


def test_a_value_the_store_refuses_is_a_400_form_keeping_the_text(
        client: TestClient, settings: Settings) -> None:
    login(client)
    one = item_id(settings, "7")
    for field, value, reason in (("rank", "first", "rank must be a whole number"),
                                 ("section", "Sports", "unknown section &#39;Sports&#39;"),
                                 ("lead_image", "ftp://x.test/a.jpg", "must be an http(s)")):
        page = client.get(f"/items/{one}").text
        r = client.post(f"/items/{one}", data={**_form(page), "headline": "Typed headline",
                                               field: value})
        assert r.status_code == 400, field
        assert reason in r.text and 'value="Typed headline"' in r.text, field
    assert editorial.history(open_db(settings.store_path), one) == []


def test_bulk_status_changes_are_atomic_and_audited(client: TestClient,
                                                    settings: Settings) -> None:
    csrf = login(client)
    ids = [item_id(settings, g) for g in ("6", "7", "8")]
    r = client.post("/api/items/status", json={"ids": ids, "versions": [0, 0, 0],
                                               "status": "shortlisted"},
                    headers={"X-CSRF-Token": csrf})
    assert [i["status"] for i in r.json()["items"]] == ["shortlisted"] * 3
    # One unknown id: nothing changes.
    r = client.post("/api/items/status", json={"ids": [*ids, 999_999],
                                               "versions": [1, 1, 1, 0], "status": "excluded"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404
    db = open_db(settings.store_path)
    assert {editorial.get_item(db, i)["status"] for i in ids} == {"shortlisted"}
    assert all(len(editorial.history(db, i)) == 1 for i in ids)
    r = client.post("/api/items/status", json={"ids": ids, "versions": [1, 1, 1],
                                               "status": "filtered"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400


# --- the pages ---------------------------------------------------------------------------------


def test_queue_shows_score_reasons_and_story_outlets(client: TestClient) -> None:
    login(client)
    html = client.get("/").text
    assert "combo:japan+us" in html and "+6" in html
    # One row per story: the lead's title, its outlets (with language) as chips, its items.
    rows = re.findall(r'<tr class="row[^"]*" data-id="(\d+)" data-version="\d+" '
                      r'data-story="(\d+)" data-story-ids="([\d,]+)"', html)
    stories = [story for _, story, _ in rows]
    assert len(stories) == len(set(stories))
    two_plus_two = next(r for r in rows if len(r[2].split(",")) == 3)
    for outlet in ("NHK World", "Kyodo", "State Dept"):
        assert re.search(rf'class="chip"[^>]*>{outlet} <span class="lang">en</span>', html)
    assert "3 items</summary>" in html and '<details class="why-more"><summary>why' in html
    # Newest day first, best score first within it; the story's row leads with its lead.
    titles = re.findall(r'class="title"[^>]*>([^<]+)<', html)
    assert titles[0] == "Japan and US hold 2+2 security talks in Tokyo"
    assert two_plus_two[1] == two_plus_two[0] or two_plus_two[1] in two_plus_two[2]


def test_queue_filters_search_and_pages(client: TestClient, settings: Settings) -> None:
    login(client)
    html = client.get("/?source=Kyodo").text
    assert "Japan, US ministers hold 2+2" in html and "Routine item" not in html
    html = client.get("/?q=logistics").text
    assert "Routine item number 4" in html and "hold 2+2" not in html
    # Dates are days in [schedule] timezone (New York): 04:00Z on the 19th is still the 18th.
    html = client.get("/?q=logistics&until=2026-01-18").text
    assert "Routine item number 4 " in html and "Routine item number 11 " not in html
    html = client.get("/?q=logistics&until=2026-01-17").text
    assert "Routine item" not in html
    html = client.get('/?q="unclosed').text
    assert "unclosed quote" in html
    html = client.get("/?status=filtered").text
    assert "No items with these filters" in html
    html = client.get("/?country=US").text
    assert "Secretary meets" in html and "Routine item" not in html


def test_issue_page_orders_items_and_preview_renders_them(client: TestClient,
                                                          settings: Settings) -> None:
    from alliance_digest.store.entries import entry_of, entry_row

    csrf = login(client)
    a, b = item_id(settings, "9"), item_id(settings, "10")
    client.post("/api/items/status", json={"ids": [a, b], "versions": [0, 0],
                                           "status": "included"},
                headers={"X-CSRF-Token": csrf})
    db = open_db(settings.store_path)
    # Each included item is an issue entry of its own; the issue page orders entries.
    held = entry_of(db, [a, b])
    ea, eb = held[a], held[b]
    html = client.get("/issue").text
    assert f'data-id="{ea}"' in html and f'data-id="{eb}"' in html
    r = client.post("/api/issue/order",
                    json={"sections": [{"name": "Diplomacy", "ids": [eb, ea]}]},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert entry_row(db, eb)["position"] == 1 and entry_row(db, ea)["position"] == 2
    assert entry_row(db, ea)["section"] == "Diplomacy"
    preview = client.get("/issue/preview")
    assert preview.status_code == 200
    assert "frame-ancestors 'self'" in preview.headers["content-security-policy"]
    text = preview.text
    assert text.index("number 10") < text.index("number 9")
    r = client.post("/api/issue/order", json={"sections": [{"name": "Nope", "ids": [ea]}]},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400


def test_sources_page_and_toggle_persist_to_the_registry(client: TestClient,
                                                         settings: Settings) -> None:
    login(client)
    html = client.get("/sources").text
    assert "NHK World" in html and "Kyodo" in html
    r = client.post("/sources/Kyodo/enabled", data={"csrf_token": csrf_from(html),
                                                    "enabled": "0"}, follow_redirects=False)
    assert r.status_code == 303
    db = open_db(settings.store_path)
    assert db["sources"].rows_where("name = 'Kyodo'").__next__()["enabled"] == 0
    assert 'name = "Kyodo"' in settings.sources_file.read_text()
    from alliance_digest.sources.registry import load_registry
    assert not next(s for s in load_registry(settings.sources_file) if s.name == "Kyodo").enabled


def test_add_by_url_creates_a_manual_item(client: TestClient, settings: Settings) -> None:
    from alliance_digest.feedserver import FeedServer

    login(client)
    html = client.get("/").text
    with FeedServer() as server:
        server.route("/article", body=(
            b"<html><head><title>Alliance article</title>"
            b'<meta property="og:description" content="About the alliance."></head>'
            b"<body></body></html>"), content_type="text/html; charset=utf-8")
        r = client.post("/items/add", data={"csrf_token": csrf_from(html),
                                            "url": server.url("/article")},
                        follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/items/")
    page = client.get(r.headers["location"]).text
    assert "Alliance article" in page and "added by hand" in page
    r = client.post("/items/add", data={"csrf_token": csrf_from(html), "url": "javascript:x"},
                    follow_redirects=False)
    assert "add_error" in r.headers["location"]


# --- errors: one handler maps the error tree ----------------------------------------------------


def test_error_statuses_follow_the_error_tree() -> None:
    from alliance_digest.editor.app import error_status
    from alliance_digest.errors import (
        ConfigError,
        EditError,
        IssueFinalError,
        NotFoundError,
        SearchQueryError,
        StoreError,
        TemplateRenderError,
        UnknownUser,
    )

    assert error_status(EditError("x")) == error_status(SearchQueryError("x")) == 400
    assert error_status(NotFoundError("x")) == error_status(UnknownUser("x")) == 404
    assert error_status(IssueFinalError("x")) == 409
    assert error_status(TemplateRenderError("x")) == error_status(StoreError("x")) == 500
    assert error_status(ConfigError("x")) == 500


def test_a_broken_user_template_makes_the_preview_a_page_naming_it(tmp_path: Path) -> None:
    settings = build_desk(tmp_path)
    (tmp_path / "my-templates").mkdir()
    (tmp_path / "my-templates" / "digest.html.j2").write_text("<p>{{ no_such_value }}</p>\n")
    with (tmp_path / "digest.toml").open("a") as f:
        f.write('[issue]\ntemplates = "my-templates"\n')
    settings = load_settings(tmp_path / "digest.toml")
    with TestClient(create_app(settings)) as client:
        login(client)
        assert client.get("/issue").status_code == 200  # the page; its frame shows the error
        r = client.get("/issue/preview")
    assert r.status_code == 500
    assert "The issue template could not be rendered" in r.text
    assert "<code>digest.html.j2</code>" in r.text and "no_such_value" in r.text
    # The desk's frame may show it: the preview's own policy, not the desk's "no framing".
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "SAMEORIGIN"


def test_an_unknown_item_is_a_404_page_and_json(client: TestClient) -> None:
    csrf = login(client)
    r = client.get("/items/999999")
    assert r.status_code == 404
    assert "Not found" in r.text and "no item with id 999999" in r.text
    assert "Log out" in r.text  # still the desk, for the logged-in editor
    r = client.post("/api/items/status", json={"ids": [999_999], "versions": [0],
                                               "status": "included"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 404 and r.json() == {"error": "no item with id 999999"}


def test_a_bad_search_is_a_400_queue_page_saying_why(client: TestClient) -> None:
    login(client)
    r = client.get('/?q="extended deterrence')
    assert r.status_code == 400
    assert "unclosed quote" in r.text
    assert 'value="&#34;extended deterrence"' in r.text  # the search box keeps the query
    assert client.get("/?q=logistics").status_code == 200


def test_bad_input_to_the_api_is_a_400_with_its_reason(client: TestClient,
                                                      settings: Settings) -> None:
    csrf = login(client)
    one = item_id(settings, "4")
    for path, body, reason in (
            ("/api/items/status", {"ids": [one], "versions": [0], "status": "filtered"},
             "status must be one of"),
            ("/api/items/status", {"ids": [one], "status": "included"}, "versions must list"),
            ("/api/items/status", {"ids": "x", "status": "included"}, "ids must be a list"),
            ("/api/issue/order", {"sections": [{"name": "Nope", "ids": [one]}]},
             "unknown section 'Nope'"),
            ("/api/issue/order", {"sections": [{"name": None, "ids": [one]}]},
             f"entry {one} is not in the issue"),
            ("/api/blurb-preview", {"text": 3}, "text must be a string")):
        r = client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 400, path
        assert reason in r.json()["error"], r.json()


def test_digest_editor_refuses_other_interfaces_without_accounts(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    (tmp_path / "sources.toml").write_text("")
    r = subprocess.run([sys.executable, "-m", "alliance_digest.cli", "--config",
                        str(tmp_path / "digest.toml"), "editor", "--host", "0.0.0.0",
                        "--port", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "refusing to listen on 0.0.0.0" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_loopback_check() -> None:
    from alliance_digest.cli.desk import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("192.168.1.10")
