"""A damaged or read-only database: one line pointing at `digest check`, and readers that read.

The damage is real (pages of a real database overwritten); the read-only folder is a real
read-only bind mount in a private mount namespace (as root in the test container; skipped
where that is not allowed).
"""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alliance_digest.store.db import open_db
from alliance_digest.store.items import store_entries
from alliance_digest.store.sources import sync_sources
from support import desk_login, digest, make_entry

PAGE = 4096


def _folder_with_items(folder: Path, count: int = 400) -> Path:
    """digest.toml and a database of `count` items, each with a long summary; returns it."""
    (folder / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    (folder / "sources.toml").write_text(
        '[[source]]\nname = "a"\nurl = "http://127.0.0.1/a"\ncountry = "US"\n')
    path = folder / "data" / "digest.db"
    db = open_db(path)
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])
    text = "Okinawa alliance talks continue with the defense ministers. " * 20
    store_entries(db, 1, [make_entry(n, summary_text=f"{n} {text}", summary=text,
                                     published_at=f"2026-01-{n % 28 + 1:02d}T10:00:00Z")
                          for n in range(count)])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


def _damage(path: Path, *tables: str) -> None:
    """Overwrite every other leaf page of `tables` with garbage (the file header stays)."""
    conn = sqlite3.connect(path)
    pages = [p for (p,) in conn.execute(
        f"SELECT pageno FROM dbstat WHERE name IN ({','.join('?' * len(tables))}) "
        "AND pagetype = 'leaf' ORDER BY pageno", tables)]
    conn.close()
    assert len(pages) > 4
    with path.open("r+b") as f:
        for page in pages[1::2]:
            f.seek((page - 1) * PAGE)
            f.write(bytes((page * 7 + i) % 251 for i in range(PAGE)))


def test_check_says_ok_then_lists_what_is_wrong_and_commands_point_at_it(tmp_path):
    path = _folder_with_items(tmp_path)
    healthy = digest("check", cwd=tmp_path)
    assert healthy.stdout.strip() == f"{path}: ok (integrity check found nothing wrong)"

    _damage(path, "items", "items_fts_data")
    checked = digest("check", cwd=tmp_path, check=False)
    assert checked.returncode == 1
    assert checked.stdout.strip(), "the problems are listed"
    assert f"error: {path}: the integrity check found" in checked.stderr
    assert "README, section Backups" in checked.stderr

    for args in (["items", "--json"], ["search", "Okinawa"], ["search", "alliance", "--json"],
                 ["tag", "3", "--shortlist"], ["collect"],
                 ["history", "3"]):
        done = digest(*args, cwd=tmp_path, check=False)
        if done.returncode == 0:  # a reader that never touched a damaged page
            assert args[0] in ("history",), (args, done.stdout)
            continue
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr)
        assert lines[0].startswith(f"error: {path}: the database is damaged"), (args, lines)
        assert "digest check" in lines[0] and "README, section Backups" in lines[0]
        if args[0] in ("tag", "collect"):  # writers refuse before writing anything
            assert "nothing was written" in lines[0]


