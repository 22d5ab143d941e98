"""JSON endpoints through a field mapping: WordPress (State), NHK World, the Federal Register."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.errors import (
    BinaryBody,
    EmptyBody,
    InvalidFeed,
    NotAFeed,
    ParseError,
)
from alliance_digest.sources.jsonapi import get_path, parse_json

DATA = Path(__file__).parent / "data" / "json"

STATE_URL = "https://www.state.gov/wp-json/wp/v2/state_press_release?per_page=20"
STATE = {
    "items": "", "title": "title.rendered", "link": "link", "date": "date_gmt",
    "summary": "excerpt.rendered", "guid": "id",
}
NHK_URL = "https://www3.nhk.or.jp/nhkworld/data/en/news/all.json"
NHK = {
    "items": "data", "title": "title", "link": "page_url", "date": "updated_at",
    "summary": "description", "guid": "id", "image": "thumbnail",
}
FR_URL = "https://www.federalregister.gov/api/v1/documents.json?conditions[term]=Japan"
FR = {
    "items": "results", "title": "title", "link": "html_url", "date": "publication_date",
    "summary": "abstract", "guid": "document_number", "timezone": "America/New_York",
}


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- real shapes ------------------------------------------------------------------------------


def test_wordpress_state_press_releases() -> None:
    feed = parse_json(body("state_press_release.json"), {"Content-Type": "application/json"},
                      STATE_URL, "en", STATE)
    assert feed.warnings == ()
    assert [e.title for e in feed.entries] == [
        "Secretary Rubio\u2019s Call with Japanese Foreign Minister Iwaya",
        "Joint Statement of the U.S.\u2013Japan\u2013Republic of Korea Trilateral Foreign "
        "Ministers\u2019 Meeting",
        "Deputy Secretary Landau\u2019s Meeting with Japanese Vice Minister for Foreign Affairs "
        "Funakoshi & Ambassador Yamada",
    ]
    first = feed.entries[0]
    assert first.identity == "guid:104512"
    assert first.url == ("https://www.state.gov/releases/office-of-the-spokesperson/2025/04/"
                         "secretary-rubios-call-with-japanese-foreign-minister-iwaya")
    assert first.published_at == "2025-04-30T14:05:21Z"  # date_gmt, naive, read as UTC
    assert first.language == "en"
    assert "U.S.\u2013Japan Alliance" in first.summary_text
    assert first.summary.startswith("<p>")


def test_wordpress_tracking_params_and_scripts_removed() -> None:
    feed = parse_json(body("state_press_release.json"), {}, STATE_URL, "en", STATE)
    third = feed.entries[2]
    assert third.url is not None and "utm_" not in third.url
    assert "<script" not in third.summary and "alert" not in third.summary_text


def test_wordpress_local_date_with_timezone() -> None:
    options = {**STATE, "date": "date", "timezone": "America/New_York"}
    feed = parse_json(body("state_press_release.json"), {}, STATE_URL, "en", options)
    assert feed.entries[0].published_at == "2025-04-30T14:05:21Z"  # 10:05 EDT


def test_nhk_world_relative_links_and_epoch_ms() -> None:
    feed = parse_json(body("nhk_world_all.json"), {}, NHK_URL, "en", NHK)
    assert len(feed.entries) == 3
    first = feed.entries[0]
    assert first.url == "https://www3.nhk.or.jp/nhkworld/en/news/20250430_12/"
    assert first.identity == "guid:20250430_12"
    assert first.published_at == "2025-04-30T08:00:00Z"
    assert first.image_url is not None
    assert first.image_url.startswith("https://www3.nhk.or.jp/nhkworld/en/news/20250430_12/images/")
    assert first.summary_text.startswith("Japan's Defense Minister Nakatani Gen")


def test_base_url_option_overrides_the_fetch_url() -> None:
    options = {**NHK, "base_url": "https://www3.nhk.or.jp/"}
    feed = parse_json(body("nhk_world_all.json"), {}, "https://mirror.example/all.json", "en",
                      options)
    assert feed.entries[0].url == "https://www3.nhk.or.jp/nhkworld/en/news/20250430_12/"
    assert feed.link == "https://www3.nhk.or.jp/"


def test_federal_register_date_only_and_null_abstract() -> None:
    feed = parse_json(body("federal_register.json"), {}, FR_URL, "en", FR)
    assert [e.guid for e in feed.entries] == ["2025-07412", "2025-07288"]
    assert feed.entries[0].published_at == "2025-04-30T04:00:00Z"  # midnight in Washington
    assert feed.entries[0].title.startswith("Culturally Significant Objects")
    assert '"Samurai Armor From the Collection of Japan"' in feed.entries[0].title
    assert feed.entries[1].summary == "" and feed.entries[1].summary_text == ""


# --- paths ------------------------------------------------------------------------------------


def test_get_path() -> None:
    doc = {"a": {"b": [{"url": "x"}, {"url": "y"}]}, "n": None}
    assert get_path(doc, "") is doc
    assert get_path(doc, "a.b.0.url") == "x"
    assert get_path(doc, "a.b.-1.url") == "y"
    assert get_path(doc, "a.b.2.url") is None
    assert get_path(doc, "a.c", "missing") == "missing"
    assert get_path(doc, "n") is None
    assert get_path(doc, "a.b.url") is None


def test_numeric_indices_and_nested_fields() -> None:
    doc = {"response": {"docs": [
        {"headline": {"main": "Japan&#8217;s new defense chief"}, "web_url": "/a/1",
         "images": [{"url": "/img/1.jpg"}, {"url": "/img/2.jpg"}],
         "pub": "30/04/2025", "uid": 17},
    ]}}
    options = {"items": "response.docs", "title": "headline.main", "link": "web_url",
               "image": "images.1.url", "date": "pub", "date_format": "%d/%m/%Y", "guid": "uid"}
    feed = parse_json(dumps(doc), {}, "https://news.example/api", None, options)
    entry = feed.entries[0]
    assert entry.title == "Japan\u2019s new defense chief"
    assert entry.url == "https://news.example/a/1"
    assert entry.image_url == "https://news.example/img/2.jpg"
    assert entry.published_at == "2025-04-30T00:00:00Z"
    assert entry.identity == "guid:17"


def test_epoch_ms_as_string() -> None:
    doc = {"data": [{"title": "t", "page_url": "/x", "updated_at": "1746000000000"}]}
    feed = parse_json(dumps(doc), {}, NHK_URL, "en", NHK)
    assert feed.entries[0].published_at == "2025-04-30T08:00:00Z"


def test_missing_fields_and_unusable_items() -> None:
    doc = [
        {"title": {"rendered": "Kept"}, "link": "https://a.example/1"},
        {"title": {"rendered": ""}, "link": "javascript:void(0)"},  # nothing to show
        "not an object",
        {"title": {"rendered": "No date"}, "link": "https://a.example/2", "date_gmt": None},
    ]
    feed = parse_json(dumps(doc), {}, STATE_URL, "en", STATE)
    assert [e.title for e in feed.entries] == ["Kept", "No date"]
    assert feed.entries[1].published_at is None
    assert feed.warnings == (
        "2 of 4 items skipped (not an object, or no title and no link)",
        # What the mapping found in the three objects (tests/test_mappings.py has the rest).
        "title path 'title.rendered' found in 2 of 3 items",
        "date path 'date_gmt' found in 0 of 3 items",
        "summary path 'excerpt.rendered' found in 0 of 3 items",
        "guid path 'id' found in 0 of 3 items",
    )


def test_repeated_guids_both_survive() -> None:
    doc = [{"title": {"rendered": "A"}, "link": "https://a.example/1", "id": 5},
           {"title": {"rendered": "B"}, "link": "https://a.example/2", "id": 5}]
    feed = parse_json(dumps(doc), {}, STATE_URL, "en", STATE)
    assert len({e.identity for e in feed.entries}) == 2


def test_empty_list_is_a_warning() -> None:
    feed = parse_json(b"[]", {}, STATE_URL, "en", STATE)
    assert feed.entries == () and feed.warnings == ("no items",)
    feed = parse_json(b'{"data": []}', {}, NHK_URL, "en", NHK)
    assert feed.warnings == ("no items",)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"  \r\n  "])
def test_empty_body(data: bytes) -> None:
    with pytest.raises(EmptyBody):
        parse_json(data, {}, STATE_URL, "en", STATE)


def test_html_instead_of_json() -> None:
    page = b"\n<!DOCTYPE html><html><head><title>Access Denied</title></head></html>"
    with pytest.raises(NotAFeed, match="HTML where JSON was expected"):
        parse_json(page, {"Content-Type": "text/html"}, STATE_URL, "en", STATE)
    with pytest.raises(NotAFeed, match="XML"):
        parse_json(b'<?xml version="1.0"?><rss/>', {}, STATE_URL, "en", STATE)


def test_invalid_json_is_one_line() -> None:
    with pytest.raises(InvalidFeed) as info:
        parse_json(body("state_press_release.json")[:500], {}, STATE_URL, "en", STATE)
    message = str(info.value)
    assert message.startswith("invalid JSON: ") and "\n" not in message
    assert "line" in message and "column" in message


def test_binary_body() -> None:
    with pytest.raises(BinaryBody):
        parse_json(b"\x89PNG\r\n\x1a\n\x00\x00", {}, STATE_URL, "en", STATE)
    with pytest.raises(BinaryBody):
        parse_json(b"\x80\x81\xfe{}", {}, STATE_URL, "en", STATE)


def test_missing_items_path_names_it() -> None:
    with pytest.raises(InvalidFeed, match="'results'"):
        parse_json(body("nhk_world_all.json"), {}, NHK_URL, "en", {**NHK, "items": "results"})


def test_items_path_not_a_list() -> None:
    with pytest.raises(InvalidFeed, match=r"expected a list of items at 'data\.0', got an object"):
        parse_json(body("nhk_world_all.json"), {}, NHK_URL, "en", {**NHK, "items": "data.0"})


def test_wordpress_error_object_is_quoted() -> None:
    error = {"code": "rest_no_route", "message": "No route was found matching the URL and "
             "request method.", "data": {"status": 404}}
    with pytest.raises(InvalidFeed) as info:
        parse_json(dumps(error), {}, STATE_URL, "en", STATE)
    assert str(info.value) == (
        "expected a list of items at the document root, got an object (the API said "
        "rest_no_route: No route was found matching the URL and request method.)"
    )
    assert isinstance(info.value, ParseError)
