"""The one renderer: an issue (`IssueView`) becomes Markdown, email HTML and plain text.

The draft and the editor desk's preview both call `render_issue` (through pipeline.preview),
so what editors preview is what gets written. It renders the data it is given: the queries
that select an issue's items are the use case's, never this module's.

    view      = issue_view_from_rows(rows, settings, ...)   (or an IssueView built by hand)
    context   = each item's paragraph as inline nodes: the editor's blurb parsed, else a
                paragraph drafted from the feed's summary and marked as needing writing
    markdown  = digest.md.j2  | html = digest.html.j2, then css-inline | text = digest.txt.j2

Editors write blurbs in a two-construct Markdown subset, **bold** and [links](https://...).
`parse_inline` turns only those into nodes; everything else stays text, and each format escapes
text its own way, so nothing a feed or an editor typed is ever passed through as markup. Links
must be absolute http(s) URLs: any other link keeps its words and loses its target.

Templates load from `[issue] templates` first (a user's folder, same file names), then from
this package, so a user can override one file and keep the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import css_inline
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    select_autoescape,
)
from markupsafe import Markup, escape

from ..errors import ConfigError, TemplateRenderError
from ..settings import IssueSettings, Settings
from ..texts import strip_bidi
from ..urls import http_url

PACKAGED_TEMPLATES = Path(__file__).resolve().parent
TEMPLATE_NAMES = {"markdown": "digest.md.j2", "html": "digest.html.j2", "text": "digest.txt.j2"}
#: Shown before every paragraph the renderer drafted, until an editor writes a blurb.
DRAFT_MARKER = "DRAFT — needs writing"
#: A drafted paragraph: at most this many whole sentences and (about) this many characters.
DRAFT_SENTENCES = 3
DRAFT_CHARS = 500
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


# --- what the renderer takes and gives ---------------------------------------------------------


@dataclass
class LinkView:
    """An extra source link an editor picked for an item."""

    url: str
    label: str = ""


@dataclass
class ItemView:
    """One story as the issue shows it; editors' fields win over the feed's."""

    headline: str = ""
    title: str = ""
    key_phrase: str = ""
    #: The editor's paragraph: text with **bold** and [links](https://...) only.
    blurb: str = ""
    #: The feed's summary as plain text; a paragraph is drafted from it while `blurb` is empty.
    summary_text: str = ""
    url: str = ""
    links: list[LinkView] = field(default_factory=list)
    section: str = ""
    #: Marked in every output so editors see the paragraph still needs writing.
    needs_writing: bool = False
    #: The publisher's name: the label of a drafted paragraph's link.
    source: str = ""
    #: The issue entry this paragraph is (None for a bare item).
    entry_id: int | None = None
    #: The entry's items, lead first: what a paragraph is drafted from while `blurb` is empty.
    sources: list[SourceView] = field(default_factory=list)


@dataclass
class SourceView:
    """One item of an issue entry, as its drafted paragraph uses it."""

    url: str = ""
    title: str = ""
    summary_text: str = ""
    #: The outlet's name.
    source: str = ""
    language: str = ""


@dataclass
class IssueView:
    """An issue ready to render: numbering, lead image and items in issue order."""

    title: str
    volume: int
    number: int
    date: date
    items: list[ItemView] = field(default_factory=list)
    image_url: str = ""
    image_credit: str = ""
    #: Alt text of the lead image (the story it illustrates); a credit-based one if empty.
    image_alt: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    """The three outputs of one issue."""

    markdown: str
    html: str
    text: str


# --- inline nodes: the blurb subset ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Bold:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    children: tuple[Node, ...]


Node = Text | Bold | Link

# A link's target: <anything without angle brackets or newlines>, or a bare URL without
# whitespace whose parentheses are balanced one level deep (Wikipedia-style URLs).
_LINK_RE = re.compile(r"\[([^\[\]]*)\]\(\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)\s*\)")
_BOLD_RE = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", re.DOTALL)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE_RE = re.compile(r"\s+")
_URL_UNSAFE_RE = re.compile(r"[\s\"<>\\^`{|}]")


def clean_text(value: str | None) -> str:
    """One paragraph's worth of text: control characters (bidi controls too, for rows stored
    before they were stripped on the way in) dropped, whitespace runs collapsed."""
    return _SPACE_RE.sub(" ", _CONTROL_RE.sub("", strip_bidi(value or ""))).strip()


def safe_url(value: str | None) -> str | None:
    """`value` as an absolute http(s) URL (urls.http_url) safe to put in an attribute, else None.

    Whitespace, quotes, angle brackets and the like are percent-escaped first, so a feed's
    URL with a space in its path still links; control characters never do.
    """
    url = (value or "").strip()
    if _CONTROL_RE.search(url):
        return None
    return http_url(_URL_UNSAFE_RE.sub(lambda m: f"%{ord(m.group()):02X}", url))


def parse_inline(source: str | None) -> list[Node]:
    """Parse a blurb: **bold** and [text](http(s) URL) become nodes; the rest is text."""
    return _parse(clean_text(source), links=True, bold=True)


def _parse(text: str, *, links: bool, bold: bool) -> list[Node]:
    nodes: list[Node] = []
    pos = 0
    next_bold = _BOLD_RE.search(text) if bold else None
    next_link = _LINK_RE.search(text) if links else None
    while True:
        # Re-search only a pattern whose last match was consumed: keeps long blurbs linear.
        if next_bold and next_bold.start() < pos:
            next_bold = _BOLD_RE.search(text, pos)
        if next_link and next_link.start() < pos:
            next_link = _LINK_RE.search(text, pos)
        found = [m for m in (next_bold, next_link) if m]
        if not found:
            break
        m = min(found, key=lambda x: x.start())  # bold wins a tie: "**[a](u)**"
        if m.start() > pos:
            nodes.append(Text(text[pos:m.start()]))
        if m.re is _BOLD_RE:
            nodes.append(Bold(tuple(_parse(m.group(1), links=links, bold=False))))
        else:
            label = _parse(m.group(1), links=False, bold=bold)
            url = safe_url(m.group(2).removeprefix("<").removesuffix(">"))
            if url:
                nodes.append(Link(url, tuple(label) or (Text(url),)))
            else:
                nodes.extend(label)
        pos = m.end()
    if pos < len(text):
        nodes.append(Text(text[pos:]))
    return _merge_text(nodes)


def _merge_text(nodes: Iterable[Node]) -> list[Node]:
    merged: list[Node] = []
    for node in nodes:
        if isinstance(node, Text) and merged and isinstance(merged[-1], Text):
            merged[-1] = Text(merged[-1].text + node.text)
        elif not (isinstance(node, Text) and not node.text):
            merged.append(node)
    return merged


def emphasise(nodes: Sequence[Node], key_phrase: str | None) -> list[Node]:
    """Bold the key phrase where it first stands, inside a link's words too.

    An editor's own bold wins, and a key phrase the paragraph never mentions is not added:
    it is bolded where it stands or not at all (never repeated in front of the paragraph).
    """
    phrase = clean_text(key_phrase)
    if not phrase or any(_has_bold(n) for n in nodes):
        return list(nodes)
    pattern = re.compile(re.escape(phrase), re.IGNORECASE)
    done, out = _bold_first(nodes, pattern)
    return out if done else list(nodes)


def _bold_first(nodes: Sequence[Node], pattern: re.Pattern[str]) -> tuple[bool, list[Node]]:
    for i, node in enumerate(nodes):
        if isinstance(node, Text) and (m := pattern.search(node.text)):
            parts = [Text(node.text[:m.start()]), Bold((Text(m.group()),)),
                     Text(node.text[m.end():])]
            return True, _merge_text([*nodes[:i], *parts, *nodes[i + 1:]])
        if isinstance(node, Link):
            done, children = _bold_first(node.children, pattern)
            if done:
                return True, [*nodes[:i], Link(node.url, tuple(children)), *nodes[i + 1:]]
    return False, list(nodes)


def _has_bold(node: Node) -> bool:
    if isinstance(node, Bold):
        return True
    return isinstance(node, Link) and any(_has_bold(c) for c in node.children)


# --- drafting a paragraph from a summary -------------------------------------------------------

# A sentence ends at . ! ? (plus closing quotes or brackets) before whitespace and a capital,
# digit or opening quote; or at Japanese/Chinese full-width terminators.
_SENTENCE_END_RE = re.compile(
    r"[.!?][\"'”’)\]]*(?=\s+[\"“‘(\[]?[A-Z0-9\u3040-\u30ff\u4e00-\u9fff])"
    r"|[。！？][」』）\"”]*"
)
_ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "dr", "prof", "gen", "lt", "col", "maj", "capt", "cmdr", "adm", "sgt",
    "sen", "rep", "gov", "pres", "sec", "dep", "amb", "st", "no", "vol", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "inc", "corp", "co", "ltd",
    "jr", "sr", "vs",
))


def sentence_ends(text: str) -> list[int]:
    """Offsets just past each complete sentence in `text` (abbreviations are not ends)."""
    ends = []
    for m in _SENTENCE_END_RE.finditer(text):
        if text[m.start()] == ".":
            word = text[:m.start()].rsplit(None, 1)[-1].lstrip("(\"'“‘") if m.start() else ""
            # "Dr." or "Gen." or an initial: "U.S." and "John F." do not end a sentence here.
            if word.lower() in _ABBREVIATIONS or re.fullmatch(r"(?:[A-Za-z]\.)*[A-Za-z]", word):
                continue
        ends.append(m.end())
    return ends


def draft_paragraph(summary: str | None, *, max_sentences: int = DRAFT_SENTENCES,
                    max_chars: int = DRAFT_CHARS) -> str:
    """The first whole sentences of a summary, within the limits; plain text.

    A trailing fragment without an end mark (a feed's cut-off summary) is dropped unless it is
    all there is. A first sentence longer than `max_chars` is cut at a word and ends with "…".
    """
    text = clean_text(summary)
    ends = sentence_ends(text)
    if text and (not ends or ends[-1] < len(text)) and re.search(r"[.!?。！？][\"'”’)\]]*$", text):
        ends.append(len(text))
    chosen = 0
    for count, end in enumerate(ends, start=1):
        if count > max_sentences or (chosen and end > max_chars):
            break
        chosen = end
    result = text[:chosen].strip() if chosen else text
    if len(result) > max_chars:
        head = result[:max_chars]
        cut = head.rsplit(" ", 1)[0] if " " in head else head
        result = cut.rstrip(" ,;:—-") + "…"
    return result


# --- drafting an entry's paragraph and headline from its items --------------------------------

#: Words a linked source supports best: the act it reports ("Cho [said]", "[approved]").
_REPORTING = frozenset((
    "said", "says", "announced", "met", "held", "agreed", "approved", "signed", "conducted",
    "launched", "visited", "discussed", "reported", "stated", "confirmed", "released",
    "welcomed", "condemned", "exchanged", "toured", "hosted", "unveiled", "urged", "warned",
    "pledged", "reaffirmed", "committed", "told", "fired", "deployed", "completed", "began",
    "decided", "adopted", "expressed", "joined", "called", "noted", "added", "stressed",
))
_WORD_RE = re.compile(r"[A-Za-z](?:[A-Za-z'’.-]*[A-Za-z])?")
_STOP = frozenset((
    "that", "this", "with", "from", "have", "been", "were", "will", "their", "they", "them",
    "which", "would", "could", "about", "into", "also", "after", "before", "while", "more",
    "other", "than", "over", "said", "says", "such", "these", "those", "there", "where",
    "when", "what", "your", "between", "under", "during", "against", "both", "each",
))
#: A drafted paragraph takes at most this many sentences from siblings.
DRAFT_SIBLING_SENTENCES = 2
#: A sibling's sentence is worth adding when it brings this many content words not yet said.
DRAFT_NEW_WORDS = 4
#: A drafted headline: at most this many words.
HEADLINE_WORDS = 12


def _content_words(text: str) -> set[str]:
    return {w.lower().strip("'’-") for w in _WORD_RE.findall(text)
            if len(w) >= 4 and w.lower() not in _STOP}


def link_span(sentence: str, taken: Iterable[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """Where in `sentence` a source's link goes: a reporting verb ("said", "approved"), else a
    past-tense verb, else the longest lower-case word; never over a span in `taken`."""
    used = list(taken)
    words = [m for m in _WORD_RE.finditer(sentence)
             if not any(m.start() < end and start < m.end() for start, end in used)]
    if not words:
        return None
    for test in (lambda w: w.lower() in _REPORTING,
                 lambda w: w.islower() and len(w) >= 5 and w.endswith("ed"),
                 lambda w: w.islower() and len(w) >= 5,
                 lambda w: w.islower() and len(w) >= 4 and w not in _STOP):
        for m in words:
            if test(m.group()):
                return m.start(), m.end()
    m = max(words, key=lambda x: len(x.group()))
    return m.start(), m.end()


def _sentences(text: str) -> list[str]:
    text = clean_text(text)
    out, start = [], 0
    for end in sentence_ends(text):
        out.append(text[start:end].strip())
        start = end
    tail = text[start:].strip()
    if tail and re.search(r"[.!?。！？][\"'”’)\]]*$", tail):
        out.append(tail)
    return [x for x in out if x]


def _linked(text: str, spans: Sequence[tuple[int, int, str]]) -> list[Node]:
    """`text` with each (start, end, url) span made a link."""
    nodes: list[Node] = []
    pos = 0
    for start, end, url in sorted(spans):
        nodes += [Text(text[pos:start]), Link(url, (Text(text[start:end]),))]
        pos = end
    nodes.append(Text(text[pos:]))
    return _merge_text(nodes)


# A wire dateline ("SEOUL, Nov. 22 (Yonhap) -- ") and a release's attribution line are not
# the paragraph's words.
_DATELINE_RE = re.compile(r"^\(?[A-Z][A-Z .'-]+\)?,?\s+[A-Z][a-z]{2,8}\.?\s+\d{1,2}\s*"
                          r"(?:\([^)]{1,40}\))?\s*(?:--|—|–)\s*")
_ATTRIBUTION_RE = re.compile(r"^The (?:below|following) is attributable to [^:.]{1,80}:\s*",
                             re.IGNORECASE)


def _plain_start(text: str) -> str:
    return _ATTRIBUTION_RE.sub("", _DATELINE_RE.sub("", text)).strip()


def _english(source: SourceView) -> bool:
    return (source.language or "en")[:2].lower() == "en"


def _phrase_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    m = re.search(re.escape(phrase), text, re.IGNORECASE) if phrase else None
    return [(m.start(), m.end())] if m else []


def drafted_nodes(item: ItemView) -> list[Node]:
    """A paragraph drafted from an entry's items, each item's link on words it supports.

    The lead's key sentences (its summary's first whole sentences, else its title), then one
    sentence from each kept sibling that adds something new — a quote, a figure, a reaction:
    enough content words the paragraph has not said — linked to that sibling. A sibling with
    nothing new (or not in English) puts its link on another word of the lead's sentences.
    """
    sources = item.sources or [SourceView(url=item.url, title=item.title,
                                          summary_text=item.summary_text, source=item.source)]
    # The paragraph is English: its opening comes from the first English item with a summary
    # (the lead when it has one); the lead's link still comes first.
    opener = next((s for s in sources if _english(s) and clean_text(s.summary_text)), sources[0])
    lead = sources[0]
    siblings = sources[1:]
    lead_text = draft_paragraph(_plain_start(clean_text(opener.summary_text))) or clean_text(
        item.headline or opener.title or item.title)
    if opener is not lead:
        siblings = [opener, *(s for s in siblings if s is not opener)]
    lead_spans: list[tuple[int, int, str]] = []
    lead_url = safe_url(lead.url)
    # A link never splits the key phrase, so it can still be bolded where it stands.
    phrase = clean_text(item.key_phrase)
    keep_whole = _phrase_spans(lead_text, phrase)
    if lead_url and (span := link_span(lead_text, keep_whole)):
        lead_spans.append((*span, lead_url))
    said = _content_words(lead_text)
    extra: list[tuple[str, tuple[int, int], str]] = []
    for sib in siblings:
        url = safe_url(sib.url)
        if not url or url == lead_url:
            continue
        best: tuple[float, str] | None = None
        if sib is not opener and _english(sib) and len(extra) < DRAFT_SIBLING_SENTENCES:
            for sentence in map(_plain_start, _sentences(sib.summary_text)[:6]):
                new = _content_words(sentence) - said
                if len(new) < DRAFT_NEW_WORDS or len(sentence) > DRAFT_CHARS:
                    continue
                worth = len(new) + 3 * bool(re.search(r"[\"“”]", sentence)) \
                    + 2 * bool(re.search(r"\d", sentence))
                if best is None or worth > best[0]:
                    best = (worth, sentence)
        if best is not None and (span := link_span(best[1], _phrase_spans(best[1], phrase))):
            extra.append((best[1], span, url))
            said |= _content_words(best[1])
        elif span := link_span(lead_text, [*keep_whole, *((a, b) for a, b, _ in lead_spans)]):
            lead_spans.append((*span, url))
    nodes = _linked(lead_text, lead_spans)
    for sentence, (start, end), url in extra:
        nodes += [Text(" "), *_linked(sentence, [(start, end, url)])]
    return _merge_text(nodes)


_MONTH_NAMES = "|".join([*MONTHS, "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sept",
                         "Sep", "Oct", "Nov", "Dec"])
_BOILERPLATE_RE = re.compile(
    r"^(?:(?:readout|joint statement|statement|remarks|press release|fact sheet|media note|"
    r"press statement|news release|transcript)(?:\s+(?:of|on|by|from|for|following))?"
    r"(?:\s+the)?[\s:–—-]*)+", re.IGNORECASE)
_DATE_RES = (
    re.compile(rf"[,(]?\s*\b(?:on\s+)?(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+)?"
               rf"(?:{_MONTH_NAMES})\.?\s+\d{{1,2}}(?:\s*[-–]\s*\d{{1,2}})?"
               rf"(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b\)?", re.IGNORECASE),
    re.compile(rf"[,(]?\s*\b(?:on\s+)?\d{{1,2}}\s+(?:{_MONTH_NAMES})\.?(?:\s+\d{{4}})?\b\)?",
               re.IGNORECASE),
    re.compile(r"[,(]?\s*\b\d{4}-\d{2}-\d{2}\b\)?"),
    re.compile(r"\s*\b(?:on\s+)?(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b", re.IGNORECASE),
    re.compile(r"(?:^|(?<=\s))(?:in\s+)?(?:19|20)\d{2}(?=\s|$|[,:;])"),
)
_OUTLET_TAIL_RE = re.compile(r"\s+[|–—-]\s+[^|–—-]{1,40}$")


def draft_headline(title: str, outlets: Iterable[str] = ()) -> str:
    """A headline in the seed's register from an item's title: at most HEADLINE_WORDS words,
    boilerplate ("Readout of", "Joint Statement of"), dates and outlet names dropped."""
    text = clean_text(title)
    names = [clean_text(n) for n in outlets if clean_text(n)]
    for _ in range(2):
        tail = _OUTLET_TAIL_RE.search(text)
        if tail and (len(tail.group().split()) <= 7 or any(
                n.casefold() in tail.group().casefold() for n in names)):
            text = text[:tail.start()]
    for name in names:
        text = re.sub(rf"(?:^|\s)[(\[]?{re.escape(name)}[)\]]?:?(?=\s|$)", " ", text,
                      flags=re.IGNORECASE)
    text = _BOILERPLATE_RE.sub("", text.strip())
    for pattern in _DATE_RES:
        text = pattern.sub("", text)
    text = re.sub(r"\s+([,.;:])", r"\1", clean_text(text)).strip(" ,;:–—-")
    words = text.split()
    if len(words) > HEADLINE_WORDS:
        words = words[:HEADLINE_WORDS]
        # Cut at a clause's end when one falls late enough: "X stands up Y in Japan, aims…".
        clause = [i for i, w in enumerate(words[:-1]) if w.endswith((",", ";", ":")) and i >= 4]
        if clause:
            words = words[:clause[-1] + 1]
        while words and words[-1].lower().strip(",;:") in (
                "and", "or", "of", "the", "a", "an", "to", "in", "on", "for", "with", "at", "by"):
            words.pop()
        words[-1] = words[-1].rstrip(",;:")
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else clean_text(title)


# --- from rows to a view -----------------------------------------------------------------------


def parse_links(value: str | list[Any] | None) -> list[dict[str, str]]:
    """An item's `links` (the JSON column, or the list already decoded) as {"url", "label"}s.

    Tolerant of junk: entries that are not objects with a URL are dropped.
    """
    data: Any = value
    if data is None or isinstance(data, str):
        try:
            data = json.loads(data or "[]")
        except ValueError:
            return []
    if not isinstance(data, list):
        return []
    return [{"url": str(d.get("url") or ""), "label": str(d.get("label") or "")}
            for d in data if isinstance(d, dict) and d.get("url")]


def item_view(row: Mapping[str, Any]) -> ItemView:
    """An ItemView from an items row (as store.issues selects it: with the source's name)."""
    links = parse_links(row.get("links"))
    blurb = (row.get("blurb") or "").strip()
    return ItemView(
        headline=clean_text(row.get("headline")), title=clean_text(row.get("title")),
        key_phrase=clean_text(row.get("key_phrase")), blurb=blurb,
        summary_text=row.get("summary_text") or "", url=row.get("url") or "",
        links=[LinkView(url=x["url"], label=x["label"]) for x in links],
        section=row.get("section") or "", needs_writing=not blurb,
        source=row.get("source") or "",
    )


def issue_view_from_rows(rows: Iterable[Mapping[str, Any]], settings: IssueSettings | Settings,
                         *, day: date, volume: int, number: int, image_url: str | None = None,
                         image_credit: str | None = None) -> IssueView:
    """An IssueView from item rows already in issue order (store.issues.select_issue_items).

    The lead image is the one given, else the first item with a lead image or an image credit
    (its lead image, else its feed image; its credit, else its source's name).
    """
    rows = list(rows)
    items = [item_view(r) for r in rows]
    alt = ""
    if image_url is None and image_credit is None:
        image_url, image_credit = "", ""
        for row, item in zip(rows, items, strict=True):
            if row.get("lead_image") or row.get("image_credit"):
                image_url = row.get("lead_image") or row.get("image_url") or ""
                image_credit = row.get("image_credit") or row.get("source") or ""
                alt = item.headline or item.title
                break
    return IssueView(title=_issue_settings(settings).title, volume=volume, number=number,
                     date=day, items=items, image_url=image_url or "",
                     image_credit=image_credit or "", image_alt=alt)


def entry_view(entry: Mapping[str, Any]) -> ItemView:
    """An ItemView of an issue entry (store.entries' shape: its row with `items`, lead first).

    The entry's headline, else one drafted from the lead's title. The entry's own headline,
    key phrase and blurb win; where one is empty, the lead item's (written on its item page)
    stands in, so nothing an editor wrote there is lost to the draft.
    """
    items = list(entry.get("items") or [])
    lead = items[0] if items else {}
    blurb = (entry.get("blurb") or lead.get("item_blurb") or "").strip()
    outlets = [str(i.get("source") or "") for i in items]
    english = next((i for i in items if (i.get("language") or "en")[:2] == "en"), lead)
    headline = clean_text(entry.get("headline")) or clean_text(lead.get("item_headline")) \
        or draft_headline(str(english.get("title") or ""), outlets)
    return ItemView(
        headline=headline, title=clean_text(lead.get("title")),
        key_phrase=clean_text(entry.get("key_phrase") or lead.get("item_key_phrase")),
        blurb=blurb,
        summary_text=lead.get("summary_text") or "", url=lead.get("url") or "",
        section=entry.get("section") or "", needs_writing=not blurb,
        source=lead.get("source") or "", entry_id=entry.get("id"),
        sources=[SourceView(url=i.get("url") or "", title=i.get("title") or "",
                            summary_text=i.get("summary_text") or "",
                            source=i.get("source") or "", language=i.get("language") or "")
                 for i in items],
    )


def issue_view_from_entries(entries: Iterable[Mapping[str, Any]],
                            settings: IssueSettings | Settings, *, day: date, volume: int,
                            number: int, image_url: str | None = None,
                            image_credit: str | None = None) -> IssueView:
    """An IssueView from entries already in issue order. The lead image is the one given (the
    issue's own setting), else the first entry's lead item with a lead image or a credit (as
    issue_view_from_rows picks it)."""
    entries = list(entries)
    views = [entry_view(e) for e in entries]
    alt = ""
    if image_url is None and image_credit is None:
        image_url, image_credit = "", ""
        for entry, view in zip(entries, views, strict=True):
            lead = (entry.get("items") or [{}])[0]
            if lead.get("lead_image") or lead.get("image_credit"):
                image_url = lead.get("lead_image") or lead.get("image_url") or ""
                image_credit = lead.get("image_credit") or lead.get("source") or ""
                alt = view.headline or view.title
                break
    return IssueView(title=_issue_settings(settings).title, volume=volume, number=number,
                     date=day, items=views, image_url=image_url or "",
                     image_credit=image_credit or "", image_alt=alt)


def to_blurb(nodes: Sequence[Node]) -> str:
    """Nodes as blurb text (the two-construct subset parse_inline reads), for an editor to
    edit: text as it is, **bold**, [words](url)."""
    out = []
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Bold):
            out.append(f"**{to_blurb(node.children)}**")
        else:
            out.append(f"[{to_blurb(node.children)}]({md_url(node.url)})")
    return "".join(out)