def test_a_write_command_refuses_a_damaged_file_and_writes_nothing(tmp_path):
    path = _folder_with_items(tmp_path)
    _damage(path, "items")
    before = path.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "alliance_digest.cli", "users", "add", "ann", "--password-stdin"],
        input="s3cret pass\n", cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"})
    assert done.returncode == 1 and "nothing was written" in done.stderr
    assert path.read_bytes() == before


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`digest ARGS` in `folder` with its data folder mounted read-only."""
    data = folder / "data"
    command = (f"mount --bind -o ro {shlex.quote(str(data))} {shlex.quote(str(data))} && "
               f"exec {shlex.quote(sys.executable)} -m alliance_digest.cli "
               + " ".join(shlex.quote(a) for a in args))
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    return subprocess.run(["unshare", "-m", "sh", "-c", command], cwd=folder,
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def can_mount_read_only(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(["unshare", "-m", "sh", "-c",
                           f"mount --bind -o ro {probe} {probe} && ! touch {probe}/x"],
                          capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip("cannot make a read-only mount here (needs unshare and CAP_SYS_ADMIN)")


@pytest.mark.parametrize("with_wal", [False, True], ids=["closed-cleanly", "wal-pending"])
def test_readers_work_in_a_read_only_data_folder(tmp_path, can_mount_read_only, with_wal):
    path = _folder_with_items(tmp_path, count=30)
    writer = None
    if with_wal:  # a writer elsewhere left changes in the -wal file, not yet checkpointed
        writer = sqlite3.connect(path)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE items SET title = 'Okinawa from the WAL' WHERE id = 1")
        writer.commit()
        assert path.with_name("digest.db-wal").stat().st_size > 0
    try:
        items = _read_only(tmp_path, "items", "--json")
        assert items.returncode == 0, items.stderr
        titles = {r["title"] for r in json.loads(items.stdout)}
        assert len(titles) == 30
        assert ("Okinawa from the WAL" in titles) == with_wal
        found = _read_only(tmp_path, "search", "Okinawa", "--json", "--limit", "5")
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == 5
        for args in (["history", "1", "--json"], ["issue", "list", "--json"], ["check"]):
            done = _read_only(tmp_path, *args)
            assert done.returncode == 0, (args, done.stderr)
        refused = _read_only(tmp_path, "tag", "1", "--shortlist")
    finally:
        if writer is not None:
            writer.close()
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1, refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_desk_answers_a_damaged_page_with_one_line(tmp_path):

    from alliance_digest.editor.app import create_app
    from alliance_digest.settings import load_settings
    from alliance_digest.store.users import add_user
    from starlette.testclient import TestClient

    path = _folder_with_items(tmp_path)
    db = open_db(path)
    add_user(db, "alice", "correct horse battery")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    _damage(path, "items", "items_fts_data")
    with TestClient(create_app(load_settings(tmp_path / "digest.toml"))) as client:
        desk_login(client, "alice", "correct horse battery")
        page = client.get("/", params={"q": "Okinawa", "status": "all"})
    assert page.status_code == 500
    assert "the database is damaged" in page.text and "digest check" in page.text
    assert "Traceback" not in page.text


def test_check_on_a_file_too_damaged_to_open(tmp_path):
    path = _folder_with_items(tmp_path, count=10)
    with path.open("r+b") as f:  # the header itself: SQLite no longer knows the file
        f.write(b"this is no longer an SQLite file" * 4)
    checked = digest("check", cwd=tmp_path, check=False)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert "not a database" in checked.stdout
    assert "README, section Backups" in checked.stderr
    items = digest("items", cwd=tmp_path, check=False)
    lines = items.stderr.strip().splitlines()
    assert items.returncode == 1 and len(lines) == 1 and "digest check" in lines[0]


def test_the_desk_shows_a_read_only_data_folder(tmp_path, can_mount_read_only):
    """The desk on a read-only copy: log in (sessions in memory), read the queue, search and an
    item; a change answers one line (nothing written, no traceback)."""
    import re
    import socket
    import time

    import httpx
    from alliance_digest.store.users import add_user

    path = _folder_with_items(tmp_path, count=30)
    db = open_db(path)
    add_user(db, "ann", "long enough pw")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    before = path.read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    command = (f"mount --bind -o ro {shlex.quote(str(data))} {shlex.quote(str(data))} && "
               f"exec {shlex.quote(sys.executable)} -m alliance_digest.cli editor "
               f"--port {port}")
    env = {k: v for k, v in os.environ.items() if k != "DIGEST_CONFIG"}
    desk = subprocess.Popen(["unshare", "-m", "sh", "-c", command], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
            for _ in range(300):
                try:
                    page = client.get("/login")
                    break
                except httpx.TransportError:
                    assert desk.poll() is None, desk.communicate()[1]
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = client.post("/login", data={"username": "ann", "password": "long enough pw",
                                            "csrf_token": token})
            assert r.status_code == 200 and "Okinawa" in r.text, r.text[:500]
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', r.text).group(1)
            assert client.get("/?q=Okinawa").status_code == 200
            assert client.get("/items/1").status_code == 200
            refused = client.post("/api/items/status", headers={"X-CSRF-Token": csrf},
                                  json={"ids": [1], "versions": [0], "status": "shortlisted"})
            assert refused.status_code >= 400
            assert "cannot be written here" in refused.json()["error"]
            assert "Traceback" not in refused.text
    finally:
        desk.terminate()
        _, err = desk.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert path.read_bytes() == before
