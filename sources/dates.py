"""Reading the dates that JSON endpoints and listing pages print, in all their shapes.

`parse_date` tries, in order (or only the one `fmt` names):

    epoch seconds or milliseconds (ints, numeric strings), compact YYYYMMDD[HHMMSS]
    ISO-8601 ("2025-04-30T09:00:00+09:00", "2025-04-30", "2025/04/30 09:00")
    RFC 822 ("Wed, 30 Apr 2025 09:00:00 GMT")
    Japanese era ("令和7年4月30日", "令和元年5月1日", "R7.4.30") and Western ("2025年4月30日")
    English ("April 30, 2025", "Apr. 30, 2025", "30 April 2025")

Text is NFKC-normalised first, so full-width digits and spaces (４月３０日) and the one-character
era signs (㍻, ㋿) read like their plain forms. A naive result is taken to be local time in `tz`
(Asia/Tokyo for Japanese sites) and every result comes back timezone-aware.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from re import Pattern
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ERAS", "date_from_url", "parse_date", "resolve_timezone"]

#: Japanese eras: name -> first day. Year 1 (元年) of an era is the Gregorian year it began.
ERAS: dict[str, date] = {
    "明治": date(1868, 1, 25),
    "大正": date(1912, 7, 30),
    "昭和": date(1926, 12, 25),
    "平成": date(1989, 1, 8),
    "令和": date(2019, 5, 1),
}
_ERA_LETTERS = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和"}

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
            ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
            ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>[A-Za-z]{3,9})\.?"
# Optional clock time after a date: "15:30", "15時30分" ("午後3時" is rare enough to ignore).
_TIME = (r"(?:\s*(?:T|\s)?\s*(?P<hour>\d{1,2})\s*[:時]\s*(?P<minute>\d{1,2})"
         r"(?:\s*[:分]\s*(?P<second>\d{2}))?)?")
_ERA_DATE = re.compile(
    r"(?P<era>明治|大正|昭和|平成|令和)\s*(?P<year>元|\d{1,2})\s*年\s*(?P<m>\d{1,2})\s*月"
    r"\s*(?P<d>\d{1,2})\s*日" + _TIME
)
_ERA_SHORT = re.compile(
    r"(?<![A-Za-z])(?P<era>[MTSHRmtshr])\s*(?P<year>\d{1,2})[./](?P<m>\d{1,2})[./](?P<d>\d{1,2})(?!\d)"
)
_JA_DATE = re.compile(
    r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日" + _TIME
)
_JA_MONTH_DAY = re.compile(r"(?<!\d)(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日")
_SLASHED = re.compile(
    r"^(?P<y>\d{4})[/.](?P<m>\d{1,2})[/.](?P<d>\d{1,2})" + _TIME + r"$"
)
_EN_MDY = re.compile(
    rf"\b{_MONTH}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b" + _TIME
)
_EN_DMY = re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?\s+(?P<y>\d{{4}})\b" + _TIME)
_EN_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_SPACE = re.compile(r"\s+")
# 1e11 seconds is the year 5138, 1e11 milliseconds is 1973: anything larger is milliseconds.
_MS_THRESHOLD = 100_000_000_000


def resolve_timezone(tz: str | tzinfo | None) -> tzinfo:
    """The `tzinfo` for an IANA name ("Asia/Tokyo"); None means UTC.

    Raises ValueError for an unknown name, so a misspelt option fails loudly.
    """
    if tz is None or tz == "" or tz == "UTC":
        return UTC
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {tz!r} (expected an IANA name such as "
                         "'Asia/Tokyo')") from None


def parse_date(
    text: str | int | float | None,
    fmt: str | None = None,
    *,
    today: date | None = None,
    tz: str | tzinfo | None = None,
) -> datetime | None:
    """A timezone-aware datetime from `text`, or None when it holds no readable date.

    `fmt` is None (try every known shape), a strptime format, "era" (Japanese era dates,
    Western 年月日 dates also read) or "month-day" ("July 7", "Jul. 7", "7月7日": the year is the
    latest that puts the date no later than `today`, allowing one day for time-zone skew).
    Naive values are local time in `tz` (default UTC).
    """
    zone = resolve_timezone(tz)
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int):
        value = _parse_number(str(text))
        return value if value is None or value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(text, float):
        return _from_epoch(text)
    if not isinstance(text, str):
        return None
    clean = _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    if not clean:
        return None

    if fmt is None:
        value = _parse_auto(clean)
    elif fmt == "era":
        value = _parse_era(clean) or _parse_auto(clean)
    elif fmt == "month-day":
        value = _parse_month_day(clean, today or datetime.now(zone).date())
    else:
        value = _parse_strptime(text.strip(), clean, fmt)
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def date_from_url(
    url: str, pattern: str | Pattern[str], *, tz: str | tzinfo | None = None
) -> datetime | None:
    """The date a URL carries, found by `pattern` (re.search) with named groups.

    Groups `y`, `m`, `d` (y of 2 or 4 digits; 2 digits mean 20yy), or a single `ymd` group
    holding YYYYMMDD. The result is midnight in `tz` (default UTC); None when nothing matches
    or the numbers are not a date.
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    match = regex.search(url or "")
    if not match:
        return None
    groups = match.groupdict()
    try:
        if groups.get("ymd"):
            digits = groups["ymd"]
            if len(digits) < 8 or not digits[:8].isdigit():
                return None
            y, m, d = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
        elif groups.get("y") and groups.get("m") and groups.get("d"):
            y, m, d = int(groups["y"]), int(groups["m"]), int(groups["d"])
            if y < 100:
                y += 2000
        else:
            return None
        return datetime(y, m, d, tzinfo=resolve_timezone(tz))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------


