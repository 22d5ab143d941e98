"""Schedules (next runs across daylight saving, config errors, `digest schedule --json`) and
`digest serve` for real: an embedded Prefect server, both deployments served, and a clean
stop on SIGTERM with no process left behind."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alliance_digest.errors import ConfigError
from alliance_digest.flows.prefect_schedules import digest_schedules, next_runs, next_runs_json
from alliance_digest.flows.serve import (
    group_alive,
    running_server_url,
    server_healthy,
    state_path,
    use_running_server,
)
from alliance_digest.settings import ScheduleSettings, Settings, load_settings

NY = ZoneInfo("America/New_York")
DIGEST = [sys.executable, "-m", "alliance_digest.cli"]


def settings_with(tmp_path: Path, **schedule: str) -> Settings:
    config = tmp_path / "digest.toml"
    if not config.exists():
        config.write_text('[store]\npath = "data/digest.db"\n', encoding="utf-8")
    return replace(load_settings(config), schedule=ScheduleSettings(**schedule))


# --- next runs -----------------------------------------------------------------------------------


def test_draft_runs_two_weeks_apart_at_nine_local_across_the_dst_change(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, draft_start="2026-10-27T09:00:00")
    runs = next_runs(digest_schedules(settings), count=4,
                     after=datetime(2026, 10, 1, tzinfo=NY))["draft"]
    assert [r.isoformat() for r in runs] == [
        "2026-10-27T09:00:00-04:00",  # EDT
        "2026-11-10T09:00:00-05:00",  # EST: DST ended on Nov 1, still 09:00 local
        "2026-11-24T09:00:00-05:00",
        "2026-12-08T09:00:00-05:00",
    ]
    # The anchor picks the week: starting a week later shifts every run by a week.
    later = next_runs(digest_schedules(settings_with(tmp_path, draft_start="2026-11-03T09:00:00")),
                      count=1, after=datetime(2026, 10, 1, tzinfo=NY))["draft"]
    assert later[0].isoformat() == "2026-11-03T09:00:00-05:00"


def test_spring_forward_keeps_local_time_and_other_zones_work(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, draft_start="2027-03-02T09:00:00")
    runs = next_runs(digest_schedules(settings), count=2,
                     after=datetime(2027, 3, 1, tzinfo=NY))["draft"]
    assert [r.isoformat() for r in runs] == ["2027-03-02T09:00:00-05:00",
                                             "2027-03-16T09:00:00-04:00"]  # DST from Mar 14
    tokyo = settings_with(tmp_path, timezone="Asia/Tokyo", draft_start="2026-01-06T09:00:00",
                          collect_cron="30 6 * * *")
    runs = next_runs(digest_schedules(tokyo), count=2, after=datetime(2026, 1, 1, tzinfo=NY))
    assert [r.isoformat() for r in runs["draft"]] == ["2026-01-06T09:00:00+09:00",
                                                      "2026-01-20T09:00:00+09:00"]
    assert [r.isoformat() for r in runs["collect"]] == ["2026-01-02T06:30:00+09:00",
                                                        "2026-01-03T06:30:00+09:00"]


def test_collect_cron_next_runs_in_local_time(tmp_path: Path) -> None:
    settings = settings_with(tmp_path)  # default: every 3 hours, America/New_York
    runs = next_runs(digest_schedules(settings), count=5,
                     after=datetime(2026, 10, 31, 20, 30, tzinfo=NY))["collect"]
    assert [r.isoformat() for r in runs] == [
        "2026-10-31T21:00:00-04:00",
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T03:00:00-05:00",  # 01:00 happens twice; */3 skips it; offsets follow DST
        "2026-11-01T06:00:00-05:00",
        "2026-11-01T09:00:00-05:00",
    ]
    shape = next_runs_json(next_runs(digest_schedules(settings), count=1,
                                     after=datetime(2026, 7, 1, tzinfo=NY)))
    assert shape == {"collect": {"next_runs": ["2026-07-01T00:00:00-04:00"]},
                     "draft": {"next_runs": ["2026-07-07T09:00:00-04:00"]}}


@pytest.mark.parametrize(("schedule", "key", "message"), [
    ({"timezone": "America/Nowhere"}, "timezone", "unknown time zone 'America/Nowhere'"),
    ({"collect_cron": "0 */3 * *"}, "collect_cron", "Invalid cron string"),
    ({"collect_cron": "every three hours"}, "collect_cron", "Invalid cron string"),
    ({"draft_rrule": "FREQ=WEEKLY;BYDAY=TUESDAY"}, "draft_rrule", "invalid 'BYDAY'"),
    ({"draft_rrule": "INTERVAL=2"}, "draft_rrule", "FREQ is missing"),
    ({"draft_rrule": "DTSTART:20260106T090000\nRRULE:FREQ=WEEKLY"}, "draft_rrule", "DTSTART"),
    ({"draft_start": "next tuesday"}, "draft_start", "not a date and time"),
    ({"draft_start": "2026-01-06T09:00:00+09:00"}, "draft_start", "without an offset"),
])
def test_invalid_schedule_is_one_config_error_naming_the_key(
        tmp_path: Path, schedule: dict[str, str], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        digest_schedules(settings_with(tmp_path, **schedule))
    text = str(caught.value)
    assert f"[schedule] '{key}'" in text and message in text
    assert "\n" not in text
    assert str(tmp_path / "digest.toml") in text


# --- the CLI --------------------------------------------------------------------------------


def run_digest(*args: str, cwd: Path, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    full.pop("DIGEST_CONFIG", None)
    return subprocess.run([*DIGEST, *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=120)


def test_schedule_json_via_cli(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        '[schedule]\ntimezone = "America/New_York"\ncollect_cron = "0 */3 * * *"\n'
        'draft_start = "2026-01-06T09:00:00"\n', encoding="utf-8")
    done = run_digest("schedule", "--json", "--count", "6", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"collect", "draft"}
    assert all(set(v) == {"next_runs"} and len(v["next_runs"]) == 6 for v in data.values())
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
    draft = [datetime.fromisoformat(s) for s in data["draft"]["next_runs"]]
    collect = [datetime.fromisoformat(s) for s in data["collect"]["next_runs"]]
    for text in data["draft"]["next_runs"] + data["collect"]["next_runs"]:
        assert iso.match(text), text
    for run in draft:  # whatever today is: Tuesdays at 09:00 local, on the anchor's weeks
        local = run.astimezone(NY)
        assert (local.hour, local.minute, local.weekday()) == (9, 0, 1)
        assert run.utcoffset() == local.utcoffset()  # printed with New York's offset that day
        assert (local.date() - date(2026, 1, 6)).days % 14 == 0
    assert all((b.astimezone(NY).date() - a.astimezone(NY).date()).days == 14
               for a, b in itertools.pairwise(draft))
    assert all(r.astimezone(NY).hour % 3 == 0 and r.minute == 0 for r in collect)
    assert collect == sorted(collect) and collect[0] > datetime.now(NY) - timedelta(seconds=5)

    text = run_digest("schedule", "-n", "2", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("collect: cron 0 */3 * * * (America/New_York)\n")


def test_schedule_cli_config_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[schedule]\ntimezone = "Mars/Olympus"\n',
                                          encoding="utf-8")
    done = run_digest("schedule", "--json", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "[schedule] 'timezone'" in lines[0], done.stderr


# --- digest serve ------------------------------------------------------------------------------


def wait_for(what: str, check: Any, timeout: float, log: Path,
             proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"digest serve exited ({proc.returncode}) while waiting for {what}:\n"
                        f"{tail(log)}")
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{tail(log)}")


def tail(log: Path, lines: int = 40) -> str:
    texts = []
    for path in (log, log.parent / "site" / "data" / "prefect" / "server.log"):
        with contextlib.suppress(OSError):
            texts.append(f"--- {path.name}\n" + "\n".join(
                path.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(texts)


async def read_deployments(url: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        async with get_client() as client:
            found = {d.name and f"{(await client.read_flow(d.flow_id)).name}/{d.name}": d
                     for d in await client.read_deployments()}
            runs = {}
            for name, d in found.items():
                runs[name] = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])))
            return {"deployments": found, "runs": runs}


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def serve_once(folder: Path, config: Path, env: dict[str, str], log: Path,
               check: Any) -> tuple[int, float]:
    """Run `digest serve`, call check(url, server_pid) once it is up, SIGTERM it, and assert
    that both process groups are gone. Returns (exit status, seconds to stop)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([*DIGEST, "--config", str(config), "serve"], env=env,
                                cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)
    server_pid = None
    settings = load_settings(config)
    try:
        state = wait_for("the state file", lambda: state_path(settings).is_file(), 180, log,
                         proc)
        assert state
        info = json.loads(state_path(settings).read_text())
        url, server_pid = info["url"], info["server_pid"]
        assert info["pid"] == proc.pid and server_pid
        assert server_healthy(url)
        check(url, server_pid)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the serve process only: it must stop its server
        proc.wait(timeout=90)
        stopped = time.monotonic() - stopping
        wait_for("no process left in either group",
                 lambda: not group_alive(proc.pid) and not group_alive(server_pid), 30, log)
        assert not state_path(settings).exists()
        assert not server_healthy(url, timeout=0.5)
        return proc.returncode, stopped
    finally:
        kill_group(proc.pid)
        if server_pid:
            kill_group(server_pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@pytest.mark.flow
def test_serve_runs_both_deployments_and_stops_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sources.toml").write_text(
        '[[source]]\nname = "x"\nurl = "http://127.0.0.1:9/feed"\n', encoding="utf-8")
    config = folder / "digest.toml"
    config.write_text('[store]\npath = "data/digest.db"\n[schedule]\n'
                      'timezone = "America/New_York"\ndraft_start = "2026-10-27T09:00:00"\n',
                      encoding="utf-8")
    settings = load_settings(config)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "client-home"),
           # The server's scheduler looks for new deployments every 2 s, not every 60 s.
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    for name in ("PREFECT_API_URL", "DIGEST_CONFIG"):
        env.pop(name, None)
    log = tmp_path / "serve.log"
    expected = next_runs(digest_schedules(settings), count=1)

    def first_check(url: str, server_pid: int) -> None:
        assert running_server_url(settings) == url
        monkeypatch.setenv("PREFECT_API_URL", "")
        monkeypatch.delenv("PREFECT_API_URL")
        assert use_running_server(settings) == url
        assert os.environ["PREFECT_API_URL"] == url
        second = subprocess.run([*DIGEST, "--config", str(config), "serve"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "already running" in second.stderr, second.stderr

        def served() -> dict[str, Any] | None:
            found = asyncio.run(read_deployments(url))
            ready = (set(found["deployments"]) == {"collect/digest", "draft/digest"}
                     and all(found["runs"].values()))
            return found if ready else None

        found = wait_for("both deployments and their scheduled runs", served, 90, log)
        for name, d in found["deployments"].items():
            assert not d.paused, name
            assert len(d.schedules) == 1 and d.schedules[0].active
            assert d.schedules[0].schedule.timezone == "America/New_York"
            assert d.parameters == {"config": str(config)}
            assert d.entrypoint == f"alliance_digest.flows.{name.split('/')[0]}." + (
                name.split("/")[0])
        assert found["deployments"]["collect/digest"].schedules[0].schedule.cron == "0 */3 * * *"
        rrule = found["deployments"]["draft/digest"].schedules[0].schedule.rrule
        assert rrule.startswith("DTSTART:20261027T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2")
        # The server's scheduler (which a temporary server lacks) created the next runs,
        # at the times `digest schedule` prints.
        for flow_name in ("collect", "draft"):
            starts = sorted(r.expected_start_time for r in found["runs"][f"{flow_name}/digest"])
            assert starts[0] == expected[flow_name][0], (flow_name, starts[:3])

    status, stopped = serve_once(folder, config, env, log, first_check)
    assert status == 0, tail(log)
    assert "stopping the Prefect server" in log.read_text()

    # Stopping paused the deployments; serving again must resume them.
    def second_check(url: str, server_pid: int) -> None:
        def resumed() -> bool:
            found = asyncio.run(read_deployments(url))["deployments"]
            return len(found) == 2 and not any(d.paused for d in found.values())

        wait_for("the deployments to be resumed", resumed, 90, log)

    status, _ = serve_once(folder, config, env, log, second_check)
    assert status == 0, tail(log)
    assert stopped < 30
    assert running_server_url(settings) is None
