"""The desk's safety rails: response headers, CSRF checks, login rate limits, cookies.

    every response      CSP (no inline script, no framing), nosniff, no referrer
    every POST          a CSRF token: the session's (form field or X-CSRF-Token header), or for
                        the login form the pre-session cookie's (double submit, and signed
                        by the server: editor/guard.py)
    failed logins       editor/guard.py (LoginLimits: per user, address and device)
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "desk_session"
#: Holds the login form's CSRF token before there is a session to hold it.
LOGIN_COOKIE = "desk_login"

#: Feed content is hostile: no script but our own file, no plugins, no framing, forms only to
#: ourselves. Images may come from publishers (lead image previews), over https only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "connect-src 'self'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware adding HEADERS to every HTTP response (errors and static files too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    # A response may carry its own, narrower policy (the issue preview frame).
                    headers.setdefault(name, value)
                if scope.get("path", "").startswith("/static/"):
                    # Static files are small and change with the code; revalidate each time.
                    headers.setdefault("cache-control", "no-cache")
                else:
                    # Pages hold session data; never keep them in a shared cache.
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def new_token() -> str:
    """A random token for cookies and CSRF."""
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; a missing one never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site only (no //host or scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
