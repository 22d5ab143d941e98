"""The source registry: the shipped sources.toml, validation, comment-preserving edits, OPML."""

from __future__ import annotations

import csv
import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from alliance_digest.errors import ConfigError, NotFoundError
from alliance_digest.sources.registry import (
    CATEGORIES,
    add_source,
    export_opml,
    import_opml,
    load_registry,
    merge_imported,
    set_enabled,
    split_exportable,
)
from alliance_digest.sources.types import KINDS, SourceConfig
from support import SHARED

SHIPPED = Path(__file__).resolve().parents[1] / "sources.toml"
REFERENCE_TSV = SHARED / "sources-reference.tsv"


def write(tmp_path: Path, text: str, name: str = "sources.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --- the shipped registry --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> list[SourceConfig]:
    return load_registry(SHIPPED)


def test_shipped_registry_is_valid_and_large_enough(shipped: list[SourceConfig]) -> None:
    enabled = [s for s in shipped if s.enabled]
    assert len(enabled) >= 30
    names = [s.name.casefold() for s in shipped]
    assert len(names) == len(set(names))
    for s in shipped:
        assert s.kind in KINDS
        assert s.category in CATEGORIES, s.name
        assert s.owner and s.country and s.language, s.name
        if s.kind == "json":
            assert {"title", "link"} <= set(s.options), s.name
        elif s.kind == "page":
            assert {"link_selector", "link_pattern"} & set(s.options), s.name
        else:
            assert not s.options, s.name


def test_shipped_registry_covers_the_alliance(shipped: list[SourceConfig]) -> None:
    enabled = [s for s in shipped if s.enabled]
    countries = {s.country for s in enabled}
    assert {"US", "JP", "KR"} <= countries
    assert {s.category for s in enabled} == set(CATEGORIES)
    assert {s.kind for s in enabled} == set(KINDS)
    assert {"ja", "en", "ko"} <= {s.language for s in enabled}


def test_shipped_page_sources_match_their_documented_shapes(shipped: list[SourceConfig]) -> None:
    by_name = {s.name: s for s in shipped}
    mofa = by_name["MOFA Press Releases"].options
    assert mofa["link_selector"] == "dl.title-list dd li a"
    assert mofa["date_selector"] == "dl.title-list dt"
    assert mofa["date_format"] == "month-day"
    assert by_name["外務省 新着情報"].options["date_format"] == "era"

    mod = by_name["防衛省 報道資料"].options
    url = "https://www.mod.go.jp/j/press/news/2026/08/23a.html"
    assert re.search(mod["link_pattern"], urlsplit(url).path)
    assert not re.search(mod["link_pattern"], "/j/press/news/index.html")
    date = re.search(mod["date_from_url"], url)
    assert date and date.group("y", "m", "d") == ("2026", "08", "23")

    stripes = by_name["Stars and Stripes Asia-Pacific"].options
    path = "/theaters/asia_pacific/2026-07-27/japan-us-drill-18533247.html"
    assert re.search(stripes["link_pattern"], path)
    assert re.search(stripes["date_from_url"], path).group("d") == "27"  # type: ignore[union-attr]

    jiji = by_name["Jiji Press English"].options
    m = re.search(jiji["date_from_url"], "https://jen.jiji.com/jc/eng?g=eco&k=2026100100123")
    assert m and m.group("y", "m", "d") == ("2026", "10", "01")
    # The page parser matches link_pattern against the path plus "?query".
    assert re.search(jiji["link_pattern"], "/jc/eng?g=eco&k=2026100100123")
    assert not re.search(jiji["link_pattern"], "/jc/eng?g=pol")
    rok = by_name["ROK MOFA Press Releases"].options
    assert re.search(rok["link_pattern"], "/eng/brd/m_5676/view.do?seq=321000")
    assert rok["timezone"] == "Asia/Seoul" and mofa["timezone"] == "Asia/Tokyo"

    state = by_name["State Dept Press Releases"]
    assert state.kind == "json" and state.options["items"] == ""
    assert state.options["title"] == "title.rendered"
    assert "Mozilla" in state.headers["User-Agent"]
    nhk = by_name["NHK World-Japan News"]
    assert nhk.kind == "json" and nhk.options["items"] == "data"


@pytest.mark.skipif(not REFERENCE_TSV.exists(), reason="shared source reference not present")
def test_shipped_urls_all_come_from_the_reference(shipped: list[SourceConfig]) -> None:
    with REFERENCE_TSV.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    status = {row["url"]: row["status"] for row in rows}
    for s in shipped:
        assert s.url in status, f"{s.name}: URL not in the reference"
        if status[s.url] == "unverified":
            assert not s.enabled, f"{s.name} is unverified but enabled"


def test_shipped_disabled_sources_say_why() -> None:
    blocks = SHIPPED.read_text(encoding="utf-8").split("[[source]]")
    for block in blocks[1:]:
        if "enabled = false" in block:
            # The comment saying why sits just above this block's [[source]] line.
            previous = blocks[blocks.index(block) - 1].rstrip().splitlines()
            assert previous[-1].startswith("#"), block.splitlines()[1]


# --- loading: valid input --------------------------------------------------------------------


def test_minimal_feed_gets_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[source]]
        name = "Example"
        url = "https://example.com/feed"
    """)
    [cfg] = load_registry(path)
    assert cfg == SourceConfig(name="Example", url="https://example.com/feed")
    assert cfg.enabled and cfg.kind == "feed" and cfg.interval_minutes is None


def test_full_json_and_page_sources_load(tmp_path: Path) -> None:
    path = write(tmp_path, r"""
        # a comment
        [[source]]
        name = "WP"
        url = "https://example.gov/wp-json/wp/v2/posts"
        kind = "json"
        owner = "Example"
        country = "US"
        category = "government"
        language = "en"
        interval_minutes = 30
        headers = { "User-Agent" = "Mozilla/5.0", Accept = "application/json" }
        enabled = false

        [source.json]
        items = ""
        title = "title.rendered"
        link = "link"
        date = "date_gmt"
        date_format = "%Y-%m-%dT%H:%M:%S"
        base_url = "https://example.gov/"

        [[source]]
        name = "Listing"
        url = "https://example.jp/news/"
        kind = "page"

        [source.page]
        link_selector = "dl.title-list dd li a"
        link_pattern = '^/news/\d{4}/'
        date_selector = "dl.title-list dt"
        date_format = "era"
        date_from_url = '/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)'
        max_items = 50
        timezone = "Asia/Tokyo"

        [[source]]
        name = "Cards"
        url = "https://example.org/news/"
        kind = "page"

        [source.page]
        item_selector = "article"
        link_selector = "h2 a"
        title_selector = "h2"
        date_selector = "time"
        date_attribute = "datetime"
        date_from_url = 'k=(?P<ymd>\d{8})'
    """)
    wp, listing, cards = load_registry(path)
    assert cards.options["date_attribute"] == "datetime"
    assert wp.kind == "json" and not wp.enabled and wp.interval_minutes == 30
    assert wp.headers == {"User-Agent": "Mozilla/5.0", "Accept": "application/json"}
    assert wp.options["title"] == "title.rendered" and wp.options["items"] == ""
    assert listing.options["max_items"] == 50 and listing.options["date_format"] == "era"


def test_empty_registry_is_an_empty_list(tmp_path: Path) -> None:
    assert load_registry(write(tmp_path, "# nothing yet\n")) == []


# --- loading: every validation error is one line naming file, source and key -----------------

BASE = 'name = "Bad One"\nurl = "https://example.com/feed"\n'

ERRORS = [
    ('kind = "rss"\n', "kind", "must be one of feed, json, page, got 'rss'"),
    ('intervall_minutes = 5\n', "intervall_minutes", "did you mean 'interval_minutes'"),
    ('category = "press"\n', "category", "must be one of government"),
    ('country = "jp"\n', "country", "upper-case"),
    ('language = "English"\n', "language", "language code"),
    ('owner = 3\n', "owner", "must be a string"),
    ('interval_minutes = 0\n', "interval_minutes", "positive"),
    ('interval_minutes = -5\n', "interval_minutes", "positive"),
    ('interval_minutes = 1.5\n', "interval_minutes", "positive"),
    ('interval_minutes = true\n', "interval_minutes", "positive"),
    ('enabled = "no"\n', "enabled", "true or false"),
    ('headers = "x"\n', "headers", "must be a table"),
    ('headers = { "User Agent" = "x" }\n', "headers", "invalid header name"),
    ('headers = { Accept = 1 }\n', "headers", "must be a string"),
    ('headers = { Accept = "a\\r\\nX-Evil: 1" }\n', "headers", "line breaks"),
    ('[source.json]\ntitle = "t"\nlink = "l"\n', "json", "only allowed with kind = 'json'"),
    ('kind = "json"\n', "json", "is required for kind = 'json'"),
    ('kind = "json"\n[source.json]\ntitle = "t"\n', "json.link", "is required"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = "l"\nimage_url = "i"\n',
     "json.image_url", "did you mean 'image'"),
    ('kind = "json"\n[source.json]\ntitle = "t..x"\nlink = "l"\n', "json.title", "dotted path"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = ""\n', "json.link", "dotted path"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = 5\n', "json.link", "dotted path"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = "l"\ndate_format = "Y-m-d"\n',
     "json.date_format", "strptime"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = "l"\nbase_url = "ftp://x/"\n',
     "json.base_url", "http or https"),
    ('kind = "page"\n', "page", "is required for kind = 'page'"),
    ('kind = "page"\n[source.page]\ntitle_selector = "h2"\n', "page.link_selector",
     "or 'link_pattern' or 'item_selector' is required"),
    ('kind = "page"\n[source.page]\nlink_selector = "a[["\n', "page.link_selector",
     "not a valid CSS selector"),
    ('kind = "page"\n[source.page]\nlink_pattern = "(unclosed"\n', "page.link_pattern",
     "not a valid regular expression"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ndate_from_url = "(?P<y>\\\\d{4})"\n',
     "page.date_from_url", "missing m, d"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ndate_format = "japanese"\n',
     "page.date_format", "or one of era, month-day"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\nmax_items = 0\n', "page.max_items",
     "positive"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ntitle_selector = "h2"\n',
     "page.title_selector", "needs 'item_selector'"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\nlink_selecter = "a"\n',
     "page.link_selecter", "did you mean 'link_selector'"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ntimezone = "Asia/Tokio"\n',
     "page.timezone", "is invalid: unknown timezone 'Asia/Tokio'"),
    ('kind = "json"\n[source.json]\ntitle = "t"\nlink = "l"\ntimezone = 9\n',
     "json.timezone", "IANA time zone name"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ndate_attribute = "datetime"\n',
     "page.date_attribute", "needs 'date_selector'"),
    ('kind = "page"\n[source.page]\nlink_pattern = "/x"\ndate_selector = "time"\n'
     'date_attribute = "date time"\n', "page.date_attribute", "attribute name"),
]


@pytest.mark.parametrize(("extra", "key", "message"), ERRORS, ids=[e[1] for e in ERRORS])
def test_validation_errors_are_one_line_naming_file_source_and_key(
    tmp_path: Path, extra: str, key: str, message: str
) -> None:
    path = tmp_path / "sources.toml"
    ok = '[[source]]\nname = "Fine"\nurl = "https://example.com/a"\n\n'
    # Sub-table lines must come after the source's own keys: split them off `extra`.
    own, _, sub = extra.partition("[source.")
    path.write_text(ok + "[[source]]\n" + BASE + own + ("[source." + sub if sub else ""),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: source 'Bad One' (#2): '{key}' "), text
    assert message in text


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        ('url = "https://x/"\n', "name", "is required"),
        ('name = ""\nurl = "https://x/"\n', "name", "non-empty"),
        ('name = " padded "\nurl = "https://x/"\n', "name", "spaces"),
        ('name = "N"\n', "url", "is required"),
        ('name = "N"\nurl = "ftp://example.com/"\n', "url", "http or https"),
        ('name = "N"\nurl = "example.com/feed"\n', "url", "http or https"),
        ('name = "N"\nurl = "https:///feed"\n', "url", "no host"),
        ('name = "N"\nurl = "https://example.com/a b"\n', "url", "spaces"),
        ('name = "N"\nurl = "http://[::1/"\n', "url", "not a valid URL"),
    ],
)
def test_name_and_url_errors(tmp_path: Path, body: str, key: str, message: str) -> None:
    path = write(tmp_path, "[[source]]\n" + body)
    with pytest.raises(ConfigError, match=re.escape(f"'{key}' ")) as info:
        load_registry(path)
    assert "\n" not in str(info.value) and message in str(info.value)
    assert str(info.value).startswith(f"{path}: source ")
    assert "(#1)" in str(info.value) or "source #1" in str(info.value)


def test_duplicate_names_ignoring_case(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [[source]]
        name = "MOFA Press"
        url = "https://a.example/"

        [[source]]
        name = "mofa press"
        url = "https://b.example/"
    """)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert str(info.value) == (
        f"{path}: source 'mofa press' (#2): 'name' duplicates source #1 "
        "(names must be unique, ignoring case)"
    )


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_registry(tmp_path / "missing.toml")

    bad = write(tmp_path, '[[source]]\nname = "x\n', "bad.toml")
    with pytest.raises(ConfigError) as info:
        load_registry(bad)
    assert str(info.value).startswith(f"{bad}: invalid TOML: ")
    assert "\n" not in str(info.value)

    typo = write(tmp_path, '[[sources]]\nname = "x"\n', "typo.toml")
    with pytest.raises(ConfigError, match=r"top-level key 'sources'.*did you mean 'source'"):
        load_registry(typo)

    flat = write(tmp_path, 'source = "x"\n', "flat.toml")
    with pytest.raises(ConfigError, match=r"array of tables \(\[\[source\]\]\)"):
        load_registry(flat)

    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[source]]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_registry(binary)


