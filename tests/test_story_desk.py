"""Editors correct stories from the desk: take an item out of its story, merge two stories
(item page forms, and the queue's merge of selected rows); corrections are pinned."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.editor.app import create_app
from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.triage.clusters import cluster_items
from starlette.testclient import TestClient
from test_editor_http import build_desk, item_id, login


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return build_desk(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _story(settings: Settings, item: int) -> int:
    db = open_db(settings.store_path)
    try:
        return int(editorial.get_item(db, item)["cluster_id"] or item)
    finally:
        db.close()


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_take_an_item_out_of_its_story_and_merge_it_back(client, settings):
    login(client)
    lead, state, kyodo = (item_id(settings, g) for g in ("1", "101", "201"))
    assert _story(settings, kyodo) == _story(settings, lead)
    page = client.get(f"/items/{kyodo}").text
    assert 'id="split-story"' in page
    # Without the form's token: refused, nothing moves.
    assert client.post(f"/items/{kyodo}/split", data={},
                       follow_redirects=False).status_code == 403
    r = client.post(f"/items/{kyodo}/split", data={"csrf_token": _csrf(page)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/items/{kyodo}?story=split"
    assert "Taken out of its story" in client.get(r.headers["location"]).text
    assert _story(settings, kyodo) == kyodo != _story(settings, state)
    # Later clustering keeps the correction (the items are pinned).
    db = open_db(settings.store_path)
    try:
        cluster_items(db, [lead, state, kyodo])
    finally:
        db.close()
    assert _story(settings, kyodo) == kyodo

    page = client.get(f"/items/{kyodo}").text
    bad = client.post(f"/items/{kyodo}/merge", data={"csrf_token": _csrf(page), "other": "x"})
    assert bad.status_code == 400 and "give the number of an item" in bad.text
    r = client.post(f"/items/{kyodo}/merge", data={"csrf_token": _csrf(page),
                                                   "other": f"#{state}"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert _story(settings, kyodo) == _story(settings, state) == _story(settings, lead)
    history = client.get(r.headers["location"]).text
    assert "The two stories are one now" in history and ">story<" in history


def test_the_queue_merges_the_selected_rows_stories(client, settings):
    csrf = login(client)
    a, b = item_id(settings, "5"), item_id(settings, "6")
    assert _story(settings, a) != _story(settings, b)
    h = {"X-CSRF-Token": csrf}
    assert client.post("/api/stories/merge", json={"item_ids": [a, b]}).status_code == 403
    for bad in ({"item_ids": [a]}, {"item_ids": [a, a]}, {"item_ids": "1,2"},
                {"item_ids": [a, True]}):
        r = client.post("/api/stories/merge", json=bad, headers=h)
        assert r.status_code == 400, bad
    r = client.post("/api/stories/merge", json={"item_ids": [a, b]}, headers=h)
    assert r.status_code == 200 and r.json()["merged"] == 2
    assert _story(settings, a) == _story(settings, b) == r.json()["lead"]
    assert "<kbd>m</kbd> Merge stories" in client.get("/").text
