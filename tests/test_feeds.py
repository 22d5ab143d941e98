"""Feed parsing: real corpus files, feedparser's encoding tests, and the hard cases one by one.

Everything is read from /work/shared/corpus or built inline; nothing touches the network.
"""

from __future__ import annotations

import ast
import codecs
import csv
import html
import io
import re
import sys
import types
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import feedparser
import feedparser.api
import pytest
from alliance_digest.errors import (
    BinaryBody,
    EmptyBody,
    InvalidFeed,
    NotAFeed,
    ParseError,
)
from alliance_digest.sources import feeds
from alliance_digest.sources.feeds import decode_body, parse_feed
from alliance_digest.sources.normalise import (
    canonical_url,
    html_to_text,
    sanitize_html,
    sanitized_to_text,
)
from alliance_digest.sources.parse import parse
from alliance_digest.sources.types import Entry, ParsedFeed
from support import SHARED

CORPUS = SHARED / "corpus"
REAL = CORPUS / "real"
FP_TESTS = CORPUS / "feedparser-tests" / "tests"
URL = "https://example.com/feeds/news.xml"
DOCUMENTED = (EmptyBody, NotAFeed, BinaryBody, InvalidFeed)
#: Benchmark-corpus files bigger than this are left to bench/parse_speed.py (keeps tests fast).
MAX_BENCH_BYTES = 120_000

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not available")


def rss(items: str, channel: str = "<title>Test feed</title><link>https://example.com/</link>",
        decl: str = '<?xml version="1.0" encoding="utf-8"?>', extra_ns: str = "") -> bytes:
    """A small RSS 2.0 document (UTF-8) around `items`."""
    return (
        f'{decl}<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" {extra_ns}>'
        f"<channel>{channel}{items}</channel></rss>"
    ).encode()


def texts(feed: ParsedFeed) -> str:
    """Everything user-visible in a parsed feed, for 'does this character survive' checks."""
    parts = [feed.title or ""]
    for e in feed.entries:
        parts += [e.title, e.summary, e.summary_text]
    return "\n".join(parts)


# --- the real corpus ----------------------------------------------------------------------------


def _manifest() -> list[dict[str, str]]:
    if not (REAL / "MANIFEST.tsv").is_file():
        return []
    with open(REAL / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        r for r in rows
        if "benchmark_data" not in r["local_path"] or int(r["bytes"] or 0) <= MAX_BENCH_BYTES
    ]


def _usable(raw: Mapping[str, Any]) -> bool:
    """Would make_entry keep this raw feedparser entry (title, summary or link present)?"""
    content = " ".join(c.get("value", "") for c in raw.get("content") or ())
    return bool(
        (raw.get("title") or "").strip()
        or canonical_url(raw.get("link"), "https://example.org/feed")
        or (raw.get("summary") or "").strip()
        or content.strip()
    )


@needs_corpus
@pytest.mark.parametrize("row", _manifest(), ids=lambda r: r["local_path"])
def test_real_corpus_file(row: dict[str, str]) -> None:
    body = (REAL / row["local_path"]).read_bytes()
    try:
        feed = parse_feed(body, {}, "https://example.org/feed")
    except ParseError as error:
        assert isinstance(error, DOCUMENTED), repr(error)
        assert "\n" not in str(error)
        if row["format"].startswith("json"):
            assert isinstance(error, NotAFeed)
        else:
            # Only broken or compressed files may fail; none of those carries countable items
            # except the gzipped fixtures (the fetcher decompresses; a stray gzip is binary).
            assert int(row["n_items"]) == 0 or isinstance(error, BinaryBody), repr(error)
        return
    assert all(isinstance(e, Entry) for e in feed.entries)
    raw = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    assert len(raw.entries) == int(row["n_items"])
    # An entry repeated whole within the feed is one item (al-monitor lists stories 4 times).
    usable = {(e.get("id"), e.get("link"), e.get("title"), e.get("summary"), e.get("published"))
              for e in raw.entries if _usable(e)}
    assert len(feed.entries) == len(usable)
    assert len({e.identity for e in feed.entries}) == len(feed.entries)
    for e in feed.entries:
        assert e.title
        assert e.url is None or e.url.startswith(("http://", "https://"))
        assert e.image_url is None or e.image_url.startswith(("http://", "https://"))
        assert "<script" not in e.summary.lower()


