"""`digest entry include|add|move|drop|lead|list|show`, as real processes."""

from __future__ import annotations

import json

import pytest
from support import digest
from test_entries import OUTLETS, add_story


@pytest.fixture
def folder(new_db, tmp_path):
    """A working folder whose database holds two stories: a three-outlet one and a single."""
    db = new_db(*OUTLETS)
    story = add_story(
        db,
        1,
        {
            "State": "Readout of the Secretary's Meeting with Hayashi",
            "Japan Times": "Hayashi hails talks with Blinken",
            "Yonhap": "Blinken, Hayashi meet in Tokyo",
        },
        summaries={"State": "Secretary Blinken met Foreign Minister Hayashi."},
    )
    single = add_story(db, 2, {"NHK": "陸自と米陸軍が共同訓練"}, day="2026-11-18")
    (tmp_path / "digest.toml").write_text('[store]\npath = "digest.db"\n', encoding="utf-8")
    return tmp_path, story, single[0]


def test_include_keeps_the_story_and_show_prints_its_paragraph(folder):
    cwd, (lead, jt, yonhap), _ = folder
    made = json.loads(
        digest("entry", "include", str(jt), "--keep", str(yonhap), "--json", cwd=cwd).stdout
    )
    assert [i["id"] for i in made["items"]] == [lead, jt, yonhap]
    shown = digest("entry", "show", str(made["id"]), cwd=cwd).stdout
    assert "Secretary's Meeting with Hayashi" in shown
    assert "[DRAFT — needs writing] " in shown and "[met](https://news.test/10)" in shown
    # Siblings without a sentence of their own link words of the lead's.
    assert "](https://news.test/11)" in shown and "](https://news.test/12)" in shown
    listed = digest("entry", "list", cwd=cwd).stdout
    assert "Japan Times" in listed and "Yonhap" in listed


def test_lead_only_then_add_move_lead_and_drop(folder):
    cwd, (lead, jt, yonhap), nhk = folder
    first = json.loads(
        digest("entry", "include", str(lead), "--lead-only", "--json", cwd=cwd).stdout
    )
    unused = digest("entry", "show", str(first["id"]), cwd=cwd).stdout
    assert f"used in entry {first['id']}: {jt}" in unused
    found = json.loads(digest("search", "Hayashi", "--json", cwd=cwd).stdout)
    assert {r["id"]: r["entry"] for r in found}[jt] == f"used in entry {first['id']}"
    wide = digest("search", "Hayashi", cwd=cwd, env={"COLUMNS": "200"}).stdout
    assert f"candidate · used in entry {first['id']}" in wide
    second = json.loads(digest("entry", "include", str(nhk), "--json", cwd=cwd).stdout)
    added = json.loads(digest("entry", "add", str(first["id"]), str(jt), "--json", cwd=cwd).stdout)
    assert [i["id"] for i in added["items"]] == [lead, jt]
    moved = json.loads(
        digest("entry", "move", str(jt), str(second["id"]), "--json", cwd=cwd).stdout
    )
    assert [i["id"] for i in moved["items"]] == [nhk, jt]
    led = json.loads(digest("entry", "lead", str(second["id"]), str(jt), "--json", cwd=cwd).stdout)
    assert led["lead_item_id"] == jt
    assert "dropped" in digest("entry", "drop", str(first["id"]), cwd=cwd).stdout
    rows = json.loads(digest("entry", "list", "--json", cwd=cwd).stdout)
    assert [r["id"] for r in rows] == [second["id"]]
    history = digest("history", str(yonhap), cwd=cwd).stdout
    assert f"used in entry {first['id']}" in history


def test_entry_mistakes_are_one_line(folder):
    cwd, (lead, jt, _), nhk = folder
    made = json.loads(digest("entry", "include", str(lead), "--json", cwd=cwd).stdout)
    for args, message in (
        (("entry", "include", str(jt)), f"already in entry {made['id']}"),
        (("entry", "show", "999"), "no entry with id 999"),
        (("entry", "move", str(nhk), str(made["id"])), "is in no entry"),
        (("entry", "lead", str(made["id"]), str(nhk)), f"not in entry {made['id']}"),
        (("entry", "include", str(nhk), "--keep", str(jt)), "not in the story"),
    ):
        done = digest(*args, cwd=cwd, check=False)
        assert done.returncode == 1, args
        assert done.stderr.strip().startswith("error:") and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_edit_writes_fields_and_accepts_the_draft(folder):
    cwd, (_lead, jt, _yonhap), nhk = folder
    made = json.loads(digest("entry", "include", str(jt), "--json", cwd=cwd).stdout)
    other = json.loads(digest("entry", "include", str(nhk), "--json", cwd=cwd).stdout)
    edited = json.loads(digest("entry", "edit", str(other["id"]), "--headline", "Drill",
                               "--blurb", "GSDF and US Army **trained**.", "--json",
                               cwd=cwd).stdout)
    assert edited[0]["headline"] == "Drill" and edited[0]["blurb"].endswith("**trained**.")
    accepted = json.loads(digest("entry", "edit", "--all", "--from-draft", "--json",
                                 cwd=cwd).stdout)
    by_id = {e["id"]: e for e in accepted}
    # The written entry keeps its words; the other takes the drafted paragraph and headline,
    # its links inline and without the draft marker.
    assert by_id[other["id"]]["blurb"] == "GSDF and US Army **trained**."
    drafted = by_id[made["id"]]
    assert "[met](https://news.test/10)" in drafted["blurb"]
    assert "DRAFT" not in drafted["blurb"] and drafted["headline"]
    shown = digest("entry", "show", str(made["id"]), cwd=cwd).stdout
    assert "needs writing" not in shown
    refused = digest("entry", "edit", str(made["id"]), cwd=cwd, check=False)
    assert refused.returncode == 1 and "nothing to write" in refused.stderr
