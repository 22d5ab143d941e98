"""Adding an item by its URL: the one path the desk's "Add by URL" and `digest add-url` share.

    wanted   = canonical_url(url)                  else EditError (not http(s))
    stored?  = find_item_by_url(wanted)            → that item, nothing fetched
    meta     = fetch_page_metadata(wanted)         a failure is kept as `fetch_error`;
                                                   a non-public address refuses the add
    final    = the page's canonical URL (canonicalised), else the address after redirects,
               else `wanted`; stored under `final`? → that item
    item     = add_manual_item(final, title = given, else the page's, else the URL)

A page that cannot be fetched (bot walls are common) is still added, titled by its URL: the
editor found it worth adding and will write the headline anyway. The fetch error comes back in
`AddResult.fetch_error` so each front end can say so (the desk on the item page's address, the
CLI as a warning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from ..errors import EditError, PrivateAddress, SourceError
from ..settings import EditorSettings, HttpSettings
from ..sources.addresses import AddressPolicy
from ..sources.normalise import canonical_url
from ..sources.pagemeta import fetch_page_metadata
from ..store.editorial import add_manual_item, find_item_by_url


@dataclass(frozen=True, slots=True)
class AddResult:
    """What adding a URL did."""

    #: The stored item: the new one, or the one already stored under the URL.
    item: dict[str, Any]
    #: False when the URL (or the page's canonical URL) was already stored.
    created: bool
    #: Why the page could not be fetched; the item was added titled by its URL. None if fetched.
    fetch_error: str | None = None


def url_policy(editor: EditorSettings) -> AddressPolicy:
    """Which addresses add-by-URL may fetch: public ones, plus what `[editor]` allows."""
    return AddressPolicy.from_settings(editor.allow_private_urls, editor.allowed_url_networks)


def add_by_url(db: sqlite_utils.Database, url: str, http: HttpSettings, *, editor: str,
               title: str | None = None, fetch: bool = True,
               addresses: AddressPolicy | None = None) -> AddResult:
    """Store the page at `url` as a manual item, unless it is stored already (see module doc).

    Raises EditError for an address that is not http(s), PrivateAddress when the page (or a
    redirect on the way) is on an address `addresses` refuses (public only when None) —
    nothing is stored then. `title` wins over the page's; `fetch=False` stores the URL
    without looking at the page.
    """
    wanted = canonical_url(url)
    if wanted is None:
        raise EditError(f"not an http(s) address: {url[:200]}")
    existing = find_item_by_url(db, wanted)
    if existing is not None:
        return AddResult(existing, created=False)
    meta: dict[str, Any] = {}
    fetch_error: str | None = None
    final = wanted
    if fetch:
        # Fetched outside any transaction: the page may take up to the HTTP deadline.
        try:
            meta = dict(fetch_page_metadata(wanted, http, addresses))
        except PrivateAddress:
            raise
        except SourceError as e:
            fetch_error = str(e)
        else:
            final = (canonical_url(meta.get("canonical_url")) or canonical_url(meta.get("url"))
                     or wanted)
            if final != wanted and (existing := find_item_by_url(db, final)) is not None:
                return AddResult(existing, created=False)
    item, created = add_manual_item(
        db, url=final, title=title or meta.get("title") or final,
        summary=meta.get("description"), image_url=meta.get("image"),
        published_at=meta.get("published_at"), editor=editor)
    return AddResult(item, created=created, fetch_error=fetch_error)
