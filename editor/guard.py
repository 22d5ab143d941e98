"""The desk's edges: body caps, the server key, signed login tokens, login limits, proxies.

every request     BodyLimit: a Content-Length over the route's cap → 413 before anything
                  is read; a streamed body is counted as it arrives and cut off at the cap
                  (before the session is looked up, on every route)
the server key    `desk.key` in the data folder (created once, exclusively, mode 0600): signs
                  the login form's CSRF token and the device cookie, so a client cannot
                  choose their values (a read-only folder gets a key for this process only)
login limits      failures counted per (user, address), per address and per user. A browser
                  that logged in as the user before holds a signed device cookie: it is
                  limited on its own count only, so neither an attacker guessing from
                  elsewhere nor one on the same address locks out a user who knows their
                  password (OWASP's "device cookies")
proxies           X-Forwarded-For/-Proto are believed only from `[editor] trusted_proxies`
                  (uvicorn's forwarded_allow_ips; none by default)
alerts            texts chosen by a code from ALERTS, never taken from the URL
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import DigestError, EditError, InputError, PrivateAddress
from ..settings import EditorSettings

KEY_FILE = "desk.key"
#: Holds a browser's proof that it logged in as a user before (signed; path /login).
DEVICE_COOKIE = "desk_device"
DEVICE_DAYS = 90
#: How long a login form's CSRF token stays good.
LOGIN_TOKEN_SECONDS = 12 * 3600

#: Body caps by path: the login form is tiny, JSON edits small, a saved item form at most a few
#: dozen kB (a 20,000-character blurb).
LOGIN_BODY_BYTES = 16 * 1024
API_BODY_BYTES = 256 * 1024
FORM_BODY_BYTES = 1024 * 1024


# --- body caps ---------------------------------------------------------------------------------


def body_cap(path: str) -> int:
    """The largest request body accepted on `path`."""
    if path == "/login":
        return LOGIN_BODY_BYTES
    if path.startswith("/api/"):
        return API_BODY_BYTES
    return FORM_BODY_BYTES


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware answering 413 to a body over `body_cap`, without buffering it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = cap + 1
                if declared > cap:
                    await _too_large(scope, send, cap)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _too_large(scope, send, cap)


async def _too_large(scope: Scope, send: Send, cap: int) -> None:
    api = scope.get("path", "").startswith("/api/")
    text = f"request body larger than {cap // 1024} KiB"
    body = (b'{"error": "' + text.encode() + b'"}') if api else text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json" if api else b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- the server key and what it signs ----------------------------------------------------------


def server_key(data_dir: Path) -> bytes:
    """The desk's signing key from `data_dir/desk.key`, created on first use (0600, O_EXCL).

    A folder that cannot hold it (read-only) gets a random key for this process: tokens then
    last until a restart, which only costs a reload of the login page.
    """
    path = data_dir / KEY_FILE
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with contextlib.suppress(OSError):
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600
            )
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        fd = os.open(path, flags)
        with os.fdopen(fd) as f:
            text = f.read(200).strip()
        with contextlib.suppress(ValueError):
            key = bytes.fromhex(text)
            if len(key) >= 32:
                return key
    return secrets.token_bytes(32)


class Signer:
    """Tokens of the form `nonce.issued.mac`, valid for one purpose and subject, and a while."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, subject: str, nonce: str, issued: str) -> str:
        message = f"{purpose}|{subject}|{nonce}|{issued}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:24]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, purpose: str, subject: str = "", now: float | None = None) -> str:
        nonce = secrets.token_urlsafe(18)
        issued = str(int(time.time() if now is None else now))
        return f"{nonce}.{issued}.{self._mac(purpose, subject, nonce, issued)}"

    def valid(
        self,
        token: str | None,
        purpose: str,
        subject: str = "",
        *,
        max_age: float,
        now: float | None = None,
    ) -> bool:
        """True when `token` was issued by this key for `purpose`/`subject` within `max_age`."""
        if not token or len(token) > 200:
            return False
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        nonce, issued, mac = parts
        age = (time.time() if now is None else now) - int(issued)
        if not 0 <= age <= max_age:
            return False
        return hmac.compare_digest(mac, self._mac(purpose, subject, nonce, issued))


