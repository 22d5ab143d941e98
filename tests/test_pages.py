"""Listing pages through selectors: MOFA (en, ja in Shift_JIS), MOD, USFJ, Stars and Stripes."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.errors import BinaryBody, EmptyBody
from alliance_digest.sources import pages
from alliance_digest.sources.pages import NO_LINKS_WARNING, decode_html, parse_page

DATA = Path(__file__).parent / "data" / "pages"

MOFA_EN_URL = "https://www.mofa.go.jp/press/release/index.html"
MOFA_EN = {
    "link_selector": "dl.title-list dd a", "date_selector": "dl.title-list dt",
    "date_format": "month-day", "timezone": "Asia/Tokyo",
}
MOFA_JA_URL = "https://www.mofa.go.jp/mofaj/shin/index.html"
MOFA_JA = {
    "link_selector": "dl.title-list dd a", "date_selector": "dl.title-list dt",
    "date_format": "era", "timezone": "Asia/Tokyo",
}
MOD_URL = "https://www.mod.go.jp/j/press/news/index.html"
MOD = {
    "link_pattern": r"^/j/press/news/\d{4}/\d{2}/\d{2}[a-z]?\.(?:html|pdf)$",
    "date_from_url": r"/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})[a-z]?\.(?:html|pdf)$",
    "timezone": "Asia/Tokyo",
}
USFJ_URL = "https://www.usfj.mil/Media/Press-Releases/"
STRIPES_URL = "https://www.stripes.com/theaters/asia_pacific/"
STRIPES = {
    "link_pattern": r"^/theaters/asia_pacific/\d{4}-\d{2}-\d{2}/[\w-]+-\d+\.html$",
    "date_from_url": r"/(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})/",
    "timezone": "America/New_York",
}


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def today(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set the date that year-less dates are read against."""

    def set_today(value: date) -> None:
        monkeypatch.setattr(pages, "_today", lambda zone: value)

    return set_today


def html(fragment: str) -> bytes:
    return f"<!DOCTYPE html><html><head><title>T</title></head><body>{fragment}</body></html>"\
        .encode()


# --- MOFA English: dates in a preceding <dt>, without a year ------------------------------------


def test_mofa_english_press_releases(today: Any) -> None:
    today(date(2025, 7, 8))
    feed = parse_page(body("mofa_en_press_release.html"), {"Content-Type": "text/html"},
                      MOFA_EN_URL, "en", MOFA_EN)
    assert feed.title == "Press Releases | Ministry of Foreign Affairs of Japan"
    assert feed.warnings == ()
    got = [(e.url, e.published_at) for e in feed.entries]
    assert got == [
        ("https://www.mofa.go.jp/press/release/pressite_000001_01185.html", "2025-07-06T15:00:00Z"),
        ("https://www.mofa.go.jp/press/release/pressite_000001_01184.html", "2025-07-06T15:00:00Z"),
        ("https://www.mofa.go.jp/press/release/pressite_000001_01180.html", "2025-07-03T15:00:00Z"),
        ("https://www.mofa.go.jp/press/release/pressite_000001_01171.html", "2025-06-30T15:00:00Z"),
        # The fragment is dropped from the canonical URL.
        ("https://www.mofa.go.jp/press/release/pressite_000001_01170.html", "2025-06-30T15:00:00Z"),
        ("https://www.mofa.go.jp/files/100862104.pdf", "2025-06-29T15:00:00Z"),
    ]
    assert feed.entries[0].title == "Japan-U.S. Foreign Ministers\u2019 Telephone Talk"
    # Whitespace inside the link is collapsed.
    assert feed.entries[2].title == \
        "Japan-Australia-India-U.S. (Quad) Foreign Ministers\u2019 Meeting"
    assert all(e.language == "en" for e in feed.entries)
    assert all(e.identity == f"url:{e.url}" for e in feed.entries)


def test_mofa_english_year_inferred_across_new_year(today: Any) -> None:
    today(date(2026, 1, 8))
    page = html("""
      <dl class="title-list">
        <dt>January 7</dt><dd><ul><li><a href="/press/release/pressite_000001_02001.html">
          New Year's Reception</a></li></ul></dd>
        <dt>December 26</dt><dd><ul><li><a href="/press/release/pressite_000001_01990.html">
          Japan-U.S. Summit Telephone Talk</a></li></ul></dd>
      </dl>""")
    feed = parse_page(page, {}, MOFA_EN_URL, "en", MOFA_EN)
    assert [e.published_at for e in feed.entries] == ["2026-01-06T15:00:00Z",
                                                      "2025-12-25T15:00:00Z"]


