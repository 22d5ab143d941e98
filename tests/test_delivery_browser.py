"""The desk's delivery panel in a real browser (Debian's chromium): a publisher downloads the
PDF, sends a test to themselves, then sends the approved issue to every subscriber."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.store.db import open_db
from alliance_digest.store.users import add_user
from test_delivery import SEED_STEM, SUBSCRIBERS, approve, image_server, issue, smtp

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
__all__ = ["image_server", "issue", "smtp"]  # fixtures used by name below


def _desk_server() -> Any:
    # The desk's browser tests run it under uvicorn in a thread; share that rather than copy it.
    path = Path(__file__).with_name("test_editor_browser.py")
    spec = importlib.util.spec_from_file_location("_editor_browser_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DeskServer


def test_a_publisher_downloads_tests_and_sends_from_the_issue_page(issue, smtp):
    settings, issue_id = issue
    inbox, _ = smtp
    db = open_db(settings.store_path)
    add_user(db, "pat", "a-long-password", role="publisher")
    db.close()
    with _desk_server()(settings) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url + "/login")
        page.fill("input[name=username]", "pat")
        page.fill("input[name=password]", "a-long-password")
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        page.goto(server.url + "/issue")
        row = page.locator(f"#delivery tr[data-issue='{issue_id}']")
        assert "draft" in row.inner_text().lower() and "sendable once approved" in row.inner_text()
        with page.expect_download() as download:
            row.get_by_role("link", name="PDF").click()
        assert download.value.suggested_filename == f"{SEED_STEM}.pdf"
        # A test to oneself.
        row.locator("input[name=address]").fill("pat@example.org")
        row.get_by_role("button", name="Send test").click()
        page.wait_for_url("**/issue?tested=*")
        assert "A test of Vol 2.3 was sent" in page.locator("#delivery-message").inner_text()
        assert inbox.recipients() == ["pat@example.org"]
        # Approved: the send form appears; it needs the confirmation ticked.
        approve(settings, issue_id)
        page.goto(server.url + "/issue")
        row = page.locator(f"#delivery tr[data-issue='{issue_id}']")
        row.get_by_role("button", name="Send issue").click()
        assert page.url.endswith("/issue")  # the browser refused the unticked form
        row.locator("input[name=confirm]").check()
        row.get_by_role("button", name="Send issue").click()
        page.wait_for_url("**/issue?sent=*")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "desk-issue-sent.png"), full_page=True)
        assert "Vol 2.3: 5 sent, 0 failed" in page.locator("#delivery-message").inner_text()
        row = page.locator(f"#delivery tr[data-issue='{issue_id}']")
        assert "final" in row.inner_text().lower() and "5 sent" in row.inner_text()
        browser.close()
    assert sorted(inbox.recipients()) == sorted(["pat@example.org", *SUBSCRIBERS])
    assert dialogs == []