@needs_corpus
def test_whitehouse_briefing_room() -> None:
    body = (CORPUS / "whitehouse" / "briefing-room.xml").read_bytes()
    feed = parse_feed(body, {"Content-Type": "application/rss+xml"}, "https://www.whitehouse.gov/")
    assert feed.warnings == ()
    assert feed.title and feed.title.startswith("The White House")
    assert len(feed.entries) == 287
    assert len({e.identity for e in feed.entries}) == 287
    for e in feed.entries:
        assert e.url and re.match(r"https://[a-z.]*whitehouse\.(gov|archives\.gov)/", e.url)
        assert re.fullmatch(r"20[23]\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", e.published_at or "")
        assert e.title and e.summary_text


# --- feedparser's own encoding tests --------------------------------------------------------


def _comment_text(body: bytes) -> str:
    """The start of a test file as text, sniffing UTF-16/32 (with or without a BOM)."""
    for prefix, name in (
        (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (b"\x00\x00\x00<", "utf-32-be"),
        (b"<\x00\x00\x00", "utf-32-le"), (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
    ):
        if body.startswith(prefix):
            return body[len(prefix):].decode(name, "replace")
    return body.decode("latin-1")


def _meta(path: Path) -> tuple[bytes, dict[str, str], str]:
    body = path.read_bytes()
    head = _comment_text(body)[:2000]
    headers = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^Header:\s*([\w-]+):\s*(.*?)\s*$", head, re.MULTILINE)
    }
    expect = re.search(r"^Expect:\s*(.*?)\s*$", head, re.MULTILINE)
    return body, headers, expect.group(1) if expect else ""


def _encoding_files() -> list[Path]:
    if not FP_TESTS.is_dir():
        return []
    return sorted([*(FP_TESTS / "encoding").glob("*.xml"),
                   *(FP_TESTS / "illformed" / "chardet").glob("*.xml")])


#: Files whose point is text that is already mojibake in the source.
_MOJIBAKE_ON_PURPOSE = {"bozo_double-encoded-html.xml", "double-encoded-html.xml"}


@needs_corpus
@pytest.mark.parametrize("path", _encoding_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_feedparser_encoding_file(path: Path) -> None:
    body, headers, expect = _meta(path)
    feed = parse_feed(body, headers, "http://example.com/feed")
    seen = texts(feed)
    assert "\ufffd" not in seen
    assert not re.search("[\x80-\x9f]", seen), ascii(seen)
    if path.name not in _MOJIBAKE_ON_PURPOSE and "linenoise" not in path.name:
        # Every non-ASCII character feedparser's expectation names must survive.
        literals = [
            node.value for node in ast.walk(ast.parse(expect, mode="eval"))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        wanted = {ch for lit in literals if "encoding" not in expect or lit != literals[-1]
                  for ch in lit if ord(ch) > 127}
        if "attribute" not in path.name:  # '<img alt="년">' has no text: no entry is kept
            assert wanted <= set(seen), (wanted, seen)
        if m := re.search(r"ord\(.*?\)\s*==\s*(\d+)", expect):
            assert chr(int(m.group(1))) in seen
    if path.parent.name == "chardet":
        # No encoding information at all: detection must find the real one (named in Expect).
        encoding = re.search(r"encoding == '([^']+)'", expect)
        assert encoding
        source = body.decode(encoding.group(1))
        chunks = re.findall(r"<(title|summary|description)[^>]*>(.*?)</\1>", source, re.DOTALL)
        assert chunks
        for _, chunk in chunks:
            # XML-escaped HTML: unescape the XML level, then take the text of the HTML.
            assert html_to_text(html.unescape(chunk)) in seen


@needs_corpus
def test_feedparser_wellformed_and_illformed_never_crash() -> None:
    """Every well-formed/ill-formed test file parses or fails with a documented ParseError."""
    failures: dict[str, int] = {}
    paths = [*(FP_TESTS / "wellformed").rglob("*.xml"), *(FP_TESTS / "illformed").rglob("*.xml")]
    assert len(paths) > 1000
    for path in paths:
        body, headers, _ = _meta(path)
        try:
            feed = parse_feed(body, headers, "http://example.com/feed")
        except ParseError as error:
            assert isinstance(error, DOCUMENTED), (path, error)
            failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
            continue
        assert "\ufffd" not in texts(feed), path
    assert sum(failures.values()) < len(paths) * 0.05, failures


# --- encodings, explicitly --------------------------------------------------------------------

JA_TITLE = "日米同盟の強化について（防衛省）"
JA_SUMMARY = "岸田首相は～日米首脳会談で①②を確認した。"


def _ja_feed(decl: str) -> bytes:
    return (
        f"{decl}<rss version=\"2.0\"><channel><title>防衛省</title>"
        f"<link>https://www.mod.go.jp/</link><language>ja</language>"
        f"<item><title>{JA_TITLE}</title><link>https://www.mod.go.jp/j/press/1.html</link>"
        f"<description>{JA_SUMMARY}</description></item></channel></rss>"
    ).encode("cp932")


@pytest.mark.parametrize(
    ("decl", "headers"),
    [
        ("", {"Content-Type": "application/rss+xml; charset=Shift_JIS"}),
        ("", {"content-type": "text/xml; charset=shift_jis"}),
        ('<?xml version="1.0" encoding="Shift_JIS"?>', {}),
        ('<?xml version="1.0" encoding="Shift_JIS"?>', {"Content-Type": "text/xml"}),
        ('<?xml version="1.0" encoding="Shift_JIS"?>', {"Content-Type": "application/xml"}),
        ('<?xml version="1.0" encoding="shift_jis"?>',
         {"Content-Type": "text/xml; charset=ISO-8859-1"}),
        ('<?xml version="1.0" encoding="Shift_JIS"?>',
         {"Content-Type": "application/rss+xml; charset=UTF-8"}),
        ("", {}),  # no encoding information anywhere: detected
    ],
    ids=["header", "header-text-xml", "decl-only", "decl-text-xml-no-charset",
         "decl-application-xml", "decl-vs-latin1-header", "decl-vs-wrong-utf8-header",
         "undeclared"],
)
def test_shift_jis(decl: str, headers: dict[str, str]) -> None:
    feed = parse_feed(_ja_feed(decl), headers, "https://www.mod.go.jp/rss.xml")
    assert feed.title == "防衛省"
    (entry,) = feed.entries
    assert entry.title == JA_TITLE
    assert entry.summary_text == JA_SUMMARY  # cp932 extras (①②, 〜) survive
    assert entry.language == "ja"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_unicode_encodings_with_and_without_bom(encoding: str) -> None:
    name = encoding.replace("-sig", "")
    body = (f'<?xml version="1.0" encoding="{name}"?>'
            f"<rss version=\"2.0\"><channel><title>防衛省</title><item><title>{JA_TITLE}</title>"
            f"<link>https://www.mod.go.jp/1</link></item></channel></rss>").encode(encoding)
    feed = parse_feed(body, {"Content-Type": "application/rss+xml"}, URL)
    assert [e.title for e in feed.entries] == [JA_TITLE]


SMART = "It\u2019s a \u201cstrong\u201d alliance \u2014 caf\u00e9 \u20ac5"


@pytest.mark.parametrize(
    ("decl", "headers"),
    [
        ("", {"Content-Type": "application/rss+xml; charset=ISO-8859-1"}),
        ("", {"Content-Type": "text/xml; charset=utf-8"}),
        ("", {"Content-Type": "application/rss+xml; charset=us-ascii"}),
        ('<?xml version="1.0" encoding="ISO-8859-1"?>', {}),
        ('<?xml version="1.0" encoding="UTF-8"?>', {"Content-Type": "application/xml"}),
        ("", {}),
    ],
    ids=["latin1-header", "utf8-header", "ascii-header", "latin1-decl", "utf8-decl", "nothing"],
)
def test_windows_1252_mislabelled(decl: str, headers: dict[str, str]) -> None:
    body = (f'{decl}<rss version="2.0"><channel><title>T</title><item><title>{SMART}</title>'
            f"<link>https://example.com/a</link><description>{SMART}</description></item>"
            "</channel></rss>").encode("cp1252")
    (entry,) = parse_feed(body, headers, URL).entries
    assert entry.title == SMART
    assert entry.summary_text == SMART


def test_utf8_served_as_latin1_stays_utf8() -> None:
    body = rss(f"<item><title>{SMART} 日本</title><link>https://example.com/a</link></item>")
    feed = parse_feed(body, {"Content-Type": "text/xml; charset=ISO-8859-1"}, URL)
    assert feed.entries[0].title == f"{SMART} 日本"


def test_decode_body_truncated_mid_character_and_stray_bytes() -> None:
    text = "<rss>日本と韓国" * 20
    truncated = text.encode()[:-1]
    decoded, codec = decode_body(truncated, "application/xml; charset=utf-8")
    assert codec == "utf-8"
    assert decoded.startswith("<rss>日本と韓国")
    mixed = "日本 “quoted” and caf\u00e9 ".encode() * 10 + "don\u2019t".encode("cp1252")
    decoded, codec = decode_body(mixed, None)
    assert codec == "utf-8"
    assert decoded.endswith("don\u2019t") and "日本" in decoded


# --- entries ---------------------------------------------------------------------------------


def test_entries_without_guid_link_or_date() -> None:
    body = rss(
        "<item><title>Only a title</title><description>Body text</description></item>"
        "<item><title>With link</title><link>https://example.com/news/2</link></item>"
        "<item><description>No title, only a summary with some words</description></item>"
        "<item></item>"
    )
    feed = parse_feed(body, {}, URL)
    first, second, third = feed.entries
    assert first.identity.startswith("hash:") and first.guid is None and first.url is None
    assert second.identity == "url:https://example.com/news/2"
    assert third.title == "No title, only a summary with some words"
    assert all(e.published_at is None and e.updated_at is None for e in feed.entries)
    assert any("skipped" in w for w in feed.warnings)  # the empty <item>


def test_duplicate_guids_both_survive_with_stable_identities() -> None:
    body = rss(
        "<item><guid isPermaLink=\"false\">story-1</guid><title>First story</title>"
        "<link>https://example.com/a</link></item>"
        "<item><guid isPermaLink=\"false\">story-1</guid><title>Second story</title>"
        "<link>https://example.com/b</link></item>"
    )
    one = parse_feed(body, {}, URL)
    two = parse_feed(body, {}, URL)
    assert [e.title for e in one.entries] == ["First story", "Second story"]
    ids = [e.identity for e in one.entries]
    assert ids[0] == "guid:story-1" and ids[1].startswith("guid:story-1~")
    assert ids == [e.identity for e in two.entries]
    assert [e.guid for e in one.entries] == ["story-1", "story-1"]


def test_script_in_title_and_summary_and_javascript_links() -> None:
    body = rss(
        "<item><title>&lt;script&gt;alert(1)&lt;/script&gt;</title>"
        "<link>javascript:alert(1)</link>"
        "<description>&lt;p onclick=\"steal()\"&gt;Hello&lt;script&gt;evil()&lt;/script&gt;"
        "&lt;a href=\"javascript:alert(2)\"&gt;click&lt;/a&gt;"
        "&lt;img src=\"javascript:alert(3)\"&gt;&lt;/p&gt;</description></item>"
        "<item><title>&lt;b&gt;Bold&lt;/b&gt; news about AT&amp;amp;T</title>"
        "<link>https://example.com/b</link></item>"
    )
    first, second = parse_feed(body, {}, URL).entries
    # A plain-text title is shown as text: the literal markup stays visible, never executed.
    assert first.title == "<script>alert(1)</script>"
    assert first.url is None
    assert "script" not in first.summary and "evil" not in first.summary
    assert "javascript" not in first.summary and "onclick" not in first.summary
    assert first.summary_text == "Helloclick"
    # feedparser flags titles with real markup as HTML: they become their text.
    assert second.title == "Bold news about AT&T"


def test_atom_html_title_content_and_dates() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title type="html">&lt;i&gt;Alliance&lt;/i&gt; watch</title>
  <link href="https://example.com/"/>
  <entry xml:lang="ja">
    <id>tag:example.com,2026:1</id>
    <title type="html">&lt;em&gt;Quad&lt;/em&gt; summit &amp;amp; more</title>
    <link rel="alternate" href="https://example.com/1?utm_source=rss&amp;id=7#top"/>
    <updated>2026-11-26T08:00:00+09:00</updated>
    <author><name>Jane Doe</name><email>jane@example.com</email></author>
    <summary>Short.</summary>
    <content type="html">&lt;p&gt;The full text, much longer than the summary.&lt;/p&gt;</content>
  </entry>
</feed>"""
    feed = parse_feed(body, {"Content-Type": "application/atom+xml"}, URL, language="en")
    assert feed.title == "Alliance watch"
    (e,) = feed.entries
    assert e.title == "Quad summit & more"
    assert e.guid == "tag:example.com,2026:1" and e.identity == "guid:tag:example.com,2026:1"
    assert e.url == "https://example.com/1?id=7"
    assert e.summary == "<p>The full text, much longer than the summary.</p>"
    assert e.published_at == e.updated_at == "2026-11-25T23:00:00Z"
    assert e.author == "Jane Doe"
    assert e.language == "ja"


def test_language_falls_back_to_feed_then_source() -> None:
    with_feed = rss("<item><title>a</title></item>",
                    channel="<title>t</title><language>ko-KR</language>")
    assert parse_feed(with_feed, {}, URL, "en").entries[0].language == "ko-kr"
    without = rss("<item><title>a</title></item>")
    assert parse_feed(without, {}, URL, "ja").entries[0].language == "ja"
    assert parse_feed(without, {}, URL).entries[0].language is None


def test_relative_links_and_tracking_params() -> None:
    body = rss(
        "<item><title>Relative</title><link>/news/1?utm_medium=rss&amp;page=2&amp;fbclid=x</link>"
        "<description>&lt;a href=\"../about?gclid=1\"&gt;about&lt;/a&gt;"
        "&lt;img src=\"/img/a.jpg\"&gt;</description></item>",
        channel="<title>t</title><link>https://example.com/</link>",
    )
    (e,) = parse_feed(body, {}, "https://example.com/feeds/rss.xml").entries
    assert e.url == "https://example.com/news/1?page=2"
    assert 'href="https://example.com/about"' in e.summary
    assert 'src="https://example.com/img/a.jpg"' in e.summary
    # Without a channel link, the document URL (Content-Location, else the fetch URL) is the base.
    linkless = body.replace(b"<link>https://example.com/</link>", b"")
    moved = parse_feed(linkless, {"Content-Location": "https://mirror.example.net/x/rss"},
                       "https://example.com/feeds/rss.xml")
    assert moved.entries[0].url == "https://mirror.example.net/news/1?page=2"
    plain = parse_feed(linkless, {}, "https://feeds.example.org/rss.xml")
    assert plain.entries[0].url == "https://feeds.example.org/news/1?page=2"


def test_relative_guid_identity_does_not_depend_on_the_feed_url() -> None:
    body = rss("<item><guid>12345</guid><title>a</title><link>/a</link></item>",
               channel="<title>t</title>")
    first = parse_feed(body, {}, "https://example.com/rss")
    moved = parse_feed(body, {"Content-Location": "https://cdn.example.net/feed"},
                       "https://example.org/new/rss")
    assert first.entries[0].identity == moved.entries[0].identity == "guid:12345"


def test_xml_base_is_honoured() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://base.example.org/a/">
<title>t</title><entry><title>x</title><link href="b/c.html"/></entry></feed>"""
    assert parse_feed(body, {}, URL).entries[0].url == "https://base.example.org/a/b/c.html"


def test_lead_image_order() -> None:
    body = rss(
        # media:content image beats the thumbnail and the enclosure
        "<item><title>1</title><link>https://e.com/1</link>"
        '<enclosure url="https://e.com/enc.jpg" type="image/jpeg" length="1"/>'
        '<media:thumbnail url="https://e.com/thumb.jpg"/>'
        '<media:content url="https://e.com/video.mp4" medium="video"/>'
        '<media:content url="https://e.com/full.jpg" medium="image"/></item>'
        # a typed media:content, relative
        "<item><title>2</title><link>https://e.com/2</link>"
        '<media:content url="/pics/two.png" type="image/png"/></item>'
        # only a thumbnail (and a video)
        "<item><title>3</title><link>https://e.com/3</link>"
        '<media:content url="https://e.com/v.mp4" type="video/mp4"/>'
        '<media:thumbnail url="https://e.com/t3.jpg?utm_source=x"/></item>'
        # only an enclosure; audio enclosures are no image
        "<item><title>4</title><link>https://e.com/4</link>"
        '<enclosure url="https://e.com/a.mp3" type="audio/mpeg" length="1"/>'
        '<enclosure url="https://e.com/e4.webp" type="image/webp" length="1"/></item>'
        "<item><title>5</title><link>https://e.com/5</link>"
        '<enclosure url="https://e.com/a.mp3" type="audio/mpeg" length="1"/></item>'
    )
    images = [e.image_url for e in parse_feed(body, {}, URL).entries]
    assert images == [
        "https://e.com/full.jpg",
        "https://e.com/pics/two.png",  # relative to the entry's own link
        "https://e.com/t3.jpg",
        "https://e.com/e4.webp",
        None,
    ]


# --- bodies that are no feed -----------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \r\n\t ", "\ufeff  ".encode()])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(EmptyBody):
        parse_feed(body, {}, URL)


@pytest.mark.parametrize("body", [
    b"<!DOCTYPE html>\n<html><head><title>Home</title></head><body><p>Hi</p></body></html>",
    b"\n<!-- cms -->\n<html lang=\"en\"><body>Access denied</body></html>",
    b'<?xml version="1.0"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x">'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head></html>',
])
def test_html_page_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(NotAFeed, match="HTML page instead of a feed"):
        parse_feed(body, {"Content-Type": "text/html; charset=utf-8"}, URL)


def test_json_and_other_xml_are_not_feeds() -> None:
    with pytest.raises(NotAFeed, match="JSON"):
        parse_feed(b'{"items": []}', {"Content-Type": "application/json"}, URL)
    with pytest.raises(NotAFeed):
        parse_feed(b'<?xml version="1.0"?><sitemap><loc>x</loc></sitemap>', {}, URL)


@pytest.mark.parametrize("body", [
    b"\x00\x01\x02\x03garbage\x00",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + bytes(range(200)),
    b"\x89PNG\r\n\x1a\n" + bytes(64),
    bytes(range(1, 32)) * 40,
])
def test_binary_body(body: bytes) -> None:
    with pytest.raises(BinaryBody):
        parse_feed(body, {}, URL)


def test_invalid_feed_message_is_one_line() -> None:
    with pytest.raises(InvalidFeed) as info:
        parse_feed(b'<?xml version="1.0"?>\n<rss version="2.0">\n<channel>\n<tit', {}, URL)
    assert "\n" not in str(info.value) and str(info.value).startswith("invalid feed: ")


def test_truncated_xml_keeps_entries_before_the_break() -> None:
    full = rss("".join(
        f"<item><title>Story {i}</title><link>https://example.com/{i}</link>"
        f"<description>Text {i} 日本</description></item>" for i in range(5)))
    cut = full[: full.index(b"<item><title>Story 3") + 20]
    feed = parse_feed(cut, {"Content-Type": "application/rss+xml; charset=utf-8"}, URL)
    assert [e.title for e in feed.entries][:3] == ["Story 0", "Story 1", "Story 2"]
    assert feed.warnings[0].startswith("feed is not well-formed: ")
    # Cut in the middle of a multi-byte character: still UTF-8, no mojibake.
    mid = full[: full.index("日本".encode()) + 4]
    feed = parse_feed(mid, {"Content-Type": "application/rss+xml; charset=utf-8"}, URL)
    assert feed.entries[0].title == "Story 0"
    assert "\u00e6" not in texts(feed) and "\ufffd" not in texts(feed)


def test_feed_with_no_items() -> None:
    feed = parse_feed(rss(""), {}, URL)
    assert feed == ParsedFeed(title="Test feed", link="https://example.com/", entries=(),
                              warnings=("feed has no items",))


def test_external_entities_are_never_resolved(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "file://{secret}">')

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network/file access through urllib")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    bodies = [
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY leak SYSTEM "file://{secret}">]>'
        '<rss version="2.0"><channel><title>T</title><item><title>A &leak; B</title>'
        "<link>https://e.com/1</link><description>x &leak; y</description></item>"
        "</channel></rss>",
        f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "file://{dtd}">'
        '<rss version="2.0"><channel><title>T</title><item><title>A &leak; B</title>'
        "<link>https://e.com/1</link></item></channel></rss>",
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % ext SYSTEM "file://{dtd}"> %ext;]>'
        '<rss version="2.0"><channel><title>T</title><item><title>A &leak; B</title>'
        "<link>https://e.com/1</link></item></channel></rss>",
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY leak SYSTEM "http://127.0.0.1:9/x">]>'
        '<rss version="2.0"><channel><title>T</title><item><title>A &leak; B</title>'
        "<link>https://e.com/1</link></item></channel></rss>",
    ]
    for body in bodies:
        try:
            feed = parse_feed(body.encode(), {}, URL)
        except ParseError:
            continue
        assert "TOP-SECRET" not in texts(feed)
        assert "TOP-SECRET" not in repr(feed)


