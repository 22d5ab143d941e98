"""Triage done where feeds are parsed: the store must end exactly as triage-after-storing leaves it.

The collect use case has its parse workers score each entry and make its story tokens
(triage/annotate.py), inserts the items already triaged, and indexes the run's new items for
search in bulk at its end (store.items.index_backlog). These tests collect the same real feeds
from a server on 127.0.0.1 four ways with `collect_once` — parse workers, in-process, plain
(batches that return their outcomes unannotated, as on Dask: everything triaged after
storing), and later (indexing and clustering left to `finish_collect`, as `digest collect`
leaves a large run's to a process after the command) — and compare what each database holds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline import collect
from alliance_digest.pipeline.collect import BatchJob, collect_once, finish_collect
from alliance_digest.settings import load_settings
from alliance_digest.sources.batch import fetch_batch
from alliance_digest.store import clusters as cluster_mod
from alliance_digest.store.db import open_db, write_transaction
from alliance_digest.store.items import (
    defer_search_index,
    index_backlog,
    search_backlog,
    store_entries,
)
from alliance_digest.store.sources import sync_sources
from alliance_digest.triage.clusters import cluster_items
from alliance_digest.triage.search import search
from alliance_digest.triage.tokens import token_set
from support import SHARED, make_entry

CORPUS = SHARED / "corpus"


def _sources() -> dict[str, tuple[str, str]]:
    """name -> (path under corpus/, extra sources.toml lines): alliance news and other feeds."""
    picked = {
        "White House": ("whitehouse/briefing-room.xml",
                        'owner = "The White House"\ncountry = "US"\ncategory = "government"'),
    }
    manifest = (CORPUS / "real" / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = manifest[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in manifest[1:]]
    good = [r for r in rows if r["n_items"].isdigit() and int(r["n_items"]) > 0]
    for i, r in enumerate(good[:: max(1, len(good) // 14)][:14]):
        picked[f"feed {i}"] = ("real/" + r["local_path"], 'category = "news"\ncountry = "INTL"')
    return picked


def _collect(folder: Path, server: FeedServer, how: str) -> dict[str, Any]:
    """Collect every source `how` ("pool", "in-process" or "plain"); returns the triage counts."""
    folder.mkdir()
    registry = "".join(
        f'[[source]]\nname = "{name}"\nurl = "{server.url("/" + path)}"\n{extra}\n'
        for name, (path, extra) in _sources().items()
    )
    (folder / "sources.toml").write_text(registry, encoding="utf-8")
    (folder / "digest.toml").write_text('[store]\npath = "d.db"\n[http]\nmax_bytes = 20000000\n')
    settings = load_settings(folder / "digest.toml")
    assert len(_sources()) >= collect.POOL_THRESHOLD  # "pool" really parses in processes
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(collect.MAX_BATCHES) as threads:
        options: dict[str, Any] = {}
        if how == "in-process":
            patch.setattr(collect, "POOL_THRESHOLD", len(_sources()) + 1)
        elif how == "plain":
            def unannotated(job: BatchJob) -> Future[list[Any]]:
                return threads.submit(fetch_batch, job.requests, job.http)

            options["submit_batch"] = unannotated
        elif how == "later":
            options["finish_later_above"] = 10
        summary = collect_once(settings, force=True, **options)
    assert not summary.failures, summary.failures
    if how != "later":
        assert not summary.triage.get("pending")
        return dict(summary.triage)
    pending = summary.triage["pending"]
    assert pending == summary.run["items_new"] > 10
    db = open_db(settings.store_path)
    try:  # stored, scored and listed; the index and the stories wait
        assert search_backlog(db) == pending
        assert not search(db, "Japan")
        assert db.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == pending
        assert db.execute("SELECT count(*) FROM items WHERE triaged_at IS NULL").fetchone()[0] == 0
        db.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
    finally:
        db.close()
    stored = {k: summary.triage[k] for k in ("candidates", "filtered")}
    finished = finish_collect(settings, summary.run_id, stored)
    assert finished is not None
    return {**finished, **{k: summary.triage[k] for k in ("model", "model_warning")}}


def _state(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item keyed by (source, identity), with its story as the set of its members' keys."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT items.*, sources.name AS source, item_tokens.tokens AS tokens FROM items "
        "JOIN sources ON sources.id = items.source_id "
        "LEFT JOIN item_tokens ON item_tokens.item_id = items.id").fetchall()
    key_of = {r["id"]: (r["source"], r["identity"]) for r in rows}
    stories: dict[int, set[tuple[str, str]]] = {}
    for r in rows:
        stories.setdefault(r["cluster_id"], set()).add(key_of[r["id"]])
    state = {}
    for r in rows:
        state[key_of[r["id"]]] = {
            "score": r["score"], "reasons": json.loads(r["reasons"]), "status": r["status"],
            "status_by": r["status_by"], "tokens": r["tokens"],
            "lead": key_of[r["cluster_id"]], "story": frozenset(stories[r["cluster_id"]]),
            "triaged": r["triaged_at"] is not None,
        }
    conn.close()
    return state


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("collect-triage")
    with FeedServer(CORPUS) as server:
        counts = {how: _collect(root / how, server, how)
                  for how in ("pool", "in-process", "plain", "later")}
    return root, counts


@pytest.mark.parametrize("how", ["pool", "in-process", "later"])
def test_items_triaged_where_parsed_match_triage_after_storing(collected, how):
    root, counts = collected
    plain, annotated = _state(root / "plain" / "d.db"), _state(root / how / "d.db")
    assert len(plain) > 500
    assert annotated.keys() == plain.keys()
    assert annotated == plain
    assert all(item["triaged"] and item["tokens"] for item in annotated.values())
    statuses = {item["status"] for item in annotated.values()}
    assert statuses == {"candidate", "filtered"}  # the White House feed has alliance news
    assert any(len(item["story"]) > 1 for item in annotated.values())
    assert counts[how] == counts["plain"]
    assert counts[how]["candidates"] + counts[how]["filtered"] == len(annotated)


@pytest.mark.parametrize("how", ["pool", "in-process", "plain", "later"])
def test_search_index_is_complete_and_sound(collected, how):
    root, _ = collected
    db = open_db(root / how / "d.db")
    try:
        db.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
        db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
        assert db.execute("SELECT count(*) FROM search_deferred").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
        indexed = db.execute("SELECT count(*) FROM items_fts_docsize").fetchone()[0]
        assert indexed == db.execute("SELECT count(*) FROM items").fetchone()[0]
        found = {r["id"] for r in search(db, "Japan", limit=10_000)}
        like = {r[0] for r in db.execute(
            "SELECT id FROM items WHERE title LIKE '%japan%' OR summary_text LIKE '%japan%'")}
        assert found == like and found
    finally:
        db.close()


def test_search_backlog_indexes_what_the_writers_kept(tmp_path):
    db = open_db(tmp_path / "d.db")
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"},
                      {"name": "b", "url": "http://127.0.0.1/b"}])
    store_entries(db, 1, [_entry("before", "Quad leaders meet")])
    assert search_backlog(db) == 0 and len(search(db, "Quad")) == 1  # indexed as inserted

    class Boom(Exception):
        pass

    # As the collect writer does: a source whose savepoint failed leaves nothing behind.
    with write_transaction(db):
        defer_search_index(db)
        store_entries(db, 1, [_entry("kept", "Okinawa base relocation")])
        with pytest.raises(Boom), db.atomic():
            store_entries(db, 2, [_entry("rolled back", "Okinawa typhoon")])
            raise Boom
    assert search_backlog(db) == 1 and not search(db, "Okinawa")  # it outlives the commit
    # Inserted while a backlog waits: joins it. Edited or deleted there: the index is left
    # alone (it never had the text) and the backlog takes the item as it is when it gets there.
    store_entries(db, 2, [_entry("joins", "Okinawa governor"), _entry("goes", "Okinawa vote")])
    kept, goes = (db.execute("SELECT id FROM items WHERE identity = ?", [i]).fetchone()[0]
                  for i in ("kept", "goes"))
    db["items"].update(kept, {"headline": "Futenma relocation"})
    db["items"].delete(goes)
    db["items"].update(1, {"headline": "Quad summit in Tokyo"})  # indexed: re-indexed at once
    assert search_backlog(db) == 2
    db.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
    assert {r["title"] for r in search(db, "Tokyo")} == {"Quad leaders meet"}

    # A transaction that fails takes its deferral back with it.
    with pytest.raises(Boom), write_transaction(db):
        defer_search_index(db)
        raise Boom
    assert search_backlog(db) == 2

    assert index_backlog(db, chunk=1) == 2  # one committed chunk at a time
    assert search_backlog(db) == 0
    assert db.execute("SELECT count(*) FROM search_deferred").fetchone()[0] == 0
    db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
    assert {r["title"] for r in search(db, "Futenma")} == {"Okinawa base relocation"}
    assert {r["title"] for r in search(db, "Okinawa")} == {"Okinawa base relocation",
                                                           "Okinawa governor"}
    assert index_backlog(db) == 0

    # Without a backlog, inserts are indexed one by one again.
    store_entries(db, 2, [_entry("after", "Okinawa election")])
    assert len(search(db, "Okinawa")) == 3
    db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")


def _entry(identity: str, title: str) -> dict[str, Any]:
    return make_entry(identity, guid=identity, title=title, published_at="2026-11-20T00:00:00Z")


def _triaged(identity: str, title: str, summary: str = "") -> dict[str, Any]:
    return {**_entry(identity, title), "summary_text": summary, "score": 1.0, "reasons": "[]",
            "relevant": True, "tokens": token_set(title, summary)}


def test_items_inserted_triaged_wait_as_own_stories_until_clustered(tmp_path):
    db = open_db(tmp_path / "d.db")
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"},
                      {"name": "b", "url": "http://127.0.0.1/b"}])
    text = "Defense ministers Nakatani and Hegseth agreed in Yokosuka on joint missile production"
    store_entries(db, 1, [_triaged("a1", "Nakatani, Hegseth agree on joint missile production",
                                   text)])
    store_entries(db, 2, [_triaged("b1", "Quad foreign ministers to meet in Tokyo", "")])
    rows = db.execute("SELECT id, cluster_id FROM items ORDER BY id").fetchall()
    assert [r[0] for r in rows] == [r[1] for r in rows]  # each leads its own story...
    assert cluster_mod.unclustered_ids(db) == [1, 2]  # ...and waits to be clustered
    # The second outlet's story changes before clustering: its tokens are made again.
    store_entries(db, 2, [{**_triaged("b1", "Nakatani and Hegseth agree on missile production",
                                      text)}])
    assert db.execute("SELECT tokens FROM item_tokens_new WHERE item_id = 2").fetchone()[0] is None
    stats = cluster_items(db)
    assert (stats.items, stats.in_stories, stats.stories) == (2, 2, 1)
    assert db.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
    assert db.execute("SELECT tokens FROM item_tokens WHERE item_id = 2").fetchone()[0] == \
        token_set("Nakatani and Hegseth agree on missile production", text)
    assert cluster_mod.unclustered_ids(db) == []
    db.close()


def test_write_transaction_holds_the_write_lock_from_its_start(tmp_path):
    db = open_db(tmp_path / "d.db")
    other = sqlite3.connect(tmp_path / "d.db", timeout=0.1)
    with write_transaction(db):
        db.execute("SELECT count(*) FROM items").fetchone()  # a read first, then...
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO sources (name, url, registry_url, kind) "
                          "VALUES ('x', 'http://127.0.0.1/x', 'http://127.0.0.1/x', 'feed')")
        sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])  # ...our write succeeds
    other.execute("INSERT INTO sources (name, url, registry_url, kind) "
                  "VALUES ('x', 'http://127.0.0.1/x', 'http://127.0.0.1/x', 'feed')")
    other.commit()
    assert db.execute("SELECT count(*) FROM sources").fetchone()[0] == 2
    with pytest.raises(ZeroDivisionError), write_transaction(db):
        db.execute("DELETE FROM sources")
        1 / 0  # noqa: B018
    assert db.execute("SELECT count(*) FROM sources").fetchone()[0] == 2
    other.close()
    db.close()


def _outcome(name: str, entries: int) -> Any:
    from alliance_digest.sources.types import Entry, Outcome, ParsedFeed

    entry = Entry(identity="x", guid=None, url=None, title="t", summary="", summary_text="",
                  published_at=None, updated_at=None, language=None, image_url=None)
    return Outcome(name=name, status="ok", feed=ParsedFeed(None, None, (entry,) * entries))


def test_outcome_writer_bounds_what_waits_and_stores_everything(monkeypatch):
    import threading

    monkeypatch.setattr(collect, "QUEUE_ENTRIES", 100)
    stored: list[list[str]] = []
    release = threading.Event()

    def store(group: list[Any]) -> None:
        release.wait(10)
        stored.append([o.name for o in group])

    writer = collect.OutcomeWriter(store)
    runner = threading.Thread(target=writer.run, args=(2,))
    runner.start()
    writer.put(_outcome("first", 10))  # taken by the writer, which now waits in store()
    deadline = time.monotonic() + 5
    while not stored and writer._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.put(_outcome("a", 60))
    writer.put(_outcome("b", 30))  # with first's 10, not stored yet: the budget is full
    blocked = threading.Thread(target=writer.put, args=(_outcome("c", 1),))
    blocked.start()
    blocked.join(0.5)
    assert blocked.is_alive()  # c waits for room
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.put(_outcome("huge", 500))  # more than the budget, alone: it may wait
    writer.batch_done()
    writer.batch_done()
    runner.join(10)
    assert not runner.is_alive()
    assert sorted(n for group in stored for n in group) == ["a", "b", "c", "first", "huge"]
    assert all(len(group) <= collect.GROUP_SIZE for group in stored)
    writer.stop()
    writer.put(_outcome("late", 1))  # after stop: dropped, never blocks
    assert "late" not in [n for group in stored for n in group]


def test_outcome_writer_gathers_small_outcomes_into_one_group(monkeypatch):
    """Few large transactions: the search index merges fewer, larger segments."""
    import threading

    monkeypatch.setattr(collect, "GROUP_ENTRIES", 50)
    monkeypatch.setattr(collect, "GROUP_WAIT", 1.0)
    stored: list[tuple[float, list[str]]] = []
    writer = collect.OutcomeWriter(lambda group: stored.append(
        (time.monotonic(), [o.name for o in group])))
    runner = threading.Thread(target=writer.run, args=(1,))
    runner.start()
    for i in range(5):
        writer.put(_outcome(f"s{i}", 10))  # 50 entries: a group worth writing
        time.sleep(0.05)
    deadline = time.monotonic() + 5
    while not stored and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [names for _, names in stored] == [["s0", "s1", "s2", "s3", "s4"]]

    start = time.monotonic()
    writer.put(_outcome("lone", 1))  # too small to be a group: written after GROUP_WAIT
    while len(stored) < 2 and time.monotonic() < start + 10:
        time.sleep(0.01)
    assert stored[1][1] == ["lone"] and stored[1][0] - start >= 0.9

    writer.put(_outcome("last", 1))
    writer.batch_done()  # a batch's end is written at once, with what waits before it
    runner.join(2)
    assert not runner.is_alive()
    assert stored[2][1] == ["last"]


def test_parse_workers_run_at_a_lower_priority_than_the_collect_process():
    """Under load the writer (and the desk) come first; the workers still get idle cycles."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from alliance_digest.sources.batch import PARSE_WORKER_NICENESS, init_parse_worker

    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=init_parse_worker,
                             initargs=(None,)) as pool:
        worker_niceness = pool.submit(os.nice, 0).result(timeout=30)
    assert worker_niceness == min(19, os.nice(0) + PARSE_WORKER_NICENESS)


