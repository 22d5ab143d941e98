"""What one article page says about itself: title, description, image, date, canonical URL.

For items an editor adds by URL (events no feed announced). Each value is the first found of:

    title        og:title, twitter:title, JSON-LD headline/name, <title> (site name trimmed),
                 first <h1>
    description  og:description, twitter:description, <meta name=description>, JSON-LD
                 description
    image        og:image (secure_url, url), twitter:image, JSON-LD image, <link rel=image_src>
    published_at article:published_time, JSON-LD datePublished, itemprop=datePublished, the
                 usual date metas (date, pubdate, dc.date, citation_publication_date…),
                 <time datetime> (one marked pubdate / datePublished first)
    canonical    <link rel=canonical>, og:url — only on the page's own site (a CMS that points
                 every page at its home page must not merge them) — else the fetched URL

Text goes through sources.normalise (entities decoded, tags dropped, whitespace collapsed);
URLs are made absolute and http(s)-only; dates become ISO-8601 UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

from ..errors import NotAFeed
from ..settings import HttpSettings
from ..texts import strip_bidi
from .addresses import AddressPolicy, guard_session
from .dates import parse_date
from .http import fetch, make_session
from .normalise import canonical_url, html_to_text, to_utc_iso
from .pages import decode_html
from .types import FetchRequest

__all__ = ["fetch_page_metadata", "parse_page_metadata"]

_TITLE_KEYS = ("og:title", "twitter:title")
_DESCRIPTION_KEYS = ("og:description", "twitter:description", "description",
                     "dc.description")
_IMAGE_KEYS = ("og:image:secure_url", "og:image:url", "og:image", "twitter:image",
               "twitter:image:src", "thumbnailurl")
_DATE_KEYS = ("article:published_time", "og:article:published_time", "datepublished",
              "published_time", "date", "pubdate", "publishdate", "publish-date",
              "dc.date.issued", "dc.date", "dcterms.date", "dcterms.issued",
              "citation_publication_date", "sailthru.date", "parsely-pub-date",
              "article.published")
#: JSON-LD types that describe the page's article (preferred over WebSite, Organization…).
_ARTICLE_TYPES = frozenset({
    "article", "newsarticle", "reportagenews", "analysisnewsarticle", "blogposting",
    "pressrelease", "report", "scholarlyarticle", "socialmediaposting", "webpage",
    "techarticle", "opinionnewsarticle", "backgroundnewsarticle", "liveblogposting",
})
_MAX_DESCRIPTION = 2000
_TITLE_SEPARATORS = (" | ", " - ", " – ", " — ", " :: ", " · ")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SPACE = re.compile(r"\s+")


def parse_page_metadata(body: bytes, headers: Mapping[str, str] | None,
                        url: str) -> dict[str, str | None]:
    """The page's title, description, image, published_at and canonical_url (each may be None).

    Raises EmptyBody or BinaryBody (sources.errors) for a body that is not a page at all.
    """
    tree = LexborHTMLParser(decode_html(body, headers))
    base = url
    node = tree.css_first("base[href]")
    if node is not None:
        base = urljoin(url, node.attributes.get("href") or "")
    metas = _metas(tree)
    ld = _json_ld(tree)

    site_name = _clean(metas.get("og:site_name"))
    title = _first_text(metas, _TITLE_KEYS) or _clean(_ld_text(ld, "headline", "name"))
    if not title:
        title = _trim_site_name(_clean(_node_text(tree, "title")), site_name)
    title = title or _clean(_node_text(tree, "h1"))

    description = (_first_text(metas, _DESCRIPTION_KEYS)
                   or _clean(_ld_text(ld, "description")))
    if description and len(description) > _MAX_DESCRIPTION:
        description = description[:_MAX_DESCRIPTION].rsplit(" ", 1)[0] + "…"

    image = None
    for candidate in (*(metas.get(k) for k in _IMAGE_KEYS), _ld_image(ld),
                      _link_href(tree, "image_src")):
        image = canonical_url(candidate, base) if isinstance(candidate, str) else None
        if image:
            break

    return {
        "title": title or None,
        "description": description or None,
        "image": image,
        "published_at": _published(tree, metas, ld),
        "canonical_url": _canonical(tree, metas, base, url),
    }


def fetch_page_metadata(url: str, http: HttpSettings,
                        addresses: AddressPolicy | None = None) -> dict[str, str | None]:
    """Fetch a page politely (our User-Agent, byte cap, deadline) and read its metadata.

    Only addresses `addresses` allows are connected to, on every redirect hop (public ones
    only when None); a refused one raises PrivateAddress.

    Returns parse_page_metadata's keys plus `url`, the address after redirects. Raises a
    FetchError subclass when the page cannot be fetched, NotAFeed when it is not HTML, and
    EmptyBody/BinaryBody for nothing or bytes.
    """
    session = guard_session(make_session(http), addresses or AddressPolicy())
    try:
        response = fetch(session, FetchRequest(name=url, url=url, kind="page"), http)
    finally:
        session.close()
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type and content_type not in _HTML_TYPES and not content_type.startswith("text/"):
        raise NotAFeed(f"{response.url} is {content_type}, not a web page",
                       status=response.status)
    meta = parse_page_metadata(response.body, response.headers, response.url)
    return {**meta, "url": response.url}


# --- reading the page --------------------------------------------------------------------------


def _metas(tree: LexborHTMLParser) -> dict[str, str]:
    """<meta property|name|itemprop=… content=…>, keys lower-cased, the first of each kept."""
    found: dict[str, str] = {}
    for node in tree.css("meta[content]"):
        attrs = node.attributes
        content = attrs.get("content")
        if not content or not content.strip():
            continue
        for attr in ("property", "name", "itemprop"):
            key = (attrs.get(attr) or "").strip().lower()
            if key and key not in found:
                found[key] = content.strip()
    for node in tree.css("[itemprop][datetime], [itemprop][content]"):
        key = (node.attributes.get("itemprop") or "").strip().lower()
        value = node.attributes.get("datetime") or node.attributes.get("content")
        if key and value and key not in found:
            found[key] = value.strip()
    return found


def _json_ld(tree: LexborHTMLParser) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page (graphs and lists flattened), articles first."""
    objects: list[dict[str, Any]] = []
    for node in tree.css('script[type="application/ld+json"]'):
        try:
            data = json.loads(node.text(deep=True) or "", strict=False)
        except ValueError:
            continue  # hand-written JSON-LD is often broken; the meta tags usually are not
        objects.extend(_flatten(data))
    return sorted(objects, key=_ld_rank)