def test_billion_laughs_is_harmless() -> None:
    entities = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    body = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "lol">' + entities
            + ']><rss version="2.0"><channel><title>T</title><item><title>&l9;</title>'
            "<link>https://e.com/1</link></item></channel></rss>")
    try:
        feed = parse_feed(body.encode(), {}, URL)
    except ParseError:
        return
    assert len(texts(feed)) < 100_000


def test_buffered_expat_driver_is_installed() -> None:
    assert feedparser.api.PREFERRED_XML_PARSERS[0] == feeds.__name__
    assert isinstance(feeds.create_parser(), feeds._BufferedExpatParser)


# --- dispatch ----------------------------------------------------------------------------------


def test_parse_dispatches_feed() -> None:
    feed = parse("feed", rss("<item><title>a</title></item>"), {}, URL, "en")
    assert [e.title for e in feed.entries] == ["a"]


@pytest.mark.parametrize(("kind", "module", "function"),
                         [("json", "jsonapi", "parse_json"), ("page", "pages", "parse_page")])
def test_parse_dispatches_json_and_page_lazily(monkeypatch: pytest.MonkeyPatch, kind: str,
                                               module: str, function: str) -> None:
    calls: list[tuple[Any, ...]] = []
    fake = types.ModuleType(f"alliance_digest.sources.{module}")

    def handler(*args: Any) -> ParsedFeed:
        calls.append(args)
        return ParsedFeed(title="x", link=None, entries=())

    setattr(fake, function, handler)
    monkeypatch.setitem(sys.modules, f"alliance_digest.sources.{module}", fake)
    result = parse(kind, b"{}", {"a": "b"}, URL, "ja", {"items": "$.x"})
    assert result.title == "x"
    assert calls == [(b"{}", {"a": "b"}, URL, "ja", {"items": "$.x"})]


