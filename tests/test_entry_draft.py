"""The draft per issue entry: one paragraph, links inline, the key phrase bolded where it stands."""

from __future__ import annotations

from alliance_digest.pipeline import entries
from alliance_digest.pipeline.draft import issue_paragraphs
from alliance_digest.templates.render import (
    DRAFT_MARKER,
    ItemView,
    SourceView,
    draft_headline,
    emphasise,
    md_inline,
    paragraph,
    parse_inline,
)
from test_entries import add_story, newsroom  # noqa: F401 - the fixture

LEAD = (
    "Secretary Blinken met Foreign Minister Hayashi in Tokyo on November 17. The two "
    "ministers reaffirmed the alliance. They discussed North Korea."
)
QUOTE = (
    'Hayashi said the talks were "productive" and that Japan would double defense '
    "spending to 2 percent of GDP by 2027."
)


def test_a_drafted_paragraph_links_each_source_inline_and_never_trails_links():
    view = ItemView(
        key_phrase="reaffirmed the alliance",
        sources=[
            SourceView(url="https://state.test/1", summary_text=LEAD, source="State"),
            SourceView(url="https://jt.test/2", summary_text=QUOTE, source="Japan Times"),
            SourceView(
                url="https://yna.test/3",
                summary_text="Blinken met Hayashi in Tokyo.",
                source="Yonhap",
            ),
        ],
    )
    md = md_inline(paragraph(view))
    assert md == (
        "Secretary Blinken [met](https://state.test/1) Foreign Minister Hayashi in Tokyo on "
        "November 17. The two ministers **reaffirmed the alliance**. They "
        "[discussed](https://yna.test/3) North Korea. Hayashi [said](https://jt.test/2) the "
        'talks were "productive" and that Japan would double defense spending to 2 percent '
        "of GDP by 2027."
    )
    assert "See also" not in md


def test_the_key_phrase_inside_a_link_label_is_bolded_there_and_never_prefixed():
    blurb = (
        "The U.S.-Japan Forum discussed [co-production of the SM-3 Block IIA "
        "interceptor](https://x.test/sm3) in Tokyo."
    )
    phrase = "co-production of the SM-3 Block IIA interceptor"
    md = md_inline(emphasise(parse_inline(blurb), phrase))
    assert md == (
        "The U.S.-Japan Forum discussed [**co-production of the SM-3 Block IIA "
        "interceptor**](https://x.test/sm3) in Tokyo."
    )
    assert md_inline(emphasise(parse_inline("No such words."), phrase)) == "No such words."


def test_drafted_headlines_drop_boilerplate_dates_and_outlets():
    outlets = ["The Japan Times", "Yonhap", "U.S. Department of State"]
    assert (
        draft_headline(
            "Readout of Secretary Blinken's Call with Japanese Foreign Minister "
            "Hayashi - United States Department of State",
            outlets,
        )
        == "Secretary Blinken's Call with Japanese Foreign Minister Hayashi"
    )
    assert (
        draft_headline(
            "Joint Statement of the 2026 U.S.-Japan Security Consultative Committee", outlets
        )
        == "U.S.-Japan Security Consultative Committee"
    )
    assert (
        draft_headline(
            "Japan, US agree to deepen defense ties on Nov. 17, 2026 | The Japan Times", outlets
        )
        == "Japan, US agree to deepen defense ties"
    )
    long = draft_headline(
        "DoD stands up joint force headquarters element in Japan, aims to "
        "enhance cooperation with allies and partners across the region"
    )
    assert long == "DoD stands up joint force headquarters element in Japan"
    assert len(draft_headline("word " * 40).split()) <= 12


def test_issue_paragraphs_gives_each_entry_as_the_draft_prints_it(newsroom):  # noqa: F811
    db = newsroom
    ids = add_story(
        db,
        1,
        {
            "State": "Readout of the Secretary's Meeting with Hayashi",
            "Japan Times": "Hayashi hails talks | The Japan Times",
            "Yonhap": "Blinken meets Hayashi",
        },
        summaries={"State": LEAD, "Japan Times": QUOTE, "Yonhap": "Blinken met Hayashi in Tokyo."},
    )
    entry = entries.include(db, ids[2], editor="ana")
    [drafted] = issue_paragraphs(db, None)
    assert drafted.entry_id == entry["id"] and drafted.unwritten
    assert drafted.headline == "Secretary's Meeting with Hayashi"
    for item_id in ids:
        assert f"(https://news.test/{10 + ids.index(item_id)})" in drafted.markdown
    assert DRAFT_MARKER not in drafted.markdown
    entries.update(
        db,
        entry["id"],
        {
            "blurb": "Blinken [met](https://news.test/10) Hayashi.",
            "headline": "Blinken meets Hayashi",
        },
        editor="ana",
    )
    [written] = issue_paragraphs(db, None)
    assert (written.markdown, written.unwritten, written.headline) == (
        "Blinken [met](https://news.test/10) Hayashi.",
        False,
        "Blinken meets Hayashi",
    )