def entry_paragraph(item: ItemView) -> dict[str, Any]:
    """One entry's paragraph in the three formats, exactly as the issue prints it (without the
    draft marker, which `unwritten` stands for)."""
    nodes = paragraph(item)
    return {"markdown": md_inline(nodes), "html": str(html_inline(nodes)),
            "text": text_inline(nodes), "unwritten": item.needs_writing or not item.blurb.strip(),
            "words": len(_words_of(nodes).split())}


def _words_of(nodes: Sequence[Node]) -> str:
    """The paragraph's words as a reader sees them (link targets left out)."""
    return "".join(n.text if isinstance(n, Text) else _words_of(n.children) for n in nodes)


# --- rendering ---------------------------------------------------------------------------------


def long_date(day: date) -> str:
    """'February 14, 2023', whatever the process locale."""
    return f"{MONTHS[day.month - 1]} {day.day}, {day.year}"


def render_issue(issue: IssueView, settings: IssueSettings | Settings) -> Rendered:
    """Render an issue as Markdown, email-ready HTML (CSS inlined) and plain text.

    Pass the whole Settings where you have it: a relative `[issue] templates` folder then
    resolves against digest.toml, like every other path (with IssueSettings, against the
    current directory).
    """
    issue_settings = _issue_settings(settings)
    env = _environment(_user_templates(settings))
    context = _context(issue, issue_settings)
    out = {}
    for kind, name in TEMPLATE_NAMES.items():
        try:
            out[kind] = env.get_template(name).render(context)
        except TemplateError as e:
            where = getattr(e, "filename", None) or name
            raise TemplateRenderError(f"{where}: {type(e).__name__}: {e}",
                                      template=Path(where).name) from None
    html = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False,
                                 keep_link_tags=False).inline(out["html"])
    return Rendered(markdown=out["markdown"], html=html, text=out["text"])


