"""Review and safe editing in a real browser (Debian's chromium, Playwright).

An editor submits, a publisher is refused approval while a paragraph needs writing and then
approves; an editor's approve is a 403; the unsaved-changes guard fires (Esc, a link, closing
the tab); a reorder during a blurb edit saves both; a blurb survives a browser crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of
from alliance_digest.store.users import set_role

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect

from test_editor_browser import DeskServer  # noqa: E402  (after the skips)
from test_editor_http import PASSWORD, build_desk, item_id  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[DeskServer, Settings, dict[str, int]]]:
    """alice (editor) and bob (publisher); items 1 (written) and 4 (not) in the issue."""
    settings = build_desk(tmp_path)
    db = open_db(settings.store_path)
    set_role(db, "bob", "publisher")
    ids = {"written": item_id(settings, "1"), "unwritten": item_id(settings, "4"),
           "third": item_id(settings, "5")}
    editorial.update_items(db, list(ids.values()), {"status": "included",
                                                     "section": "Diplomacy"}, editor="alice")
    for rank, i in enumerate(ids.values(), start=1):
        editorial.update_item(db, i, {"rank": rank}, editor="alice")
    editorial.update_item(db, ids["written"], {"headline": "Allies talk",
                                               "blurb": "They **talk**."}, editor="alice")
    editorial.update_item(db, ids["third"], {"headline": "Third", "blurb": "Written."},
                          editor="alice")
    # A reason chip longer than any window is wide.
    db["items"].update(ids["written"], {"reasons": json.dumps(
        [{"rule": "phrase:" + "very-long-reason-" * 20, "match": "x", "weight": 2}])})
    db.close()
    with DeskServer(settings) as server:
        yield server, settings, ids


class Session:
    """One signed-in browser context; records dialogs, JS errors and 404s."""

    def __init__(self, browser: Any, server: DeskServer, user: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.missing: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", lambda r: self.missing.append(r.url)
                     if r.status == 404 else None)
        self.server = server
        self.page.goto(server.url + "/login")
        self.page.fill("input[name=username]", user)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(server.url + "/")

    def _dialog(self, d: Any) -> None:
        self.dialogs.append(d.type)
        d.accept()

    def go(self, path: str) -> Any:
        self.page.goto(self.server.url + path)
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors
        assert self.missing == [], f"404s: {self.missing}"


def _status(settings: Settings) -> str:
    db = open_db(settings.store_path)
    try:
        return str(db.execute("SELECT status FROM issues").fetchone()[0])
    finally:
        db.close()


def test_an_editor_submits_and_a_publisher_approves(browser: Any, desk: Any) -> None:
    server, settings, ids = desk
    alice = Session(browser, server, "alice")
    pg = alice.go("/issue")
    expect(pg.locator("#issue-state")).to_have_text("not drafted")
    pg.get_by_role("button", name="Record this draft for review").click()
    pg.locator("#submit-review").click()
    expect(pg.locator("#issue-state")).to_have_text("review")
    expect(pg.locator("#state-by")).to_contain_text("review by alice")
    assert pg.locator("#approve").count() == 0  # an editor sees no Approve …
    issue = int(re.search(r"/issues/(\d+)/", pg.content()).group(1))
    # … and the server refuses one forged by hand.
    status = pg.evaluate("""async (url) => {
        const body = new FormData();
        body.append("csrf_token", document.querySelector('meta[name="csrf-token"]').content);
        return (await fetch(url, {method: "POST", body})).status;
    }""", f"/issues/{issue}/approve")
    assert status == 403 and _status(settings) == "review"

    bob = Session(browser, server, "bob")
    pb = bob.go("/issue")
    pb.locator("#approve").click()
    db = open_db(settings.store_path)
    entry = entry_of(db, [ids["unwritten"]])[ids["unwritten"]]
    db.close()
    expect(pb.locator("#review-error")).to_contain_text(f"entry {entry} “Routine item number 4")
    assert _status(settings) == "review"
    # Bob writes it, moving on with "next" from the entry before it.
    pb.goto(f"{server.url}/items/{ids['written']}")
    pb.locator("#next-item").click()
    pb.wait_for_url(re.compile(rf"/items/{ids['unwritten']}$"))
    pb.fill("input[name=headline]", "Logistics talks")
    pb.fill("#blurb", "Logistics were **discussed**.")
    pb.get_by_role("button", name=re.compile("Save")).click()
    pb.wait_for_url(re.compile(r"saved=1"))
    expect(pb.locator("#next-item")).to_have_attribute("href", f"/items/{ids['third']}")
    pb = bob.go("/issue")
    pb.locator("#approve").click()
    expect(pb.locator("#issue-state")).to_have_text("approved")
    expect(pb.locator("#trail")).to_contain_text("review → approved")
    assert _status(settings) == "approved"
    OUTPUT.mkdir(exist_ok=True)
    pb.screenshot(path=str(OUTPUT / "desk-issue-approved.png"), full_page=True)
    assert alice.dialogs == [] and bob.dialogs == []
    alice.close()
    bob.close()


def test_the_unsaved_changes_guard(browser: Any, desk: Any) -> None:
    server, settings, ids = desk
    alice = Session(browser, server, "alice")
    pg = alice.go(f"/items/{ids['third']}")
    # Nothing typed: Esc leaves at once.
    pg.keyboard.press("Escape")
    pg.wait_for_url(server.url + "/")
    pg = alice.go(f"/items/{ids['third']}")
    pg.fill("#blurb", "Half a sentence")
    pg.locator("#blurb").focus()
    pg.keyboard.press("Escape")                  # leaves the field
    pg.keyboard.press("Escape")                  # would leave the page: asks
    expect(pg.locator("#leave-guard")).to_be_visible()
    assert pg.url.endswith(f"/items/{ids['third']}")
    pg.get_by_role("button", name="Stay").click()
    expect(pg.locator("#leave-guard")).to_be_hidden()
    pg.get_by_role("link", name="Back to the queue").click()
    expect(pg.locator("#leave-guard")).to_be_visible()
    assert pg.url.endswith(f"/items/{ids['third']}")
    # Closing the tab: the browser's own prompt.
    pg.close(run_before_unload=True)
    pg.wait_for_event("close")
    assert alice.dialogs == ["beforeunload"]
    # Leaving on purpose drops the kept blurb: it does not come back next time.
    pg = alice.context.new_page()
    pg.goto(f"{server.url}/items/{ids['third']}")
    expect(pg.locator("#restored")).to_be_visible()     # kept from the closed tab
    pg.get_by_role("link", name="Back to the queue").click()
    pg.get_by_role("button", name="Leave without saving").click()
    pg.wait_for_url(server.url + "/")
    pg.goto(f"{server.url}/items/{ids['third']}")
    expect(pg.locator("#blurb")).to_have_value("Written.")
    expect(pg.locator("#restored")).to_be_hidden()
    db = open_db(settings.store_path)
    assert editorial.get_item(db, ids["third"])["blurb"] == "Written."
    db.close()
    alice.close()


def test_a_reorder_during_a_blurb_edit_saves_both(browser: Any, desk: Any) -> None:
    server, settings, ids = desk
    db = open_db(settings.store_path)
    entry = entry_of(db, [ids["unwritten"]])[ids["unwritten"]]
    db.close()
    alice = Session(browser, server, "alice")
    writing = alice.go(f"/entries/{entry}")
    writing.fill("#e-blurb", "Written while the order changed.")
    ordering = alice.context.new_page()
    ordering.goto(server.url + "/issue")
    ordering.locator(f'li.issue-item[data-id="{entry}"]').click()
    ordering.keyboard.press("[")                 # up one place: position 2 → 1
    expect(ordering.locator("#save-state")).to_have_text("order saved")
    writing.bring_to_front()
    writing.locator("#save-entry").click()
    expect(writing.locator("#save-state")).to_contain_text("saved · version")
    db = open_db(settings.store_path)
    row = db["entries"].get(entry)
    db.close()
    assert row["blurb"] == "Written while the order changed." and row["position"] == 1
    ordering.close()
    assert alice.dialogs == []
    alice.close()


def test_a_real_conflict_shows_both_versions_and_keeps_the_typed_text(browser: Any,
                                                                      desk: Any) -> None:
    server, settings, ids = desk
    alice = Session(browser, server, "alice")
    pg = alice.go(f"/items/{ids['third']}")
    pg.fill("#blurb", "Alice's version.")
    db = open_db(settings.store_path)
    editorial.update_item(db, ids["third"], {"blurb": "Bob's version."}, editor="bob")
    db.close()
    pg.locator("#blurb").focus()
    pg.keyboard.press("Control+s")
    expect(pg.locator("#conflicts .theirs")).to_have_text("Bob's version.")
    expect(pg.locator("#conflicts .yours")).to_have_text("Alice's version.")
    expect(pg.locator("#blurb")).to_have_value("Alice's version.")
    pg.wait_for_load_state("load")               # desk.js listens for keys once loaded
    pg.keyboard.press("Control+s")               # seen both: saving again keeps hers
    pg.wait_for_url(re.compile(r"saved=1"))
    db = open_db(settings.store_path)
    assert editorial.get_item(db, ids["third"])["blurb"] == "Alice's version."
    db.close()
    alice.close()


def test_a_blurb_survives_a_browser_crash_and_the_page_fits(browser: Any, desk: Any) -> None:
    server, _, ids = desk
    alice = Session(browser, server, "alice")
    pg = alice.go(f"/items/{ids['written']}")
    # Chips wrap: the page is no wider than the window.
    assert pg.evaluate("document.documentElement.scrollWidth") <= 1280
    pg.fill("#blurb", "Typed, never saved.")
    state = alice.context.storage_state()        # what survives the crash: local storage
    alice.close()
    crashed = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=state)
    page = crashed.new_page()
    page.goto(f"{server.url}/items/{ids['written']}")
    expect(page.locator("#blurb")).to_have_value("Typed, never saved.")
    expect(page.locator("#restored")).to_be_visible()
    expect(page.locator("#blurb-preview")).to_contain_text("Typed, never saved.")
    page.get_by_role("button", name="Discard it").click()
    expect(page.locator("#blurb")).to_have_value("They **talk**.")
    crashed.close()
