"""Collecting from a real feed server on 127.0.0.1: every failure is recorded, good sources land.

These drive the collect use case (`pipeline.collect.collect_once`) without Prefect;
tests/test_flows.py runs the real flow. Then the write path's pure parts: deciding what to
insert or update, and a source's health as a typed value.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.feedserver import FeedServer, gzip_bomb
from alliance_digest.pipeline.collect import collect_once
from alliance_digest.settings import CollectSettings, HttpSettings, Settings, load_settings
from alliance_digest.store.db import open_db
from alliance_digest.store.items import query_items
from alliance_digest.store.sources import get_source
from alliance_digest.timestamps import utc_timestamp
from support import SHARED, make_entry

CORPUS = SHARED / "corpus"


def rss(items: list[dict[str, str]], *, encoding: str = "utf-8", title: str = "Feed") -> bytes:
    parts = []
    for it in items:
        fields = "".join(f"<{k}>{v}</{k}>" for k, v in it.items())
        parts.append(f"<item>{fields}</item>")
    xml = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://example.test/</link>{''.join(parts)}"
        "</channel></rss>"
    )
    return xml.encode(encoding)


GOOD = rss(
    [
        {
            "title": "US, Japan hold 2+2",
            "link": "https://example.test/a?utm_source=x",
            "guid": "a",
            "pubDate": "Mon, 23 Nov 2026 10:00:00 GMT",
            "description": "Ministers met.",
        },
        {
            "title": "Second story",
            "link": "https://example.test/b",
            "guid": "b",
            "pubDate": "Tue, 24 Nov 2026 10:00:00 GMT",
        },
    ]
)


def write_config(
    tmp_path: Path, server: FeedServer, sources: dict[str, str], extra: str = ""
) -> Settings:
    reg = "".join(
        f'[[source]]\nname = "{name}"\nurl = "{server.url(path)}"\n{extra}\n'
        for name, path in sources.items()
    )
    (tmp_path / "sources.toml").write_text(reg, encoding="utf-8")
    (tmp_path / "digest.toml").write_text(
        '[store]\npath = "data/d.db"\n[http]\nconnect_timeout = 1.0\nread_timeout = 0.5\n'
        "total_timeout = 1.5\nmax_bytes = 65536\nmax_redirects = 3\n",
        encoding="utf-8",
    )
    return load_settings(tmp_path / "digest.toml")


def run(
    settings: Settings, *, force: bool = True, names: list[str] | None = None
) -> dict[str, Any]:
    """One collect run, as the flow runs it, without Prefect."""
    summary = collect_once(settings, force=force, names=names)
    return {**summary.run, "failures": dict(summary.failures)}


def source(settings: Settings, name: str) -> dict[str, Any]:
    db = open_db(settings.store_path)
    try:
        return get_source(db, name)
    finally:
        db.close()


def items(settings: Settings, **kw: Any) -> list[dict[str, Any]]:
    db = open_db(settings.store_path)
    try:
        return query_items(db, **kw)
    finally:
        db.close()


def test_every_failure_is_recorded_and_good_sources_land(tmp_path, feed_server):
    s = feed_server
    s.route("/good", body=GOOD, etag='"v1"')
    s.route("/forbidden", status=403, body="<html>blocked</html>", content_type="text/html")
    s.route("/missing", status=404)
    s.route("/gone", status=410)
    s.route("/ratelimited", status=429, headers={"Retry-After": "7200"})
    s.route("/unavailable", status=503, headers={"Retry-After": "3600"})
    s.route("/broken", status=500)
    s.route("/slow", body=GOOD, delay=3)
    s.route("/trickle", body=GOOD * 5, trickle=200)
    s.route("/loop1", status=302, redirect_to="/loop2")
    s.route("/loop2", status=302, redirect_to="/loop1")
    s.route("/huge", body=b"<rss>" + b"x" * 200_000)
    s.route("/bomb", body=gzip_bomb(5_000_000), headers={"Content-Encoding": "gzip"})
    s.route(
        "/html",
        body="<!DOCTYPE html><html><body><p>Not a feed</p></body></html>",
        content_type="text/html",
    )
    s.route("/empty", body=b"")
    s.route("/binary", body=bytes(range(256)) * 20, content_type="application/octet-stream")
    s.route("/truncated", body=b'<?xml version="1.0"?><rss version="2.0"><channel><title>T')
    s.route("/noitems", body=rss([]))
    names = {
        n.strip("/"): n
        for n in (
            "/good",
            "/forbidden",
            "/missing",
            "/gone",
            "/ratelimited",
            "/unavailable",
            "/broken",
            "/slow",
            "/trickle",
            "/loop1",
            "/huge",
            "/bomb",
            "/html",
            "/empty",
            "/binary",
            "/truncated",
            "/noitems",
        )
    }
    settings = write_config(tmp_path, s, names)
    started = time.monotonic()
    summary = run(settings)
    # Slow sources are cut off by the deadline, and run alongside the rest.
    assert time.monotonic() - started < 10
    assert summary["sources_due"] == len(names)
    assert summary["sources_ok"] == 3  # good, empty (warning), noitems (warning)
    assert summary["items_new"] == 2

    expect = {
        "forbidden": ("Refused", 403, "refused by the server"),
        "missing": ("NotFound", 404, "404"),
        "gone": ("Gone", 410, "410"),
        "ratelimited": ("RateLimited", 429, "429"),
        "unavailable": ("RateLimited", 503, "503"),
        "broken": ("ServerError", 500, "500"),
        "slow": ("FetchTimeout", None, "timed out"),
        "trickle": ("FetchTimeout", 200, "timed out"),
        "loop1": ("TooManyRedirects", None, "redirect"),
        "huge": ("BodyTooLarge", 200, "cap"),
        "bomb": ("BodyTooLarge", 200, "cap"),
        "html": ("NotAFeed", 200, "HTML"),
        "binary": ("BinaryBody", 200, ""),
        "truncated": ("InvalidFeed", 200, ""),
    }
    now = datetime.now(UTC)
    for name, (kind, status, text) in expect.items():
        row = source(settings, name)
        assert row["last_error_kind"] == kind, (name, row["last_error"])
        if status is not None:
            assert row["last_status"] == status, name
        assert text.lower() in row["last_error"].lower(), (name, row["last_error"])
        assert "\n" not in row["last_error"]
        assert row["consecutive_failures"] == 1
        assert row["last_outcome"] == "failed"
        assert datetime.fromisoformat(row["next_fetch_at"].replace("Z", "+00:00")) > now
    assert source(settings, "gone")["disabled_reason"]
    # Retry-After pushes the next attempt at least that far out.
    rl = source(settings, "ratelimited")
    assert rl["next_fetch_at"] >= utc_timestamp(now + timedelta(seconds=7100))
    # Warnings, not failures, for a 200 that carries nothing.
    assert "empty body" in source(settings, "empty")["warning"]
    assert "no items" in source(settings, "noitems")["warning"]
    good = source(settings, "good")
    assert good["last_error"] is None and good["etag"] == '"v1"'
    assert good["newest_item_at"] == "2026-11-24T10:00:00Z"
    urls = {r["url"] for r in items(settings)}
    assert urls == {"https://example.test/a", "https://example.test/b"}

    # A gone source is not fetched again; failing ones back off and are not due now.
    second = run(settings, force=False)
    assert second["sources_due"] == 0
    forced = run(settings, force=True)
    assert "gone" not in {r for r in forced["failures"]}
    assert source(settings, "broken")["consecutive_failures"] == 2


def test_second_run_is_conditional_and_idempotent(tmp_path, feed_server):
    feed_server.route(
        "/feed", body=GOOD, etag='"abc"', last_modified="Tue, 24 Nov 2026 10:00:00 GMT"
    )
    settings = write_config(tmp_path, feed_server, {"f": "/feed"})
    assert run(settings)["items_new"] == 2
    second = run(settings)
    assert second["sources_not_modified"] == 1 and second["items_new"] == 0
    sent = feed_server.requests_for("/feed")[-1].headers
    assert sent["If-None-Match"] == '"abc"'
    assert sent["If-Modified-Since"] == "Tue, 24 Nov 2026 10:00:00 GMT"
    # Without validators the body comes again, and still nothing is duplicated.
    feed_server.route("/feed", body=GOOD)
    third = run(settings)
    assert third["sources_ok"] == 1 and third["items_new"] == 0 and third["items_updated"] == 0
    assert len(items(settings)) == 2


def test_refetch_updates_feed_fields_and_keeps_editor_work(tmp_path, feed_server):
    feed_server.route("/feed", body=GOOD)
    settings = write_config(tmp_path, feed_server, {"f": "/feed"})
    run(settings)
    db = open_db(settings.store_path)
    item = next(r for r in query_items(db) if r["guid"] == "a")
    db["items"].update(
        item["id"],
        {
            "status": "included",
            "status_by": "editor",
            "headline": "My headline",
            "blurb": "My **blurb**",
            "tags": json.dumps(["2+2"]),
            "rank": 1,
        },
    )
    db.close()
    feed_server.route("/feed", body=GOOD.replace(b"US, Japan hold 2+2", b"US and Japan hold 2+2"))
    assert run(settings)["items_updated"] == 1
    row = next(r for r in items(settings) if r["guid"] == "a")
    assert row["title"] == "US and Japan hold 2+2"
    assert (row["status"], row["headline"], row["blurb"], row["tags"], row["rank"]) == (
        "included",
        "My headline",
        "My **blurb**",
        ["2+2"],
        1,
    )


def test_permanent_redirect_updates_the_stored_url(tmp_path, feed_server):
    feed_server.route("/old", status=301, redirect_to="/new")
    feed_server.route("/new", body=GOOD)
    feed_server.route("/temp", status=302, redirect_to="/new2")
    feed_server.route("/new2", body=GOOD)
    settings = write_config(tmp_path, feed_server, {"moved": "/old", "temp": "/temp"})
    run(settings)
    assert source(settings, "moved")["url"] == feed_server.url("/new")
    assert source(settings, "temp")["url"] == feed_server.url("/temp")
    run(settings)
    assert feed_server.hits("/old") == 1  # the second run went straight to the new URL


def test_per_source_headers_are_sent(tmp_path, feed_server):
    feed_server.route("/walled", body=GOOD)
    settings = write_config(
        tmp_path,
        feed_server,
        {"w": "/walled"},
        extra='headers = { "User-Agent" = "Mozilla/5.0 (X11)" }',
    )
    run(settings)
    assert feed_server.requests_for("/walled")[0].headers["User-Agent"] == "Mozilla/5.0 (X11)"


def test_hostile_and_odd_entries(tmp_path, feed_server):
    hostile = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>H</title>'
        b"<item><title>&lt;script&gt;alert(1)&lt;/script&gt; Alliance</title>"
        b"<link>javascript:alert(1)</link><guid>x1</guid>"
        b'<description>&lt;p onclick="x()"&gt;Hi &lt;a href="javascript:alert(2)"&gt;'
        b"click&lt;/a&gt;&lt;script&gt;steal()&lt;/script&gt;&lt;/p&gt;</description></item>"
        b"<item><title>dup one</title><guid>same</guid><link>https://e.test/1</link></item>"
        b"<item><title>dup two</title><guid>same</guid><link>https://e.test/2</link></item>"
        b"<item><description>No title, no link, no date</description></item>"
        b"</channel></rss>"
    )
    feed_server.route("/h", body=hostile)
    settings = write_config(tmp_path, feed_server, {"h": "/h"})
    assert run(settings)["items_new"] == 4
    assert run(settings)["items_new"] == 0
    rows = {r["identity"]: r for r in items(settings)}
    bad = rows["guid:x1"]
    assert bad["url"] is None
    assert "<script>" in bad["title"]  # plain text: shown as text, escaped when rendered
    assert "script" not in bad["summary"] and "javascript" not in bad["summary"]
    assert "onclick" not in bad["summary"]
    assert {r["title"] for r in rows.values() if r["guid"] == "same"} == {"dup one", "dup two"}
    undated = [r for r in rows.values() if r["identity"].startswith("hash:")]
    assert len(undated) == 1 and undated[0]["published_guessed"] == 1


def test_japanese_and_mislabelled_encodings_keep_their_characters(tmp_path, feed_server):
    sjis = rss(
        [{"title": "日米防衛相会談を開催", "link": "https://www.mod.go.jp/j/1.html", "guid": "j1"}],
        encoding="shift_jis",
    )
    feed_server.route("/sjis", body=sjis, content_type="application/rss+xml; charset=Shift_JIS")
    cp1252 = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>W</title><item>'
        "<title>Allies \u201cstand together\u201d \u2013 again</title><guid>w1</guid>"
        "</item></channel></rss>"
    ).encode("cp1252")
    feed_server.route(
        "/cp1252", body=cp1252, content_type="application/rss+xml; charset=iso-8859-1"
    )
    settings = write_config(tmp_path, feed_server, {"sjis": "/sjis", "w": "/cp1252"})
    run(settings)
    titles = {r["title"] for r in items(settings)}
    assert "日米防衛相会談を開催" in titles
    assert "Allies \u201cstand together\u201d \u2013 again" in titles


@pytest.mark.skipif(not (CORPUS / "real" / "MANIFEST.tsv").exists(), reason="shared corpus")
def test_real_corpus_feeds_collect(tmp_path):
    """A sample of the real captured feeds, served over HTTP, all land."""
    manifest = (CORPUS / "real" / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    rows = [
        dict(zip(manifest[0].split("\t"), line.split("\t"), strict=False)) for line in manifest[1:]
    ]
    picked = [
        r for r in rows if r["n_items"].isdigit() and int(r["n_items"]) > 0 and r["bozo"] == "0"
    ][:40]
    with FeedServer(CORPUS / "real") as server:
        settings = write_config(
            tmp_path, server, {f"f{i}": "/" + r["local_path"] for i, r in enumerate(picked)}
        )
        settings = Settings(
            config_path=settings.config_path,
            store_path=settings.store_path,
            sources_file=settings.sources_file,
            http=HttpSettings(max_bytes=10 * 1024 * 1024),
            collect=CollectSettings(),
        )
        summary = run(settings)
    assert summary["sources_failed"] == 0, summary["failures"]
    assert summary["items_new"] >= sum(int(r["n_items"]) for r in picked) * 0.95


# --- the write path: decide, then write ---------------------------------------------------------


def _entry(identity: str, **kw: Any) -> dict[str, Any]:
    return make_entry(identity, **{"guid": identity, "published_at": "2026-11-20T00:00:00Z",
                                   **kw})


def test_decider_inserts_new_entries_and_updates_only_changed_feed_fields():
    from alliance_digest.store.items import StoredItem, content_hash, decide_entries

    same, dated = _entry("same"), _entry("dated", title="Dated now")
    undated = _entry("undated", title="Lost its date", published_at=None)
    stored = {"same": StoredItem(1, content_hash(same), 0),
              "dated": StoredItem(2, content_hash(_entry("dated")), 1),
              "undated": StoredItem(3, content_hash(_entry("undated")), 0)}
    triaged = _entry("triaged", score=-1.0, reasons="[]", relevant=False, tokens=b"t")
    entries = [same, dated, undated, _entry("new", published_at=None),
               _entry("new", title="second copy"), _entry("elsewhere"), triaged]
    now = "2026-11-25T00:00:00Z"
    writes = decide_entries(7, entries, stored, {"elsewhere"}, now)

    assert [(r["identity"], r["title"]) for r in writes.inserts] == [("new", "new"),
                                                                    ("triaged", "triaged")]
    new, filtered = writes.inserts
    assert (new["source_id"], new["published_at"], new["published_guessed"]) == (7, now, 1)
    assert (new["status"], new["score"], new["triaged_at"], new["first_seen_at"]) == (
        "candidate", None, None, now)
    assert (filtered["status"], filtered["status_by"], filtered["score"], filtered["tokens"],
            filtered["triaged_at"]) == ("filtered", "triage", -1.0, b"t", now)
    updates = dict(writes.updates)
    assert set(updates) == {2, 3}  # "same" is unchanged, "elsewhere" another source's item
    assert updates[2]["title"] == "Dated now" and updates[2]["published_guessed"] == 0
    assert updates[2]["changed_at"] == now and "status" not in updates[2]
    assert "published_at" not in updates[3]  # an entry that lost its date keeps the one it had
    assert writes.shared == ()


def test_decider_records_an_insert_another_source_published_on_its_item():
    from alliance_digest.store.items import decide_entries

    url = "https://e.test/story"
    writes = decide_entries(2, [_entry("a", url=url), _entry("b", url="https://e.test/own")],
                            {}, set(), "2026-11-25T00:00:00Z")
    assert writes.new_urls() == [url, "https://e.test/own"]
    shared = writes.share_urls({url: 41}, "2026-11-25T00:00:00Z")
    assert [r["identity"] for r in shared.inserts] == ["b"]
    assert shared.shared == ({"source_id": 2, "identity": "a", "item_id": 41, "url": url,
                              "first_seen_at": "2026-11-25T00:00:00Z"},)
    assert writes.share_urls({}, "2026-11-25T00:00:00Z") is writes


def test_source_health_takes_only_its_fields_and_writes_only_what_changed(tmp_path):
    import dataclasses

    from alliance_digest.store.runs import FetchRecord, record_fetch, start_run
    from alliance_digest.store.sources import SourceHealth, record_health, sync_sources

    with pytest.raises(TypeError, match="last_sattus"):
        SourceHealth(last_sattus=200)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="bogus"):
        dataclasses.replace(SourceHealth(), bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="items_sen"):
        FetchRecord(outcome="ok", items_sen=3)  # type: ignore[call-arg]

    db = open_db(tmp_path / "d.db")
    sync_sources(db, [{"name": "a", "url": "http://127.0.0.1/a"}])
    # Every field is a column: none can be written nowhere.
    columns = {c.name for c in db["sources"].columns}
    assert {f.name for f in dataclasses.fields(SourceHealth)} <= columns
    assert {f.name for f in dataclasses.fields(FetchRecord)} <= {c.name for c in
                                                               db["fetches"].columns}
    with pytest.raises(TypeError, match="SourceHealth"):
        record_health(db, 1, {"etag": '"e"', "lsat_status": 200})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="FetchRecord"):
        record_fetch(db, start_run(db), 1, {"outcome": "ok"})  # type: ignore[arg-type]

    record_health(db, 1, SourceHealth(warning="no items", etag='"e"'))
    record_health(db, 1, SourceHealth(warning=None, last_status=304))  # None is written
    row = get_source(db, "a")
    assert (row["warning"], row["etag"], row["last_status"]) == (None, '"e"', 304)
    assert row["url"] == "http://127.0.0.1/a"  # left as it was
    db.close()


def test_parse_processes_start_only_when_a_feed_needs_parsing(tmp_path, feed_server,
                                                              monkeypatch):
    """A pass where every source answers 304 starts no parser processes at all."""
    from alliance_digest.pipeline import collect

    started: list[object] = []
    real_start = collect.start_parse_pool

    def counting_start(*args: Any) -> Any:
        pool = real_start(*args)
        started.append(pool)
        return pool

    monkeypatch.setattr(collect, "start_parse_pool", counting_start)
    names = {f"f{n}": f"/feed{n}" for n in range(collect.POOL_THRESHOLD + 2)}
    for n, path in enumerate(names.values()):
        feed_server.route(path, body=rss([{"title": f"US-Japan story {n}", "guid": f"g{n}",
                                           "link": f"https://example.test/{n}"}]),
                          etag=f'"v{n}"')
    settings = write_config(tmp_path, feed_server, names)
    first = run(settings)
    assert first["sources_ok"] == len(names) and first["items_new"] == len(names)
    assert len(started) == 1  # parsed in the pool, started once for the whole run
    second = run(settings)
    assert second["sources_not_modified"] == len(names) and second["items_new"] == 0
    assert len(started) == 1  # nothing to parse: no pool
    # One changed feed among the 304s: the pool starts for it.
    feed_server.route("/feed0", body=rss([{"title": "US-Japan story 0, revised", "guid": "g0",
                                           "link": "https://example.test/0"}]), etag='"v0b"')
    third = run(settings)
    assert third["sources_ok"] == 1 and third["items_updated"] == 1
    assert len(started) == 2


def test_triage_is_skipped_only_when_nothing_waits_for_it(tmp_path):
    """An untriaged item (what a killed run leaves) is work for the next run's triage."""
    from alliance_digest.pipeline.collect import nothing_to_triage, triage_collected
    from alliance_digest.triage.rules import load_rules
    from support import collect_into

    config = collect_into(tmp_path, {"Feed": GOOD})  # stored, not triaged
    settings = load_settings(config)
    db = open_db(settings.store_path)
    try:
        assert not nothing_to_triage(db)
        first = triage_collected(db, settings, load_rules(settings), {})
        assert first["scored"] == 2 and first["clustered"] == 2
        assert nothing_to_triage(db)
        again = triage_collected(db, settings, load_rules(settings), {})
        assert again == {**dict.fromkeys(first, 0), "triage_error": None}
    finally:
        db.close()


def test_parser_processes_are_warmed_only_for_sources_that_will_send_a_body():
    from alliance_digest.pipeline.collect import bodies_expected
    from alliance_digest.sources.types import FetchRequest

    def req(name: str, etag: str | None = None) -> FetchRequest:
        return FetchRequest(name=name, url=f"http://127.0.0.1/{name}", etag=etag)

    rows = {"new": {"last_outcome": None}, "cached": {"last_outcome": "ok"},
            "down": {"last_outcome": "failed"}, "plain": {"last_outcome": "ok"}}
    assert bodies_expected(rows, [req("new")])  # never fetched
    assert bodies_expected(rows, [req("plain")])  # a server without validators
    assert not bodies_expected(rows, [req("cached", '"v1"'), req("down")])
