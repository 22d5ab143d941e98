"""Files written safely: exclusive temporary files, never through a planted symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from alliance_digest import files
from alliance_digest.pipeline.draft import draft_issue
from support import digest
from test_draft import SEED_DATE, SEED_STEM, site  # noqa: F401 - `site` is a fixture

VICTIM = "precious: do not overwrite\n"


def plant(link: Path, target: Path) -> None:
    link.symlink_to(target)


def test_a_draft_never_writes_through_planted_symlinks(site, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    victims = {}
    for ext in (".md", ".html", ".txt"):
        victim = tmp_path / f"victim-final{ext}"
        victim.write_text(VICTIM)
        temp_victim = tmp_path / f"victim-temp{ext}"
        temp_victim.write_text(VICTIM)
        # Named like the final file, and like the temporary file drafts used to write.
        plant(out / f"{SEED_STEM}{ext}", victim)
        plant(out / f".{SEED_STEM}{ext}.tmp", temp_victim)
        victims[ext] = (victim, temp_victim)
    result = draft_issue(site, day=SEED_DATE, out_dir=out)
    for ext, (victim, temp_victim) in victims.items():
        assert victim.read_text() == VICTIM and temp_victim.read_text() == VICTIM
        final = out / f"{SEED_STEM}{ext}"
        assert not final.is_symlink() and final.is_file()
        assert "Alliance Digest" in final.read_text(encoding="utf-8")
    assert set(result.paths.values()) == {out / f"{SEED_STEM}{e}" for e in victims}
    # No temporary file is left behind (the planted ones are still there, untouched).
    leftovers = {p.name for p in out.iterdir() if p.name.endswith(".tmp")}
    assert leftovers == {f".{SEED_STEM}{ext}.tmp" for ext in victims}


def test_stage_refuses_an_existing_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the random name is guessed, O_EXCL|O_NOFOLLOW refuses it: another is drawn."""
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(files.secrets, "token_hex", lambda _n: next(names))
    plant(tmp_path / ".report.txt.aaaaaaaaaaaa.tmp", victim)
    staged = files.stage(tmp_path / "report.txt", b"new text")
    assert staged.tmp.name == ".report.txt.bbbbbbbbbbbb.tmp"
    files.commit(staged)
    assert (tmp_path / "report.txt").read_bytes() == b"new text"
    assert victim.read_text() == VICTIM


def test_write_file_replaces_a_symlink_and_keeps_a_files_mode(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    plant(tmp_path / "export.opml", victim)
    files.write_file(tmp_path / "export.opml", "<opml/>")
    assert not (tmp_path / "export.opml").is_symlink()
    assert victim.read_text() == VICTIM
    mine = tmp_path / "sources.toml"
    mine.write_text("# mine\n")
    os.chmod(mine, 0o600)
    files.write_file(mine, "# rewritten\n")
    assert mine.read_text() == "# rewritten\n" and mine.stat().st_mode & 0o777 == 0o600


def test_export_opml_through_a_planted_symlink(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[store]\npath = "data/digest.db"\n')
    (tmp_path / "sources.toml").write_text(
        '[[source]]\nname = "Wire"\nurl = "https://news.test/feed"\n'
    )
    victim = tmp_path / "victim.txt"
    victim.write_text(VICTIM)
    plant(tmp_path / "feeds.opml", victim)
    digest("sources", "export-opml", "--out", "feeds.opml", cwd=tmp_path)
    assert victim.read_text() == VICTIM
    assert "news.test/feed" in (tmp_path / "feeds.opml").read_text()
