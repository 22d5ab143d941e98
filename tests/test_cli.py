"""The `digest` command as a user runs it: real processes, real files, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alliance_digest.feedserver import FeedServer
from support import digest

GOOD = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>'
        b"<item><title>Japan, US hold 2+2</title><link>https://e.test/1</link><guid>g1</guid>"
        b"<pubDate>Mon, 23 Nov 2026 10:00:00 GMT</pubDate></item>"
        b"<item><title>Quad leaders meet</title><link>https://e.test/2</link><guid>g2</guid>"
        b"<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>")


def test_items_json_has_the_contract_fields(site):
    rows = json.loads(digest("items", "--json", cwd=site).stdout)
    assert {r["title"] for r in rows} == {"Japan, US hold 2+2", "Quad leaders meet"}
    for r in rows:
        assert {"id", "source", "url", "guid", "title", "published_at", "status"} <= set(r)
        assert r["source"] == "Feed" and r["status"] == "candidate"
    newer = json.loads(digest("items", "--json", "--since", "2026-11-24", cwd=site).stdout)
    assert [r["guid"] for r in newer] == ["g2"]
    assert json.loads(digest("items", "--json", "--status", "included", cwd=site).stdout) == []
    assert json.loads(digest("items", "--json", "--source", "Nope", cwd=site).stdout) == []


def test_config_is_found_by_flag_env_and_cwd(site, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    by_flag = digest("--config", str(site / "digest.toml"), "items", "--json", cwd=elsewhere)
    by_env = digest("items", "--json", cwd=elsewhere,
                    env={"DIGEST_CONFIG": str(site / "digest.toml")})
    assert len(json.loads(by_flag.stdout)) == len(json.loads(by_env.stdout)) == 2


def test_bad_input_is_one_clear_line(site):
    bad = digest("items", "--status", "bogus", cwd=site, check=False)
    assert bad.returncode == 1 and "unknown status 'bogus'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    bad = digest("items", "--since", "yesterday", cwd=site, check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr
    (site / "digest.toml").write_text('[http]\ntimout = 3\n')
    bad = digest("items", cwd=site, check=False)
    assert bad.returncode == 1
    assert "digest.toml: [http]: unknown key 'timout'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = digest("--config", str(site / "nope.toml"), "items", cwd=site, check=False)
    assert missing.returncode == 1 and "nope.toml: config file not found" in missing.stderr


def test_sources_list_add_disable_and_opml(site):
    listed = json.loads(digest("sources", "list", "--json", cwd=site).stdout)
    assert listed[0]["name"] == "Feed" and listed[0]["last_success_at"]
    digest("sources", "add", "Second", "https://e.test/feed.xml", "--country", "JP", cwd=site)
    digest("sources", "disable", "Second", cwd=site)
    text = (site / "sources.toml").read_text(encoding="utf-8")
    assert text.startswith("# my sources") and "enabled = false" in text
    dup = digest("sources", "add", "Second", "https://e.test/other.xml", cwd=site, check=False)
    assert dup.returncode == 1 and "Second" in dup.stderr
    opml = digest("sources", "export-opml", cwd=site).stdout
    assert "https://e.test/feed.xml" in opml
    (site / "in.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body><outline text="News">'
        '<outline text="Kyodo" type="rss" xmlUrl="https://e.test/kyodo.rss"/></outline>'
        "</body></opml>")
    digest("sources", "import-opml", str(site / "in.opml"), cwd=site)
    names = [s["name"] for s in json.loads(digest("sources", "list", "--json", cwd=site).stdout)]
    assert names == ["Feed", "Second", "Kyodo"]


def test_packaged_registry_is_read_only_and_init_copies_it(tmp_path):
    refused = digest("sources", "disable", "x", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "digest init" in refused.stderr
    digest("init", cwd=tmp_path)
    assert (tmp_path / "digest.toml").exists() and (tmp_path / "sources.toml").exists()
    listed = json.loads(digest("sources", "list", "--json", cwd=tmp_path).stdout)
    assert sum(s["enabled"] for s in listed) >= 30


def test_sources_check_shows_what_would_be_stored(tmp_path):
    with FeedServer() as server:
        server.route("/f", body=GOOD)
        server.route("/down", status=403)
        (tmp_path / "sources.toml").write_text(
            f'[[source]]\nname = "F"\nurl = "{server.url("/f")}"\n'
            f'[[source]]\nname = "Down"\nurl = "{server.url("/down")}"\n')
        (tmp_path / "digest.toml").write_text("")
        shown = digest("sources", "check", "F", cwd=tmp_path)
        assert "Quad leaders meet" in shown.stdout and "2 items would be stored" in shown.stdout
        down = digest("sources", "check", "Down", cwd=tmp_path, check=False)
        assert down.returncode == 1 and "refused by the server (403" in down.stderr
    assert not (tmp_path / "data" / "digest.db").exists()  # check stores nothing


@pytest.mark.flow
def test_demo_hints_name_a_command_that_works_after_cd(tmp_path, monkeypatch):
    from alliance_digest.demo import command_hint

    monkeypatch.chdir(tmp_path)
    assert command_hint(".venv/bin/digest") == str(tmp_path / ".venv" / "bin" / "digest")
    assert command_hint("/opt/venv/bin/digest") == "/opt/venv/bin/digest"
    assert command_hint("digest") == "digest"  # found on PATH: works from anywhere
    assert command_hint("/usr/lib/python3/site-packages/alliance_digest/cli.py") == "digest"


def test_the_demo_names_the_exports_that_exist(tmp_path):
    from alliance_digest.demo import draft_files

    stem = tmp_path / "drafts" / "digest-vol-5-1_2026-12-05"
    stem.parent.mkdir()
    for ext in ("md", "html", "txt", "pdf"):
        Path(f"{stem}.{ext}").write_text("x", encoding="utf-8")
    drafted = {"paths": {k: f"{stem}.{k}" for k in ("md", "html", "txt")},
               "exports": {k: f"{stem}.{k}" for k in ("pdf", "docx")}}
    # The Word file was not written (say, removed since): it is not named.
    assert draft_files(drafted) == [f"{stem}.{{md,html,txt,pdf}}"]
    Path(f"{stem}.docx").write_text("x", encoding="utf-8")
    assert draft_files(drafted) == [f"{stem}.{{md,html,txt,pdf,docx}}"]
    elsewhere = tmp_path / "out" / "digest-vol-5-1_2026-12-05.pdf"
    elsewhere.parent.mkdir()
    elsewhere.write_text("x", encoding="utf-8")
    drafted["exports"]["pdf"] = str(elsewhere)
    assert draft_files(drafted)[-2:] == [str(elsewhere), f"{stem}.docx"]


def test_demo_runs_offline_end_to_end(tmp_path):
    done = digest("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path,
                  env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert "Stored" in done.stdout and "0 failed" in done.stdout
    rows = json.loads(digest("items", "--json", cwd=tmp_path / "demo").stdout)
    assert len(rows) > 300
    assert any("日米" in r["title"] or "防衛" in r["title"] for r in rows)
    # Five different developments, each an entry keeping its other outlets.
    entries = json.loads(digest("entry", "list", "--json", cwd=tmp_path / "demo").stdout)
    assert len(entries) == 5
    leads = {e["items"][0]["cluster_id"] for e in entries}
    assert len(leads) == 5
    assert all(len({i["source"] for i in e["items"]}) >= 2 for e in entries)
    heads = [e["headline"] or e["items"][0]["title"] for e in entries]
    assert sum("2+2" in h or "Security Consultative" in h for h in heads) <= 1
    draft = next((tmp_path / "demo" / "drafts").glob("*.md")).read_text(encoding="utf-8")
    assert "See also" not in draft and draft.count("[DRAFT — needs writing]") == 5
    # A short summary: what was stored, the sources to look at, the top candidates, where the
    # draft and the database are; none of Prefect's own log lines (they go to its log file).
    lines = done.stdout.splitlines()
    assert len(lines) <= 30, done.stdout
    assert not [line for line in lines if line.rstrip().endswith(";")], done.stdout
    assert done.stderr.strip() == "", done.stderr
    drafted = next(line.strip() for line in lines if "/drafts/" in line)
    stem, exts = drafted.removesuffix("}").split(".{")
    # The PDF and Word files the draft flow writes beside the draft are named too.
    assert exts.split(",") == ["md", "html", "txt", "pdf", "docx"], drafted
    assert all(Path(f"{stem}.{ext}").is_file() for ext in exts.split(","))
    assert f"Database: {tmp_path / 'demo' / 'data' / 'digest.db'}" in done.stdout
    # A second draft in the same folder (its own process): the summary and nothing else.
    again = digest("draft", cwd=tmp_path / "demo", env={"PREFECT_HOME": str(tmp_path / "prefect")})
    assert again.stderr.strip() == "", again.stderr
    assert again.stdout.startswith("Drafted Vol ") and "EventsWorker" not in again.stdout
    # The PDF and Word files the draft flow writes beside them are named too.
    assert f"{stem}.pdf" in again.stdout and f"{stem}.docx" in again.stdout


def test_prefect_console_lines_go_to_the_log_file(tmp_path):
    """What Prefect would print (its EventsWorker's warning at exit, say) lands in the file."""
    log = tmp_path / "data" / "prefect.log"
    code = (
        "import logging, sys\n"
        "import prefect  # noqa: F401  (sets up Prefect's logging)\n"
        "from pathlib import Path\n"
        "from alliance_digest.flows import log_prefect_to\n"
        f"log_prefect_to(Path({str(log)!r}))\n"
        "logging.getLogger('prefect.EventsWorker').warning("
        "'Still processing items: 3 items remaining...')\n"
        "logging.getLogger('prefect._internal.concurrency').error('a service failed')\n"
        "print('ours')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ours\n" and done.stderr == ""
    text = log.read_text(encoding="utf-8")
    assert "WARNING prefect.EventsWorker: Still processing items: 3 items remaining" in text
    assert "ERROR prefect._internal.concurrency: a service failed" in text
