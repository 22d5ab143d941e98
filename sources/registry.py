"""The source registry: sources.toml read into validated `SourceConfig`s, edited in place, and
exchanged with feed readers as OPML.

- `load_registry(path)` reads the `[[source]]` tables (the shipped sources.toml documents every
  key in its header) and validates all of them. Any mistake is one `ConfigError` line naming the
  file, the source and the key, e.g.
  `sources.toml: source 'MOFA Press' (#12): 'kind' must be one of feed, json, page, got 'rss'`.
- `add_source`, `set_enabled` and `merge_imported` edit the file with tomlkit so that comments
  and layout survive; every edit is validated as a whole file before it replaces the old one.
- `export_opml` / `import_opml` speak OPML 2.0. Only `feed` sources have an OPML form. Import
  never resolves entities: a DOCTYPE or ENTITY declaration is refused outright.
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

import tomlkit
import tomlkit.exceptions
import tomlkit.items
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from ..errors import ConfigError, NotFoundError
from ..files import write_file
from .dates import resolve_timezone
from .types import KINDS, SourceConfig

log = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = ("government", "military", "news", "think-tank")

#: Keys of one `[[source]]` table, besides the kind-specific sub-tables.
SOURCE_KEYS: tuple[str, ...] = (
    "name", "url", "kind", "owner", "country", "category", "language",
    "interval_minutes", "headers", "enabled",
)
#: `[source.json]`: where the item list is and which field of an item is what.
JSON_KEYS: tuple[str, ...] = (
    "items", "title", "link", "date", "summary", "guid", "image", "date_format", "base_url",
    "timezone",
)
#: `[source.page]`: how to find the items on a listing page.
PAGE_KEYS: tuple[str, ...] = (
    "link_selector", "link_pattern", "item_selector", "title_selector", "date_selector",
    "date_format", "date_attribute", "date_from_url", "base_url", "max_items", "timezone",
)
#: Named `date_format`s a page source may use instead of a strptime format.
PAGE_DATE_FORMATS: tuple[str, ...] = ("era", "month-day")

#: Namespace of the OPML attributes that carry what OPML itself has no place for.
OPML_NS = "https://github.com/alliance-digest/alliance-digest/opml"

_SUBTABLE_KEYS: dict[str, tuple[str, ...]] = {"json": JSON_KEYS, "page": PAGE_KEYS}
_COUNTRY = re.compile(r"[A-Z]{2,4}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
# RFC 9110 token: what a header field name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def load_registry(path: Path) -> list[SourceConfig]:
    """Read and validate sources.toml; every source, in file order (disabled ones included)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return _load_text(text, str(path))