def _issue_settings(settings: IssueSettings | Settings) -> IssueSettings:
    return settings.issue if isinstance(settings, Settings) else settings


def _user_templates(settings: IssueSettings | Settings) -> str | None:
    folder = _issue_settings(settings).templates
    if not folder:
        return None
    path = settings.resolve(folder) if isinstance(settings, Settings) else Path(folder)
    path = path.expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"[issue] templates: {path} is not a folder")
    return str(path)


@lru_cache(maxsize=8)
def _environment(user_dir: str | None) -> Environment:
    """One environment per template folder (jinja2 caches compiled templates in it)."""
    loaders = [FileSystemLoader(user_dir)] if user_dir else []
    loaders.append(FileSystemLoader(str(PACKAGED_TEMPLATES)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"),
                                     default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=StrictUndefined,
    )
    env.filters.update(md=md_text, md_inline=md_inline, md_url=md_url,
                       html_inline=html_inline, text_inline=text_inline)
    return env


def _context(issue: IssueView, settings: IssueSettings) -> dict[str, Any]:
    image_url = safe_url(issue.image_url)
    # An image without a credit is still credited: to the site it comes from.
    credit_text = clean_text(issue.image_credit)
    if not credit_text and image_url:
        credit_text = urlsplit(image_url).hostname or ""
    credit: list[Node] = []
    if credit_text:
        credit = [Link(image_url, (Text(credit_text),))] if image_url else [Text(credit_text)]
    items = [
        {"view": item, "headline": item.headline or item.title, "section": item.section,
         "needs_writing": item.needs_writing or not item.blurb.strip(),
         "paragraph": paragraph(item)}
        for item in issue.items
    ]
    return {
        "issue": issue,
        "title": clean_text(issue.title),
        "vol_num": f"{issue.volume}.{issue.number}",
        "date_text": long_date(issue.date),
        "image": {"url": image_url, "alt": clean_text(issue.image_alt)
                  or f"Lead image: {credit_text or issue.title}"} if image_url else None,
        "credit_prefix": clean_text(settings.image_credit_prefix),
        "credit": credit,
        "items": items,
        "footer": parse_inline(settings.footer),
        "draft_marker": DRAFT_MARKER,
    }


def paragraph(item: ItemView) -> list[Node]:
    """An entry's Details paragraph: the blurb, else drafted from its items; links inline.

    Links stay on the words they support; nothing is appended after the paragraph.
    """
    nodes = parse_inline(item.blurb) if item.blurb.strip() else drafted_nodes(item)
    return _merge_text(emphasise(nodes, item.key_phrase))


def _links(nodes: Iterable[Node]) -> Iterable[Link]:
    for node in nodes:
        if isinstance(node, Link):
            yield node
        elif isinstance(node, Bold):
            yield from _links(node.children)


# --- per-format rendering of text and nodes (the templates' filters) ---------------------------

_MD_SPECIAL_RE = re.compile(r"([\\`*_\[\]<>~])")
_MD_ENTITY_RE = re.compile(r"&(?=#?\w+;)")
_MD_BLOCK_START_RE = re.compile(r"^(?:([#>+=-])|(\d+)([.)]))")


def _md_escape(text: str) -> str:
    return _MD_ENTITY_RE.sub(r"\\&", _MD_SPECIAL_RE.sub(r"\\\1", text))


def _md_block_safe(text: str) -> str:
    # At the start of a list item, "# ", "> ", "1. " would start a heading, quote or list.
    return _MD_BLOCK_START_RE.sub(
        lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), text)


