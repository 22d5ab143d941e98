"""Dates as JSON endpoints and listing pages print them: ISO, RFC 822, epochs, Japanese eras."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alliance_digest.sources.dates import date_from_url, parse_date

TOKYO = ZoneInfo("Asia/Tokyo")


def tokyo(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


# --- machine formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-30T09:00:00+09:00", datetime(2025, 4, 30, 0, 0, tzinfo=UTC)),
        ("2025-04-30T00:00:00Z", datetime(2025, 4, 30, tzinfo=UTC)),
        ("2025-04-30T00:00:00.123Z", datetime(2025, 4, 30, 0, 0, 0, 123000, tzinfo=UTC)),
        ("Wed, 30 Apr 2025 09:00:00 GMT", datetime(2025, 4, 30, 9, tzinfo=UTC)),
        ("Wed, 30 Apr 2025 18:00:00 +0900", datetime(2025, 4, 30, 9, tzinfo=UTC)),
        ("1746000000", datetime(2025, 4, 30, 8, tzinfo=UTC)),
        ("1746000000000", datetime(2025, 4, 30, 8, tzinfo=UTC)),
        (1746000000, datetime(2025, 4, 30, 8, tzinfo=UTC)),
        (1746000000000, datetime(2025, 4, 30, 8, tzinfo=UTC)),
        (1746000000.5, datetime(2025, 4, 30, 8, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_zoned_and_epoch_values_ignore_tz(text: str | int | float, expected: datetime) -> None:
    assert parse_date(text, tz="Asia/Tokyo") == expected


def test_naive_values_are_local_time_in_tz_and_come_back_aware() -> None:
    value = parse_date("2025-04-30T15:30:00", tz="Asia/Tokyo")
    assert value == tokyo(2025, 4, 30, 15, 30)
    assert value is not None and value.utcoffset() == timedelta(hours=9)
    assert parse_date("2025-04-30") == datetime(2025, 4, 30, tzinfo=UTC)  # default UTC
    assert parse_date("2025/04/30 15:30", tz="Asia/Tokyo") == tokyo(2025, 4, 30, 15, 30)


def test_compact_dates_are_not_epochs() -> None:
    assert parse_date("20250430", tz="Asia/Tokyo") == tokyo(2025, 4, 30)
    assert parse_date(20250430) == datetime(2025, 4, 30, tzinfo=UTC)
    assert parse_date("20250430153000") == datetime(2025, 4, 30, 15, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "   ", "junk", "2025", "42", "-1746000000", "2025-13-45",
                                  "Thursday", None, True])
def test_unreadable_values_are_none(text: object) -> None:
    assert parse_date(text) is None  # type: ignore[arg-type]


def test_english_dates() -> None:
    assert parse_date("April 30, 2025") == datetime(2025, 4, 30, tzinfo=UTC)
    assert parse_date("Apr. 30, 2025") == datetime(2025, 4, 30, tzinfo=UTC)
    assert parse_date("Sept. 3, 2025") == datetime(2025, 9, 3, tzinfo=UTC)
    assert parse_date("30 April 2025") == datetime(2025, 4, 30, tzinfo=UTC)
    assert parse_date("Posted: Released March 1st, 2025") == datetime(2025, 3, 1, tzinfo=UTC)


def test_explicit_strptime_format() -> None:
    assert parse_date("30/04/2025", "%d/%m/%Y") == datetime(2025, 4, 30, tzinfo=UTC)
    assert parse_date("2025.4.30 10:00", "%Y.%m.%d %H:%M", tz="Asia/Tokyo") == tokyo(
        2025, 4, 30, 10)
    assert parse_date("30 Apr 2025 +0900", "%d %b %Y %z") == datetime(
        2025, 4, 30, tzinfo=timezone(timedelta(hours=9)))
    assert parse_date("not this", "%d/%m/%Y") is None


def test_unknown_timezone_fails_loudly() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Asia/Tokio'"):
        parse_date("2025-04-30", tz="Asia/Tokio")


# --- Japanese ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和7年4月30日", date(2025, 4, 30)),
        ("令和７年４月３０日", date(2025, 4, 30)),  # full-width digits
        ("令和 7 年 4 月 30 日", date(2025, 4, 30)),
        ("令和　７年　４月３０日（水曜日）", date(2025, 4, 30)),  # full-width space, weekday
        ("令和元年5月1日", date(2019, 5, 1)),  # first day of Reiwa
        ("令和2年1月1日", date(2020, 1, 1)),
        ("令和元年12月31日", date(2019, 12, 31)),
        ("平成31年4月30日", date(2019, 4, 30)),  # last day of Heisei
        ("平成元年1月8日", date(1989, 1, 8)),  # first day of Heisei
        ("平成30年12月31日", date(2018, 12, 31)),
        ("㍻31年4月30日", date(2019, 4, 30)),  # the one-character era sign
        ("R7.4.30", date(2025, 4, 30)),
        ("H31.4.30", date(2019, 4, 30)),
    ],
)
def test_era_dates(text: str, expected: date) -> None:
    value = parse_date(text, "era", tz="Asia/Tokyo")
    assert value == tokyo(expected.year, expected.month, expected.day)


@pytest.mark.parametrize("text", ["令和元年4月30日", "平成元年1月7日", "令和0年5月1日",
                                  "令和7年2月30日", "令和7年"])
def test_impossible_era_dates_are_none(text: str) -> None:
    assert parse_date(text, "era", tz="Asia/Tokyo") is None


def test_era_dates_are_read_without_fmt_too() -> None:
    assert parse_date("令和7年4月30日", tz="Asia/Tokyo") == tokyo(2025, 4, 30)


def test_era_date_with_time() -> None:
    assert parse_date("令和7年4月28日 15時05分", "era", tz="Asia/Tokyo") == tokyo(
        2025, 4, 28, 15, 5)


def test_western_japanese_dates() -> None:
    assert parse_date("2025年4月30日", tz="Asia/Tokyo") == tokyo(2025, 4, 30)
    assert parse_date("２０２５年４月３０日（水）", tz="Asia/Tokyo") == tokyo(2025, 4, 30)
    assert parse_date("2025年4月30日 9:05", tz="Asia/Tokyo") == tokyo(2025, 4, 30, 9, 5)
    # A page configured for era dates that prints a Western date still reads.
    assert parse_date("2025年4月30日", "era", tz="Asia/Tokyo") == tokyo(2025, 4, 30)


# --- month and day without a year --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "today", "expected"),
    [
        ("July 7", date(2025, 7, 7), date(2025, 7, 7)),  # today
        ("July 7", date(2025, 8, 1), date(2025, 7, 7)),
        ("Jul. 7", date(2025, 8, 1), date(2025, 7, 7)),
        ("July 7", date(2025, 7, 1), date(2024, 7, 7)),  # would be in the future
        ("December 26", date(2026, 1, 8), date(2025, 12, 26)),  # across New Year
        ("Dec. 31", date(2026, 1, 1), date(2025, 12, 31)),
        ("January 7", date(2026, 1, 8), date(2026, 1, 7)),
        ("January 2", date(2025, 12, 31), date(2025, 1, 2)),
        ("Jan 9", date(2026, 1, 8), date(2026, 1, 9)),  # one day of time-zone grace
        ("Jan 10", date(2026, 1, 8), date(2025, 1, 10)),
        ("February 29", date(2026, 3, 1), date(2024, 2, 29)),  # back to a leap year
        ("4月30日", date(2025, 5, 2), date(2025, 4, 30)),
        ("１２月２５日", date(2026, 1, 5), date(2025, 12, 25)),
    ],
)
def test_month_day_takes_the_latest_year_not_in_the_future(
    text: str, today: date, expected: date
) -> None:
    value = parse_date(text, "month-day", today=today, tz="Asia/Tokyo")
    assert value == tokyo(expected.year, expected.month, expected.day)


def test_month_day_with_a_year_keeps_it() -> None:
    value = parse_date("July 7, 2023", "month-day", today=date(2025, 8, 1))
    assert value == datetime(2023, 7, 7, tzinfo=UTC)


@pytest.mark.parametrize("text", ["Press Releases", "Smarch 7", "February 30", ""])
def test_month_day_unreadable(text: str) -> None:
    assert parse_date(text, "month-day", today=date(2025, 8, 1)) is None


# --- dates in URLs ---------------------------------------------------------------------------


def test_date_from_url_groups() -> None:
    mod = r"/j/press/news/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})[a-z]?\.(?:html|pdf)"
    url = "https://www.mod.go.jp/j/press/news/2025/04/30a.html"
    assert date_from_url(url, mod, tz="Asia/Tokyo") == tokyo(2025, 4, 30)
    stripes = r"/(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})/"
    assert date_from_url(
        "https://www.stripes.com/theaters/asia_pacific/2025-04-30/osprey-17612345.html", stripes
    ) == datetime(2025, 4, 30, tzinfo=UTC)


def test_date_from_url_two_digit_year_and_ymd() -> None:
    assert date_from_url("https://www.jiia.or.jp/en/column/250430.html",
                         r"/(?P<y>\d{2})(?P<m>\d{2})(?P<d>\d{2})\.html") == datetime(
        2025, 4, 30, tzinfo=UTC)
    assert date_from_url("https://jen.jiji.com/jc/eng?g=pol&k=2025043000512",
                         r"k=(?P<ymd>\d{8})") == datetime(2025, 4, 30, tzinfo=UTC)


def test_date_from_url_no_match_or_no_date() -> None:
    pattern = r"/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})"
    assert date_from_url("https://www.mod.go.jp/j/press/news/index.html", pattern) is None
    assert date_from_url("https://example.com/2025/13/45", pattern) is None
    assert date_from_url("https://example.com/2025/04", r"/(?P<y>\d{4})/(?P<m>\d{2})") is None
