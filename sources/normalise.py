"""Turning whatever a source gave us into clean `Entry` values.

Shared by the three parsers (feeds, JSON endpoints, listing pages) so that every item gets the
same canonical URL, the same sanitising and the same identity rule:

    identity = source guid            -> "guid:<guid>"
             else canonical link      -> "url:<canonical url>"
             else hash(title, summary)-> "hash:<sha1>"

and two entries of one feed that share an identity both survive (the second gets a suffix
derived from its own content, so the suffix is stable across fetches).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

from ..texts import strip_bidi
from ..timestamps import utc_timestamp
from .types import Entry

#: Query parameters that only track the reader (dropped from canonical URLs).
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "igshid", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id",
        "oly_enc_id", "vero_id", "wt_mc", "cmpid", "ocid", "sr_share", "ref_src",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "hsa_")

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "em", "figcaption", "figure", "h2", "h3",
        "h4", "i", "img", "li", "ol", "p", "pre", "q", "small", "strong", "sub", "sup", "table",
        "tbody", "td", "th", "thead", "tr", "u", "ul",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "abbr": {"title"}}
_URL_ATTRIBUTES = {("a", "href"), ("img", "src")}
_BLOCK = re.compile(r"<(/?(?:p|div|br|li|ul|ol|h[1-6]|tr|td|th|blockquote|figure|section)\b)",
                    re.IGNORECASE)
#: _BLOCK for the sanitiser's output, whose tag names are always lower case: without
#: IGNORECASE the engine skips to each "<" instead of testing every character.
_SANITIZED_BLOCK = re.compile(_BLOCK.pattern)
_MIN_YEAR = 1990


def collapse_whitespace(text: str) -> str:
    r"""Runs of whitespace as one space, none at the ends: `re.sub(r"\s+", " ", t).strip()`.

    str.split and the re module's \s agree on what whitespace is (Unicode's), and splitting
    costs a quarter of the substitution on prose, which has a match between every two words.
    """
    return " ".join(text.split())


#: An absolute http(s) URL with a lower-case ASCII host, a path, and no query, fragment, user,
#: port, whitespace or ";" (urljoin drops an empty ";params"): canonical as it is.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.-]+/[^?#;\s]*\Z")
#: The same with a query of plain `key=value` characters, which parse_qsl and urlencode give
#: back unchanged ("%", "+" or a second "=" in a pair take the general path).
_PLAIN_URL_QUERY = re.compile(r"(https?://[a-z0-9.-]+/[^?#;\s]*)\?([A-Za-z0-9_.~=&-]*)\Z")


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """Absolute http(s) URL with lower-case scheme and host, no fragment, no tracking params.

    Returns None for anything that is not http or https (`javascript:`, `mailto:`, `data:`…).
    """
    if not url:
        return None
    url = url.strip()
    # Most links are already canonical, or nearly (a plain query with tracking parameters):
    # the shortcuts return what the general path would, at a fraction of its cost.
    if _PLAIN_URL.match(url):
        return url
    if match := _PLAIN_URL_QUERY.match(url):
        kept = []
        for pair in match[2].split("&"):
            key, _, value = pair.partition("=")
            if "=" in value:
                break
            if pair and not _is_tracking(key):
                kept.append(f"{key}={value}")
        else:
            return f"{match[1]}?{'&'.join(kept)}" if kept else match[1]
    return _general_canonical_url(url, base)


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def _general_canonical_url(url: str, base: str | None) -> str | None:
    """canonical_url's full path, through urljoin, urlsplit, parse_qsl and urlencode."""
    try:
        if base:
            url = urljoin(base, url)  # raises ValueError too ("http://[not an IP]/")
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, or the port would merge in
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _is_tracking(k)]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query, doseq=True), ""))


#: The base URL the sanitiser resolves links against, per thread (see `_keep`).
_base = threading.local()


