"""Editor accounts, password hashes and sessions (store.users), and `digest users`."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alliance_digest.store.db import open_db
from alliance_digest.store.users import (
    UnknownUser,
    UserError,
    add_user,
    authenticate,
    create_session,
    delete_session,
    get_session,
    hash_password,
    list_users,
    remove_user,
    set_password,
    user_count,
    verify_password,
)


def test_hash_format_salt_and_verification():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    scheme, n, r, p, salt, key = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.urlsafe_b64decode(salt + "==")) == 16
    assert len(base64.urlsafe_b64decode(key + "=")) == 32
    assert first != second  # a random salt each time
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horsE", first)
    assert not verify_password("", first)


def test_parameters_travel_with_the_hash():
    """A hash made with other parameters still verifies: they are read from the string."""
    import hashlib

    salt = b"s" * 16
    key = hashlib.scrypt(b"old password", salt=salt, n=2**10, r=4, p=2, dklen=24)
    stored = "$".join(("scrypt", "1024", "4", "2", base64.urlsafe_b64encode(salt).decode(),
                       base64.urlsafe_b64encode(key).decode()))
    assert verify_password("old password", stored)
    assert not verify_password("old passwore", stored)


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$1$2$3$AA$AA", "scrypt$1000$8$1$AA$AA",
                                    "scrypt$16384$8$1$!!$AA", "scrypt$1073741824$8$1$AA$AA",
                                    "scrypt$16384$8$1$$"])
def test_malformed_or_hostile_hashes_never_verify(stored):
    assert verify_password("anything", stored) is False


def test_accounts(db):
    assert user_count(db) == 0
    ann = add_user(db, "ann", "s3cret-pass")
    assert ann["name"] == "ann" and user_count(db) == 1
    stored = db.execute("SELECT password_hash FROM users").fetchone()[0]
    assert stored.startswith("scrypt$") and "s3cret-pass" not in stored
    with pytest.raises(UserError, match="exists already"):
        add_user(db, "Ann", "another-pass")
    with pytest.raises(UserError, match="at least 8 characters"):
        add_user(db, "bob", "short")
    for bad in ("", "a b", "ann<script>", "x" * 65, "名前"):
        with pytest.raises(UserError, match="invalid user name"):
            add_user(db, bad, "long enough")
    with pytest.raises(UserError, match="reserved"):
        add_user(db, "triage", "long enough")
    add_user(db, "bob.k-2_", "password-2")
    assert [u["name"] for u in list_users(db)] == ["ann", "bob.k-2_"]
    assert "password_hash" not in list_users(db)[0]

    assert authenticate(db, "ann", "s3cret-pass")["name"] == "ann"
    assert list_users(db)[0]["last_login_at"]
    assert authenticate(db, "ann", "wrong-pass") is None
    assert authenticate(db, "nobody", "s3cret-pass") is None

    set_password(db, "ann", "new-password")
    assert authenticate(db, "ann", "s3cret-pass") is None
    assert authenticate(db, "ann", "new-password") is not None
    with pytest.raises(UnknownUser, match="no user named 'carol'"):
        set_password(db, "carol", "whatever-pass")
    remove_user(db, "bob.k-2_")
    with pytest.raises(UserError):
        remove_user(db, "bob.k-2_")
    assert user_count(db) == 1


def test_sessions_store_only_a_hash_and_expire(db):
    add_user(db, "ann", "s3cret-pass")
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    token, csrf = create_session(db, "ann", 12, now=start)
    assert token != csrf and len(token) >= 40
    row = db.execute("SELECT token_hash, csrf_token FROM sessions").fetchone()
    assert row[0] != token and len(row[0]) == 64 and row[1] == csrf

    session = get_session(db, token, now=start + timedelta(hours=11))
    assert session["user_name"] == "ann" and session["csrf_token"] == csrf
    assert session["expires_at"] == "2026-11-24T21:00:00Z"
    assert get_session(db, "not-a-token", now=start) is None
    assert get_session(db, None) is None

    assert get_session(db, token, now=start + timedelta(hours=12)) is None
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0  # deleted on sight


def test_logout_password_change_and_removal_end_sessions(db):
    add_user(db, "ann", "s3cret-pass")
    one, _ = create_session(db, "ann", 1)
    two, _ = create_session(db, "ann", 1)
    delete_session(db, one)
    assert get_session(db, one) is None and get_session(db, two) is not None
    set_password(db, "ann", "new-password")
    assert get_session(db, two) is None
    three, _ = create_session(db, "ann", 1)
    remove_user(db, "ann")
    assert get_session(db, three) is None
    with pytest.raises(UnknownUser):
        create_session(db, "ann", 1)


# --- the CLI -------------------------------------------------------------------------------------


def users_cli(cfg: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "alliance_digest.cli", "--config", str(cfg),
                           "users", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, cwd=cfg.parent)


def test_cli_users_add_list_set_password_remove(tmp_path: Path):
    cfg = tmp_path / "digest.toml"
    cfg.write_text('[store]\npath = "data/digest.db"\n')
    done = users_cli(cfg, "add", "ann", "--password-stdin", stdin="s3cret pass\n")
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    db = open_db(tmp_path / "data" / "digest.db")
    try:
        assert authenticate(db, "ann", "s3cret pass") is not None  # newline dropped, space kept
    finally:
        db.close()

    dup = users_cli(cfg, "add", "ann", "--password-stdin", stdin="other-pass\n")
    assert dup.returncode == 1 and "exists already" in dup.stderr
    assert len(dup.stderr.strip().splitlines()) == 1 and "Traceback" not in dup.stderr
    short = users_cli(cfg, "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    no_stdin_flag = users_cli(cfg, "add", "bob", stdin="long-enough\n")
    assert no_stdin_flag.returncode == 1 and "--password-stdin" in no_stdin_flag.stderr

    listed = users_cli(cfg, "list")
    assert listed.returncode == 0 and "ann" in listed.stdout and "last login" in listed.stdout
    changed = users_cli(cfg, "set-password", "ann", "--password-stdin", stdin="brand-new-pw\r\n")
    assert changed.returncode == 0, changed.stderr
    db = open_db(tmp_path / "data" / "digest.db")
    try:
        assert authenticate(db, "ann", "brand-new-pw") is not None
    finally:
        db.close()
    assert users_cli(cfg, "remove", "ann").returncode == 0
    gone = users_cli(cfg, "remove", "ann")
    assert gone.returncode == 1 and "no user named 'ann'" in gone.stderr
