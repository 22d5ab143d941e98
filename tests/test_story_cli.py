"""`digest story merge|split` and `digest triage evaluate-stories`, as real processes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alliance_digest.store.db import open_db
from support import digest
from test_stories import STORIES, stored


@pytest.fixture
def folder(tmp_path):
    """A working folder whose digest.toml points at a database of the labelled dev set."""
    stored(STORIES / "dev", tmp_path / "data" / "digest.db").close()
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n', encoding="utf-8")
    return tmp_path


def _story(db_path: Path, item_id: int) -> int:
    db = open_db(db_path)
    try:
        return db["items"].get(item_id)["cluster_id"]
    finally:
        db.close()


def test_merge_and_split_are_kept_by_later_clustering(folder):
    db_path = folder / "data" / "digest.db"
    db = open_db(db_path)
    a, b = (r[0] for r in db.execute(
        "SELECT id FROM items WHERE id = cluster_id ORDER BY id LIMIT 2"))
    db.close()
    assert _story(db_path, a) != _story(db_path, b)
    shown = digest("story", "merge", str(a), str(b), cwd=folder).stdout
    assert "story" in shown
    assert _story(db_path, a) == _story(db_path, b)

    # Clustering everything again keeps the editor's merge.
    db = open_db(db_path)
    from alliance_digest.triage.clusters import cluster_items

    cluster_items(db, [r[0] for r in db.execute("SELECT id FROM items")])
    db.close()
    assert _story(db_path, a) == _story(db_path, b)

    digest("story", "split", str(b), cwd=folder)
    assert _story(db_path, b) == b != _story(db_path, a)
    db = open_db(db_path)
    cluster_items(db, [r[0] for r in db.execute("SELECT id FROM items")])
    history = [r[0] for r in db.execute(
        "SELECT field FROM edits WHERE item_id = ? ORDER BY id", [b])]
    db.close()
    assert _story(db_path, b) == b
    assert history.count("story") >= 1
    assert "story" in digest("history", str(b), cwd=folder).stdout

    bad = digest("story", "merge", str(a), "99999", cwd=folder, check=False)
    assert bad.returncode == 1 and "99999" in bad.stderr


def test_evaluate_stories_prints_each_language_pair(folder):
    shown = digest("triage", "evaluate-stories", "--labels",
                   str(STORIES / "dev" / "labels.tsv"), cwd=folder).stdout
    for pair in ("all", "en-en", "ja-en", "ja-ja"):
        assert pair in shown
    assert "precision" in shown and "recall" in shown
    copy = folder / "l.tsv"
    shutil.copyfile(STORIES / "dev" / "labels.tsv", copy)
    copy.write_text("url\tlabel\nhttps://x.test/\t1\n", encoding="utf-8")
    bad = digest("triage", "evaluate-stories", "--labels", str(copy), cwd=folder, check=False)
    assert bad.returncode == 1 and "story" in bad.stderr
