"""Plain, frozen data passed between fetching, parsing and the collect flow.

Everything here is picklable (parsing runs in a process pool, and on Dask workers) and has no
behaviour beyond small conveniences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import SourceErrorKind

KINDS: tuple[str, ...] = ("feed", "json", "page")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One `[[source]]` table of sources.toml, validated."""

    #: Unique name; the key everything else refers to.
    name: str
    #: Where to fetch it (http or https).
    url: str
    #: `feed` (RSS/Atom/RDF), `json` (a JSON endpoint with a mapping) or `page` (a listing page).
    kind: str = "feed"
    #: Who publishes it, e.g. "US Department of State".
    owner: str = ""
    #: US, JP, KR, INTL…
    country: str = ""
    #: government, military, news or think-tank.
    category: str = ""
    #: en, ja, ko…
    language: str = ""
    #: Minimum minutes between fetches; None means the configured default.
    interval_minutes: int | None = None
    #: Extra request headers for sites that refuse unknown clients.
    headers: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True
    #: Kind-specific options: the `[source.json]` mapping or the `[source.page]` selectors.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """One normalised item, as parsed from a source."""

    #: Unique within its source: "guid:<guid>", "url:<canonical url>" or "hash:<sha1>".
    identity: str
    #: The entry's own id, if it had one.
    guid: str | None
    #: Canonical http(s) link (tracking parameters and fragment removed), or None.
    url: str | None
    #: Plain text.
    title: str
    #: Sanitised HTML (nh3 allow-list).
    summary: str
    #: The summary as plain text.
    summary_text: str
    #: ISO-8601 UTC ("2026-11-26T08:00:00Z"): published, else updated; None if neither.
    published_at: str | None
    #: ISO-8601 UTC of the entry's own update time, if given.
    updated_at: str | None
    #: Language code (entry's, else feed's, else the source's).
    language: str | None
    #: Lead image (media:content, media:thumbnail, image enclosure), absolute http(s).
    image_url: str | None
    author: str | None = None
    #: When the title or summary was cut to its cap (sources/normalise.py): the original
    #: lengths, as JSON ({"title": 200000}); None when nothing was cut.
    text_cut: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What one body parsed into."""

    title: str | None
    link: str | None
    entries: tuple[Entry, ...]
    #: Problems worth showing on the source that did not stop parsing ("no items", "bozo: …").
    warnings: tuple[str, ...] = ()
    #: Per-entry values computed after parsing by whoever runs the parse (the collect flow has
    #: triage score entries in the parse workers), aligned with `entries`; empty when none.
    extras: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """Everything needed to fetch one source, including the caching info from last time."""

    name: str
    url: str
    kind: str = "feed"
    headers: Mapping[str, str] = field(default_factory=dict)
    #: ETag and Last-Modified exactly as the server last sent them.
    etag: str | None = None
    last_modified: str | None = None
    language: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    """A successful HTTP exchange (2xx or 304), body already capped and decompressed."""

    #: The final URL after redirects.
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    #: Set when a 301/308 chain moved the source: the new URL to store.
    permanent_url: str | None = None
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of fetching and parsing one source: what the flow records and stores."""

    name: str
    #: ok, not_modified or failed.
    status: Literal["ok", "not_modified", "failed"]
    http_status: int | None = None
    #: Body bytes received (after decompression).
    bytes: int = 0
    duration_ms: int = 0
    etag: str | None = None
    last_modified: str | None = None
    #: New URL after a permanent redirect.
    permanent_url: str | None = None
    #: One-line human description of the failure.
    error: str | None = None
    #: What kind of failure (`Refused`, `FetchTimeout`, `NotAFeed`…).
    error_kind: SourceErrorKind | None = None
    #: True when the failure is permanent (410 Gone): the source gets disabled.
    permanent: bool = False
    #: Seconds the server asked us to wait before the next fetch (Retry-After, max-age).
    retry_after: float | None = None
    max_age: float | None = None
    warnings: tuple[str, ...] = ()
    feed: ParsedFeed | None = None