def test_parse_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown source kind"):
        parse("gopher", b"", {}, URL)


@pytest.mark.parametrize("fragment", [
    '<a href="/x?a=1&amp;b=2" title="a > b" onclick="evil()">link</a> &amp; more',
    "<p>one</p><p>two</p><br>three<div>four</div>",
    "<ul><li>a</li><li>b</li></ul><h2>Head</h2>tail",
    '<img src="/i.png" alt="x>y">caption &lt;script&gt; &nbsp;x',
    "<script>alert(1)</script><style>p{}</style>shown<!-- hidden -->",
    "plain &amp; simple, 5 &lt; 6 &gt; 4",
    "日米<b>同盟</b>の<i>強化</i>",
    "<table><tr><td>cell</td><td>cell 2</td></tr></table>",
    "<P>Upper</P><BR>case<DIV>tags</DIV><LI>too",
])
def test_text_of_sanitized_html_needs_no_second_parse(fragment):
    sanitized = sanitize_html(fragment, "https://example.test/feed")
    assert sanitized_to_text(sanitized) == html_to_text(sanitized)


@needs_corpus
def test_text_of_sanitized_real_summaries_matches_a_second_parse():
    result = feedparser.parse(
        (CORPUS / "whitehouse" / "briefing-room.xml").read_bytes(), sanitize_html=False)
    assert len(result.entries) > 100
    for entry in result.entries:
        for part in (entry.get("summary"), *(c.value for c in entry.get("content", ()))):
            sanitized = sanitize_html(part, "https://www.whitehouse.gov/")
            assert sanitized_to_text(sanitized) == html_to_text(sanitized)


