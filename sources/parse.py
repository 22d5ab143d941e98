"""One entry point for every kind of source: `parse(kind, body, headers, url, …)`.

The JSON and listing-page parsers are imported lazily, so a feed-only worker never loads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .types import KINDS, ParsedFeed

__all__ = ["parse"]


def parse(
    kind: str,
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    language: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> ParsedFeed:
    """Parse a fetched body according to its source kind (`feed`, `json` or `page`).

    Raises the `ParseError` subclasses of the kind's parser, and `ValueError` for an unknown kind.
    """
    if kind == "feed":
        from .feeds import parse_feed

        return parse_feed(body, headers, url, language)
    if kind == "json":
        from .jsonapi import parse_json

        return parse_json(body, headers, url, language, options or {})
    if kind == "page":
        from .pages import parse_page

        return parse_page(body, headers, url, language, options or {})
    raise ValueError(f"unknown source kind {kind!r} (expected one of {', '.join(KINDS)})")
