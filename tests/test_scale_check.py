"""A dead Dask scheduler is one line, at once; a live one passes; workers elsewhere are warned
about a Prefect API on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from alliance_digest.errors import DigestError
from alliance_digest.pipeline.scale_check import (
    check_scheduler,
    remote_workers_warning,
    scheduler_host,
)
from alliance_digest.settings import ScaleSettings
from support import digest


def dead_port() -> int:
    """A port on 127.0.0.1 that refuses connections (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_addresses() -> None:
    assert scheduler_host("tcp://10.0.0.5:8786") == ("10.0.0.5", 8786)
    assert scheduler_host("dask-scheduler") == ("dask-scheduler", 8786)
    assert scheduler_host("tls://[::1]:9000") == ("::1", 9000)
    assert scheduler_host("inproc://worker") is None
    with pytest.raises(DigestError, match="not a scheduler address"):
        scheduler_host("tcp://host:notaport")


def test_a_live_scheduler_port_passes_and_a_dead_one_is_one_line() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_scheduler(ScaleSettings(dask_address=f"tcp://127.0.0.1:{port}"))
    with pytest.raises(DigestError) as caught:
        check_scheduler(ScaleSettings(dask_address=f"tcp://127.0.0.1:{dead_port()}"))
    assert "cannot reach the Dask scheduler" in str(caught.value)
    assert "connection refused" in str(caught.value)
    check_scheduler(ScaleSettings())  # not configured: nothing to check


def test_workers_elsewhere_are_warned_about_a_loopback_prefect_api() -> None:
    remote = ScaleSettings(dask_address="tcp://10.0.0.5:8786")
    assert "PREFECT_API_URL" in (remote_workers_warning(remote, "http://127.0.0.1:4242/api") or "")
    assert remote_workers_warning(remote, "http://prefect.internal:4200/api") is None
    local = ScaleSettings(dask_address="tcp://127.0.0.1:8786")
    assert remote_workers_warning(local, "http://127.0.0.1:4242/api") is None


def test_digest_collect_with_a_dead_scheduler(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        f'[store]\npath = "data/digest.db"\n[scale]\ndask_address = '
        f'"tcp://127.0.0.1:{dead_port()}"\n'
    )
    (tmp_path / "sources.toml").write_text(
        '[[source]]\nname = "Wire"\nurl = "http://127.0.0.1:9/feed"\n'
    )
    done = digest("collect", "--force", cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0], done.stderr