def _keep(tag: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: link and image URLs canonical and absolute, else dropped."""
    if (tag, attribute) in _URL_ATTRIBUTES:
        return canonical_url(value, _base.url)
    return value


# Built once: nh3.clean() converts its options and builds a new sanitiser on every call, which
# cost as much as the sanitising itself on short summaries. A Cleaner's filter is fixed when
# it is built, so the base URL reaches `_keep` through a thread-local.
_SANITIZER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
    url_schemes={"http", "https"},
    link_rel="noopener noreferrer nofollow",
    attribute_filter=_keep,
)
_TEXT_ONLY = nh3.Cleaner(tags=set(), attributes={})


def sanitize_html(fragment: str | None, base_url: str | None = None) -> str:
    """Allow-list HTML: formatting, links and images only, links absolute and http(s) only."""
    if not fragment:
        return ""
    _base.url = base_url
    try:
        return _SANITIZER.clean(fragment).strip()
    finally:
        _base.url = None


def html_to_text(fragment: str | None) -> str:
    """Plain text of an HTML fragment: tags dropped (script/style with their content)."""
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        return collapse_whitespace(fragment)
    spaced = _BLOCK.sub(r" <\1", fragment)
    return collapse_whitespace(html.unescape(_TEXT_ONLY.clean(spaced)))


#: A tag of the sanitiser's own output, where every attribute value is double-quoted (and holds
#: no double quote) and a "<" in text is always escaped.
_SANITIZED_TAG = re.compile(r'<[^>"]*(?:"[^"]*"[^>"]*)*>')


def sanitized_to_text(sanitized: str) -> str:
    """Plain text of `sanitize_html`'s output, without parsing it as HTML a second time.

    Same result as html_to_text, except that text a table holds in the wrong place stays
    where the feed wrote it (an HTML parser moves it before the table).
    """
    if "<" not in sanitized and "&" not in sanitized:
        return collapse_whitespace(sanitized)
    spaced = _SANITIZED_BLOCK.sub(r" <\1", sanitized)
    return collapse_whitespace(html.unescape(_SANITIZED_TAG.sub("", spaced)))


def to_utc_iso(value: datetime | time.struct_time | None) -> str | None:
    """ISO-8601 UTC with a Z ("2026-11-26T08:00:00Z"); naive datetimes are taken as UTC.

    Dates before 1990 are treated as missing: they are placeholders (epoch 0, 0001-01-01),
    not news.
    """
    if value is None:
        return None
    if isinstance(value, time.struct_time):
        try:
            value = datetime(*value[:6], tzinfo=UTC)
        except (ValueError, OverflowError):
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.year < _MIN_YEAR:
        return None
    return utc_timestamp(value)


def _digest(*parts: str | None) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for p in parts:
        h.update((p or "").encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


#: Longest title and summary text kept, in characters. No real headline or teaser comes near;
#: beyond them a hostile feed would set the cost of every search, snippet and story key.
MAX_TITLE_CHARS = 1_000
MAX_SUMMARY_CHARS = 20_000
#: Raw input read at most, as a multiple of the cap: markup and entities take room too, and
#: sanitising a megabyte of HTML to keep 20,000 characters of it is wasted work.
_RAW_FACTOR = 4


def cap_text(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, at a space near the end when there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ", limit - 200)
    return cut[:space] if space > 0 else cut


def text_cut_note(**lengths: int) -> str | None:
    """What `items.text_cut` records: the original lengths of the fields that were cut."""
    return json.dumps(lengths, sort_keys=True) if lengths else None


def make_entry(
    *,
    guid: str | None,
    link: str | None,
    title: str | None,
    summary_html: str | None,
    published: datetime | time.struct_time | None = None,
    updated: datetime | time.struct_time | None = None,
    language: str | None = None,
    image: str | None = None,
    author: str | None = None,
    base_url: str | None = None,
    title_is_html: bool = True,
) -> Entry | None:
    """Normalise one raw entry; None when it has nothing to show (no title, summary or link)."""
    url = canonical_url(link, base_url)
    cut: dict[str, int] = {}
    if summary_html and len(summary_html) > _RAW_FACTOR * MAX_SUMMARY_CHARS:
        cut["summary"] = len(summary_html)
        summary_html = summary_html[:_RAW_FACTOR * MAX_SUMMARY_CHARS]
    if title and len(title) > _RAW_FACTOR * MAX_TITLE_CHARS:
        cut["title"] = len(title)
        title = title[:_RAW_FACTOR * MAX_TITLE_CHARS]
    # Bidi overrides would make a headline display as something else (texts.py); stripped
    # after entities are decoded, so "&#x202E;" goes too.
    summary = strip_bidi(sanitize_html(summary_html, url or base_url))
    summary_text = sanitized_to_text(summary)
    if len(summary_text) > MAX_SUMMARY_CHARS:
        cut.setdefault("summary", len(summary_text))
        summary_text = cap_text(summary_text, MAX_SUMMARY_CHARS)
    title_text = strip_bidi(html_to_text(title) if title_is_html
                            else collapse_whitespace(title or ""))
    if len(title_text) > MAX_TITLE_CHARS:
        cut.setdefault("title", len(title_text))
        title_text = cap_text(title_text, MAX_TITLE_CHARS)
    if not title_text:
        # Untitled entries (microblog-style feeds) read best by their first words.
        title_text = summary_text
        if len(title_text) > 120:
            title_text = title_text[:120].rsplit(" ", 1)[0]
    if not title_text and not url:
        return None
    title_text = title_text or url or ""
    guid = (guid or "").strip() or None
    if guid:
        identity = f"guid:{guid}"
    elif url:
        identity = f"url:{url}"
    else:
        identity = f"hash:{_digest(title_text, summary_text)}"
    published_iso = to_utc_iso(published)
    updated_iso = to_utc_iso(updated)
    return Entry(
        identity=identity,
        guid=guid,
        url=url,
        title=title_text,
        summary=summary,
        summary_text=summary_text,
        published_at=published_iso or updated_iso,
        updated_at=updated_iso,
        language=(language or "").strip().lower() or None,
        image_url=canonical_url(image, url or base_url),
        author=(author or "").strip() or None,
        text_cut=text_cut_note(**cut),
    )


def unique_identities(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """Drop exact repeats; give later holders of a repeated identity a content-derived suffix.

    Feeds do repeat guids for different stories; both must survive, and the suffix must be the
    same on the next fetch so re-fetching never duplicates. The same entry repeated within one
    feed (same identity, link, title, text and date: al-monitor's feed lists stories up to four
    times) is one item, stored once.
    """
    seen: dict[str, int] = {}
    copies: set[tuple[str, str | None, str, str, str | None]] = set()
    out: list[Entry] = []
    for entry in entries:
        same = (entry.identity, entry.url, entry.title, entry.summary_text, entry.published_at)
        if same in copies:
            continue
        copies.add(same)
        identity = entry.identity
        if identity in seen:
            suffix = _digest(entry.url, entry.title, entry.summary_text)[:12]
            identity = f"{entry.identity}~{suffix}"
            n = 1
            while identity in seen:
                n += 1
                identity = f"{entry.identity}~{n}"
            entry = replace(entry, identity=identity)
        seen[identity] = 1
        out.append(entry)
    return tuple(out)

