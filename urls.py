"""The one check that a URL is an absolute http(s) address: for storing and for rendering.

On the ground floor with no project imports, so store/ (validating what editors type) and
templates/ (deciding what may become a link) share it without importing each other.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def http_url(value: str | None) -> str | None:
    """`value`, stripped, when it is an absolute http(s) URL with a host; else None.

    Nothing is repaired: whitespace or a control character inside, or a malformed port, and
    the answer is None (templates.render.safe_url escapes what a page cannot hold first).
    """
    if not value:
        return None
    url = value.strip()
    if any(ord(c) <= 0x20 or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url
