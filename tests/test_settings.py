"""digest.toml: which file, path resolution, and one-line errors for every mistake."""

from __future__ import annotations

import pytest
from alliance_digest.errors import ConfigError
from alliance_digest.settings import PACKAGE_DIR, load_settings


def write(tmp_path, text: str):
    p = tmp_path / "digest.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_paths_resolve_relative_to_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(PACKAGE_DIR.parent)
    s = load_settings(write(tmp_path, '[store]\npath = "db/x.db"\n[sources]\nfile = "s.toml"\n'))
    assert s.store_path == tmp_path / "db" / "x.db"
    assert s.sources_file == tmp_path / "s.toml"


def test_packaged_default_keeps_data_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    s = load_settings()
    assert s.uses_packaged_default
    assert s.store_path == tmp_path / "data" / "digest.db"
    assert s.sources_file == PACKAGE_DIR / "sources.toml"


def test_local_digest_toml_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    write(tmp_path, "[collect]\nstale_days = 9\n")
    assert load_settings().collect.stale_days == 9


@pytest.mark.parametrize(("text", "message"), [
    ("[http]\nmax_bytes = -1\n", "[http]: 'max_bytes' must be greater than 0"),
    ("[http]\nmax_bytes = 'big'\n", "[http]: 'max_bytes' must be an integer"),
    ("[http]\nconnect_timeout = true\n", "'connect_timeout' must be a number, not a boolean"),
    ("[collect]\nstale_dys = 3\n", "[collect]: unknown key 'stale_dys'"),
    ("[store]\npath = 3\n", "'path' must be a string"),
    ("http = 3\n", "'http' must be a table"),
    ("[http\n", "invalid TOML"),
    ("[http]\nper_host_concurrency = 50\n", "'per_host_concurrency' exceeds 'max_connections'"),
])
def test_mistakes_are_one_line_naming_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, text))
    assert message in str(e.value) and str(tmp_path) in str(e.value)
    assert "\n" not in str(e.value)


def test_timeouts_accept_integers(tmp_path):
    assert load_settings(write(tmp_path, "[http]\nread_timeout = 5\n")).http.read_timeout == 5.0