def test_links_before_any_date_have_none(today: Any) -> None:
    today(date(2025, 7, 8))
    page = html("""<dl class="title-list"><dd><a href="/a.html">Undated</a></dd>
      <dt>not a date</dt><dd><a href="/b.html">Unreadable date</a></dd>
      <dt>July 7</dt><dd><a href="/c.html">Dated</a></dd></dl>""")
    feed = parse_page(page, {}, MOFA_EN_URL, "en", MOFA_EN)
    assert [(e.title, e.published_at) for e in feed.entries] == [
        ("Undated", None), ("Unreadable date", None), ("Dated", "2025-07-06T15:00:00Z")]


# --- MOFA Japanese: Shift_JIS, era dates, site-relative links ----------------------------------


def test_mofa_japanese_shift_jis_era_dates() -> None:
    feed = parse_page(body("mofaj_shin.html"), {"Content-Type": "text/html"}, MOFA_JA_URL,
                      "ja", MOFA_JA)
    assert feed.title == "新着情報｜外務省"
    assert [(e.title, e.published_at) for e in feed.entries] == [
        ("日米外相電話会談", "2025-04-29T15:00:00Z"),
        ("岩屋外務大臣とルビオ米国国務長官との会談について", "2025-04-29T15:00:00Z"),
        ("日米豪印外相会合 共同声明（仮訳）（PDF）", "2025-04-29T15:00:00Z"),
        ("日米韓外相会合", "2025-04-27T15:00:00Z"),  # full-width digits in the <dt>
        ("岩屋外務大臣会見記録（令和７年４月２８日（月曜日）１５時０５分 於：本省会見室）",
         "2025-04-27T15:00:00Z"),
        ("在日米軍駐留経費負担に係る特別協定の署名", "2025-04-24T15:00:00Z"),
    ]
    assert feed.entries[0].url == "https://www.mofa.go.jp/mofaj/na/na1/us/pageit_000001_01234.html"
    # "../files/…" from /mofaj/shin/ resolves against the page.
    assert feed.entries[2].url == "https://www.mofa.go.jp/mofaj/files/100834567.pdf"
    assert all(e.language == "ja" for e in feed.entries)


def test_shift_jis_decoding_sources() -> None:
    raw = body("mofaj_shin.html")
    # <meta http-equiv> charset.
    assert "日米外相電話会談" in decode_html(raw, {})
    # Header charset, with no meta at all.
    no_meta = raw.replace(b"; charset=Shift_JIS", b"")
    sjis = {"content-type": "text/html; charset=Shift_JIS"}
    assert "日米外相電話会談" in decode_html(no_meta, sjis)
    # Neither: sniffed after UTF-8 fails.
    assert "日米外相電話会談" in decode_html(no_meta, {"Content-Type": "text/html"})
    # A wrong header label (UTF-8) falls back instead of producing mojibake.
    assert "日米外相電話会談" in decode_html(no_meta, {"Content-Type": "text/html; charset=utf-8"})


def test_euc_jp_and_utf8_bom() -> None:
    text = "<html><body><a href='/a'>日米同盟の強化</a></body></html>"
    assert "日米同盟の強化" in decode_html(text.encode("euc_jp"), {})
    assert "日米同盟の強化" in decode_html(b"\xef\xbb\xbf" + text.encode(), {})
    # These EUC-JP bytes also decode as Shift_JIS (half-width katakana): the sniffing must
    # still pick EUC-JP.
    for word in ("防衛省", "あいう"):
        page = f"<html><body><p>{word}</p></body></html>"
        page.encode("euc_jp").decode("cp932")
        assert decode_html(page.encode("euc_jp"), {}) == page
    meta = "<html><head><meta charset='EUC-JP'></head><body>日米同盟</body></html>"
    assert "日米同盟" in decode_html(meta.encode("euc_jp"), {})


# --- MOD: the date is in the URL ---------------------------------------------------------------


def test_mod_press_dates_from_url() -> None:
    feed = parse_page(body("mod_press_news.html"), {}, MOD_URL, "ja", MOD)
    assert [(e.url, e.published_at) for e in feed.entries] == [
        ("https://www.mod.go.jp/j/press/news/2025/04/30a.html", "2025-04-29T15:00:00Z"),
        ("https://www.mod.go.jp/j/press/news/2025/04/30b.pdf", "2025-04-29T15:00:00Z"),
        ("https://www.mod.go.jp/j/press/news/2025/04/28a.html", "2025-04-27T15:00:00Z"),
        ("https://www.mod.go.jp/j/press/news/2025/04/25c.html", "2025-04-24T15:00:00Z"),
    ]
    assert feed.entries[0].title == "日米防衛相会談について"


