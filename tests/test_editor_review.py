"""The desk's review routes over HTTP: roles enforced on the server, CSRF, the Issue page's
state, comments and settings. The desk folder of test_editor_http.py (alice and bob)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.editor.app import create_app, format_when
from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of
from alliance_digest.store.users import set_role
from starlette.testclient import TestClient
from test_editor_http import build_desk, item_id, login


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = build_desk(tmp_path)
    db = open_db(settings.store_path)
    set_role(db, "bob", "publisher")
    ids = [item_id(settings, g) for g in ("1", "4")]
    editorial.update_items(db, ids, {"status": "included", "section": "Diplomacy"},
                           editor="alice")
    editorial.update_item(db, ids[0], {"headline": "Allies talk", "blurb": "They **talk**."},
                          editor="alice")
    db.close()
    return settings


@pytest.fixture
def alice(settings: Settings) -> Iterator[tuple[TestClient, str]]:
    with TestClient(create_app(settings)) as c:
        yield c, login(c, "alice")


@pytest.fixture
def bob(settings: Settings) -> Iterator[tuple[TestClient, str]]:
    with TestClient(create_app(settings)) as c:
        yield c, login(c, "bob")


def _issue_id(html: str) -> int:
    m = re.search(r'action="/issues/(\d+)/', html)
    assert m, "no review form on the Issue page"
    return int(m.group(1))


def _post(client: TestClient, csrf: str, path: str, **data: str) -> object:
    return client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=False)


def test_review_steps_by_role(alice: tuple[TestClient, str], bob: tuple[TestClient, str],
                              settings: Settings) -> None:
    a, a_csrf = alice
    b, b_csrf = bob
    page = a.get("/issue").text
    assert 'id="issue-state">not drafted' in page
    assert _post(a, a_csrf, "/issue/record").status_code == 303
    page = a.get("/issue").text
    issue = _issue_id(page)
    assert 'id="submit-review"' in page and 'id="approve"' not in page
    assert _post(a, "forged", f"/issues/{issue}/submit").status_code == 403
    assert _post(a, a_csrf, f"/issues/{issue}/submit").status_code == 303
    page = a.get("/issue?done=submit").text
    assert "Submitted for review." in page and "review by alice" in page
    # An editor's approve is refused by the server, not only by a missing button.
    refused = _post(a, a_csrf, f"/issues/{issue}/approve")
    assert refused.status_code == 403 and "only a publisher" in refused.text
    # The publisher sees Approve; refused while item 4 has no blurb or headline, naming it.
    assert 'id="approve"' in b.get("/issue").text
    unwritten = item_id(settings, "4")
    db = open_db(settings.store_path)
    entry = entry_of(db, [unwritten])[unwritten]
    r = _post(b, b_csrf, f"/issues/{issue}/approve")
    assert r.status_code == 409 and f"entry {entry} “Routine item number 4" in r.text
    editorial.update_item(db, unwritten, {"headline": "Logistics", "blurb": "Done."},
                          editor="alice")
    db.close()
    assert _post(a, a_csrf, f"/issues/{issue}/comments", entry=str(entry),
                 text="Check <b>the</b> source").status_code == 303
    page = b.get("/issue").text
    assert "Check &lt;b&gt;the&lt;/b&gt; source" in page and "1 open" in page
    # The editor sees it on the entry's own page too.
    assert 'id="item-comments"' in a.get(f"/items/{unwritten}").text
    assert 'id="item-comments"' not in a.get(f"/items/{item_id(settings, '1')}").text
    asks = _post(b, b_csrf, f"/issues/{issue}/approve")
    assert asks.status_code == 409 and 'id="approve-anyway"' in asks.text
    assert _post(b, b_csrf, f"/issues/{issue}/approve", confirm="1").status_code == 303
    page = b.get("/issue").text
    assert 'id="issue-state">approved' in page and "approved by bob" in page
    assert 'id="reopen"' in page and 'id="reopen"' not in a.get("/issue").text
    assert _post(a, a_csrf, f"/issues/{issue}/discard", sure="1").status_code == 403
    trail = re.search(r'<table class="history" id="trail">(.*?)</table>', page, re.S)
    assert trail and all(w in trail.group(1) for w in ("submit", "comment", "approve"))


def test_settings_and_discard_from_the_desk(alice: tuple[TestClient, str],
                                            bob: tuple[TestClient, str],
                                            settings: Settings) -> None:
    a, a_csrf = alice
    b, b_csrf = bob
    _post(a, a_csrf, "/issue/record")
    issue = _issue_id(a.get("/issue").text)
    bad = _post(a, a_csrf, f"/issues/{issue}/settings", number="0",
                footer="Kept [typed](https://x.example/)")
    assert bad.status_code == 400 and "Kept [typed](https://x.example/)" in bad.text
    ok = _post(a, a_csrf, f"/issues/{issue}/settings", number="9",
               image_url="https://img.example/a.jpg", image_credit="Kyodo",
               footer="By [Sasakawa USA](https://spfusa.org/).")
    assert ok.status_code == 303
    page = a.get("/issue").text
    assert re.search(r"Vol \d+\.9", page)
    preview = a.get("/issue/preview").text
    assert 'href="https://spfusa.org/"' in preview and "https://img.example/a.jpg" in preview
    assert _post(b, b_csrf, f"/issues/{issue}/discard", sure="1").status_code == 303
    assert 'id="issue-state">not drafted' in b.get("/issue").text


def test_dropping_an_entry_resolves_its_comments(alice: tuple[TestClient, str],
                                                 bob: tuple[TestClient, str],
                                                 settings: Settings) -> None:
    """Dropped from the desk, an entry's open comments are resolved by the one who dropped
    it and listed as on a dropped entry; approval no longer asks to confirm them."""
    a, a_csrf = alice
    b, b_csrf = bob
    _post(a, a_csrf, "/issue/record")
    issue = _issue_id(a.get("/issue").text)
    unwritten = item_id(settings, "4")
    db = open_db(settings.store_path)
    entry = entry_of(db, [unwritten])[unwritten]
    db.close()
    assert _post(b, b_csrf, f"/issues/{issue}/comments", entry=str(entry),
                 text="Is this news?").status_code == 303
    assert "1 open" in a.get("/issue").text
    r = a.post(f"/api/entries/{entry}/drop", json={}, headers={"X-CSRF-Token": a_csrf})
    assert r.status_code == 200 and r.json()["entry"] is None
    page = a.get("/issue").text
    assert "0 open" in page
    listed = re.search(r'<ul class="comments" id="comments">(.*?)</ul>', page, re.S)
    assert listed and f"entry {entry} (dropped)" in listed.group(1)
    assert "resolved by alice" in listed.group(1)
    _post(a, a_csrf, f"/issues/{issue}/submit")
    assert _post(b, b_csrf, f"/issues/{issue}/approve").status_code == 303


def test_times_are_shown_in_the_schedule_zone_and_labelled() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    year = datetime.now(zone).year
    assert format_when(f"{year}-01-05T14:30:00Z", zone) == "Jan 05 09:30 EST"
    assert format_when(f"{year}-07-05T14:30:00Z", zone) == "Jul 05 10:30 EDT"
    assert format_when("2001-07-05T14:30:00Z", zone) == "2001-07-05"
    assert format_when(f"{year}-07-05T14:30:00Z", UTC) == "Jul 05 14:30 UTC"


def _item_form(html: str) -> dict[str, str]:
    """The item form's fields as the browser would post them (text inputs, selects, base)."""
    import html as html_lib

    data = {}
    for name in ("csrf_token", "version", "base", "headline", "key_phrase", "tags", "rank",
                 "lead_image", "image_credit"):
        m = re.search(rf'name="{name}" value="([^"]*)"', html)
        data[name] = html_lib.unescape(m.group(1)) if m else ""
    for name in ("blurb", "note"):
        m = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
        data[name] = html_lib.unescape(m.group(1)) if m else ""
    for name in ("status", "section"):
        m = re.search(rf'<select name="{name}">(.*?)</select>', html, re.S)
        chosen = re.search(r'<option(?: value="([^"]*)")? selected>([^<]*)', m.group(1)) \
            if m else None
        data[name] = html_lib.unescape(chosen.group(1) if chosen.group(1) is not None
                                       else chosen.group(2)) if chosen else ""
    return data


