"""Scaling out, for real: a `prefect server start`, a process work pool with a worker running
the deployed `collect`, and a Dask cluster (scheduler + 2 worker processes) fetching and
parsing while the flow's process alone writes SQLite.

Every process started here leads its own process group and is stopped by that group's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.flows.serve import free_port, group_alive, server_healthy

PREFECT = [sys.executable, "-m", "prefect"]
DIGEST = [sys.executable, "-m", "alliance_digest.cli"]


def feed(n: int, entries: int = 4) -> bytes:
    items = "".join(
        f"<item><title>Story {n}-{i}: US-Japan alliance</title>"
        f"<link>https://news{n}.example.test/{i}</link><guid>n{n}-{i}</guid>"
        f"<pubDate>Mon, 23 Nov 2026 {i:02d}:00:00 GMT</pubDate></item>"
        for i in range(entries))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"{items}</channel></rss>").encode()


def site(folder: Path, server: FeedServer, feeds: int, extra: str = "") -> Path:
    """A config folder whose sources are `feeds` loopback feeds on as many hosts."""
    folder.mkdir(parents=True, exist_ok=True)
    # 127.0.0.1 and localhost are different hosts to split_by_host: batches really spread.
    hosts = ["127.0.0.1", "localhost"]
    (folder / "sources.toml").write_text("".join(
        f'[[source]]\nname = "s{n}"\n'
        f'url = "{server.url(f"/f{n}").replace("127.0.0.1", hosts[n % 2])}"\n'
        for n in range(feeds)), encoding="utf-8")
    config = folder / "digest.toml"
    config.write_text(f'[store]\npath = "data/digest.db"\n[http]\ntotal_timeout = 20.0\n{extra}',
                      encoding="utf-8")
    return config


def stored(db: Path) -> set[tuple[str, str, str, str]]:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        return set(conn.execute(
            "SELECT s.name, i.identity, i.title, i.url FROM items i"
            " JOIN sources s ON s.id = i.source_id").fetchall())


def count_items(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=1)) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the process group, SIGKILL what is left, reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    deadline = time.monotonic() + 5
    while group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def spawn(cmd: list[str], log: Path, env: dict[str, str],
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on 127.0.0.1 with its own PREFECT_HOME; yields the env
    that points clients at it."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    env.pop("DIGEST_CONFIG", None)
    log = home / "server.log"
    proc = spawn([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                 log, env)
    try:
        deadline = time.monotonic() + 180
        while not server_healthy(url, timeout=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server did not start:\n{log_tail(log)}")
            time.sleep(0.25)
        yield {**env, "PREFECT_API_URL": url}
    finally:
        stop(proc)
        assert not group_alive(proc.pid), "prefect server's process group outlived stop()"


@pytest.mark.flow
def test_worker_runs_the_deployed_collect(tmp_path: Path,
                                          prefect_server: dict[str, str]) -> None:
    env = {**prefect_server, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    pool = "digest-test-pool"
    with FeedServer() as feeds:
        for n in range(6):
            feeds.route(f"/f{n}", body=feed(n))
        config = site(tmp_path / "site", feeds, 6)
        db = config.parent / "data" / "digest.db"
        started = time.monotonic()
        done = subprocess.run([*DIGEST, "--config", str(config), "deploy", "--pool", pool,
                               "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["pool_created"] is True
        assert set(result["deployments"]) == {"collect/digest", "draft/digest"}
        deployed = time.monotonic()

        worker_log = tmp_path / "worker.log"
        # The worker runs where the database is, from a folder of its own.
        worker = spawn([*PREFECT, "worker", "start", "--pool", pool, "--type", "process"],
                       worker_log, env, cwd=tmp_path)
        try:
            run = subprocess.run([*PREFECT, "deployment", "run", "collect/digest"], env=env,
                                 capture_output=True, text=True, timeout=120, cwd=tmp_path)
            assert run.returncode == 0, run.stdout + run.stderr
            deadline = time.monotonic() + 150
            while count_items(db) < 24:
                if worker.poll() is not None:
                    pytest.fail(f"the worker exited:\n{log_tail(worker_log)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"the worker's collect run stored {count_items(db)} of 24 items "
                                f"in time; worker log:\n{log_tail(worker_log)}")
                time.sleep(0.5)
            arrived = time.monotonic()
            # The run row is finished by the flow in the worker's flow-run process.
            deadline = time.monotonic() + 60
            while True:
                with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                    status = conn.execute(
                        "SELECT status FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
                if status == "completed" or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert status == "completed", log_tail(worker_log)
        finally:
            stop(worker)
        assert not group_alive(worker.pid)
    assert {t for _, _, t, _ in stored(db)} == {f"Story {n}-{i}: US-Japan alliance"
                                                for n in range(6) for i in range(4)}
    print(f"deploy {deployed - started:.1f}s, worker run until items {arrived - deployed:.1f}s")
    asyncio.run(_assert_deployment_on_pool(prefect_server["PREFECT_API_URL"], pool, config))


async def _assert_deployment_on_pool(url: str, pool: str, config: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        async with get_client() as client:
            for name in ("collect/digest", "draft/digest"):
                d = await client.read_deployment_by_name(name)
                assert d.work_pool_name == pool
                assert d.entrypoint.startswith("alliance_digest.flows.")
                assert d.parameters == {"config": str(config)}
                assert d.job_variables["env"] == {"DIGEST_CONFIG": str(config)}
                assert [s.active for s in d.schedules] == [True]
                assert not d.paused


@pytest.mark.flow
def test_dask_cluster_fetches_and_parses_what_the_local_runner_does(
        tmp_path: Path, prefect_server: dict[str, str]) -> None:
    from distributed import LocalCluster

    env = prefect_server
    with FeedServer() as feeds:
        for n in range(12):  # above the process-pool threshold for the local run
            feeds.route(f"/f{n}", body=feed(n, 5))
        feeds.route("/f12", status=503)
        local = site(tmp_path / "local", feeds, 13)
        t0 = time.monotonic()
        done = subprocess.run([*DIGEST, "--config", str(local), "collect", "--force"], env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        t1 = time.monotonic()

        with LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster:
            t2 = time.monotonic()
            remote = site(tmp_path / "dask", feeds, 13,
                          f'[scale]\ndask_address = "{cluster.scheduler_address}"\n')
            done = subprocess.run([*DIGEST, "--config", str(remote), "collect", "--force"],
                                  env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
            t3 = time.monotonic()
            # The batches (one per host: 127.0.0.1 and localhost) ran on the cluster.
            prefixes = cluster.scheduler.task_prefixes
            assert "fetch_and_parse_remote" in prefixes, sorted(prefixes)
            assert prefixes["fetch_and_parse_remote"].state_counts["memory"] == 2
            assert len(cluster.scheduler.workers) == 2
    print(f"local collect {t1 - t0:.1f}s; cluster start {t2 - t1:.1f}s; "
          f"dask collect {t3 - t2:.1f}s")
    local_items = stored(local.parent / "data" / "digest.db")
    dask_items = stored(remote.parent / "data" / "digest.db")
    assert len(local_items) == 60
    assert dask_items == local_items
    with contextlib.closing(sqlite3.connect(remote.parent / "data" / "digest.db")) as conn:
        run = conn.execute("SELECT status, sources_ok, sources_failed FROM runs").fetchall()
    assert run == [("completed", 12, 1)]


def test_missing_prefect_dask_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from alliance_digest.errors import ConfigError
    from alliance_digest.flows.collect import dask_task_runner

    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'alliance-digest\[scale\]'"):
        dask_task_runner("tcp://127.0.0.1:8786")