# --- editing keeps comments ------------------------------------------------------------------

EDITABLE = """\
# Registry header: keep me.

# Defense ministry.
[[source]]
name = "Alpha"   # trailing comment
url = "https://alpha.example/feed"
enabled = false  # unverified: seen in code only

# A listing page.
[[source]]
name = "Beta"
url = "https://beta.example/news/"
kind = "page"

[source.page]
link_pattern = '^/news/\\d+'  # article ids
"""


def test_add_source_appends_and_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    new = SourceConfig(
        name="Gamma",
        url="https://gamma.example/api/items.json",
        kind="json",
        owner="Gamma Org",
        country="JP",
        category="news",
        language="ja",
        interval_minutes=90,
        headers={"User-Agent": "Mozilla/5.0"},
        enabled=False,
        options={"items": "data", "title": "title", "link": "url"},
    )
    add_source(path, new)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(EDITABLE)  # everything before is untouched, comments included
    assert "\n\n[[source]]\nname = \"Gamma\"" in text
    assert "[source.json]" in text
    *_, loaded = load_registry(path)
    assert loaded == new


def test_add_source_refuses_duplicates_and_invalid_configs(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"source 'alpha': 'name' already exists \(source #1\)"):
        add_source(path, SourceConfig(name="alpha", url="https://other.example/"))
    with pytest.raises(ConfigError, match=r"'kind' must be one of feed, json, page, got 'rss'"):
        add_source(path, SourceConfig(name="New", url="https://n.example/", kind="rss"))
    with pytest.raises(ConfigError, match=r"'page\.link_pattern' is not a valid regular"):
        add_source(path, SourceConfig(name="New", url="https://n.example/", kind="page",
                                      options={"link_pattern": "(oops"}))
    with pytest.raises(ConfigError, match="'options' must be empty for kind = 'feed'"):
        add_source(path, SourceConfig(name="New", url="https://n.example/", options={"x": 1}))
    assert path.read_bytes() == before