def test_saves_are_checked_per_field(alice: tuple[TestClient, str],
                                     settings: Settings) -> None:
    a, csrf = alice
    one = item_id(settings, "1")
    form = _item_form(a.get(f"/items/{one}").text)
    # Meanwhile a reorder writes the rank and someone edits the note.
    db = open_db(settings.store_path)
    editorial.update_item(db, one, {"rank": 5, "note": "theirs"}, editor="bob")
    db.close()
    r = a.post(f"/items/{one}", data={**form, "blurb": "Mine."}, follow_redirects=False)
    assert r.status_code == 303
    db = open_db(settings.store_path)
    item = editorial.get_item(db, one)
    assert (item["blurb"], item["rank"], item["note"]) == ("Mine.", 5, "theirs")
    editorial.update_item(db, one, {"blurb": "Bob's."}, editor="bob")
    db.close()
    r = a.post(f"/items/{one}", data={**form, "blurb": "Alice's again."})
    assert r.status_code == 409
    assert '<pre class="theirs">Bob&#39;s.</pre>' in r.text
    assert '<pre class="yours">Alice&#39;s again.</pre>' in r.text
    assert "Alice&#39;s again.</textarea>" in r.text
    # Saving the conflict page again keeps hers and leaves the reorder alone.
    again = a.post(f"/items/{one}", data=_item_form(r.text), follow_redirects=False)
    assert again.status_code == 303
    db = open_db(settings.store_path)
    item = editorial.get_item(db, one)
    assert (item["blurb"], item["rank"]) == ("Alice's again.", 5)
    db.close()
    assert csrf


def test_listed_fixes(alice: tuple[TestClient, str], settings: Settings) -> None:
    a, _ = alice
    # Search snippets are rendered: no raw Markdown.
    one = item_id(settings, "1")
    db = open_db(settings.store_path)
    editorial.update_item(db, one, {"blurb": "The **zebra talks** [met](https://e.test/1) "
                                             "in Tokyo."}, editor="alice")
    db["sources"].update(db.execute("SELECT id FROM sources WHERE name = 'Kyodo'")
                         .fetchone()[0], {"warning": "empty body", "last_error": None})
    db.close()
    page = a.get("/?q=zebra&status=all").text
    snippet = re.search(r'<div class="snippet">(.*?)</div>', page, re.S)
    assert snippet, "no snippet"
    assert "**" not in snippet.group(1) and "](" not in snippet.group(1)
    assert "<strong>" in snippet.group(1) and "met in Tokyo" in snippet.group(1)
    # A source's warning is shown with its text.
    assert "warning: empty body" in a.get("/sources").text
    # `u` is labelled as what it does.
    assert "<kbd>u</kbd> back to candidate" in page and "<kbd>u</kbd> undo" not in page
    # Every page has a favicon (and /favicon.ico leads to it).
    assert 'rel="icon" href="/static/favicon.svg"' in page
    r = a.get("/favicon.ico", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/static/favicon.svg"
    assert a.get("/static/favicon.svg").status_code == 200
