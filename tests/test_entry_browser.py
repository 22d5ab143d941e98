"""An issue entry in a real browser: include a three-outlet story from the queue, keep two
siblings, link their sources to words of the paragraph, and find the links inline in the
draft's Markdown, email HTML and text (Playwright driving /usr/bin/chromium)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import test_editor_browser as desk_tests
from alliance_digest.pipeline.draft import draft_issue
from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of, entry_row
from test_editor_browser import OUTPUT, DeskServer, fixtures, sync_api

# The desk browser tests' fixtures and marks (a real desk under uvicorn, real Chromium).
pytestmark = desk_tests.pytestmark
browser = desk_tests.browser
desk = desk_tests.desk
page = desk_tests.page

BLURB = (
    "Foreign and defense ministers met in Tokyo for the 2+2. The State Department said "
    "the allies would deepen cooperation, and Kyodo reported agreement on missiles."
)


def _select(pg: Any, words: str) -> None:
    """Select the first occurrence of `words` in the paragraph, as a mouse drag would."""
    pg.evaluate(
        """(words) => {
            const el = document.getElementById("e-blurb");
            const at = el.value.indexOf(words);
            el.focus();
            el.setSelectionRange(at, at + words.length);
            el.dispatchEvent(new Event("select"));
        }""",
        words,
    )


def test_include_a_story_keep_two_siblings_and_link_them_inline(
    page: Any, desk: tuple[DeskServer, Settings], tmp_path: Any
) -> None:
    server, settings = desk
    pg = page
    expect = sync_api.expect
    lead = fixtures.item_id(settings, "1")
    row = pg.locator(f'tr.row[data-story="{lead}"]')
    expect(row).to_have_count(1)
    expect(row.locator(".chip")).to_have_count(3)
    row.locator('button[data-act="included"]').click()
    label = row.locator("[data-entry-label]")
    expect(label).to_have_text(re.compile(r"in entry \d+"))
    entry_id = int(label.text_content().split()[-1])

    pg.goto(f"{server.url}/entries/{entry_id}")
    cards = pg.locator("article.card")
    expect(cards).to_have_count(3)  # the lead and two kept siblings, side by side
    expect(cards.first).to_contain_text("NHK World")
    for outlet in ("State Dept", "Kyodo"):
        expect(pg.locator("article.card", has_text=outlet)).to_have_count(1)

    # "Start from the draft": the drafted paragraph, its sources linked, to edit.
    pg.click("#start-draft")
    drafted = pg.input_value("#e-blurb")
    assert "](https://state.test/2plus2)" in drafted and "](https://kyodo.test/2plus2)" in drafted
    expect(pg.locator("#word-count")).to_contain_text("words")

    # The editor's own paragraph; links attached to selected words, one item at a time.
    pg.fill("#e-blurb", BLURB)
    pg.fill("#e-key", "2+2")
    for words, outlet in (("met", "NHK World"), ("said", "State Dept"), ("reported", "Kyodo")):
        _select(pg, words)
        pg.locator("article.card", has_text=outlet).locator("[data-link-item]").click()
    blurb = pg.input_value("#e-blurb")
    assert "[said](https://state.test/2plus2)" in blurb
    assert "[reported](https://kyodo.test/2plus2)" in blurb
    assert "[met](https://e.test/1)" in blurb
    preview = pg.locator("#entry-preview")
    expect(preview.locator('a[href="https://state.test/2plus2"]')).to_have_text("said")
    expect(preview.locator("strong")).to_have_text("2+2")
    expect(pg.locator("#word-count")).to_have_text("25 words")
    pg.keyboard.press("Control+s")
    expect(pg.locator("#save-state")).to_contain_text("saved")
    OUTPUT.mkdir(exist_ok=True)
    pg.screenshot(path=str(OUTPUT / "desk-entry.png"), full_page=True)

    drafted_issue = draft_issue(settings, day=date(2026, 1, 22), out_dir=tmp_path)
    md, html, text = (
        drafted_issue.rendered.markdown,
        drafted_issue.rendered.html,
        drafted_issue.rendered.text,
    )
    assert (
        "Foreign and defense ministers [met](https://e.test/1) in Tokyo for the **2+2**. "
        "The State Department [said](https://state.test/2plus2) the allies would deepen "
        "cooperation, and Kyodo [reported](https://kyodo.test/2plus2) agreement on "
        "missiles."
    ) in md
    assert "See also" not in md
    for url, words in (
        ("https://state.test/2plus2", "said"),
        ("https://kyodo.test/2plus2", "reported"),
    ):
        assert re.search(rf'<a href="{re.escape(url)}"[^>]*>{words}</a>', html)
        assert f"{words} ({url})" in text
    # The desk's preview showed exactly the paragraph the draft printed.
    shown = preview.inner_html()
    assert re.sub(r"<[^>]+>", "", shown) in re.sub(r"<[^>]+>", "", html)


def test_a_key_on_a_story_row_acts_on_every_item_of_the_story(
    page: Any, desk: tuple[DeskServer, Settings]
) -> None:
    server, settings = desk
    pg = page
    ids = [fixtures.item_id(settings, g) for g in ("1", "101", "201")]
    # Every date: the draft above recorded an issue, so the default window starts after it.
    pg.goto(server.url + "/?status=all&since=")
    row = pg.locator(f'tr.row[data-story="{ids[0]}"]')
    row.locator(".c-score").click()
    pg.keyboard.press("s")
    sync_api.expect(row).to_have_attribute("data-status", "shortlisted")
    db = open_db(settings.store_path)
    try:
        assert [editorial.get_item(db, i)["status"] for i in ids] == ["shortlisted"] * 3
        # Out of the issue: the entry the story made is gone with its items.
        assert entry_of(db, ids) == {}
    finally:
        db.close()


def test_two_decisions_on_one_story_and_an_unsaved_paragraph_survives_a_reload(
    page: Any, desk: tuple[DeskServer, Settings]
) -> None:
    server, settings = desk
    pg = page
    expect = sync_api.expect
    lead = fixtures.item_id(settings, "1")
    pg.goto(server.url + "/?status=all&since=")
    row = pg.locator(f'tr.row[data-story="{lead}"]')
    row.locator(".c-score").click()
    # Each decision carries the versions the row now shows: the second is not "stale".
    pg.keyboard.press("x")
    expect(row).to_have_attribute("data-status", "excluded")
    row.locator(".c-score").click()  # a decision moves the cursor on: back to the row
    pg.keyboard.press("u")
    expect(row).to_have_attribute("data-status", "candidate")
    row.locator(".c-score").click()
    pg.keyboard.press("i")
    label = row.locator("[data-entry-label]")
    expect(label).to_have_text(re.compile(r"in entry \d+"))
    entry_id = int(label.text_content().split()[-1])

    pg.goto(f"{server.url}/entries/{entry_id}")
    pg.fill("#e-blurb", "Half a paragraph the browser must not lose")
    # The tab crashed: a new one on the same entry finds the text the first was writing.
    other = pg.context.new_page()
    other.goto(f"{server.url}/entries/{entry_id}")
    expect(other.locator("#restored")).to_be_visible()
    assert other.input_value("#e-blurb") == "Half a paragraph the browser must not lose"
    other.click("#drop-restored")
    assert other.input_value("#e-blurb") == ""
    other.close()
    pg.fill("#e-blurb", "")  # back to what is saved: nothing left to guard


def test_m_merges_the_stories_of_the_selected_rows(
    page: Any, desk: tuple[DeskServer, Settings]
) -> None:
    server, settings = desk
    pg = page
    pg.goto(server.url + "/?status=all&since=")
    rows = pg.locator("tr.row")
    first, second = rows.nth(0), rows.nth(1)
    a, b = int(first.get_attribute("data-id")), int(second.get_attribute("data-id"))
    first.locator("input.pick").check()
    second.locator("input.pick").check()
    sync_api.expect(pg.locator("#bulk-count")).to_have_text("2")
    with pg.expect_navigation():
        pg.keyboard.press("m")
    db = open_db(settings.store_path)
    try:
        stories = {editorial.get_item(db, i)["cluster_id"] for i in (a, b)}
    finally:
        db.close()
    assert len(stories) == 1
    row = pg.locator(f'tr.row[data-story="{stories.pop()}"]')
    sync_api.expect(row).to_have_count(1)


def test_a_story_row_included_then_excluded_needs_no_reload(
    page: Any, desk: tuple[DeskServer, Settings]
) -> None:
    """Including bumps the items' versions; the row must carry them, or the next key on the
    same row is refused as stale (409) although nobody else touched the story."""
    server, settings = desk
    pg = page
    one = fixtures.item_id(settings, "6")
    pg.goto(server.url + "/?status=all&since=")
    row = pg.locator(f'tr.row[data-story="{one}"]')
    row.locator('button[data-act="included"]').click()
    sync_api.expect(row.locator("[data-entry-label]")).to_have_text(re.compile(r"in entry \d+"))
    row.locator('button[data-act="excluded"]').click()
    sync_api.expect(row).to_have_attribute("data-status", "excluded")
    sync_api.expect(pg.locator("#toast")).to_have_text("Story excluded")
    # Out of the issue: the row no longer says it is in an entry.
    sync_api.expect(row.locator("[data-entry-label]")).to_have_count(0)
    db = open_db(settings.store_path)
    try:
        assert editorial.get_item(db, one)["status"] == "excluded"
        assert entry_of(db, [one]) == {}
    finally:
        db.close()


def test_the_entry_page_breaks_no_content_security_rule(
    page: Any, desk: tuple[DeskServer, Settings]
) -> None:
    """The desk's CSP forbids inline script: an inline handler on the entry page was blocked
    on every load (a console error, and the handler never ran)."""
    server, settings = desk
    pg = page
    one = fixtures.item_id(settings, "7")
    data = pg.evaluate(
        """async (id) => {
            const token = document.querySelector('meta[name=csrf-token]').content;
            const r = await fetch('/api/entries/include', {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
              body: JSON.stringify({item_id: id})});
            return await r.json();
        }""",
        one,
    )
    console: list[str] = []
    pg.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    url = server.url + data["entry"]["url"]
    pg.goto(url)
    pg.fill("#e-headline", "Logistics talks")
    pg.press("#e-headline", "Enter")
    pg.click("#save-entry")
    sync_api.expect(pg.locator("#toast")).to_have_text("Entry saved")
    assert pg.url == url
    assert console == []
    db = open_db(settings.store_path)
    try:
        assert entry_row(db, data["entry"]["id"])["headline"] == "Logistics talks"
    finally:
        db.close()