def _load_text(text: str, where: str) -> list[SourceConfig]:
    """Parse and validate registry text; `where` names the file in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {_one_line(str(e))}") from None
    return _validate_document(data, where)


def _validate_document(data: Mapping[str, Any], where: str) -> list[SourceConfig]:
    """Validate the whole parsed file: top-level keys, every source, unique names."""
    unknown = sorted(set(data) - {"source"})
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key '{unknown[0]}'{_did_you_mean(unknown[0], ['source'])}"
            " (the registry holds only [[source]] tables)"
        )
    raw_sources = data.get("source", [])
    if not isinstance(raw_sources, list) or not all(isinstance(s, dict) for s in raw_sources):
        raise ConfigError(f"{where}: 'source' must be an array of tables ([[source]])")
    sources: list[SourceConfig] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_sources, start=1):
        cfg = _validate_source(where, index, raw)
        key = cfg.name.casefold()
        if key in seen:
            raise ConfigError(
                f"{where}: source {_label(cfg.name, index)}: 'name' duplicates source "
                f"#{seen[key]} (names must be unique, ignoring case)"
            )
        seen[key] = index
        sources.append(cfg)
    return sources


def _validate_source(where: str, index: int, raw: Mapping[str, Any]) -> SourceConfig:
    """Turn one `[[source]]` table into a SourceConfig, or raise a one-line ConfigError."""
    name = raw.get("name")
    prefix = f"{where}: source {_label(name if isinstance(name, str) else None, index)}"

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{prefix}: '{key}' {message}")

    kind = raw.get("kind", "feed")
    if not isinstance(kind, str) or kind not in KINDS:
        raise fail("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = (*SOURCE_KEYS, kind) if kind in _SUBTABLE_KEYS else SOURCE_KEYS
    for key in raw:
        if key not in allowed:
            if key in _SUBTABLE_KEYS:
                raise fail(key, f"table is only allowed with kind = '{key}' (kind is '{kind}')")
            raise fail(key, f"is not a known key{_did_you_mean(key, allowed)}")

    if name is None:
        raise fail("name", "is required")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", f"must be a non-empty string, got {name!r}")
    if name != name.strip() or _CONTROL.search(name):
        raise fail("name", "must not start or end with spaces or hold control characters")

    if "url" not in raw:
        raise fail("url", "is required")
    url = _check_url(raw["url"], lambda msg: fail("url", msg))

    strings: dict[str, str] = {}
    for key in ("owner", "country", "category", "language"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise fail(key, f"must be a string, got {value!r}")
        strings[key] = value.strip()
    if strings["category"] and strings["category"] not in CATEGORIES:
        raise fail(
            "category", f"must be one of {', '.join(CATEGORIES)}, got {strings['category']!r}"
        )
    if strings["country"] and not _COUNTRY.fullmatch(strings["country"]):
        raise fail(
            "country", f"must be an upper-case code such as US, JP, KR or INTL, "
            f"got {strings['country']!r}"
        )
    if strings["language"] and not _LANGUAGE.fullmatch(strings["language"]):
        raise fail(
            "language", f"must be a language code such as en, ja or ko, "
            f"got {strings['language']!r}"
        )

    interval = raw.get("interval_minutes")
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0
    ):
        raise fail("interval_minutes", f"must be a positive whole number, got {interval!r}")

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", f"must be true or false, got {enabled!r}")

    headers = _check_headers(raw.get("headers", {}), fail)

    options: dict[str, Any] = {}
    if kind in _SUBTABLE_KEYS:
        table = raw.get(kind)
        if table is None:
            needs = ("title and link" if kind == "json"
                     else "link_selector, link_pattern or item_selector")
            raise fail(kind, f"table [source.{kind}] is required for kind = '{kind}' "
                             f"(needs at least {needs})")
        if not isinstance(table, dict):
            raise fail(kind, f"must be a table ([source.{kind}]), got {table!r}")
        checker = _check_json_options if kind == "json" else _check_page_options
        options = checker(table, lambda key, msg: fail(f"{kind}.{key}", msg))

    return SourceConfig(
        name=name,
        url=url,
        kind=kind,
        owner=strings["owner"],
        country=strings["country"],
        category=strings["category"],
        language=strings["language"],
        interval_minutes=interval,
        headers=headers,
        enabled=enabled,
        options=options,
    )


def _check_url(value: Any, fail: Any) -> str:
    """An absolute http(s) URL with a host, without spaces or control characters."""
    if not isinstance(value, str) or not value:
        raise fail(f"must be an http or https URL, got {value!r}")
    if value != value.strip() or " " in value or _CONTROL.search(value):
        raise fail(f"must not contain spaces or control characters, got {value!r}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as e:
        raise fail(f"is not a valid URL ({e}): {value!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise fail(f"must be an http or https URL, got {value!r}")
    if not host:
        raise fail(f"has no host name: {value!r}")
    return value


def _check_headers(value: Any, fail: Any) -> dict[str, str]:
    """A table of header name -> value, both strings, no line breaks (header injection)."""
    if not isinstance(value, dict):
        raise fail("headers", f"must be a table of name = \"value\" strings, got {value!r}")
    headers: dict[str, str] = {}
    for key, item in value.items():
        if not _HEADER_NAME.fullmatch(key):
            raise fail("headers", f"has an invalid header name {key!r}")
        if not isinstance(item, str):
            raise fail("headers", f"value of {key!r} must be a string, got {item!r}")
        if _CONTROL.search(item.replace("\t", " ")):
            raise fail("headers", f"value of {key!r} must not contain line breaks or controls")
        headers[key] = item
    return headers


def _check_unknown(table: Mapping[str, Any], known: Sequence[str], fail: Any) -> None:
    for key in table:
        if key not in known:
            raise fail(key, f"is not a known key{_did_you_mean(key, known)}")


def _check_json_options(table: Mapping[str, Any], fail: Any) -> dict[str, Any]:
    """Validate `[source.json]`: dotted paths, a strptime date_format, an http(s) base_url."""
    _check_unknown(table, JSON_KEYS, fail)
    for key in ("title", "link"):
        if key not in table:
            raise fail(key, "is required (a dotted path inside each item, e.g. \"title.rendered\")")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key == "date_format":
            options[key] = _check_strptime(value, lambda msg, key=key: fail(key, msg))
        elif key == "base_url":
            options[key] = _check_url(value, lambda msg, key=key: fail(key, msg))
        elif key == "timezone":
            options[key] = _check_timezone(value, lambda msg, key=key: fail(key, msg))
        else:
            if not isinstance(value, str):
                raise fail(key, f"must be a dotted path string, got {value!r}")
            if value == "" and key == "items":
                options[key] = value  # the document itself is the list
                continue
            if not value or any(not part.strip() for part in value.split(".")):
                raise fail(key, f"must be a dotted path such as \"title.rendered\", got {value!r}")
            options[key] = value
    return options


def _check_page_options(table: Mapping[str, Any], fail: Any) -> dict[str, Any]:
    """Validate `[source.page]`: selectors parse, regexes compile, date settings make sense."""
    _check_unknown(table, PAGE_KEYS, fail)
    if not {"link_selector", "link_pattern", "item_selector"} & set(table):
        # With item_selector alone, each item's first a[href] is its link (as documented).
        raise fail("link_selector", "or 'link_pattern' or 'item_selector' is required for a "
                                    "page source")
    options: dict[str, Any] = {}
    for key, value in table.items():
        if key.endswith("_selector"):
            options[key] = _check_selector(value, lambda msg, key=key: fail(key, msg))
        elif key in ("link_pattern", "date_from_url"):
            pattern = _check_regex(value, lambda msg, key=key: fail(key, msg))
            if key == "date_from_url" and "ymd" not in pattern.groupindex:
                missing = [g for g in ("y", "m", "d") if g not in pattern.groupindex]
                if missing:
                    raise fail(key, "needs the named groups (?P<y>…), (?P<m>…) and (?P<d>…), "
                                    f"or one (?P<ymd>…) holding YYYYMMDD; missing "
                                    f"{', '.join(missing)}")
            options[key] = value
        elif key == "date_format":
            if value in PAGE_DATE_FORMATS:
                options[key] = value
            else:
                options[key] = _check_strptime(
                    value, lambda msg, key=key: fail(key, f"{msg} (or one of era, month-day)")
                )
        elif key == "base_url":
            options[key] = _check_url(value, lambda msg, key=key: fail(key, msg))
        elif key == "timezone":
            options[key] = _check_timezone(value, lambda msg, key=key: fail(key, msg))
        elif key == "date_attribute":
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_:][-\w:.]*", value):
                raise fail(key, f"must be an attribute name such as \"datetime\", got {value!r}")
            options[key] = value
        else:  # max_items
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(key, f"must be a positive whole number, got {value!r}")
            options[key] = value
    if "date_attribute" in options and "date_selector" not in options:
        raise fail("date_attribute", "needs 'date_selector' (the element to read it from)")
    if "title_selector" in options and "item_selector" not in options:
        raise fail("title_selector", "needs 'item_selector' (the title is looked up inside each "
                                     "item; without one the link text is the title)")
    return options


def _check_selector(value: Any, fail: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise fail(f"must be a CSS selector string, got {value!r}")
    try:
        LexborHTMLParser("<html></html>").css(value)
    except SelectolaxError:
        raise fail(f"is not a valid CSS selector: {value!r}") from None
    return value


def _check_timezone(value: Any, fail: Any) -> str:
    if not isinstance(value, str):
        raise fail(f"must be an IANA time zone name such as \"Asia/Tokyo\", got {value!r}")
    try:
        resolve_timezone(value)
    except ValueError as e:
        raise fail(f"is invalid: {e}") from None
    return value


def _check_regex(value: Any, fail: Any) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise fail(f"must be a regular expression string, got {value!r}")
    try:
        return re.compile(value)
    except re.error as e:
        raise fail(f"is not a valid regular expression ({e}): {value!r}") from None


def _check_strptime(value: Any, fail: Any) -> str:
    if not isinstance(value, str) or "%" not in value:
        raise fail(f"must be a strptime format such as \"%Y-%m-%d\", got {value!r}")
    try:
        datetime.now(UTC).strftime(value)
    except ValueError as e:
        raise fail(f"is not a valid strptime format ({e}): {value!r}") from None
    return value


def _label(name: str | None, index: int) -> str:
    return f"'{name}' (#{index})" if name and name.strip() else f"#{index}"


def _did_you_mean(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Editing (tomlkit keeps comments and layout)
# --------------------------------------------------------------------------------------------


def add_source(path: Path, cfg: SourceConfig) -> None:
    """Append `cfg` as a new `[[source]]` table; ConfigError if invalid or the name exists."""
    path = Path(path)
    doc, existing = _read_for_edit(path)
    raw = _to_raw(cfg, str(path))
    checked = _validate_source(str(path), len(existing) + 1, raw)
    for index, old in enumerate(existing, start=1):
        if old.name.casefold() == checked.name.casefold():
            raise ConfigError(
                f"{path}: source '{checked.name}': 'name' already exists (source #{index})"
            )
    _append(doc, raw, str(path))
    _write(path, doc)


def set_enabled(path: Path, name: str, enabled: bool) -> None:
    """Set `enabled` on the source called `name`; NotFoundError if there is none."""
    path = Path(path)
    doc, _ = _read_for_edit(path)
    aot = doc.get("source")
    for table in aot or ():
        if table.get("name") == name:
            current = table.get("enabled", True)
            if bool(current.unwrap() if hasattr(current, "unwrap") else current) == enabled:
                return
            table["enabled"] = enabled
            _write(path, doc)
            return
    raise NotFoundError(f"{path}: no source named {name!r}")


def merge_imported(
    path: Path, sources: Iterable[SourceConfig]
) -> tuple[list[SourceConfig], list[SourceConfig]]:
    """Append imported sources to the registry in one write; return (added, skipped).

    A source whose URL is already registered is skipped; one whose name is taken by a different
    URL is added under "Name (2)". The file is created if it does not exist.
    """
    path = Path(path)
    doc, existing = _read_for_edit(path, missing_ok=True)
    names = {s.name.casefold() for s in existing}
    urls = {_url_key(s.url) for s in existing}
    added: list[SourceConfig] = []
    skipped: list[SourceConfig] = []
    for cfg in sources:
        if _url_key(cfg.url) in urls:
            skipped.append(cfg)
            continue
        cfg = replace(cfg, name=_unique_name(cfg.name, names))
        raw = _to_raw(cfg, str(path))
        checked = _validate_source(str(path), len(existing) + len(added) + 1, raw)
        _append(doc, raw, str(path))
        names.add(checked.name.casefold())
        urls.add(_url_key(checked.url))
        added.append(checked)
    if added:
        _write(path, doc)
    return added, skipped


def _read_for_edit(
    path: Path, missing_ok: bool = False
) -> tuple[tomlkit.TOMLDocument, list[SourceConfig]]:
    """The file as a tomlkit document plus its validated sources (refuses to edit a bad file)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        if not missing_ok:
            raise ConfigError(f"{path}: file not found") from None
        text = ""
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    existing = _load_text(text, str(path))
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as e:  # tomllib accepted it; should not happen
        raise ConfigError(f"{path}: cannot edit: {_one_line(str(e))}") from None
    return doc, existing


