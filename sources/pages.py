"""Listing pages without a feed (MOFA, MOD, USFJ, Stars and Stripes…) read through selectors.

    text  = decode(body)          # BOM, Content-Type charset, <meta charset>, else UTF-8 then
                                  # Shift_JIS / EUC-JP (Japanese government pages)
    links = item_selector ? first matching link in each item
                          : link_selector matches, or every a[href]
            kept when http(s) and their path matches link_pattern
    title = title_selector in the item, else the link's text (title attribute, image alt)
    date  = date_selector in the item, or (no item_selector) the nearest date element BEFORE the
            link in document order: MOFA's <dt>令和7年4月30日</dt><dd><ul><li><a>…
            read as text or `date_attribute`, with `date_format`; else `date_from_url`
    entries deduplicated by canonical URL in page order, at most `max_items`
    coverage: a title_selector or date_selector that items lack is a warning naming it
              ("date_selector 'time' found in 0 of 12 items")

A page with no matching link is a warning, not an error: the site may have changed its markup.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from ..errors import BinaryBody, EmptyBody
from .coverage import Coverage
from .dates import date_from_url, parse_date, resolve_timezone
from .normalise import canonical_url, collapse_whitespace, make_entry, unique_identities
from .types import ParsedFeed

__all__ = ["DEFAULT_MAX_ITEMS", "NO_LINKS_WARNING", "OPTION_KEYS", "decode_html", "parse_page"]

#: Option keys understood here (the `[source.page]` table).
OPTION_KEYS: tuple[str, ...] = (
    "link_selector", "link_pattern", "item_selector", "title_selector", "date_selector",
    "date_format", "date_attribute", "date_from_url", "base_url", "max_items", "timezone",
)
DEFAULT_MAX_ITEMS = 100
NO_LINKS_WARNING = "no links matched the page's selectors"

# Labels that mean the same codec; cp932 is what "Shift_JIS" pages really are (it adds the
# NEC and IBM extensions: ①, ㈱, 髙…).
_CODEC_ALIASES = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "csshiftjis": "cp932",
    "euc-jp": "euc_jp", "x-euc-jp": "euc_jp", "eucjp": "euc_jp", "cseucpkdfmtjapanese": "euc_jp",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
}
#: Tried when no declared charset works; the Japanese ones compete on `_japanese_score`.
_JAPANESE_CODECS = ("cp932", "euc_jp")
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(
    rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE
)
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b",
                 b"\x00\x00\x01\x00", b"RIFF")


@dataclass(slots=True)
class _Found:
    url: str
    title: str
    published: datetime | None
    image: str | None
    #: The title came from an attribute (title, aria-label, image alt), not visible text.
    weak_title: bool = False


def decode_html(body: bytes, headers: Mapping[str, str] | None = None) -> str:
    """The page's text: BOM, then the Content-Type charset, then <meta charset>, then UTF-8
    with Shift_JIS and EUC-JP as fallbacks (undecodable bytes replaced as a last resort).

    Raises EmptyBody for nothing but whitespace and BinaryBody for bytes that are not text.
    """
    if not body or not body.strip():
        raise EmptyBody("empty body")
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace")
    head = body[:1024]
    if head.lstrip().startswith(_BINARY_MAGIC) or b"\x00" in head:
        raise BinaryBody("binary data where an HTML page was expected")

    declared = [_header_charset(headers), _meta_charset(body[:4096])]
    for label in [c for c in declared if c] + ["utf-8"]:
        try:
            return body.decode(label)
        except (UnicodeDecodeError, LookupError):
            continue
    # EUC-JP bytes often decode as Shift_JIS too (as half-width katakana): keep the reading
    # that looks most like Japanese.
    readings = []
    for codec in _JAPANESE_CODECS:
        try:
            readings.append(body.decode(codec))
        except UnicodeDecodeError:
            continue
    if readings:
        return max(readings, key=_japanese_score)
    codec = next((c for c in declared if c and _codec_exists(c)), "utf-8")
    return body.decode(codec, errors="replace")


def parse_page(
    body: bytes,
    headers: Mapping[str, str] | None,
    url: str,
    language: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> ParsedFeed:
    """Parse a listing page into entries (title, link, date) using the source's selectors.

    Raises EmptyBody or BinaryBody; a page where nothing matches gives a ParsedFeed with the
    warning "no links matched the page's selectors".
    """
    opts = dict(options or {})
    text = decode_html(body, headers)
    tree = LexborHTMLParser(text)
    zone = resolve_timezone(opts.get("timezone"))
    base = _base_url(tree, url, opts.get("base_url"))
    page_url = canonical_url(url)
    pattern = re.compile(opts["link_pattern"]) if opts.get("link_pattern") else None
    url_date = re.compile(opts["date_from_url"]) if opts.get("date_from_url") else None
    max_items = int(opts.get("max_items") or DEFAULT_MAX_ITEMS)
    today = _today(zone)

    def accept(node: LexborNode) -> str | None:
        """The link's canonical URL when it is one we want."""
        link = canonical_url(node.attributes.get("href"), base)
        if link is None or link == page_url:
            return None
        if pattern is not None:
            parts = urlsplit(link)
            target = f"{parts.path}?{parts.query}" if parts.query else parts.path
            if not pattern.search(target):
                return None
        return link

    labels = {key: f"{key} '{opts[key]}'" for key in ("title_selector", "date_selector")
              if opts.get(key)}
    hint = f" (date_format '{opts['date_format']}')" if opts.get("date_format") else ""
    coverage = Coverage(labels, expected=frozenset(labels), date_hint=hint)

    def read_date(node: LexborNode | None, link: str) -> datetime | None:
        value = _node_date(node, opts, today, zone) if node is not None else None
        coverage.count("date_selector", node is not None, value is not None)
        if value is None and url_date is not None:
            value = date_from_url(link, url_date, tz=zone)
        return value

    found: list[_Found] = []
    if opts.get("item_selector"):
        for item in tree.css(opts["item_selector"]):
            candidates = item.css(opts.get("link_selector") or "a[href]")
            if not candidates and item.tag == "a":
                candidates = [item]
            for link_node in candidates:
                link = accept(link_node)
                if link is None:
                    continue
                title_node = (item.css_first(opts["title_selector"])
                              if opts.get("title_selector") else None)
                title = _text(title_node)
                coverage.total += 1
                coverage.count("title_selector", bool(title))
                weak = False
                if not title:
                    title, weak = _link_title(link_node)
                date_node = (item.css_first(opts["date_selector"])
                             if opts.get("date_selector") else None)
                found.append(_Found(link, title, read_date(date_node, link),
                                    _image(item, base), weak))
                break
    else:
        link_nodes = tree.css(opts.get("link_selector") or "a[href]")
        date_nodes = tree.css(opts["date_selector"]) if opts.get("date_selector") else []
        nearest = _preceding_finder(tree, date_nodes)
        for link_node in link_nodes:
            link = accept(link_node)
            if link is None:
                continue
            title, weak = _link_title(link_node)
            coverage.total += 1
            found.append(_Found(link, title, read_date(nearest(link_node), link), None, weak))

    entries = [
        entry
        for item in _merge(found)[:max_items]
        if (entry := make_entry(guid=None, link=item.url, title=item.title, summary_html=None,
                                published=item.published, language=language, image=item.image,
                                base_url=base, title_is_html=False)) is not None
    ]
    return ParsedFeed(
        title=_text(tree.css_first("title")) or None,
        link=page_url,
        entries=unique_identities(entries),
        warnings=tuple(coverage.warnings()) if entries else (NO_LINKS_WARNING,),
    )


