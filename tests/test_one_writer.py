"""One writer at a time: a second collect says who runs, and a locked database is one line."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from alliance_digest.errors import CollectRunning
from alliance_digest.feedserver import FeedServer, Route
from alliance_digest.pipeline.collect import collect_once
from alliance_digest.settings import load_settings
from alliance_digest.store.db import open_db
from alliance_digest.store.lock import collect_lock, lock_holder, lock_path
from support import SITE_FEED, digest


def _configured(folder, server: FeedServer) -> None:
    (folder / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    (folder / "sources.toml").write_text(
        f'[[source]]\nname = "Slow"\nurl = "{server.url("/slow")}"\ncountry = "US"\n'
        'category = "news"\n')


def _popen_digest(*args: str, cwd) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    return subprocess.Popen([sys.executable, "-m", "alliance_digest.cli", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_collect_process_exits_at_once_naming_the_first(tmp_path):
    fetching, release = threading.Event(), threading.Event()

    def slow(_request) -> Route:  # holds the first collect mid-run until the test lets go
        fetching.set()
        release.wait(60)
        return Route(body=SITE_FEED, content_type="application/rss+xml")

    with FeedServer() as server:
        server.handle("/slow", slow)
        _configured(tmp_path, server)
        first = _popen_digest("collect", "--force", cwd=tmp_path)
        try:
            assert fetching.wait(60), first.communicate(timeout=5)
            holder = lock_holder(tmp_path / "data" / "digest.db")
            assert holder is not None and holder.pid == first.pid
            second = digest("collect", "--force", cwd=tmp_path, check=False)
            # Readers are not writers: listing items works while the collect runs.
            reading = digest("items", "--json", cwd=tmp_path)
        finally:
            release.set()
        out, err_text = first.communicate(timeout=120)
    assert first.returncode == 0, err_text
    assert "Collect run 1" in out
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"error: another collect is running (pid {first.pid}, since {holder.since})")
    assert json.loads(reading.stdout) == []
    db = open_db(tmp_path / "data" / "digest.db")
    runs = list(db.query("SELECT status, error, items_new FROM runs"))
    # The second run never started: it did not close the first one's run as abandoned.
    assert runs == [{"status": "completed", "error": None, "items_new": 2}]
    assert lock_holder(tmp_path / "data" / "digest.db") is None


def test_collect_in_process_refuses_while_the_lock_is_held_and_ignores_a_stale_file(tmp_path):
    with FeedServer() as server:
        server.route("/slow", body=SITE_FEED)
        _configured(tmp_path, server)
        settings = load_settings(tmp_path / "digest.toml")
        with collect_lock(settings.store_path) as me, pytest.raises(CollectRunning) as caught:
            collect_once(settings, force=True, triage=lambda *_: {})
        assert (caught.value.pid, caught.value.since) == (os.getpid(), me.since)
        # A file left by a killed process (pid and time, no lock held) blocks nobody.
        lock_path(settings.store_path).write_text("999999\t2026-01-01T00:00:00Z\n")
        assert lock_holder(settings.store_path) is None
        summary = collect_once(settings, force=True, triage=lambda *_: {})
    assert summary.run["status"] == "completed" and summary.run["items_new"] == 2


def test_a_locked_database_is_one_line_not_a_traceback(site):
    path = site / "data" / "digest.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held past the timeout
    try:
        busy = subprocess.run(
            [sys.executable, "-m", "alliance_digest.cli", "users", "add", "ann",
             "--password-stdin"], input="s3cret pass\n", cwd=site, capture_output=True,
            text=True, timeout=120, env={k: v for k, v in os.environ.items()
                                         if k != "DIGEST_CONFIG"})
        reading = digest("items", "--json", cwd=site)  # readers still read
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.returncode == 1
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in busy.stderr
    assert lines[0].startswith(f"error: {path}: the database is busy")
    assert len(json.loads(reading.stdout)) == 2


def test_a_scheduled_collect_flow_meeting_a_running_collect_is_skipped_in_one_line(tmp_path):
    import asyncio

    from alliance_digest.flows.collect import collect_with_runner
    from prefect.testing.utilities import prefect_test_harness

    with FeedServer() as server:
        server.route("/slow", body=SITE_FEED)
        _configured(tmp_path, server)
        settings = load_settings(tmp_path / "digest.toml")
        with prefect_test_harness(server_startup_timeout=60), \
                collect_lock(settings.store_path) as me:
            result = asyncio.run(collect_with_runner()(force=True,
                                                       config=str(tmp_path / "digest.toml")))
    assert result == {"skipped": f"another collect is running (pid {os.getpid()}, "
                                 f"since {me.since})", "pid": os.getpid(), "since": me.since}
    db = open_db(settings.store_path)
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    db.close()


def test_a_collect_or_draft_waits_for_the_process_finishing_a_run(tmp_path):
    """The detached process completing a large run's search index and stories holds the lock
    as "finish": a collect waits for it (bounded) instead of refusing; a draft waits too."""
    import contextlib
    import time
    from collections.abc import Iterator

    from alliance_digest.pipeline.draft import draft_issue
    from alliance_digest.store.lock import FINISH, wait_for_finish

    with FeedServer() as server:
        server.route("/slow", body=SITE_FEED)
        _configured(tmp_path, server)
        settings = load_settings(tmp_path / "digest.toml")

        @contextlib.contextmanager
        def finishing(for_seconds: float) -> Iterator[None]:
            """Another thread holds the lock as a finishing process for `for_seconds`."""
            taken, release = threading.Event(), threading.Event()

            def hold() -> None:
                with collect_lock(settings.store_path, purpose=FINISH):
                    taken.set()
                    release.wait(30)

            holder = threading.Thread(target=hold)
            holder.start()
            assert taken.wait(10)
            threading.Timer(for_seconds, release.set).start()
            try:
                yield
            finally:
                release.set()
                holder.join()

        with finishing(2.0):
            assert lock_holder(settings.store_path).purpose == FINISH
            assert not wait_for_finish(settings.store_path, timeout=0.2)
            # Waited out its (here short) patience:
            with pytest.raises(CollectRunning), collect_lock(settings.store_path,
                                                             wait_for_finish=0.2):
                pass
            started = time.monotonic()
            summary = collect_once(settings, force=True, triage=lambda *_: {})
            assert summary.run["status"] == "completed" and time.monotonic() - started >= 1.0

        with finishing(1.5):  # the command says what it waits for, then collects
            waiting = digest("collect", "--force", cwd=tmp_path)
        assert " ".join(waiting.stderr.split()).startswith(
            "waiting for the last run's search index and stories (pid ")
        assert "Collect run 2" in waiting.stdout

        with finishing(0.5):  # a draft started while a run is being finished waits for it
            started = time.monotonic()
            draft_issue(settings)
            assert time.monotonic() - started >= 0.4
    # A collect run's own lock is refused at once, as before.
    with collect_lock(settings.store_path), pytest.raises(CollectRunning):
        started = time.monotonic()
        try:
            collect_once(settings, force=True, triage=lambda *_: {})
        finally:
            assert time.monotonic() - started < 5