def test_add_source_to_an_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# my sources\n")
    add_source(path, SourceConfig(name="Only", url="https://only.example/rss"))
    assert path.read_text(encoding="utf-8").startswith("# my sources\n")
    assert [s.name for s in load_registry(path)] == ["Only"]


def test_set_enabled_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    set_enabled(path, "Alpha", True)
    set_enabled(path, "Beta", False)
    text = path.read_text(encoding="utf-8")
    assert "enabled = true  # unverified: seen in code only" in text
    for comment in ("# Registry header: keep me.", "# Defense ministry.", "# trailing comment",
                    "# A listing page.", "# article ids"):
        assert comment in text
    alpha, beta = load_registry(path)
    assert alpha.enabled and not beta.enabled
    assert beta.options == {"link_pattern": r"^/news/\d+"}
    # Beta's new key goes with its own keys, not into its [source.page] table.
    assert text.index("enabled = false") < text.index("[source.page]")


def test_set_enabled_without_change_leaves_the_file_alone(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    before = path.read_bytes()
    set_enabled(path, "Alpha", False)
    set_enabled(path, "Beta", True)  # enabled by default
    assert path.read_bytes() == before


def test_set_enabled_unknown_name(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    with pytest.raises(NotFoundError, match="no source named 'Delta'"):
        set_enabled(path, "Delta", True)


def test_edits_refuse_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[[source]]\nname = "X"\nurl = "https://x/"\nkind = "rss"\n')
    with pytest.raises(ConfigError, match="'kind'"):
        set_enabled(path, "X", False)
    with pytest.raises(ConfigError, match="'kind'"):
        add_source(path, SourceConfig(name="Y", url="https://y/"))


# --- OPML ------------------------------------------------------------------------------------


def test_export_opml_only_feeds_grouped_by_category(shipped: list[SourceConfig]) -> None:
    text = export_opml(shipped)
    feeds, others = split_exportable(shipped)
    assert others and f"<!-- {len(others)} source(s) of kind json/page skipped" in text
    root = ET.fromstring(text)
    assert root.tag == "opml" and root.get("version") == "2.0"
    outlines = [o for o in root.iter("outline") if o.get("xmlUrl")]
    assert len(outlines) == len(feeds)
    assert all(o.get("type") == "rss" and o.get("text") == o.get("title") for o in outlines)
    folders = [o.get("text") for o in root.find("body")]  # type: ignore[union-attr]
    assert folders == [c for c in CATEGORIES if any(f.category == c for f in feeds)]


def test_opml_round_trip(shipped: list[SourceConfig]) -> None:
    feeds, _ = split_exportable(shipped)
    back = import_opml(export_opml(shipped))
    # Headers are not part of OPML; everything else survives.
    by_name = {s.name: s for s in back}
    assert set(by_name) == {s.name for s in feeds}
    for original in feeds:
        assert by_name[original.name] == replace(original, headers={})


def test_opml_round_trip_awkward_text() -> None:
    cfg = SourceConfig(name='Q&A "<tricky>" \u65e5\u672c', url="https://x.example/rss?a=1&b=2",
                       category="news", language="ja", owner="O'Brien & Co")
    assert import_opml(export_opml([cfg]).encode("utf-8")) == [cfg]


FEED_READER_OPML = """\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head>
    <title>analyst subscriptions in feedly Cloud</title>
  </head>
  <body>
    <outline text="Japan" title="Japan">
      <outline text="Government" title="Government">
        <outline type="rss" text="Kantei" title="Kantei"
                 xmlUrl="https://japan.kantei.go.jp/index-e2.rdf" htmlUrl="https://japan.kantei.go.jp"/>
      </outline>
      <outline type="rss" text="The Japan Times" title="The Japan Times"
               xmlUrl="https://www.japantimes.co.jp/feed/" htmlUrl="https://www.japantimes.co.jp"/>
      <outline type="rss" text="News" xmlUrl="https://japantoday.com/feed"/>
    </outline>
    <outline text="Think Tanks" title="Think Tanks">
      <outline type="rss" text="  War on the
               Rocks " xmlurl="https://warontherocks.com/feed/"/>
      <outline type="rss" text="News" title="News" xmlUrl="https://www.cfr.org/feed/"/>
      <outline type="rss" text="Japan Times again" xmlUrl="https://www.japantimes.co.jp/feed/"/>
    </outline>
    <outline text="Podcasts">
      <outline type="rss" text="No URL here" htmlUrl="https://example.com/"/>
      <outline type="rss" text="Mail" xmlUrl="mailto:someone@example.com"/>
      <outline type="rss" title="" xmlUrl="feed://breakingdefense.com/full-rss-feed/"/>
    </outline>
    <outline type="link" text="A bookmark" url="https://example.com/"/>
    <outline type="rss" text="Defense" xmlUrl="https://www.defensenews.com/rss"
             category="/Military,/Asia"/>
  </body>
</opml>
"""


def test_import_nested_feed_reader_opml() -> None:
    got = import_opml(FEED_READER_OPML)
    assert [(s.name, s.url, s.category) for s in got] == [
        ("Kantei", "https://japan.kantei.go.jp/index-e2.rdf", "government"),
        ("The Japan Times", "https://www.japantimes.co.jp/feed/", ""),
        ("News", "https://japantoday.com/feed", ""),
        ("War on the Rocks", "https://warontherocks.com/feed/", "think-tank"),
        ("News (2)", "https://www.cfr.org/feed/", "think-tank"),
        ("breakingdefense.com", "http://breakingdefense.com/full-rss-feed/", ""),
        ("Defense", "https://www.defensenews.com/rss", "military"),
    ]
    assert all(s.kind == "feed" and s.enabled and not s.options for s in got)


def test_import_opml_in_other_encodings() -> None:
    text = FEED_READER_OPML.replace("Kantei", "首相官邸")
    utf16 = text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert import_opml(utf16)[0].name == "首相官邸"
    sjis = text.replace('encoding="UTF-8"', 'encoding="Shift_JIS"').encode("shift_jis")
    assert import_opml(sjis)[0].name == "首相官邸"
    # A str is taken as already decoded, whatever its declaration says.
    assert import_opml(text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"'))[0].name == (
        "首相官邸"
    )


@pytest.mark.parametrize(
    "doc",
    [
        # Billion laughs.
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
        '<opml version="2.0"><body><outline text="&lol2;" xmlUrl="https://x/"/></body></opml>',
        # External entity.
        '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        '<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://x/"/></body></opml>',
        # External DTD.
        '<?xml version="1.0"?>\n<!DOCTYPE opml SYSTEM "http://attacker.example/x.dtd">\n'
        '<opml version="2.0"><body/></opml>',
    ],
    ids=["billion-laughs", "xxe", "external-dtd"],
)
def test_import_opml_refuses_doctype_and_entities(doc: str) -> None:
    for data in (doc, doc.encode("utf-8"), doc.encode("utf-16")):
        with pytest.raises(ConfigError) as info:
            import_opml(data)
        assert "declarations are not allowed" in str(info.value)
        assert "\n" not in str(info.value)


def test_import_opml_bad_input_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        import_opml(b"<opml><body><outline text='x'></body>", origin="subs.opml")
    assert str(info.value).startswith("subs.opml: not well-formed XML: mismatched tag (line 1")
    with pytest.raises(ConfigError, match=r"not an OPML document \(root element is <rss>\)"):
        import_opml("<rss version='2.0'><channel/></rss>")
    with pytest.raises(ConfigError, match="not well-formed XML"):
        import_opml("")
    # An undeclared entity is an XML error, not something to look up.
    with pytest.raises(ConfigError, match="undefined entity"):
        import_opml('<opml><body><outline text="&nope;" xmlUrl="https://x/"/></body></opml>')


def test_merge_imported(tmp_path: Path) -> None:
    path = write(tmp_path, EDITABLE)
    incoming = [
        SourceConfig(name="Alpha copy", url="https://ALPHA.example/feed/"),  # same feed
        SourceConfig(name="Alpha", url="https://another.example/rss"),  # name taken
        SourceConfig(name="Delta", url="https://delta.example/rss", category="news"),
    ]
    added, skipped = merge_imported(path, incoming)
    assert [s.name for s in added] == ["Alpha (2)", "Delta"]
    assert [s.name for s in skipped] == ["Alpha copy"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith(EDITABLE)
    assert [s.name for s in load_registry(path)] == ["Alpha", "Beta", "Alpha (2)", "Delta"]

    before = path.read_bytes()
    assert merge_imported(path, incoming[:1]) == ([], incoming[:1])
    assert path.read_bytes() == before


def test_merge_imported_opml_into_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    added, skipped = merge_imported(path, import_opml(FEED_READER_OPML))
    assert len(added) == 7 and not skipped
    assert [s.name for s in load_registry(path)] == [s.name for s in added]


def test_add_source_refuses_an_inline_array_registry(tmp_path: Path) -> None:
    path = write(tmp_path, 'source = [{ name = "X", url = "https://x.example/" }]\n')
    assert [s.name for s in load_registry(path)] == ["X"]
    with pytest.raises(ConfigError, match=r"inline array: use \[\[source\]\] tables"):
        add_source(path, SourceConfig(name="Y", url="https://y.example/"))


def test_option_keys_match_what_the_parsers_read() -> None:
    from alliance_digest.sources import jsonapi, pages
    from alliance_digest.sources.registry import JSON_KEYS, PAGE_KEYS

    assert set(JSON_KEYS) == set(jsonapi.OPTION_KEYS)
    assert set(PAGE_KEYS) == set(pages.OPTION_KEYS)