def _to_raw(cfg: SourceConfig, where: str) -> dict[str, Any]:
    """The `[[source]]` table for `cfg`, defaults left out, in the documented key order."""
    raw: dict[str, Any] = {"name": cfg.name, "url": cfg.url}
    if cfg.kind != "feed":
        raw["kind"] = cfg.kind
    for key in ("owner", "country", "category", "language"):
        if getattr(cfg, key):
            raw[key] = getattr(cfg, key)
    if cfg.interval_minutes is not None:
        raw["interval_minutes"] = cfg.interval_minutes
    if cfg.headers:
        raw["headers"] = dict(cfg.headers)
    if not cfg.enabled:
        raw["enabled"] = False
    if cfg.options:
        if cfg.kind not in _SUBTABLE_KEYS:
            raise ConfigError(
                f"{where}: source '{cfg.name}': 'options' must be empty for kind = '{cfg.kind}'"
            )
        raw[cfg.kind] = dict(cfg.options)
    return raw


def _append(doc: tomlkit.TOMLDocument, raw: Mapping[str, Any], where: str) -> None:
    table = tomlkit.table()
    table.trivia.indent = "\n"  # a blank line before each [[source]]
    for key, value in raw.items():
        if key == "headers":
            inline = tomlkit.inline_table()
            inline.update(value)
            table[key] = inline
        elif key in _SUBTABLE_KEYS:
            sub = tomlkit.table()
            for sub_key, sub_value in value.items():
                sub[sub_key] = sub_value
            table[key] = sub
        else:
            table[key] = value
    aot = doc.get("source")
    if aot is None:
        aot = tomlkit.aot()
        aot.append(table)
        doc["source"] = aot
    elif isinstance(aot, tomlkit.items.AoT):
        aot.append(table)
    else:  # `source = [{…}]`: valid TOML, but appending a table to it would change its form
        raise ConfigError(f"{where}: cannot add to 'source' written as an inline array: "
                          "use [[source]] tables")


