"""Triage never blocks collect: what fails or runs out of time is set aside, retried, reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alliance_digest.feedserver import FeedServer
from alliance_digest.pipeline.collect import collect_once
from alliance_digest.settings import load_settings
from alliance_digest.store.db import open_db
from alliance_digest.store.items import query_items
from alliance_digest.triage import run as triage_run
from alliance_digest.triage.tokens import MAGIC
from support import digest


def _feed(prefix: str, count: int) -> bytes:
    items = "".join(
        f"<item><title>{prefix} {n}: Japan and US ministers discuss alliance item {n}</title>"
        f"<link>https://{prefix.lower()}.test/{n}</link><guid>{prefix}-{n}</guid>"
        f"<description>Okinawa base talks, round {n}.</description>"
        f"<pubDate>Mon, {n % 28 + 1:02d} Nov 2026 10:00:00 GMT</pubDate></item>"
        for n in range(count))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{prefix}</title>{items}'
            "</channel></rss>").encode()


def _configure(folder: Path, server: FeedServer, extra: str = "") -> Path:
    server.route("/big", body=_feed("Big", 30))
    server.route("/small", body=_feed("Small", 2))
    (folder / "sources.toml").write_text(
        f'[[source]]\nname = "Big"\nurl = "{server.url("/big")}"\ncountry = "US"\n'
        f'[[source]]\nname = "Small"\nurl = "{server.url("/small")}"\ncountry = "JP"\n')
    config = folder / "digest.toml"
    config.write_text(f'[store]\npath = "data/digest.db"\n{extra}')
    return config


def _set_aside(folder: Path) -> dict[int, tuple[int, str]]:
    db = open_db(folder / "data" / "digest.db")
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT item_id, attempts, error FROM triage_set_aside")}
    finally:
        db.close()


def test_a_failing_batch_is_set_aside_retried_in_small_chunks_then_left(tmp_path, monkeypatch):
    monkeypatch.setattr(triage_run, "RETRY_CHUNK", 5)
    with FeedServer() as server:
        settings = load_settings(_configure(tmp_path, server))
        # Stored with their story keys, not clustered yet (as a run that died in triage).
        collect_once(settings, force=True, names=["Big"], triage=lambda *_: {})
        db = open_db(settings.store_path)
        bad = db.execute("SELECT min(item_id) + 7 FROM item_tokens_new").fetchone()[0]
        with db.atomic():  # a damaged key blob: clustering it raises
            db.execute("UPDATE item_tokens_new SET tokens = ? WHERE item_id = ?",
                       [MAGIC + b"\x01", bad])
        db.close()

        first = collect_once(settings, force=True, names=["Small"])
        assert first.run["status"] == "completed" and first.run["items_new"] == 2
        assert first.triage["set_aside"] == 32 and first.run["triage_set_aside"] == 32
        assert "struct.error" in first.run["triage_error"]
        assert first.triage["clustered"] == 0
        db = open_db(settings.store_path)
        assert len(query_items(db)) == 32  # stored and listed either way
        db.close()

        # Later runs retry in chunks of RETRY_CHUNK: only the bad item's chunk stays aside.
        second = collect_once(settings, force=True, names=["Small"])
        assert second.run["status"] == "completed" and second.triage["set_aside"] == 0
        assert second.triage["clustered"] == 27 and second.triage["set_aside_total"] == 5
        aside = _set_aside(tmp_path)
        assert bad in aside and set(a for a, _ in aside.values()) == {2}
        third = collect_once(settings, force=True, names=["Small"])
        assert third.triage["set_aside_total"] == 5 and third.triage["retrying"] == 0
        fourth = collect_once(settings, force=True, names=["Small"])  # no more tries
        assert fourth.triage["clustered"] == 0 and fourth.triage["triage_error"] is None
        assert set(a for a, _ in _set_aside(tmp_path).values()) == {3}

    failed = digest("triage", "retry", cwd=tmp_path, check=False)
    assert failed.returncode == 1 and "5 items could not be clustered" in failed.stderr
    db = open_db(settings.store_path)
    with db.atomic():  # repaired: the keys are made again from the text
        db.execute("UPDATE item_tokens_new SET tokens = NULL WHERE item_id = ?", [bad])
    db.close()
    fixed = digest("triage", "retry", cwd=tmp_path)
    assert "clustered 5 items" in fixed.stdout and "0 still set aside" in fixed.stdout
    db = open_db(settings.store_path)
    assert db.execute("SELECT count(*) FROM items WHERE cluster_id IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM item_tokens_new").fetchone()[0] == 0
    db.close()


def test_a_run_out_of_budget_sets_aside_and_says_so_in_its_exit_status(tmp_path):
    with FeedServer() as server:
        _configure(tmp_path, server, "[collect]\ntriage_budget_seconds = 0.000001\n")
        done = digest("collect", "--force", cwd=tmp_path, check=False)
        assert done.returncode == 3, done.stderr
        assert "triage set aside 32 items this run" in done.stderr
        assert "triage budget of 1e-06 s ran out" in done.stderr
        listed = json.loads(digest("items", "--json", cwd=tmp_path).stdout)
        assert len(listed) == 32
        # With time to spare the next run clusters what was set aside.
        (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
        again = collect_once(load_settings(tmp_path / "digest.toml"), force=True)
    assert again.triage["clustered"] == 32 and again.triage["set_aside_total"] == 0
    assert _set_aside(tmp_path) == {}


@pytest.mark.parametrize("value", ["0", "-1", '"soon"'])
def test_the_budget_is_validated(tmp_path, value):
    (tmp_path / "digest.toml").write_text(f"[collect]\ntriage_budget_seconds = {value}\n")
    bad = digest("items", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and "triage_budget_seconds" in bad.stderr