# ---------------------------------------------------------------------------------------------


def _today(zone: tzinfo) -> date:
    """Today where the site is: "July 7" on a listing page means the latest July 7 till now."""
    return datetime.now(zone).date()


def _japanese_score(text: str) -> int:
    """Hiragana and full-width katakana count for, half-width katakana against."""
    score = 0
    for char in text:
        if "\u3040" <= char <= "\u30ff":
            score += 1
        elif "\uff61" <= char <= "\uff9f":
            score -= 1
    return score


def _header_charset(headers: Mapping[str, str] | None) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == "content-type" and (match := _HEADER_CHARSET.search(value or "")):
            return _codec(match.group(1))
    return None


def _meta_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    return _codec(match.group(1).decode("ascii", "replace")) if match else None


def _codec(label: str) -> str | None:
    label = label.strip().lower()
    name = _CODEC_ALIASES.get(label, label)
    return name if _codec_exists(name) else None


def _codec_exists(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def _base_url(tree: LexborHTMLParser, url: str, configured: str | None) -> str:
    if configured:
        return configured
    node = tree.css_first("base[href]")
    href = node.attributes.get("href") if node is not None else None
    resolved = canonical_url(href, url) if href else None
    return resolved or url


def _text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    return collapse_whitespace(node.text(deep=True, separator=" "))


def _link_title(node: LexborNode) -> tuple[str, bool]:
    """The link's text, else (marked weak) its title or aria-label or an image's alt text."""
    text = _text(node)
    if text:
        return text, False
    image = node.css_first("img[alt]")
    for value in (node.attributes.get("title"), node.attributes.get("aria-label"),
                  image.attributes.get("alt") if image is not None else None):
        if value and value.strip():
            return collapse_whitespace(value), True
    return "", True


def _image(item: LexborNode, base: str) -> str | None:
    """The item's first image, resolved against the page (not the article it links to)."""
    image = item.css_first("img[src]")
    return canonical_url(image.attributes.get("src"), base) if image is not None else None


def _node_date(node: LexborNode, opts: Mapping[str, Any], today: date,
               zone: tzinfo) -> datetime | None:
    attribute = opts.get("date_attribute")
    value = node.attributes.get(attribute) if attribute else None
    if not value:
        value = _text(node)
    return parse_date(value, opts.get("date_format"), today=today, tz=zone) if value else None


def _preceding_finder(tree: LexborHTMLParser, date_nodes: list[LexborNode]) -> Any:
    """A function giving, for a node, the date node nearest before it in document order."""
    if not date_nodes:
        return lambda node: None
    order = {node.mem_id: i for i, node in enumerate(tree.root.traverse())} if tree.root else {}
    dated = sorted(((order[n.mem_id], n) for n in date_nodes if n.mem_id in order),
                   key=lambda pair: pair[0])
    positions = [position for position, _ in dated]

    def nearest(node: LexborNode) -> LexborNode | None:
        index = bisect.bisect_left(positions, order.get(node.mem_id, -1)) - 1
        return dated[index][1] if index >= 0 else None

    return nearest


def _merge(found: list[_Found]) -> list[_Found]:
    """One item per URL in first-seen order; a later duplicate supplies a better title, a
    missing date or image (a card's image link comes before its headline link)."""
    by_url: dict[str, _Found] = {}
    for item in found:
        kept = by_url.get(item.url)
        if kept is None:
            by_url[item.url] = item
            continue
        if item.title and (not kept.title or (kept.weak_title and not item.weak_title)):
            kept.title, kept.weak_title = item.title, item.weak_title
        if kept.published is None and item.published is not None:
            kept.published = item.published
        if kept.image is None:
            kept.image = item.image
    return list(by_url.values())
