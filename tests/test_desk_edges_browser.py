"""A bulk decision in the browser carries the versions its rows were shown at: a row another
editor changed meanwhile refuses the decision, and the desk says who (real Chromium)."""

from __future__ import annotations

from typing import Any

from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from test_editor_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    DeskServer,
    browser,
    desk,
    page,
    pytestmark,
    sync_api,
)


def test_a_keyboard_decision_on_a_row_changed_meanwhile_is_refused(
    page: Any,  # noqa: F811 - the fixture
    desk: tuple[DeskServer, Settings],  # noqa: F811 - the fixture
) -> None:
    _, settings = desk
    pg = page
    expect = sync_api.expect
    ids = [int(x) for x in pg.eval_on_selector_all("tr.row", "rs => rs.map(r => r.dataset.id)")]
    first, second = ids[0], ids[1]
    expect(pg.locator(f'tr.row[data-id="{first}"]')).to_have_attribute("data-version", "0")
    # bob shortlists the first row after alice's page was loaded.
    db = open_db(settings.store_path)
    editorial.update_items(db, [first], {"status": "shortlisted"}, editor="bob")
    db.close()
    pg.keyboard.press("x")  # alice excludes the row under the cursor
    expect(pg.locator("#toast")).to_contain_text("Not saved")
    expect(pg.locator("#toast")).to_contain_text("bob")
    db = open_db(settings.store_path)
    assert editorial.get_item(db, first)["status"] == "shortlisted"
    db.close()
    # A row nobody touched takes the decision, and its new version is kept for the next one.
    pg.locator(f'tr.row[data-id="{second}"] button[data-act="shortlisted"]').click()
    pg.wait_for_selector(f'tr.row[data-id="{second}"][data-status="shortlisted"]')
    expect(pg.locator(f'tr.row[data-id="{second}"]')).to_have_attribute("data-version", "1")
    pg.locator(f'tr.row[data-id="{second}"] button[data-act="included"]').click()
    pg.wait_for_selector(f'tr.row[data-id="{second}"][data-status="included"]')
