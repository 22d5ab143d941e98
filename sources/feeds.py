"""RSS, Atom and RDF feeds: bytes plus response headers in, a `ParsedFeed` out.

feedparser does the XML work; this module decides the character encoding first (feeds lie about
it: Windows-1252 served as ISO-8859-1 or UTF-8, UTF-8 served as ISO-8859-1, Shift_JIS declared only
in the XML declaration or nowhere at all), rejects bodies that are not feeds with a precise
`ParseError`, and maps every entry through `normalise.make_entry`.

feedparser runs with `sanitize_html=False` and `resolve_relative_uris=False`: summaries are
sanitised with nh3 (which also makes their links absolute) in `normalise`, so feedparser's own
pure-Python sanitiser would only be paid for twice (it is about half of feedparser's time on
HTML-heavy feeds; see `bench/parse_speed.py`). feedparser still honours `xml:base`; other
relative links are made absolute in `normalise` against the feed's <link>, else the document URL
(Content-Location, else the fetch URL). feedparser is not given the document URL, so relative
guids stay as written and identities survive a feed moving.

External entities are never resolved: feedparser strips the DOCTYPE and keeps only simple
internal entity declarations, and it turns expat's external general entities off.
"""

from __future__ import annotations

import codecs
import html
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin
from xml.parsers import expat
from xml.sax import expatreader

import feedparser
import feedparser.api

from ..errors import BinaryBody, EmptyBody, InvalidFeed, NotAFeed
from .normalise import (
    canonical_url,
    collapse_whitespace,
    html_to_text,
    make_entry,
    unique_identities,
)
from .types import Entry, ParsedFeed

__all__ = ["create_parser", "decode_body", "parse_feed"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_MAX_MESSAGE = 300

# --- encoding ------------------------------------------------------------------------------------

#: Labels that are weak evidence: ISO-8859-1 decodes any byte string, and servers use it (and
#: US-ASCII) as a default for feeds that are really UTF-8 or Windows-1252.
_WEAK = frozenset({"iso8859-1", "ascii", "cp1252"})
#: Supersets that decode what real sites produce under the narrower label.
_SUPERSET = {
    "shift_jis": "cp932",
    "euc_jp": "euc_jis_2004",
    "euc_kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
}
#: What charset detection may answer for plain Latin text: Windows-1252 is the web's default.
_LATINISH = frozenset({
    "ascii", "latin_1", "iso8859_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9",
    "iso8859_13", "iso8859_15", "iso8859_16", "cp1250", "cp1252", "cp1254", "cp1257",
    "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish", "cp437", "cp850", "cp858",
})
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
#: "<" (or "<?") in UTF-16/32 without a byte-order mark (XML 1.0 appendix F).
_MARKERS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip data"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"(\xb5/\xfd", "zstd data"),
    (b"BZh", "bzip2 data"),
)
_CONTROL_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32)])
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_HTML_START = re.compile(
    r"\A(?:\s|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html[\s>/])", re.IGNORECASE | re.DOTALL
)
_FEED_ROOT = re.compile(r"<(?:[A-Za-z][\w.-]*:)?(?:rss|feed|RDF)[\s>/]")


