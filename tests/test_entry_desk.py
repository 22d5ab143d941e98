"""The desk's issue entries over HTTP: include a story, edit its paragraph, preview, order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.editor.app import create_app
from alliance_digest.settings import Settings
from starlette.testclient import TestClient
from test_editor_http import build_desk, item_id, login


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_desk(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_include_a_story_edit_its_paragraph_and_preview_it(client, settings):
    csrf = login(client)
    h = {"X-CSRF-Token": csrf}
    lead, state, kyodo = (item_id(settings, g) for g in ("1", "101", "201"))
    assert client.post("/api/entries/include", json={"item_id": kyodo}).status_code == 403
    r = client.post("/api/entries/include", json={"item_id": kyodo, "keep": [state]}, headers=h)
    assert r.status_code == 200, r.text
    entry = r.json()["entry"]
    # The story's lead leads; the item asked for and the sibling kept follow.
    assert [i["id"] for i in entry["items"]] == [lead, kyodo, state]
    page = client.get(entry["url"]).text
    assert "Start from the draft" in page and "words" in page
    blurb = "Ministers [met](https://state.test/2plus2) in Tokyo for the **2+2**."
    preview = client.post(
        f"/api/entries/{entry['id']}/preview", json={"blurb": blurb, "key_phrase": "2+2"}, headers=h
    ).json()
    assert preview["markdown"] == blurb and preview["words"] == 7 and not preview["in_range"]
    assert '<a href="https://state.test/2plus2">met</a>' in preview["html"]
    saved = client.post(
        f"/api/entries/{entry['id']}",
        json={"version": entry["version"], "blurb": blurb, "headline": "Allies hold 2+2"},
        headers=h,
    )
    assert saved.status_code == 200, saved.text
    stale = client.post(
        f"/api/entries/{entry['id']}", json={"version": entry["version"], "blurb": "x"}, headers=h
    )
    assert stale.status_code == 409 and "reload it" in stale.json()["error"]
    # Who saved it and when, in the desk's zone and labelled, not a raw UTC timestamp.
    assert re.search(r"changed by alice at \w{3} \d\d \d\d:\d\d E[SD]T after",
                     stale.json()["error"]), stale.json()["error"]
    issue = client.get("/issue").text
    assert f'href="/entries/{entry["id"]}"' in issue and "Allies hold 2+2" in issue
    preview_html = client.get("/issue/preview").text
    assert '<a href="https://state.test/2plus2"' in preview_html


def test_entry_routes_answer_mistakes_with_one_line(client, settings):
    csrf = login(client)
    h = {"X-CSRF-Token": csrf}
    assert client.get("/entries/999").status_code == 404
    r = client.post("/api/entries/999/preview", json={}, headers=h)
    assert r.status_code == 404 and r.json()["error"] == "no entry with id 999"
    r = client.post("/api/entries/include", json={"item_id": "x"}, headers=h)
    assert r.status_code == 400
    one = item_id(settings, "9")
    entry = client.post("/api/entries/include", json={"item_id": one}, headers=h).json()["entry"]
    r = client.post("/api/entries/include", json={"item_id": one}, headers=h)
    assert r.status_code == 400 and f"already in entry {entry['id']}" in r.json()["error"]


def test_the_queue_shows_the_coming_issues_window_by_default(client, settings):
    from alliance_digest.store.db import open_db

    login(client)
    html = client.get("/").text
    assert "Showing items of every date" in html and "America/New_York" in html
    db = open_db(settings.store_path)
    db["issues"].insert(
        {
            "title": "D",
            "volume": 1,
            "number": 1,
            "date": "2026-01-19",
            "status": "final",
            "created_at": "2026-01-19T00:00:00Z",
        }
    )
    db.close()
    html = client.get("/").text
    assert 'name="since" value="2026-01-20"' in html
    assert "the coming issue’s window (since the last issue, 2026-01-19)" in html
    assert "Routine item" not in html and "hold 2+2" in html
    html = client.get("/?since=").text
    assert "Routine item" in html and "Showing items of every date" in html


def test_a_recorded_issue_reordered_on_the_desk_is_exported_in_the_desks_order(client, settings):
    """The desk numbers positions within each section; the delivery formats of a recorded
    issue (PDF, Word, email, archive) must read them by section too, as the Issue page shows
    them, not by position alone across sections."""
    from datetime import date

    from alliance_digest.pipeline.draft import draft_issue
    from alliance_digest.pipeline.export import issue_document
    from alliance_digest.store.db import open_db
    from alliance_digest.store.issues import find_issue

    csrf = login(client)
    h = {"X-CSRF-Token": csrf}
    made = {}
    for guid, section in (("4", "Diplomacy"), ("5", "Diplomacy"), ("6", "Defense & Security")):
        one = item_id(settings, guid)
        r = client.post("/api/entries/include", json={"item_id": one}, headers=h)
        entry = r.json()["entry"]
        saved = client.post(
            f"/api/entries/{entry['id']}",
            json={"version": entry["version"], "section": section, "headline": f"Story {guid}"},
            headers=h,
        )
        assert saved.status_code == 200, saved.text
        made[guid] = entry["id"]
    issue_id = draft_issue(settings, day=date(2026, 1, 22)).issue_id
    # The editor moves the Defense entry up and swaps the two Diplomacy ones.
    order = {
        "sections": [
            {"name": "Diplomacy", "ids": [made["5"], made["4"]]},
            {"name": "Defense & Security", "ids": [made["6"]]},
        ]
    }
    assert client.post("/api/issue/order", json=order, headers=h).status_code == 200
    db = open_db(settings.store_path)
    try:
        document = issue_document(db, settings, find_issue(db, issue_id))
    finally:
        db.close()
    assert [p.headline for p in document.paragraphs] == ["Story 5", "Story 4", "Story 6"]


def test_an_entry_included_after_approval_is_marked_as_not_in_the_approved_issue(client, settings):
    """Approval fixes which entries the issue holds (what is sent); a story included after it
    is listed on the Issue page, so the page says it will not go out with this issue."""
    from datetime import date

    from alliance_digest.pipeline import review
    from alliance_digest.pipeline.draft import draft_issue
    from alliance_digest.store.db import open_db

    csrf = login(client)
    h = {"X-CSRF-Token": csrf}
    first = client.post(
        "/api/entries/include", json={"item_id": item_id(settings, "4")}, headers=h
    ).json()["entry"]
    saved = client.post(
        f"/api/entries/{first['id']}",
        headers=h,
        json={"version": first["version"], "headline": "Approved story", "blurb": "Written."},
    )
    assert saved.status_code == 200, saved.text
    issue_id = draft_issue(settings, day=date(2026, 1, 22)).issue_id
    db = open_db(settings.store_path)
    try:
        review.submit(db, issue_id, actor="alice", role="editor")
        review.approve(db, settings, issue_id, actor="bob", role="publisher")
    finally:
        db.close()
    page = client.get("/issue").text
    assert "not in the approved issue" not in page
    late = client.post(
        "/api/entries/include", json={"item_id": item_id(settings, "5")}, headers=h
    ).json()["entry"]
    page = client.get("/issue").text
    row = re.search(rf'data-id="{late["id"]}".*?</li>', page, re.S)
    assert row and "not in the approved issue" in row.group(0)
    first_row = re.search(rf'data-id="{first["id"]}".*?</li>', page, re.S)
    assert first_row and "not in the approved issue" not in first_row.group(0)


def test_an_approved_issues_preview_shows_what_is_sent(client, settings):
    """After approval the Issue page's preview is the approved issue (the entries it holds,
    which the exports and the email read), not an entry included since."""
    from datetime import date

    from alliance_digest.pipeline import review
    from alliance_digest.pipeline.draft import draft_issue
    from alliance_digest.pipeline.export import issue_document
    from alliance_digest.store.db import open_db
    from alliance_digest.store.issues import find_issue

    csrf = login(client)
    h = {"X-CSRF-Token": csrf}

    def include(group: str, headline: str) -> dict:
        entry = client.post(
            "/api/entries/include", json={"item_id": item_id(settings, group)}, headers=h
        ).json()["entry"]
        saved = client.post(
            f"/api/entries/{entry['id']}",
            headers=h,
            json={"version": entry["version"], "headline": headline, "blurb": "Written."},
        )
        assert saved.status_code == 200, saved.text
        return entry

    include("4", "Approved story")
    issue_id = draft_issue(settings, day=date(2026, 1, 22)).issue_id
    db = open_db(settings.store_path)
    try:
        review.submit(db, issue_id, actor="alice", role="editor")
        review.approve(db, settings, issue_id, actor="bob", role="publisher")
    finally:
        db.close()
    include("5", "Included after approval")
    assert "Included after approval" in client.get("/issue").text  # listed, marked not sent
    preview = client.get("/issue/preview").text
    assert "Approved story" in preview and "Included after approval" not in preview
    db = open_db(settings.store_path)
    try:
        sent = issue_document(db, settings, find_issue(db, issue_id))
    finally:
        db.close()
    assert [p.headline for p in sent.paragraphs] == ["Approved story"]
    # Reopened, the issue is a draft again and its preview takes the new entry in.
    db = open_db(settings.store_path)
    try:
        review.reopen(db, issue_id, actor="bob", role="publisher")
    finally:
        db.close()
    assert "Included after approval" in client.get("/issue/preview").text


def test_the_entry_page_walks_the_issue_in_order(client, settings):
    csrf = login(client)
    h = {"X-CSRF-Token": csrf}
    made = [client.post("/api/entries/include", json={"item_id": item_id(settings, g)},
                        headers=h).json()["entry"]["id"] for g in ("1", "5")]
    first, second = (client.get(f"/entries/{e}").text for e in made)
    # Two entries in the coming issue: each page links the other, in issue order.
    links = [re.search(r'href="/entries/(\d+)" id="(next|prev)-entry"', p) for p in (first,
                                                                                   second)]
    assert all(links) and "of 2 in the issue" in first
    assert {int(m.group(1)) for m in links if m} == set(made)