def _ld_rank(obj: Mapping[str, Any]) -> int:
    """Articles first, then a WebPage (its name often carries the site's), then the rest."""
    kinds = _types(obj)
    if kinds & (_ARTICLE_TYPES - {"webpage"}):
        return 0
    return 1 if "webpage" in kinds else 2


def _flatten(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 5:
        return
    if isinstance(data, list):
        for x in data:
            yield from _flatten(x, depth + 1)
    elif isinstance(data, dict):
        yield data
        if isinstance(data.get("@graph"), list):
            yield from _flatten(data["@graph"], depth + 1)
        if isinstance(data.get("mainEntity"), dict | list):
            yield from _flatten(data["mainEntity"], depth + 1)


def _types(obj: Mapping[str, Any]) -> set[str]:
    kind = obj.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.lower() for k in kinds if isinstance(k, str)}


def _ld_text(objects: list[dict[str, Any]], *keys: str) -> str | None:
    for key in keys:
        for obj in objects:
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


def _ld_image(objects: list[dict[str, Any]]) -> str | None:
    for obj in objects:
        for value in (obj.get("image"), obj.get("thumbnailUrl")):
            if isinstance(value, list):
                value = value[0] if value else None
            if isinstance(value, dict):
                value = value.get("url") or value.get("contentUrl")
            if isinstance(value, str) and value.strip():
                return value
    return None


def _published(tree: LexborHTMLParser, metas: Mapping[str, str],
               ld: list[dict[str, Any]]) -> str | None:
    candidates: list[str | None] = [metas.get("article:published_time"),
                                    metas.get("og:article:published_time"),
                                    _ld_text(ld, "datePublished", "dateCreated")]
    candidates += [metas.get(k) for k in _DATE_KEYS]
    times = tree.css("time[datetime]")
    marked = [t for t in times if "pubdate" in t.attributes
              or (t.attributes.get("itemprop") or "").lower() == "datepublished"]
    candidates += [t.attributes.get("datetime") for t in (*marked, *times)]
    candidates.append(_ld_text(ld, "dateModified"))
    for text in candidates:
        if text and (when := to_utc_iso(parse_date(text.strip()))):
            return when
    return None


def _canonical(tree: LexborHTMLParser, metas: Mapping[str, str], base: str,
               url: str) -> str | None:
    fetched = canonical_url(url)
    for candidate in (_link_href(tree, "canonical"), metas.get("og:url")):
        link = canonical_url(candidate, base) if candidate else None
        if link is None:
            continue
        if fetched is None:
            return link
        # Only a deeper page on the same site: a CMS that names its home page as every page's
        # canonical URL (or a syndicated copy naming the original) must not merge stories.
        if _site(link) == _site(fetched) and urlsplit(link).path not in ("", "/"):
            return link
    return fetched


def _site(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _link_href(tree: LexborHTMLParser, rel: str) -> str | None:
    for node in tree.css("link[rel][href]"):
        rels = (node.attributes.get("rel") or "").lower().split()
        if rel in rels:
            return node.attributes.get("href")
    return None


def _node_text(tree: LexborHTMLParser, selector: str) -> str | None:
    node = tree.css_first(selector)
    return node.text(deep=True) if node is not None else None


def _first_text(metas: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        text = _clean(metas.get(key))
        if text:
            return text
    return None


def _clean(value: str | None) -> str | None:
    """Plain one-line text: selectolax has decoded entities once; html_to_text decodes a
    second, double-escaped layer (common in og tags) and drops stray tags."""
    if not value:
        return None
    return strip_bidi(html_to_text(value)) or None



def _trim_site_name(title: str | None, site_name: str | None) -> str | None:
    """"Talks open | The Japan Times" -> "Talks open", when the trailing part is the site."""
    if not title:
        return title
    for sep in _TITLE_SEPARATORS:
        head, found, tail = title.rpartition(sep)
        if not found or not head.strip():
            continue
        tail_key = _SPACE.sub("", tail).lower()
        if site_name and tail_key == _SPACE.sub("", site_name).lower():
            return head.strip()
    return title