def _codec(label: str | bytes | None) -> str | None:
    """Python's canonical codec name for a charset label, or None if unknown."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        return codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None


def _utf8_with_cp1252(error: UnicodeError) -> tuple[str, int]:
    """Decode error handler: bytes that are not UTF-8 are read as Windows-1252."""
    assert isinstance(error, UnicodeDecodeError)
    chunk = error.object[error.start:error.end]
    return bytes(chunk).decode("cp1252", "replace"), error.end


codecs.register_error("alliance_digest.cp1252", _utf8_with_cp1252)


def _detect(body: bytes) -> str | None:
    """Charset detection for bodies that declare nothing usable (charset_normalizer, if present)."""
    try:
        import charset_normalizer
    except ImportError:  # pragma: no cover - requests depends on it
        return None
    best = charset_normalizer.from_bytes(body[:65536]).best()
    if best is None:
        return None
    name = _codec(best.encoding)
    if name is None or name.replace("-", "_") in _LATINISH or name in _LATINISH:
        return "cp1252"
    return name


def decode_body(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a feed body to text; returns `(text, codec used)`.

    Order: byte-order mark or UTF-16/32 pattern; then a specific charset from the Content-Type
    header or the XML declaration; then UTF-8 (which a Latin-1/ASCII label never rules out);
    then Windows-1252 for a Latin-1/ASCII/Windows-1252 label; then mostly-UTF-8 bodies (truncated
    mid-character, stray Windows-1252 bytes) with the odd bytes read as Windows-1252; then
    detection. Raises `BinaryBody` for bytes that are not text.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            errors = "alliance_digest.cp1252" if name == "utf-8" else "replace"
            return body[len(bom):].decode(name, errors), name
    for marker, name in _MARKERS:
        if body.startswith(marker):
            return body.decode(name, "replace"), name
    for magic, what in _MAGIC:
        if body.startswith(magic):
            raise BinaryBody(f"binary body ({what}) instead of a feed")
    if b"\x00" in body:
        raise BinaryBody("binary body (NUL bytes) instead of a feed")
    head = body[:4096]
    if len(head) - len(head.translate(None, _CONTROL_BYTES)) > max(8, len(head) // 100):
        raise BinaryBody("binary body (control bytes) instead of a feed")

    raw_type = (content_type or "").encode("latin-1", "replace")
    http_match = _CHARSET.search(raw_type)
    xml_match = _XML_ENCODING.match(body[:1024])
    labels = [_codec(m.group(1)) for m in (http_match, xml_match) if m is not None]
    strong = [name for name in labels if name and name not in _WEAK]
    for name in strong:
        for candidate in (name, _SUPERSET.get(name)):
            if candidate:
                try:
                    return body.decode(candidate), candidate
                except (UnicodeDecodeError, LookupError):
                    pass
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if any(name in _WEAK for name in labels):
        try:
            return body.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            # Five bytes are undefined in Windows-1252; feedparser maps the C1 range itself.
            return body.decode("iso8859-1"), "iso8859-1"
    replaced = body.decode("utf-8", "replace")
    bad = replaced.count("\ufffd") - body.count("\ufffd".encode())
    valid = len(replaced) - len(replaced.encode("ascii", "ignore")) - bad
    if bad <= max(1, valid // 4):
        return body.decode("utf-8", "alliance_digest.cp1252"), "utf-8"
    detected = _detect(body)
    if detected:
        # Japanese sites write Windows' Shift_JIS (cp932: NEC/IBM extensions such as ①).
        family = ("cp932",) if detected.startswith("shift_jis") else ()
        for candidate in (*family, detected, _SUPERSET.get(detected)):
            if candidate:
                try:
                    return body.decode(candidate), candidate
                except (UnicodeDecodeError, LookupError):
                    pass
    return body.decode("utf-8", "alliance_digest.cp1252"), "utf-8"


# --- feedparser ----------------------------------------------------------------------------------


class _BufferedExpatParser(expatreader.ExpatParser):
    """The standard SAX expat reader with character data buffered, and no external anything.

    Without `buffer_text`, expat reports text in pieces split at every newline and entity
    reference, and feedparser pays a Python call per piece (escaped HTML summaries are mostly
    `&lt;`/`&gt;`): buffering is ~20% faster on real feeds with identical results.
    """

    def reset(self) -> None:
        super().reset()
        parser = self._parser
        assert parser is not None
        parser.buffer_text = True
        parser.buffer_size = 1 << 16
        # feedparser already switches external general entities off; make it unconditional.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.ExternalEntityRefHandler = _skip_external_entity


def _skip_external_entity(*_args: object) -> int:
    return 1  # "handled": nothing is read, the reference expands to nothing


def create_parser() -> expatreader.ExpatParser:
    """SAX driver hook: feedparser asks `xml.sax.make_parser` for its preferred parsers first."""
    return _BufferedExpatParser()


if __name__ not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, __name__)


def _one_line(value: object) -> str:
    text = collapse_whitespace(str(value)) or type(value).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _run_feedparser(
    data: bytes, headers: Mapping[str, str], *, fast: bool = True
) -> feedparser.FeedParserDict:
    """feedparser on UTF-8 bytes. Wrapped in BytesIO: a bare string may be opened as a path/URL."""
    return feedparser.parse(
        io.BytesIO(data),
        response_headers=dict(headers),
        sanitize_html=not fast,
        resolve_relative_uris=not fast,
    )


def _is_html(kind: str | None) -> bool:
    return (kind or "text/plain").lower() in _HTML_TYPES


#: An entry's own keys, read straight from the dict. FeedParserDict.get() translates keys and
#: raises and catches a KeyError for every missing one, which added up to a noticeable share
#: of parsing; for these keys (none of them aliased or computed by feedparser) the result is
#: the same. `enclosures` and `updated_parsed` are computed, so they are not read this way.
_get = dict.get


def _summary(entry: dict[str, Any]) -> str:
    """The fuller of summary and content[0], as HTML (plain text is escaped)."""
    summary = _get(entry, "summary") or ""
    is_html = _is_html((_get(entry, "summary_detail") or {}).get("type", "text/html"))
    contents: Sequence[Mapping[str, Any]] = _get(entry, "content") or ()
    if contents:
        value = contents[0].get("value") or ""
        if len(value.strip()) > len(summary.strip()):
            summary, is_html = value, _is_html(contents[0].get("type", "text/html"))
    if not is_html:
        summary = html.escape(summary, quote=False).replace("\n", "<br>")
    return summary


def _link(entry: dict[str, Any]) -> str | None:
    link = _get(entry, "link")
    if link:
        return str(link)
    for item in _get(entry, "links") or ():
        if item.get("rel", "alternate") == "alternate" and item.get("href"):
            return str(item["href"])
    return None


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


def _image(entry: dict[str, Any]) -> str | None:
    """media:content (image), media:thumbnail, then an image enclosure."""
    for media in _get(entry, "media_content") or ():
        url = media.get("url")
        medium = (media.get("medium") or "").lower()
        kind = (media.get("type") or "").lower()
        if not url:
            continue
        if medium == "image" or kind.startswith("image/"):
            return str(url)
        if not medium and not kind and url.lower().split("?", 1)[0].endswith(_IMAGE_SUFFIXES):
            return str(url)
    for thumb in _get(entry, "media_thumbnail") or ():
        if thumb.get("url"):
            return str(thumb["url"])
    for enclosure in entry.get("enclosures") or ():
        if (enclosure.get("type") or "").lower().startswith("image/") and enclosure.get("href"):
            return str(enclosure["href"])
    return None


def _author(entry: dict[str, Any]) -> str | None:
    detail = _get(entry, "author_detail") or {}
    return detail.get("name") or _get(entry, "author") or None


def _entry(
    raw: dict[str, Any], base_url: str, feed_language: str | None, language: str | None
) -> Entry | None:
    title_detail = _get(raw, "title_detail") or {}
    return make_entry(
        guid=_get(raw, "id"),
        link=_link(raw),
        title=_get(raw, "title"),
        title_is_html=_is_html(title_detail.get("type")),
        summary_html=_summary(raw),
        published=_get(raw, "published_parsed"),
        # Not raw.get(): feedparser 6 maps a missing `updated_parsed` to `published_parsed`.
        updated=_get(raw, "updated_parsed"),
        language=_get(raw, "language") or title_detail.get("language") or feed_language
        or language,
        image=_image(raw),
        author=_author(raw),
        base_url=base_url,
    )


def parse_feed(
    body: bytes, headers: Mapping[str, str], url: str, language: str | None = None
) -> ParsedFeed:
    """Parse an RSS, Atom or RDF body fetched from `url` with response `headers`.

    Raises `EmptyBody`, `BinaryBody`, `NotAFeed` (HTML, JSON, XML that is no feed) or
    `InvalidFeed` (malformed, nothing recoverable). A malformed body from which entries were
    recovered parses with a "feed is not well-formed: …" warning; a valid feed without items
    parses with the warning "feed has no items".
    """
    if not body.strip():
        raise EmptyBody("empty body")
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    text, _codec_used = decode_body(body, lower.get("content-type"))
    if not text.strip():
        raise EmptyBody("empty body")
    start = text.lstrip()[:1]
    if start in ("{", "["):
        raise NotAFeed("JSON instead of a feed")
    if _HTML_START.match(text[:4096]) and not _FEED_ROOT.search(text):
        raise NotAFeed("HTML page instead of a feed")

    location = lower.get("content-location")
    if location:
        url = urljoin(url, location)
    fp_headers = {
        # We decoded the body: tell feedparser exactly that (and keep it from flagging text/html).
        # No Content-Location on purpose: feedparser would resolve <guid>s against it, so a feed
        # that moved (301) would change every identity and duplicate every item. Links are made
        # absolute against the document URL in normalise instead.
        "content-type": "application/xml; charset=utf-8",
    }
    result = _run_feedparser(text.encode("utf-8", "replace"), fp_headers)
    feed: Mapping[str, Any] = result.get("feed") or {}
    raw_entries: Sequence[dict[str, Any]] = result.get("entries") or ()
    bozo = bool(result.get("bozo"))
    message = _one_line(result.get("bozo_exception", "")) if bozo else ""

    feed_title_detail = feed.get("title_detail") or {}
    feed_title = feed.get("title") or ""
    if _is_html(feed_title_detail.get("type")):
        feed_title = html_to_text(feed_title)
    feed_title = collapse_whitespace(feed_title) or None
    feed_link = canonical_url(feed.get("link"), url)

    if not raw_entries:
        if bozo and not feed_title:
            raise InvalidFeed(f"invalid feed: {message}")
        if not result.get("version") and not feed_title:
            if _HTML_START.match(text[:4096]):
                raise NotAFeed("HTML page instead of a feed")
            raise NotAFeed("no RSS, Atom or RDF feed in the body")

    # Relative URIs resolve against the document (RFC 3986 §5.1), not the channel <link>.
    base_url = url
    feed_language = (feed.get("language") or "").strip() or None
    entries = [_entry(raw, base_url, feed_language, language) for raw in raw_entries]
    kept = tuple(e for e in entries if e is not None)
    warnings: list[str] = []
    if bozo:
        warnings.append(f"feed is not well-formed: {message}")
    if not raw_entries:
        warnings.append("feed has no items")
    elif len(kept) < len(entries):
        skipped = len(entries) - len(kept)
        warnings.append(f"{skipped} item(s) skipped: no title, summary or link")
    return ParsedFeed(
        title=feed_title,
        link=feed_link,
        entries=unique_identities(kept),
        warnings=tuple(warnings),
    )
