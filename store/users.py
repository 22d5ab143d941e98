"""Editor accounts and their sessions.

Passwords are stored as `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`: a slow, salted,
memory-hard hash whose parameters travel with it, so they can be raised later without
invalidating existing accounts. Sessions live server-side: the browser's cookie holds a random
token and the `sessions` table only its SHA-256, so a copy of the database cannot be replayed
as a cookie, and deleting the row really logs out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlite_utils

from ..errors import UnknownUser, UserError
from ..timestamps import utc_timestamp, utcnow

__all__ = [
    "MIN_PASSWORD",
    "ROLES",
    "UnknownUser",
    "UserError",
    "add_user",
    "authenticate",
    "create_session",
    "delete_session",
    "get_session",
    "hash_password",
    "list_users",
    "remove_user",
    "set_password",
    "set_role",
    "user_count",
    "verify_password",
]

MIN_PASSWORD = 8
#: Editors write and submit; publishers also approve, reopen, discard and send.
ROLES = ("editor", "publisher")
#: Longer "passwords" are pasted files or attacks on hashing time, not passwords.
MAX_PASSWORD = 1024
#: 2**14 × 8 × 128 bytes = 16 MiB and ~50 ms per hash: OWASP's scrypt floor.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Names that mean something else in `items.status_by`.
_RESERVED = frozenset({"triage"})
# Verified against when the user name is unknown, so a login takes as long either way and
# its timing does not tell which names exist.
_DUMMY_HASH: str | None = None


# --- passwords ---------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`, with its parameters, as one string."""
    _check_password(password)
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash; False for a wrong or malformed one."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        n_i, r_i, p_i = int(n), int(r), int(p)
        salt, key = _unb64(salt_b64), _unb64(key_b64)
    except (ValueError, AttributeError, binascii.Error):
        return False
    # Bounds keep a tampered row from making one login allocate gigabytes.
    if (scheme != "scrypt" or n_i < 2 or n_i & (n_i - 1) or n_i > 2**20 or not 0 < r_i <= 32
            or not 0 < p_i <= 16 or not salt or not key):
        return False
    if len(password) > MAX_PASSWORD:
        return False
    try:
        candidate = _scrypt(password, salt, n_i, r_i, p_i, len(key))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int,
            length: int = _KEY_BYTES) -> bytes:
    # maxmem: OpenSSL's default (32 MiB) refuses n=2**15, r=8; allow what the bounds permit.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * r * (n + p + 2) + 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_password(password: str) -> None:
    if not isinstance(password, str):
        raise UserError("the password must be text")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password must be at most {MAX_PASSWORD} characters long")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(
            f"invalid user name {str(name)[:80]!r}: 1 to 64 letters, digits, '.', '_' or '-'"
        )
    if name.lower() in _RESERVED:
        raise UserError(f"the user name {name!r} is reserved")
    return name


# --- accounts ----------------------------------------------------------------------------------


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {str(role)[:40]!r}: use {' or '.join(ROLES)}")
    return role


def add_user(db: sqlite_utils.Database, name: str, password: str,
             role: str = "editor") -> dict[str, Any]:
    """Create an account; returns it (id, name, role, created_at). Names are unique ignoring
    case."""
    _check_name(name)
    _check_role(role)
    password_hash = hash_password(password)
    with db.atomic():
        if _find(db, name) is not None:
            raise UserError(f"a user named {name!r} exists already")
        now = utcnow()
        user_id = db.table("users").insert({"name": name, "password_hash": password_hash,
                                            "role": role, "created_at": now}).last_pk
    return {"id": int(user_id or 0), "name": name, "role": role, "created_at": now,
            "last_login_at": None}


def set_role(db: sqlite_utils.Database, name: str, role: str) -> dict[str, Any]:
    """Give an account another role; its open sessions see it on their next request."""
    _check_role(role)
    with db.atomic():
        user = _require(db, name)
        db.execute("UPDATE users SET role = ? WHERE id = ?", [role, user["id"]])
    return {"id": user["id"], "name": user["name"], "role": role}