def test_mod_month_day_in_japanese(today: Any) -> None:
    today(date(2025, 5, 1))
    options = {"item_selector": "ul.p-news__list li", "link_selector": "a",
               "date_selector": "span.date", "date_format": "month-day",
               "timezone": "Asia/Tokyo"}
    feed = parse_page(body("mod_press_news.html"), {}, MOD_URL, "ja", options)
    assert [e.published_at for e in feed.entries] == [
        "2025-04-29T15:00:00Z", "2025-04-29T15:00:00Z", "2025-04-27T15:00:00Z",
        "2025-04-24T15:00:00Z"]


# --- USFJ (DNN): duplicate ids, javascript: pagers, dates after the link ----------------------


def test_usfj_items_with_time_attribute() -> None:
    options = {"item_selector": "div.alist div.item", "link_selector": "a#atitle",
               "date_selector": "time", "date_attribute": "datetime"}
    feed = parse_page(body("usfj_press_releases.html"), {}, USFJ_URL, "en", options)
    assert feed.title == "Press Releases"
    assert [(e.title, e.published_at) for e in feed.entries] == [
        ("USFJ statement on the U.S.-Japan Defense Ministerial", "2025-04-30T02:00:00Z"),
        ("U.S. Forces, Japan upgrade to joint force headquarters: update",
         "2025-04-28T07:30:00Z"),
        ("USFJ commander visits Okinawa Prefectural Government", "2025-04-21T01:00:00Z"),
    ]
    assert feed.entries[2].url == ("https://www.usfj.mil/Media/Press-Releases/Article/4161190/"
                                   "usfj-commander-visits-okinawa-prefectural-government/")
    assert feed.entries[0].image_url == \
        "https://media.defense.gov/2025/Apr/30/2003700001/300/300/0/250430-N-XX123-1001.JPG"


def test_usfj_title_selector_and_date_text() -> None:
    options = {"item_selector": "div.alist div.item", "link_selector": "a",
               "title_selector": "a.title", "date_selector": "p.date"}
    feed = parse_page(body("usfj_press_releases.html"), {}, USFJ_URL, "en", options)
    assert feed.entries[0].title == "USFJ statement on the U.S.-Japan Defense Ministerial"
    assert feed.entries[0].published_at == "2025-04-30T00:00:00Z"


def test_usfj_link_selector_alone_drops_javascript_links() -> None:
    feed = parse_page(body("usfj_press_releases.html"), {}, USFJ_URL, "en",
                      {"link_selector": "a#atitle"})
    # Three articles share id="atitle"; so does the javascript: pager link, which is dropped.
    assert len(feed.entries) == 3
    assert all(e.url and e.url.startswith("https://www.usfj.mil/Media/Press-Releases/Article/")
               for e in feed.entries)


# --- Stars and Stripes: a path pattern, duplicates, tracking parameters ------------------------


def test_stripes_pattern_dedupe_and_tracking() -> None:
    feed = parse_page(body("stripes_asia_pacific.html"), {}, STRIPES_URL, "en", STRIPES)
    assert [(e.url, e.published_at) for e in feed.entries] == [
        ("https://www.stripes.com/theaters/asia_pacific/2025-04-30/"
         "okinawa-marines-osprey-flights-17612345.html", "2025-04-30T04:00:00Z"),
        ("https://www.stripes.com/theaters/asia_pacific/2025-04-29/"
         "yokosuka-navy-destroyer-japan-17609876.html", "2025-04-29T04:00:00Z"),
        ("https://www.stripes.com/theaters/asia_pacific/2025-04-28/"
         "japan-us-tariff-talks-troops-17605511.html", "2025-04-28T04:00:00Z"),
        ("https://www.stripes.com/theaters/asia_pacific/2025-04-27/"
         "south-korea-drills-17600022.html", "2025-04-27T04:00:00Z"),
    ]
    # The image link came first, but the headline link's text is the title.
    assert feed.entries[0].title == "Marines on Okinawa resume Osprey flights after weeklong pause"
    assert feed.entries[2].title == \
        "US, Japan tariff talks won\u2019t touch troop cost-sharing, officials say"