def test_text_helpers_match_the_regular_expressions_they_replace():
    """collapse_whitespace is `re.sub(r"\\s+", " ", t).strip()`; the unrolled tag pattern
    matches what the plain one does."""
    import re

    from alliance_digest.sources import normalise
    from support import random_texts

    plain_tag = re.compile(r'<(?:[^>"]|"[^"]*")*>')
    alphabet = 'ab <>"=/\t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000日'
    for text in random_texts(alphabet, seed=5):
        assert normalise.collapse_whitespace(text) == re.sub(r"\s+", " ", text).strip()
        assert normalise._SANITIZED_TAG.sub("", text) == plain_tag.sub("", text)


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("https://example.com/a/b", None, "https://example.com/a/b"),
    ("HTTPS://Example.COM/a?utm_source=x&id=7#top", None, "https://example.com/a?id=7"),
    ("http://example.com", None, "http://example.com/"),
    ("http://example.com:80/a", None, "http://example.com/a"),
    ("https://example.com:8443/a", None, "https://example.com:8443/a"),
    ("/news/1?fbclid=x", "https://www.mofa.go.jp/feed", "https://www.mofa.go.jp/news/1"),
    ("item;jsessionid=1", "https://example.com/a/", "https://example.com/a/item;jsessionid=1"),
    ("https://example.com/a;", "https://example.com/", "https://example.com/a"),
    ("  https://example.com/x  ", None, "https://example.com/x"),
    ("javascript:alert(1)", "https://example.com/", None),
    ("mailto:desk@example.com", None, None),
    ("http://[not an address]/a", "https://example.com/", None),
    ("http://[not an address]/a", None, None),
    ("https://example.com/a b\tc", None, "https://example.com/a bc"),
    ("relative/only", None, None),
])
def test_canonical_url(url, base, expected):
    assert canonical_url(url, base) == expected


