"""Content hygiene: bidi controls never reach titles, summaries, editors' fields or drafts;
"!" before a blurb's link is text, never an image, in every draft format."""

from __future__ import annotations

from pathlib import Path

import pytest
from alliance_digest.pipeline.draft import draft_issue
from alliance_digest.sources.feeds import parse_feed
from alliance_digest.sources.normalise import make_entry
from alliance_digest.sources.pagemeta import parse_page_metadata
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of
from alliance_digest.texts import BIDI_CONTROLS, strip_bidi
from test_draft import SEED_DATE, site  # noqa: F401 - `site` is a fixture

RLO = "\u202e"


def clean(text: str | None) -> bool:
    return not any(c in BIDI_CONTROLS for c in text or "")


@pytest.mark.parametrize("char", sorted(BIDI_CONTROLS))
def test_every_bidi_control_is_stripped(char: str) -> None:
    assert strip_bidi(f"Japan{char} talks") == "Japan talks"


def test_feed_titles_and_summaries_lose_bidi_controls_raw_or_as_entities() -> None:
    feed = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title><item>'
        f"<title>Minister {RLO}txt.exe&#x2066; visits</title><link>https://e.test/1</link>"
        f"<description>&lt;p&gt;Talks{RLO} &amp;#8238;went on&lt;/p&gt;</description>"
        f"</item></channel></rss>"
    ).encode()
    (entry,) = parse_feed(feed, {}, "https://e.test/feed").entries
    assert entry.title == "Minister txt.exe visits"
    assert clean(entry.summary) and clean(entry.summary_text)
    assert entry.summary_text == "Talks went on"
    page = f'<html><head><meta property="og:title" content="Talks &#x202E;open{RLO}"></head>'
    assert parse_page_metadata(page.encode(), {}, "https://e.test/a")["title"] == "Talks open"
    direct = make_entry(
        guid=None, link="https://e.test/2", title="A\u200fB\u2069C", summary_html=None
    )
    assert direct is not None and direct.title == "ABC"


def test_editors_fields_and_drafts_carry_none(site, tmp_path: Path) -> None:  # noqa: F811
    db = open_db(site.store_path)
    item_id = db.execute(
        "SELECT id FROM items WHERE status = 'included' AND blurb IS NOT NULL ORDER BY id LIMIT 1"
    ).fetchone()[0]
    item = editorial.update_item(
        db,
        item_id,
        {
            "headline": f"Allies {RLO}gnirts agree",
            "key_phrase": "agree\u2067",
            "blurb": (
                f"Officials {RLO}met. See ![the chart](https://e.test/chart.png) and "
                "**bold![x](https://e.test/x)** here."
            ),
        },
        editor="alice",
    )
    assert clean(item["headline"]) and clean(item["key_phrase"]) and clean(item["blurb"])
    manual, _ = editorial.add_manual_item(
        db, url="https://e.test/m", title=f"T{RLO}itle", summary=f"S{RLO}um", editor="alice"
    )
    assert manual["title"] == "Title" and manual["summary_text"] == "Sum"
    # A row stored before the stripping existed: the renderer drops them too.
    other = db.execute(
        "SELECT id FROM items WHERE status = 'included' AND id != ? ORDER BY id LIMIT 1", [item_id]
    ).fetchone()[0]
    # (The paragraph's words are its issue entry's.)
    db["entries"].update(entry_of(db, [other])[other],
                         {"headline": f"Old {RLO}row", "blurb": f"Old{RLO} blurb."})
    db.close()

    result = draft_issue(site, day=SEED_DATE, out_dir=tmp_path / "out")
    texts = {kind: path.read_text(encoding="utf-8") for kind, path in result.paths.items()}
    for kind, text in texts.items():
        assert clean(text), kind
    md = texts["md"]
    assert "Allies gnirts agree" in md
    assert "Old row" in md and "Old blurb." in md
    assert "\\![the chart](https://e.test/chart.png)" in md
    assert "![the chart]" not in md.replace("\\![the chart]", "")
    assert "bold\\![x](https://e.test/x)" in md
    assert "<img" not in texts["html"].split("chart.png")[0][-200:]
    assert 'See !<a href="https://e.test/chart.png"' in texts["html"]
    assert "See !the chart (https://e.test/chart.png)" in texts["txt"]
