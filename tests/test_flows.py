"""The real collect flow under Prefect: a temporary local API (the test harness) for the wiring,
and whole `digest collect` processes for what only a process can show (kill -9)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alliance_digest.errors import ConfigError
from alliance_digest.feedserver import FeedServer

pytestmark = pytest.mark.flow


def feed(n: int, entries: int = 5) -> bytes:
    items = "".join(
        f"<item><title>Story {n}-{i} on the US-Japan alliance</title>"
        f"<link>https://news{n}.example.test/{i}</link><guid>n{n}-{i}</guid>"
        f"<pubDate>Mon, 23 Nov 2026 {i % 24:02d}:00:00 GMT</pubDate>"
        f"<description>&lt;p&gt;Paragraph {i} about deterrence.&lt;/p&gt;</description></item>"
        for i in range(entries)
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {n}</title>{items}</channel></rss>").encode()


def write_config(folder: Path, server: FeedServer, paths: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.toml").write_text(
        "".join(f'[[source]]\nname = "s{i}"\nurl = "{server.url(p)}"\n'
                for i, p in enumerate(paths)), encoding="utf-8")
    config = folder / "digest.toml"
    config.write_text('[store]\npath = "data/digest.db"\n[http]\ntotal_timeout = 20.0\n',
                      encoding="utf-8")
    return config


def wait_for_recorder(data: Path, timeout: float) -> None:
    """Wait until the detached recorder of `digest collect` (or of a flow's large run) has
    taken its payload out of the data folder: the run is complete, and recorded if it was to be."""
    deadline = time.monotonic() + timeout
    while list(data.glob(".prefect-record-*")) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not list(data.glob(".prefect-record-*")), (data / "prefect.log").read_text()


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect API for the session (entering it costs about ten seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


def test_collect_flow_stores_items_and_publishes_health(tmp_path, prefect_api):
    from alliance_digest.flows.collect import collect_with_runner
    from prefect.client.orchestration import get_client

    with FeedServer() as server:
        for n in range(12):  # above the pool threshold: parsing runs in worker processes
            server.route(f"/f{n}", body=feed(n))
        server.route("/down", status=503)
        config = write_config(tmp_path, server, [f"/f{n}" for n in range(12)] + ["/down"])
        summary = asyncio.run(collect_with_runner()(force=True, config=str(config)))
        assert summary["status"] == "completed"
        assert (summary["sources_ok"], summary["sources_failed"]) == (12, 1)
        assert summary["items_new"] == 60
        again = asyncio.run(collect_with_runner()(force=True, config=str(config)))
        assert again["items_new"] == 0

    async def artifact() -> str:
        async with get_client() as client:
            found = await client.read_latest_artifacts()
            return next(a.data for a in found if a.key == "collect-health")

    table = asyncio.run(artifact())
    assert "| s12 | failed | 503 |" in table


def test_a_large_collect_flow_run_leaves_index_and_stories_to_a_process_of_their_own(
        tmp_path, prefect_api):
    """The flow's process never clusters a large run on top of Prefect's memory: it ends once
    the items are stored and scored, and a detached process completes the run (recording
    nothing: the flow run is the record)."""
    from alliance_digest.flows.collect import collect_with_runner
    from alliance_digest.pipeline.collect import FINISH_LATER_ABOVE
    from prefect.client.orchestration import get_client

    feeds, per_feed = 25, FINISH_LATER_ABOVE // 25 + 10
    with FeedServer() as server:
        for n in range(feeds):
            server.route(f"/f{n}", body=feed(n, per_feed))
        config = write_config(tmp_path, server, [f"/f{n}" for n in range(feeds)])

        async def flow_runs() -> int:
            async with get_client() as client:
                return len(await client.read_flow_runs())

        before = asyncio.run(flow_runs())
        summary = asyncio.run(collect_with_runner()(force=True, config=str(config)))
    total = feeds * per_feed
    assert summary["status"] == "completed" and summary["items_new"] == total
    assert summary["triage"]["pending"] == total
    assert summary["triage"]["candidates"] + summary["triage"]["filtered"] == total
    data = tmp_path / "data"
    wait_for_recorder(data, 120)
    conn = sqlite3.connect(data / "digest.db")
    assert conn.execute("SELECT count(*) FROM search_deferred").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM item_tokens").fetchone()[0] == total
    conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
    conn.close()
    assert asyncio.run(flow_runs()) == before + 1  # the flow's own run, nothing recorded twice


def test_broken_config_fails_the_flow_with_a_clear_error(tmp_path, prefect_api):
    from alliance_digest.flows.collect import collect_with_runner

    (tmp_path / "sources.toml").write_text('[[source]]\nname = "x"\nurl = "ftp://nope"\n')
    (tmp_path / "digest.toml").write_text("")
    with pytest.raises(ConfigError, match=r"sources\.toml: source 'x'"):
        asyncio.run(collect_with_runner()(config=str(tmp_path / "digest.toml")))


def test_kill_9_leaves_a_sound_database_and_the_next_run_completes(tmp_path):
    """SIGKILL the whole `digest collect` process group mid-run (Prefect's server included)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    with FeedServer() as server:
        for n in range(40):
            # Half the feeds answer slowly, so the run is still writing when it is killed.
            server.route(f"/f{n}", body=feed(n, 30), delay=1.5 if n % 2 else 0)
        config = write_config(tmp_path / "site", server, [f"/f{n}" for n in range(40)])
        db_path = config.parent / "data" / "digest.db"
        cmd = [sys.executable, "-m", "alliance_digest.cli", "--config", str(config), "collect",
               "--force"]
        proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                if db_path.exists():
                    try:
                        with sqlite3.connect(db_path, timeout=1) as conn:
                            if conn.execute("SELECT count(*) FROM items").fetchone()[0] > 0:
                                break
                    except sqlite3.OperationalError:
                        pass
                time.sleep(0.05)
            else:
                pytest.fail("the collect run never started writing items")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        conn = sqlite3.connect(db_path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        partial = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        conn.close()
        assert 0 < partial < 40 * 30

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                              start_new_session=True)
        assert done.returncode == 0, done.stderr
        conn = sqlite3.connect(db_path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 40 * 30
        runs = conn.execute("SELECT status, error FROM runs ORDER BY id").fetchall()
        conn.close()
        assert runs[0][0] == "failed" and "interrupted" in runs[0][1]
        assert runs[-1][0] == "completed"


def test_a_cold_collect_stores_first_and_prefect_records_the_run_after(tmp_path):
    """No Prefect server: `digest collect` runs the use case at once and returns; a detached
    recorder then starts a temporary server and records the run there as a `collect` flow
    run with its health artifact."""
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    with FeedServer() as server:
        for n in range(3):
            server.route(f"/f{n}", body=feed(n, 4))
        server.route("/down", status=503)
        config = write_config(tmp_path / "site", server, ["/f0", "/f1", "/f2", "/down"])
        done = subprocess.run([sys.executable, "-m", "alliance_digest.cli", "--config",
                               str(config), "collect", "--force"], env=env, capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Collect run 1" in done.stdout and "failed s3" in done.stdout
    data = config.parent / "data"
    conn = sqlite3.connect(data / "digest.db")
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 12
    conn.close()
    wait_for_recorder(data, 180)
    conn = sqlite3.connect(home / "prefect.db")
    runs = conn.execute("SELECT f.name, r.name, r.state_type, r.parameters FROM flow_run r "
                        "JOIN flow f ON f.id = r.flow_id").fetchall()
    health = conn.execute("SELECT data FROM artifact WHERE key = 'collect-health'").fetchone()
    conn.close()
    assert [(r[0], r[1], r[2]) for r in runs] == [("collect", "run-1-completed", "COMPLETED")]
    assert json.loads(runs[0][3]) == {"force": True, "sources": None, "config": str(config)}
    assert "| s3 | failed | 503 |" in json.loads(health[0])


def test_a_large_cold_collect_returns_and_its_recorder_completes_index_and_stories(tmp_path):
    """More new items than FINISH_LATER_ABOVE: the command returns with them stored and
    scored; the detached recorder indexes them for search and clusters them, then records the
    run in Prefect with the whole run's triage."""
    from alliance_digest.pipeline.collect import FINISH_LATER_ABOVE

    feeds, per_feed = 25, FINISH_LATER_ABOVE // 25 + 10
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    with FeedServer() as server:
        for n in range(feeds):
            server.route(f"/f{n}", body=feed(n, per_feed))
        config = write_config(tmp_path / "site", server, [f"/f{n}" for n in range(feeds)])
        done = subprocess.run([sys.executable, "-m", "alliance_digest.cli", "--config",
                               str(config), "collect", "--force"], env=env, capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    total = feeds * per_feed
    said = " ".join(done.stdout.split())
    assert (f"indexing the {total} new items for search and grouping them into stories "
            "continue in the background") in said
    data = config.parent / "data"
    wait_for_recorder(data, 180)
    conn = sqlite3.connect(data / "digest.db")
    assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == total
    assert conn.execute("SELECT count(*) FROM search_deferred").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM item_tokens").fetchone()[0] == total
    conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")
    assert conn.execute("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'deterrence'"
                        ).fetchone()[0] == total
    conn.close()
    conn = sqlite3.connect(home / "prefect.db")
    runs = conn.execute("SELECT r.name, r.state_type FROM flow_run r").fetchall()
    conn.close()
    assert runs == [("run-1-completed", "COMPLETED")]
    assert "failed" not in (data / "prefect.log").read_text()


def test_with_a_server_running_collect_runs_at_once_and_records_on_that_server(
        tmp_path, prefect_api):
    """PREFECT_API_URL (or a running `digest serve`): the command collects at once, as without
    a server, and its recorder records the run on that server: no flow run on the command's
    clock, no temporary server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": PREFECT_API_URL.value()}
    with FeedServer() as server:
        server.route("/f0", body=feed(0, 3))
        config = write_config(tmp_path / "site", server, ["/f0"])
        done = subprocess.run([sys.executable, "-m", "alliance_digest.cli", "--config",
                               str(config), "collect", "--force"], env=env, capture_output=True,
                              text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    data = config.parent / "data"
    wait_for_recorder(data, 120)

    async def recorded() -> list[tuple[str, str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            return [(r.name, r.state_type.value) for r in runs if r.parameters.get("config")
                    == str(config)]

    assert asyncio.run(recorded()) == [("run-1-completed", "COMPLETED")]
    assert not (home / "digest-temporary-server.log").exists()
    assert not (home / "prefect.db").exists()


def test_draft_flow_writes_the_issue_and_publishes_it(tmp_path, prefect_api):
    """collect (real flow) → an editor includes two items → the real draft flow."""
    from alliance_digest.flows.collect import collect_with_runner
    from alliance_digest.flows.draft import draft
    from alliance_digest.store.db import open_db
    from alliance_digest.store.editorial import update_items
    from prefect.client.orchestration import get_client

    with FeedServer() as server:
        server.route("/f", body=feed(7, entries=4))
        config = write_config(tmp_path, server, ["/f"])
        asyncio.run(collect_with_runner()(force=True, config=str(config)))
    db = open_db(tmp_path / "data" / "digest.db")
    ids = [r["id"] for r in db.query("SELECT id FROM items ORDER BY id LIMIT 2")]
    update_items(db, ids, {"status": "included", "section": "Diplomacy"}, editor="ann")
    db.close()
    with config.open("a", encoding="utf-8") as f:
        f.write('[publish]\nout_dir = "site"\n')
    result = asyncio.run(draft(date="2026-11-24", out=str(tmp_path / "out"),
                               config=str(config)))
    # The publish step ran: the archive exists, empty while no issue is sent.
    assert result["published"]["issues"] == []
    assert (tmp_path / "site" / "feed.xml").is_file()
    assert result["items"] == 2 and (result["volume"], result["number"]) == (5, 1)
    md = Path(result["paths"]["md"])
    assert md.name == "us-japan-alliance-digest-vol-5-1_2026-11-24.md"
    assert {p.suffix for p in md.parent.iterdir()} == {".md", ".html", ".txt", ".pdf", ".docx"}
    assert Path(result["exports"]["pdf"]).read_bytes().startswith(b"%PDF")
    text = md.read_text(encoding="utf-8")
    assert "Vol: 5.1" in text and "November 24, 2026" in text and "Story 7-0" in text

    async def artifact() -> str:
        async with get_client() as client:
            found = await client.read_latest_artifacts()
            return next(a.data for a in found if a.key == "draft-issue")

    published = asyncio.run(artifact())
    assert "Story 7-0" in published
    # The artifact links the PDF and the Word file.
    assert f"[PDF]({Path(result['exports']['pdf']).as_uri()})" in published
    assert f"[Word]({Path(result['exports']['docx']).as_uri()})" in published


def _children_named(pid: int, needle: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and needle in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_the_temporary_prefect_server_goes_with_the_command_even_after_kill_9(tmp_path):
    """Prefect's own temporary server outlived a SIGKILLed caller; the one digest starts
    gets SIGTERM from the kernel when the command dies, and stops with it otherwise.

    `digest draft` starts one (a cold `digest collect` leaves Prefect to a recorder that
    starts its own the same way, after the command)."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    with FeedServer() as server:
        for n in range(4):
            server.route(f"/f{n}", body=feed(n, 5), delay=20)  # the run outlasts the test
        config = write_config(tmp_path / "site", server, [f"/f{n}" for n in range(4)])
        cmd = [sys.executable, "-m", "alliance_digest.cli", "--config", str(config), "draft",
               "--out", str(tmp_path / "drafts")]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            servers: list[int] = []
            while not servers and time.monotonic() < deadline:
                servers = _children_named(proc.pid, b"prefect server start")
                time.sleep(0.1)
            assert servers, "digest draft started no Prefect server of its own"
            time.sleep(1.0)
        finally:
            proc.kill()  # the command alone, not its children
            proc.wait()

        def alive() -> list[int]:  # a zombie or a reused pid has another command line
            left = []
            for pid in servers:
                try:
                    if b"prefect" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        left.append(pid)
                except OSError:
                    pass
            return left

        deadline = time.monotonic() + 30
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive()


def test_a_temporary_server_that_cannot_start_is_one_clear_error(tmp_path, monkeypatch):
    """The port it was given is taken: `connected()` says so, and nothing points at it."""
    import socket

    from alliance_digest.errors import DigestError
    from alliance_digest.flows import serve
    from alliance_digest.settings import load_settings

    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n', encoding="utf-8")
    settings = load_settings(tmp_path / "digest.toml")
    monkeypatch.setenv("PREFECT_API_URL", "")
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    monkeypatch.setattr(serve, "_temporary_server", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(serve, "free_port", lambda host="127.0.0.1": port)
        api = serve.use_server(settings)
        assert api.url == f"http://127.0.0.1:{port}/api"
        with pytest.raises(DigestError, match="exited during start-up"), api.connected():
            pytest.fail("the block ran without a server")
    assert "PREFECT_API_URL" not in os.environ and serve._temporary_server is None