def test_canonical_urls_taken_as_they_are_match_the_general_path():
    """The shortcut for URLs already canonical returns what the general path would."""
    import random

    from alliance_digest.sources import normalise

    rng = random.Random(11)
    alphabet = "ab/:?#@.%-_; \tAZ09[]\\\u2100日é"
    for _ in range(20_000):
        url = rng.choice(["http://", "https://", "HTTP://", ""]) + "".join(
            rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        plain = url.strip()
        if normalise._PLAIN_URL.match(plain):
            assert normalise.canonical_url(url) == plain
            assert normalise.canonical_url(url, "https://example.com/a") == plain
            # The general path (a query takes it there) leaves the same URL as it is too.
            assert normalise.canonical_url(plain + "?x=1") == plain + "?x=1"


def test_canonical_urls_with_plain_queries_match_the_general_path():
    """The shortcut for plain queries drops the same parameters as parse_qsl + urlencode."""
    import random

    from alliance_digest.sources import normalise

    rng = random.Random(12)
    keys = ["utm_source", "UTM_Medium", "id", "fbclid", "a", "", "pk_x", "page", "x.y~z-"]
    values = ["", "rss", "1", "a=b", "%7E", "a+b", "x y", "~._-", "日"]
    seps = ["&", "&", "&", "&&", "=", ";", "#"]
    shortcut = 0
    for _ in range(20_000):
        query = "".join(rng.choice(keys) + rng.choice(["=", "=", ""]) + rng.choice(values)
                        + rng.choice(seps) for _ in range(rng.randint(0, 4)))
        url = rng.choice(["https://example.com/a/b.html", "http://news.example.com/",
                          "https://example.com/a b", "HTTPS://example.com/x"]) + "?" + query
        base = rng.choice([None, "https://example.com/feed"])
        expected = normalise._general_canonical_url(url.strip(), base)
        assert normalise.canonical_url(url, base) == expected, url
        shortcut += bool(normalise._PLAIN_URL_QUERY.match(url))
    assert shortcut > 2_000  # the shortcut was exercised