def md_text(value: str | None) -> str:
    """Plain text for a Markdown line: every construct escaped."""
    return _md_block_safe(_md_escape(clean_text(value)))


def md_url(url: str) -> str:
    """A link target for Markdown; angle brackets keep parentheses in the URL intact."""
    return f"<{url}>" if "(" in url or ")" in url else url


def md_inline(nodes: Sequence[Node]) -> str:
    """Nodes as Markdown."""
    return _md_block_safe(_md_join(nodes))


def _md_join(nodes: Sequence[Node]) -> str:
    """Nodes side by side; a "!" just before a link is escaped, or "![a](u)" is an image."""
    out = ""
    for node in nodes:
        piece = _md_node(node)
        if piece.startswith("[") and out.endswith("!"):  # text never escapes "!" itself
            out = out[:-1] + "\\!"
        out += piece
    return out


def _md_node(node: Node) -> str:
    if isinstance(node, Text):
        return _md_escape(node.text)
    inner = _md_join(node.children)
    if isinstance(node, Bold):
        return f"**{inner}**"
    return f"[{inner}]({md_url(node.url)})"


def html_inline(nodes: Sequence[Node]) -> Markup:
    """Nodes as HTML (text escaped; links are http(s) only, checked when parsed)."""
    return Markup("".join(_html_node(n) for n in nodes))


def _html_node(node: Node) -> str:
    if isinstance(node, Text):
        return str(escape(node.text))
    inner = "".join(_html_node(c) for c in node.children)
    if isinstance(node, Bold):
        return f"<strong>{inner}</strong>"
    return f'<a href="{escape(node.url)}">{inner}</a>'


def text_inline(nodes: Sequence[Node]) -> str:
    """Nodes as plain text: bold dropped, links as "words (url)"."""
    return "".join(_text_node(n) for n in nodes)


def _text_node(node: Node) -> str:
    if isinstance(node, Text):
        return node.text
    inner = "".join(_text_node(c) for c in node.children)
    if isinstance(node, Bold):
        return inner
    return node.url if inner == node.url else f"{inner} ({node.url})"

