"""JSON endpoints (WordPress REST, NHK World, the Federal Register) read through a field mapping.

    document = json.loads(body)                    # EmptyBody / NotAFeed (HTML) / InvalidFeed
    items    = document at options["items"]        # dotted path; "" is the document itself
    for each item (an object):
        title, link, date, summary, guid, image = item at their dotted paths
        entry = make_entry(...)                    # the same normalising as feeds and pages
        coverage: which mapped paths were found (dates: and read) in this item
    no item has a title, or none a link         → InvalidFeed naming the path; nothing stored
    ParsedFeed(entries made unique), with a "no items" warning when the list is empty and a
    warning per mapped path that items lack ("date path 'published' found in 0 of 3 items")

A mapping for WordPress, in sources.toml:

    [source.json]
    items = ""
    title = "title.rendered"
    link = "link"
    date = "date_gmt"
    summary = "excerpt.rendered"
    guid = "id"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..errors import BinaryBody, EmptyBody, InvalidFeed, NotAFeed
from .coverage import Coverage
from .dates import parse_date, resolve_timezone
from .normalise import make_entry, unique_identities
from .types import Entry, ParsedFeed

__all__ = ["DEFAULT_OPTIONS", "OPTION_KEYS", "get_path", "parse_json"]

#: Option keys understood here (the `[source.json]` table, plus `timezone`).
OPTION_KEYS: tuple[str, ...] = (
    "items", "title", "link", "date", "summary", "guid", "image", "date_format", "base_url",
    "timezone",
)
#: Used for any key the source's mapping leaves out.
DEFAULT_OPTIONS: Mapping[str, str] = {"items": "", "title": "title", "link": "link"}

_MISSING = object()
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b")


def get_path(document: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path ("title.rendered", "images.0.url"); "" is the document.

    Numeric parts index lists (negative ones from the end); `default` when any step is missing.
    """
    if path == "":
        return document
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return default
            current = current[part]
        elif isinstance(current, list) and _is_index(part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return default
            current = current[index]
        else:
            return default
    return current


def parse_json(
    body: bytes,
    headers: Mapping[str, str] | None,
    url: str,
    language: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> ParsedFeed:
    """Parse a JSON endpoint's body into entries using the source's field mapping.

    Raises EmptyBody, NotAFeed (HTML or XML came back), BinaryBody, or InvalidFeed (bad JSON,
    or the items path missing or not a list). An empty list is a ParsedFeed warning "no items".
    """
    opts: dict[str, Any] = {**DEFAULT_OPTIONS, **(options or {})}
    document = _load(body)
    items_path: str = opts["items"]
    items = get_path(document, items_path, _MISSING)
    where = f"'{items_path}'" if items_path else "the document root"
    if items is _MISSING:
        raise InvalidFeed(f"no {where} in the JSON document (the items path){_api_error(document)}")
    if not isinstance(items, list):
        raise InvalidFeed(f"expected a list of items at {where}, got {_json_type(items)}"
                          f"{_api_error(document)}")

    zone = resolve_timezone(opts.get("timezone"))
    base_url = opts.get("base_url") or url
    date_format = opts.get("date_format") or None
    entries: list[Entry] = []
    skipped = 0
    coverage = _coverage(opts, date_format)
    for item in items:
        if not isinstance(item, Mapping):
            skipped += 1
            continue
        coverage.total += 1
        values = {key: _text(get_path(item, opts[key])) if opts.get(key) else None
                  for key in ("guid", "link", "title", "summary", "image")}
        for key, value in values.items():
            coverage.count(key, bool(value and value.strip()))
        published = _date(item, opts.get("date"), date_format, zone)
        if opts.get("date"):
            raw = get_path(item, opts["date"])
            coverage.count("date", raw not in (None, ""), published is not None)
        entry = make_entry(
            guid=values["guid"],
            link=values["link"],
            title=values["title"],
            summary_html=values["summary"],
            published=published,
            language=language,
            image=values["image"],
            base_url=base_url,
        )
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)

    if (fatal := coverage.fatal()) is not None:
        # URLs stored as titles, or items without links: garbage that looks like news.
        raise InvalidFeed(f"{fatal}: check [source.json] in sources.toml")
    warnings: list[str] = []
    if not items:
        warnings.append("no items")
    elif skipped:
        warnings.append(f"{skipped} of {len(items)} items skipped (not an object, or no title "
                        "and no link)")
    warnings.extend(coverage.warnings())
    return ParsedFeed(title=None, link=base_url, entries=unique_identities(entries),
                      warnings=tuple(warnings))


# ---------------------------------------------------------------------------------------------


def _coverage(opts: Mapping[str, Any], date_format: str | None) -> Coverage:
    mapped = ("title", "link", "date", "summary", "guid", "image")
    labels = {key: f"{key} path '{opts[key]}'" for key in mapped if opts.get(key)}
    hint = f" (date_format '{date_format}')" if date_format else ""
    return Coverage(labels, required=frozenset({"title", "link"}), expected=frozenset({"date"}),
                    date_hint=hint)


def _load(body: bytes) -> Any:
    if not body or not body.strip():
        raise EmptyBody("empty body")
    head = body.lstrip()[:512]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if head.startswith(b"<"):
        lowered = head.lower()
        if lowered.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf")):
            raise NotAFeed("XML (a feed?) where JSON was expected")
        raise NotAFeed("HTML where JSON was expected")
    if head.startswith(_BINARY_MAGIC):
        raise BinaryBody("binary data where JSON was expected")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise BinaryBody("body is not text (undecodable bytes) where JSON was expected") from None
    except json.JSONDecodeError as e:
        raise InvalidFeed(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InvalidFeed("invalid JSON: nested too deeply") from None


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def _text(value: Any) -> str | None:
    """A scalar as text; objects and lists hold no single text (None)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def _date(item: Mapping[str, Any], path: str | None, fmt: str | None, zone: Any) -> Any:
    if not path:
        return None
    value = get_path(item, path)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_date(value, fmt, tz=zone)
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _api_error(document: Any) -> str:
    """WordPress and friends answer errors as {"code": …, "message": …}: worth quoting."""
    if isinstance(document, Mapping) and isinstance(document.get("message"), str):
        code = document.get("code")
        prefix = f"{code}: " if isinstance(code, str) else ""
        message = " ".join(document["message"].split())[:200]
        return f" (the API said {prefix}{message})"
    return ""