_SLOW_FINISH = """
import sys, time
from alliance_digest.pipeline.collect import finish_collect
from alliance_digest.settings import load_settings
from alliance_digest.store import db, items
items.BACKLOG_CHUNK = 40
real = db.write_transaction
def slow(conn):  # a chunk at a time, slowly enough to be killed in the middle of the backlog
    time.sleep(0.05)
    return real(conn)
db.write_transaction = slow
finish_collect(load_settings(sys.argv[1]), 1, {})
"""


def test_a_killed_finish_leaves_a_sound_store_and_the_next_run_completes_it(tmp_path, collected):
    """kill -9 the process completing a run (digest collect's detached recorder does this):
    what it indexed stays, and the next collect run indexes and clusters the rest."""
    import os
    import signal
    import subprocess
    import sys

    folder = tmp_path / "site"
    with FeedServer(CORPUS) as server:
        folder.mkdir()
        (folder / "sources.toml").write_text("".join(
            f'[[source]]\nname = "{name}"\nurl = "{server.url("/" + path)}"\n{extra}\n'
            for name, (path, extra) in _sources().items()), encoding="utf-8")
        (folder / "digest.toml").write_text(
            '[store]\npath = "d.db"\n[http]\nmax_bytes = 20000000\n', encoding="utf-8")
        settings = load_settings(folder / "digest.toml")
        pending = collect_once(settings, force=True, finish_later_above=10).triage["pending"]

        proc = subprocess.Popen([sys.executable, "-c", _SLOW_FINISH, str(folder / "digest.toml")],
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with sqlite3.connect(folder / "d.db", timeout=5) as conn:
                    if conn.execute("SELECT after_id FROM search_deferred").fetchone()[0] > 120:
                        break
                time.sleep(0.01)
            else:
                pytest.fail("the finishing process never got going")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        db = open_db(folder / "d.db")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.execute("INSERT INTO items_fts (items_fts) VALUES ('integrity-check')")
            assert 0 < search_backlog(db) < pending  # what it indexed stayed indexed
        finally:
            db.close()

        again = collect_once(settings)  # nothing due: it only completes what was left
    assert again.run["items_new"] == 0 and not again.triage.get("pending")
    db = open_db(folder / "d.db")
    try:
        assert search_backlog(db) == 0
        assert db.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
        db.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
    finally:
        db.close()
    root, _ = collected
    assert _state(folder / "d.db") == _state(root / "plain" / "d.db")