def _from_epoch(value: float) -> datetime | None:
    if value >= _MS_THRESHOLD or value <= -_MS_THRESHOLD:
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _build(y: int, m: int, d: int, match: re.Match[str] | None = None) -> datetime | None:
    hour = minute = second = 0
    if match is not None and match.groupdict().get("hour"):
        hour, minute = int(match["hour"]), int(match["minute"])
        second = int(match["second"] or 0)
    try:
        return datetime(y, m, d, hour, minute, second)
    except ValueError:
        return None


def _parse_auto(text: str) -> datetime | None:
    if _NUMBER.match(text):
        return _parse_number(text)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    if match := _SLASHED.match(text):
        return _build(int(match["y"]), int(match["m"]), int(match["d"]), match)
    if "," in text or re.search(r"\d\d:\d\d", text):
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
    if match := _JA_DATE.search(text):
        return _build(int(match["y"]), int(match["m"]), int(match["d"]), match)
    era = _parse_era(text)
    if era is not None:
        return era
    for regex in (_EN_MDY, _EN_DMY):
        for match in regex.finditer(text):
            if month := _MONTHS.get(match["month"].lower()):
                return _build(int(match["y"]), month, int(match["d"]), match)
    return None


def _parse_number(text: str) -> datetime | None:
    digits = text.lstrip("+")
    # Compact dates look like numbers; an 8- or 14-digit epoch would be 1970 or 2600.
    if digits.isdigit() and len(digits) in (8, 14):
        y, m, d = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
        if 1900 <= y <= 2200:
            try:
                if len(digits) == 8:
                    return datetime(y, m, d)
                return datetime(y, m, d, int(digits[8:10]), int(digits[10:12]),
                                int(digits[12:14]))
            except ValueError:
                return None
    # Shorter numbers are years, counts or ids, not epochs (10 digits since 2001).
    if len(digits.split(".")[0]) < 9 or digits.startswith("-"):
        return None
    return _from_epoch(float(digits))


def _parse_era(text: str) -> datetime | None:
    match = _ERA_DATE.search(text)
    if match:
        era = match["era"]
    else:
        match = _ERA_SHORT.search(text)
        if not match:
            return None
        era = _ERA_LETTERS[match["era"].upper()]
    year = 1 if match["year"] == "元" else int(match["year"])
    if year < 1:
        return None
    start = ERAS[era]
    value = _build(start.year + year - 1, int(match["m"]), int(match["d"]), match)
    # A date before its era began (令和元年4月1日) does not exist. One after the era ended
    # (平成32年) is still unambiguous: documents printed before the change use it.
    if value is None or value.date() < start:
        return None
    return value


def _parse_month_day(text: str, today: date) -> datetime | None:
    full = _parse_auto(text)
    if full is not None and not _NUMBER.match(text):
        return full  # the text had a year after all
    month = day = None
    for match in _EN_MONTH_DAY.finditer(text):
        if match["month"].lower() in _MONTHS:
            month, day = _MONTHS[match["month"].lower()], int(match["d"])
            break
    else:
        if ja := _JA_MONTH_DAY.search(text):
            month, day = int(ja["m"]), int(ja["d"])
    if month is None or day is None:
        return None
    # One day of grace: a site a few hours ahead of us may already print tomorrow's date.
    latest = today + timedelta(days=1)
    for year in range(latest.year, latest.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue  # 29 February: go back to a leap year
        if candidate <= latest:
            return datetime(candidate.year, candidate.month, candidate.day)
    return None


def _parse_strptime(raw: str, clean: str, fmt: str) -> datetime | None:
    for candidate in (raw, clean):
        try:
            return datetime.strptime(candidate, fmt)
        except ValueError:
            continue
    return None