def list_users(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every account (id, name, role, created_at, last_login_at), by name; never the hashes."""
    return list(db.query(
        "SELECT id, name, role, created_at, last_login_at FROM users "
        "ORDER BY name COLLATE NOCASE"))


def user_count(db: sqlite_utils.Database) -> int:
    """How many accounts exist (the desk refuses to start its login page with none)."""
    return int(db.execute("SELECT count(*) FROM users").fetchone()[0])


def remove_user(db: sqlite_utils.Database, name: str) -> None:
    """Delete an account and end its sessions; its past edits keep the name."""
    with db.atomic():
        user = _require(db, name)
        db.execute("DELETE FROM sessions WHERE user_id = ?", [user["id"]])
        db.execute("DELETE FROM users WHERE id = ?", [user["id"]])


def set_password(db: sqlite_utils.Database, name: str, password: str) -> None:
    """Replace an account's password and end its sessions (a reset should lock others out)."""
    password_hash = hash_password(password)
    with db.atomic():
        user = _require(db, name)
        db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user["id"]])
        db.execute("DELETE FROM sessions WHERE user_id = ?", [user["id"]])


def authenticate(db: sqlite_utils.Database, name: str, password: str) -> dict[str, Any] | None:
    """The account (id, name) when name and password match, else None; records the login.

    An unknown name costs the same hashing time as a wrong password.
    """
    global _DUMMY_HASH
    user = _find(db, name) if isinstance(name, str) and _NAME.fullmatch(name) else None
    if user is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        verify_password(password if isinstance(password, str) else "", _DUMMY_HASH)
        return None
    if not verify_password(password if isinstance(password, str) else "", user["password_hash"]):
        return None
    try:
        with db.atomic():
            db.execute("UPDATE users SET last_login_at = ? WHERE id = ?", [utcnow(), user["id"]])
    except sqlite3.OperationalError as e:
        # A desk on a read-only database (a copy, a backup): the login is not recorded.
        if "readonly" not in str(e).lower():
            raise
    return {"id": user["id"], "name": user["name"]}


def _find(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM users WHERE name = ? COLLATE NOCASE LIMIT 1", [name]))
    return rows[0] if rows else None


def _require(db: sqlite_utils.Database, name: str) -> dict[str, Any]:
    user = _find(db, name)
    if user is None:
        raise UnknownUser(f"no user named {name!r}")
    return user


# --- sessions ----------------------------------------------------------------------------------


def create_session(db: sqlite_utils.Database, user_name: str, hours: float, *,
                   now: datetime | None = None) -> tuple[str, str]:
    """Start a session for the user; returns (cookie token, CSRF token).

    Only the token's hash is stored. Expired sessions of everyone are swept out on the way.
    """
    if hours <= 0:
        raise UserError(f"a session must last more than 0 hours, got {hours}")
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    with db.atomic():
        user = _require(db, user_name)
        db.execute("DELETE FROM sessions WHERE expires_at <= ?", [utc_timestamp(now)])
        db.table("sessions").insert({"token_hash": _token_hash(token), "user_id": user["id"],
                               "csrf_token": csrf, "created_at": utc_timestamp(now),
                               "expires_at": utc_timestamp(now + timedelta(hours=hours))})
    return token, csrf


def get_session(db: sqlite_utils.Database, token: str | None, *,
                now: datetime | None = None) -> dict[str, Any] | None:
    """The live session for a cookie token (user_id, user_name, role, csrf_token, created_at,
    expires_at), or None; an expired one is deleted. The role is read on every request, so a
    `set-role` takes effect at once."""
    if not token or len(token) > 256:
        return None
    token_hash = _token_hash(token)
    rows = list(db.query(
        "SELECT sessions.token_hash, sessions.user_id, users.name AS user_name, users.role, "
        "sessions.csrf_token, sessions.created_at, sessions.expires_at FROM sessions "
        "JOIN users ON users.id = sessions.user_id WHERE sessions.token_hash = ?", [token_hash]))
    if not rows:
        return None
    session = rows[0]
    if session["expires_at"] <= utc_timestamp(now or datetime.now(UTC)):
        with db.atomic():
            db.execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash])
        return None
    del session["token_hash"]
    return session


def delete_session(db: sqlite_utils.Database, token: str | None) -> None:
    """End a session (logging out); unknown tokens are ignored."""
    if not token:
        return
    with db.atomic():
        db.execute("DELETE FROM sessions WHERE token_hash = ?", [_token_hash(token)])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
