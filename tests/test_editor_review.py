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
    r = _post(b, b_csrf, f"/issues/{issue}/approve")
    assert r.status_code == 409 and f"item {unwritten} “Routine item number 4" in r.text
    db = open_db(settings.store_path)
    editorial.update_item(db, unwritten, {"headline": "Logistics", "blurb": "Done."},
                          editor="alice")
    db.close()
    assert _post(a, a_csrf, f"/issues/{issue}/comments", entry=str(unwritten),
                 text="Check <b>the</b> source").status_code == 303
    page = b.get("/issue").text
    assert "Check &lt;b&gt;the&lt;/b&gt; source" in page and "1 open" in page
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


def test_times_are_shown_in_the_schedule_zone_and_labelled() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    year = datetime.now(zone).year
    assert format_when(f"{year}-01-05T14:30:00Z", zone) == "Jan 05 09:30 EST"
    assert format_when(f"{year}-07-05T14:30:00Z", zone) == "Jul 05 10:30 EDT"
    assert format_when("2001-07-05T14:30:00Z", zone) == "2001-07-05"
    assert format_when(f"{year}-07-05T14:30:00Z", UTC) == "Jul 05 14:30 UTC"