def device_id(token: str) -> str:
    """The limiter's key for a device cookie (its nonce)."""
    return token.split(".", 1)[0]


# --- login limits ------------------------------------------------------------------------------


class LoginLimits:
    """Failed logins in a sliding window, counted so that knowing the password always works.

    Without a device cookie, a login is refused (429, password unchecked) once any of these is
    used up: the (user, address) pair's `attempts`, the address's `attempts * 3` (one address
    trying many names), the user's `attempts * 3` (many addresses trying one name). With a
    valid device cookie for the user, only that device's own `attempts` count.
    """

    SPREAD = 3

    def __init__(self, attempts: int, window_seconds: float) -> None:
        self.attempts = attempts
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _keys(self, user: str, address: str, device: str | None) -> dict[str, int]:
        if device:
            return {f"device:{device}": self.attempts}
        user = user.casefold()
        return {
            f"pair:{user}|{address}": self.attempts,
            f"ip:{address}": self.attempts * self.SPREAD,
            f"user:{user}": self.attempts * self.SPREAD,
        }

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]  # keep the table small under a spray of names
            return deque()
        return q

    def blocked(
        self, user: str, address: str, device: str | None = None, now: float | None = None
    ) -> bool:
        """True when this attempt is over a limit (see the class doc)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return any(
                len(self._recent(k, now)) >= limit
                for k, limit in self._keys(user, address, device).items()
            )

    def failed(
        self, user: str, address: str, device: str | None = None, now: float | None = None
    ) -> None:
        """Count one failed attempt."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in self._keys(user, address, device):
                self._recent(key, now)
                self._failures[key].append(now)

    def succeeded(self, user: str, address: str, device: str | None = None) -> None:
        """The owner got in: forget this pair's (or device's) failures; the rest keep counting."""
        with self._lock:
            self._failures.pop(f"pair:{user.casefold()}|{address}", None)
            if device:
                self._failures.pop(f"device:{device}", None)


# --- proxies -----------------------------------------------------------------------------------


def uvicorn_proxy_options(editor: EditorSettings) -> dict[str, Any]:
    """uvicorn.run/Config options: proxy headers only from `[editor] trusted_proxies`.

    uvicorn's own default trusts 127.0.0.1, which let any local client pick its address.
    """
    trusted = [p.strip() for p in editor.trusted_proxies if p.strip()]
    if not trusted:
        return {"proxy_headers": False, "forwarded_allow_ips": ""}
    return {"proxy_headers": True, "forwarded_allow_ips": ",".join(trusted)}


# --- alerts ------------------------------------------------------------------------------------

#: What the queue page may say after a refused add-by-URL, by code.
ALERTS = {
    "not_http": "that is not an http(s) address.",
    "private": (
        "the address is not public (loopback, private, link-local or reserved); "
        "an intranet desk sets [editor] allow_private_urls = true."
    ),
    "input": "the address was not accepted.",
    "failed": "something went wrong; try again or use `digest add-url`.",
}


def add_error_code(error: DigestError) -> str:
    """The ALERTS code for an add-by-URL error."""
    if isinstance(error, PrivateAddress):
        return "private"
    if isinstance(error, EditError) and "http(s)" in str(error):
        return "not_http"
    if isinstance(error, InputError):
        return "input"
    return "failed"


def alert_text(code: str | None) -> str:
    """The text for a code from the URL; "" for anything not in ALERTS."""
    return ALERTS.get(code or "", "")


# --- bulk decisions ----------------------------------------------------------------------------


def based_on_versions(ids: list[int], versions: Any) -> dict[int, int]:
    """{id: version} from a bulk request's `versions` (one per id, as the page showed them).

    Required: a decision made on a row another editor has changed since must be refused like a
    stale item form, and only the version the row was shown at can tell.
    """
    if (
        not isinstance(versions, list)
        or len(versions) != len(ids)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in versions)
    ):
        raise InputError(
            "versions must list the version of each item, in the order of ids", field="versions"
        )
    return dict(zip(ids, versions, strict=True))