def _write(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Validate the edited text as a whole, then replace the file atomically."""
    text = tomlkit.dumps(doc)
    _load_text(text, str(path))
    write_file(path, text)


def _unique_name(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def _url_key(url: str) -> str:
    """Comparison key for "same feed": scheme and host case-insensitive, trailing slash ignored."""
    parts = urlsplit(url)
    rest = url[len(parts.scheme) + 3 + len(parts.netloc):]
    return f"{parts.netloc.lower()}{rest.rstrip('/')}"


# --------------------------------------------------------------------------------------------
# OPML
# --------------------------------------------------------------------------------------------


def split_exportable(
    sources: Iterable[SourceConfig],
) -> tuple[list[SourceConfig], list[SourceConfig]]:
    """(feed sources, the rest): only `feed` sources have an OPML form."""
    feeds: list[SourceConfig] = []
    rest: list[SourceConfig] = []
    for cfg in sources:
        (feeds if cfg.kind == "feed" else rest).append(cfg)
    return feeds, rest


def export_opml(sources: Iterable[SourceConfig], title: str = "Alliance Digest sources") -> str:
    """OPML 2.0 of the `feed` sources, in folders by category; json/page sources are skipped.

    Each feed is `<outline type="rss" text title xmlUrl category language>` plus `digest:owner`,
    `digest:country`, `digest:interval_minutes` and `digest:enabled` (when false) so a round trip
    keeps them. Request headers are not exported. How many sources were skipped is said in a
    comment in the head (and `split_exportable` gives the numbers to callers).
    """
    feeds, skipped = split_exportable(sources)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<opml version="2.0" xmlns:digest={quoteattr(OPML_NS)}>',
        "  <head>",
        f"    <title>{escape(title)}</title>",
        f"    <dateCreated>{format_datetime(datetime.now(UTC), usegmt=True)}</dateCreated>",
        "    <docs>http://opml.org/spec2.opml</docs>",
    ]
    if skipped:
        kinds = sorted({s.kind for s in skipped})
        lines.append(
            f"    <!-- {len(skipped)} source(s) of kind {'/'.join(kinds)} skipped: "
            "only feeds have an OPML form -->"
        )
    lines += ["  </head>", "  <body>"]
    groups: dict[str, list[SourceConfig]] = {}
    for cfg in feeds:
        groups.setdefault(cfg.category, []).append(cfg)
    order = [c for c in CATEGORIES if c in groups] + sorted(set(groups) - set(CATEGORIES))
    for category in order:
        indent = "    "
        if category:
            lines.append(f"    <outline text={quoteattr(category)} title={quoteattr(category)}>")
            indent = "      "
        lines += [indent + _outline(cfg) for cfg in groups[category]]
        if category:
            lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _outline(cfg: SourceConfig) -> str:
    attrs: list[tuple[str, str]] = [
        ("type", "rss"), ("text", cfg.name), ("title", cfg.name), ("xmlUrl", cfg.url),
    ]
    if cfg.category:
        attrs.append(("category", f"/{cfg.category}"))
    if cfg.language:
        attrs.append(("language", cfg.language))
    if cfg.owner:
        attrs.append(("digest:owner", cfg.owner))
    if cfg.country:
        attrs.append(("digest:country", cfg.country))
    if cfg.interval_minutes is not None:
        attrs.append(("digest:interval_minutes", str(cfg.interval_minutes)))
    if not cfg.enabled:
        attrs.append(("digest:enabled", "false"))
    # quoteattr escapes & < > and quotes; newlines and tabs must become references to survive.
    body = " ".join(
        f"{k}={quoteattr(v, {chr(10): '&#10;', chr(13): '&#13;', chr(9): '&#9;'})}"
        for k, v in attrs
    )
    return f"<outline {body}/>"


def import_opml(data: str | bytes, *, origin: str = "OPML") -> list[SourceConfig]:
    """Read the feeds of an OPML subscription list (any nesting) as `feed` SourceConfigs.

    Outlines without xmlUrl (folders, links) are skipped, as are repeated URLs and URLs that
    are not http(s) (`feed://` is read as `http://`). Names come from text/title, made unique
    ("Name (2)"). The category is the outline's `category` attribute or its nearest enclosing
    folder when either names one of CATEGORIES. `origin` names the input in errors.
    """
    outlines = _parse_opml(data, origin)
    result: list[SourceConfig] = []
    names: set[str] = set()
    urls: set[str] = set()
    for attrs, folders in outlines:
        url = _feed_url(attrs.get("xmlurl", ""))
        if url is None:
            log.info("%s: skipping outline %r: xmlUrl %r is not http(s)",
                     origin, attrs.get("text"), attrs.get("xmlurl"))
            continue
        if _url_key(url) in urls:
            continue
        name = _clean(attrs.get("text") or attrs.get("title") or "") or (
            urlsplit(url).hostname or url
        )
        name = _unique_name(name, names)
        cfg = SourceConfig(
            name=name,
            url=url,
            kind="feed",
            owner=_clean(attrs.get(f"{OPML_NS} owner", "")),
            country=_match(_COUNTRY, attrs.get(f"{OPML_NS} country", "")),
            category=_category(attrs.get("category", ""), folders),
            language=_match(_LANGUAGE, attrs.get("language", "")),
            interval_minutes=_positive_int(attrs.get(f"{OPML_NS} interval_minutes", "")),
            enabled=attrs.get(f"{OPML_NS} enabled", "true").strip().lower() != "false",
        )
        try:
            cfg = _validate_source(origin, len(result) + 1, _to_raw(cfg, origin))
        except ConfigError as e:
            log.info("skipping outline: %s", e)
            continue
        names.add(cfg.name.casefold())
        urls.add(_url_key(cfg.url))
        result.append(cfg)
    return result


def _parse_opml(data: str | bytes, origin: str) -> list[tuple[dict[str, str], list[str]]]:
    """Every outline with an xmlUrl in <body>, with the folder names enclosing it (outer first).

    Uses expat directly so that a DOCTYPE, an entity declaration or an external entity reference
    stops the parse before anything is expanded (what defusedxml does for ElementTree).
    """
    if isinstance(data, str):
        payload, encoding = data.lstrip("\ufeff").encode("utf-8"), "utf-8"
    else:
        payload, encoding = bytes(data), None
    declared = _declared_encoding(payload) if encoding is None else None
    try:
        return _expat_outlines(payload, encoding, origin)
    except ConfigError:  # a declaration refused by a handler (a ConfigError is a ValueError)
        raise
    except (expat.ExpatError, ValueError) as e:
        unknown = isinstance(e, ValueError) or (
            e.code == expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING]
        )
        if unknown and declared:
            # expat decodes only UTF-8/16, ASCII and single-byte charsets itself (pyexpat raises
            # ValueError for multi-byte ones such as Shift_JIS): let Python decode the rest.
            try:
                text = payload.decode(declared)
            except (LookupError, UnicodeDecodeError):
                raise ConfigError(f"{origin}: cannot decode as {declared!r}") from None
            return _parse_opml(text, origin)
        if isinstance(e, ValueError):
            raise ConfigError(f"{origin}: cannot read the XML: {_one_line(str(e))}") from None
        raise ConfigError(
            f"{origin}: not well-formed XML: {expat.ErrorString(e.code)} "
            f"(line {e.lineno}, column {e.offset})"
        ) from None


def _expat_outlines(
    payload: bytes, encoding: str | None, origin: str
) -> list[tuple[dict[str, str], list[str]]]:
    parser = expat.ParserCreate(encoding, namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def forbid(what: str) -> Any:
        def handler(*_: Any) -> None:
            # Refused before anything is expanded.
            raise ConfigError(f"{origin}: {what} declarations are not allowed in OPML "
                              "(entities are never expanded)")
        return handler

    parser.StartDoctypeDeclHandler = forbid("DOCTYPE")
    parser.EntityDeclHandler = forbid("ENTITY")
    parser.UnparsedEntityDeclHandler = forbid("ENTITY")
    parser.ExternalEntityRefHandler = forbid("external entity")

    found: list[tuple[dict[str, str], list[str]]] = []
    path: list[str] = []  # element names from the root
    folders: list[str | None] = []  # per open <outline>: its folder name, or None for a feed
    root: list[str] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        tag = tag.rsplit(" ", 1)[-1]  # a default xmlns on the document: keep the local name
        if not root:
            root.append(tag)
        path.append(tag)
        if tag != "outline" or "body" not in path:
            return
        # Feed readers disagree on case (xmlUrl, xmlurl, XMLURL); namespaced keys stay as-is.
        norm = {(k if " " in k else k.lower()): v for k, v in attrs.items()}
        if norm.get("xmlurl", "").strip():
            found.append((norm, [f for f in folders if f]))
            folders.append(None)
        else:
            folders.append(_clean(norm.get("text") or norm.get("title") or ""))

    def end(tag: str) -> None:
        tag = tag.rsplit(" ", 1)[-1]
        path.pop()
        if tag == "outline" and "body" in path:
            folders.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(payload, True)
    if root and root[0] != "opml":
        raise ConfigError(f"{origin}: not an OPML document (root element is <{root[0]}>)")
    return found


def _declared_encoding(payload: bytes) -> str | None:
    match = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", payload)
    return match.group(1).decode("ascii") if match else None


def _feed_url(value: str) -> str | None:
    url = value.strip()
    lowered = url.lower()
    if lowered.startswith("feed://"):
        url = "http://" + url[7:]
    elif lowered.startswith("feed:"):
        url = url[5:]
    try:
        parts = urlsplit(url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return None
    if not ok or " " in url or _CONTROL.search(url):
        return None
    return url


def _category(attribute: str, folders: list[str]) -> str:
    """The first known category among the category attribute, then folders inside out."""
    candidates = [part for cat in attribute.split(",") for part in cat.split("/")[::-1]]
    for candidate in [*candidates, *reversed(folders)]:
        norm = re.sub(r"[\s_]+", "-", candidate.strip().lower())
        for form in (norm, norm.removesuffix("s")):
            if form in CATEGORIES:
                return form
    return ""


def _clean(text: str) -> str:
    return " ".join(text.split())


def _match(pattern: re.Pattern[str], value: str) -> str:
    value = value.strip()
    return value if pattern.fullmatch(value) else ""


def _positive_int(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() and int(value) > 0 else None