def test_max_items() -> None:
    feed = parse_page(body("stripes_asia_pacific.html"), {}, STRIPES_URL, "en",
                      {**STRIPES, "max_items": 2})
    assert len(feed.entries) == 2


# --- other behaviour ---------------------------------------------------------------------------


def test_link_pattern_sees_the_query() -> None:
    page = html("""<a href="/jc/eng?g=pol&k=2025043000512">Japan, US agree on tariff
      framework</a> <a href="/jc/eng?g=eco">Economy</a> <a href="/jc/eng?g=pol">Politics</a>""")
    options = {"link_pattern": r"^/jc/eng\?g=\w+&k=\d+$", "date_from_url": r"k=(?P<ymd>\d{8})",
               "timezone": "Asia/Tokyo"}
    feed = parse_page(page, {}, "https://jen.jiji.com/jc/eng?g=pol", "en", options)
    assert [(e.url, e.published_at) for e in feed.entries] == [
        ("https://jen.jiji.com/jc/eng?g=pol&k=2025043000512", "2025-04-29T15:00:00Z")]


def test_base_url_option_and_base_element() -> None:
    page = html('<a href="analysis/japan-alliance">Alliance</a>')
    feed = parse_page(page, {}, "https://mirror.example/x/", None,
                      {"link_selector": "a", "base_url": "https://www.csis.org/"})
    assert feed.entries[0].url == "https://www.csis.org/analysis/japan-alliance"
    with_base = html('<base href="https://www.csis.org/"><a href="analysis/a">A</a>')
    feed = parse_page(with_base, {}, "https://mirror.example/x/", None, {"link_selector": "a"})
    assert feed.entries[0].url == "https://www.csis.org/analysis/a"


def test_only_http_links_and_not_the_page_itself() -> None:
    page = html("""<a href="javascript:void(0)">Print</a>
      <a href="mailto:press@example.gov">Mail</a>
      <a href="#top">Top</a> <a href="ftp://example.gov/file">FTP</a>
      <a href="data:text/html,hi">Data</a> <a href="/news/1?utm_source=x&amp;id=3">News</a>""")
    feed = parse_page(page, {}, "https://example.gov/news/", None, {"link_selector": "a"})
    assert [e.url for e in feed.entries] == ["https://example.gov/news/1?id=3"]


def test_title_falls_back_to_attributes() -> None:
    page = html('<a href="/a" title="Titled"></a> <a href="/b"><img src="/b.jpg" alt="Alt"></a>')
    feed = parse_page(page, {}, "https://example.gov/", None, {"link_selector": "a"})
    assert [e.title for e in feed.entries] == ["Titled", "Alt"]


def test_no_matching_links_is_a_warning() -> None:
    feed = parse_page(body("mofa_en_press_release.html"), {}, MOFA_EN_URL, "en",
                      {"link_selector": "div.news-list a"})
    assert feed.entries == () and feed.warnings == (NO_LINKS_WARNING,)
    feed = parse_page(body("mod_press_news.html"), {}, MOD_URL, "ja",
                      {"link_pattern": r"^/j/press/news/1999/"})
    assert feed.warnings == (NO_LINKS_WARNING,)


@pytest.mark.parametrize("data", [b"", b" \n\t "])
def test_empty_body(data: bytes) -> None:
    with pytest.raises(EmptyBody):
        parse_page(data, {}, MOFA_EN_URL, "en", MOFA_EN)


@pytest.mark.parametrize("data", [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", b"\x89PNG\r\n\x1a\n",
                                  b"\x00\x01\x02\x03binary"])
def test_binary_body(data: bytes) -> None:
    with pytest.raises(BinaryBody):
        parse_page(data, {}, MOFA_EN_URL, "en", MOFA_EN)


def test_unknown_timezone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        parse_page(html('<a href="/a">A</a>'), {}, "https://example.gov/", None,
                   {"link_selector": "a", "timezone": "Tokyo"})


def test_default_timezone_is_utc() -> None:
    feed = parse_page(body("mod_press_news.html"), {}, MOD_URL, "ja",
                      {k: v for k, v in MOD.items() if k != "timezone"})
    assert feed.entries[0].published_at == "2025-04-30T00:00:00Z"



def test_item_image_resolves_against_the_page() -> None:
    page = html('<div class="card"><img src="img/1.jpg"><a href="/news/1">One</a></div>')
    feed = parse_page(page, {}, "https://example.gov/list/", None,
                      {"item_selector": "div.card", "link_selector": "a"})
    assert feed.entries[0].image_url == "https://example.gov/list/img/1.jpg"
