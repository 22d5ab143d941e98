"""The editor desk in a real browser: Debian's chromium, headless, driven by Playwright.

The desk runs under uvicorn on 127.0.0.1 (random port) in a thread, over the same kind of
configured folder the HTTP tests use. Screenshots land in test-output/ for a human look.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alliance_digest.editor.app import create_app
from alliance_digest.pipeline import entries
from alliance_digest.settings import Settings
from alliance_digest.store import editorial
from alliance_digest.store.db import open_db
from alliance_digest.store.entries import entry_of, entry_row

CHROMIUM = Path("/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed "
                       "(apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")


def _http_tests() -> Any:
    # The HTTP tests build the configured folder; share it rather than copy it.
    path = Path(__file__).with_name("test_editor_http.py")
    spec = importlib.util.spec_from_file_location("_editor_http_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _http_tests()


class DeskServer:
    """uvicorn serving the desk on a socket bound here (so the port is known up front)."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> DeskServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the desk did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeskServer, Settings]]:
    settings = fixtures.build_desk(tmp_path_factory.mktemp("desk"), attempts=20)
    with DeskServer(settings) as server:
        yield server, settings


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, desk: tuple[DeskServer, Settings]) -> Iterator[Any]:
    """A logged-in page; fails the test if any dialog (alert) ever opens."""
    server, _ = desk
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.url + "/")
    assert "/login" in pg.url
    OUTPUT.mkdir(exist_ok=True)
    pg.screenshot(path=str(OUTPUT / "desk-login.png"))
    pg.fill("input[name=username]", "alice")
    pg.fill("input[name=password]", fixtures.PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(server.url + "/")
    yield pg
    context.close()
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert errors == [], f"JavaScript errors: {errors}"


def _status(settings: Settings, item_id: int) -> str:
    db = open_db(settings.store_path)
    try:
        return str(editorial.get_item(db, item_id)["status"])
    finally:
        db.close()


def _row_ids(pg: Any) -> list[int]:
    return [int(x) for x in pg.eval_on_selector_all("tr.row", "rs => rs.map(r => r.dataset.id)")]


def _wait_status(pg: Any, item_id: int, status: str) -> None:
    pg.wait_for_selector(f'tr.row[data-id="{item_id}"][data-status="{status}"]')


def test_keyboard_triage_and_hostile_title(page: Any, desk: tuple[DeskServer, Settings]) -> None:
    _, settings = desk
    pg = page
    # The hostile title is text on the page, never markup (and the page fixture checks that no
    # alert fired).
    expect = sync_api.expect
    expect(pg.get_by_text(fixtures.HOSTILE_TITLE, exact=True)).to_be_visible()
    assert pg.locator("script:not([src])").count() == 0

    ids = _row_ids(pg)
    assert len(ids) >= 8
    expect(pg.locator("tr.row.cur")).to_have_attribute("data-id", str(ids[0]))
    pg.keyboard.press("j")
    pg.keyboard.press("s")                       # shortlist row 2; the cursor moves on
    _wait_status(pg, ids[1], "shortlisted")
    expect(pg.locator("tr.row.cur")).to_have_attribute("data-id", str(ids[2]))
    pg.keyboard.press("k")
    pg.keyboard.press("k")
    pg.keyboard.press("i")                       # include row 1; the cursor moves to row 2
    _wait_status(pg, ids[0], "included")
    pg.keyboard.press("j")
    pg.keyboard.press("x")                       # exclude row 3
    _wait_status(pg, ids[2], "excluded")
    assert pg.locator(f'tr.row[data-id="{ids[2]}"] [data-status-label]').text_content() == \
        "excluded"

    # Several at once: space selects (x is exclude), shift+click extends; then one key.
    pg.keyboard.press("j")                       # row 5 (the cursor moved to 4 after x)
    pg.keyboard.press("Space")
    pg.locator(f'tr.row[data-id="{ids[6]}"] input.pick').click(modifiers=["Shift"])
    expect(pg.locator("#bulk-count")).to_have_text("3")
    pg.keyboard.press("i")
    for i in ids[4:7]:
        _wait_status(pg, i, "included")
    expect(pg.locator("#bulk")).to_be_hidden()
    assert [_status(settings, i) for i in ids[:7]] == [
        "included", "shortlisted", "excluded", "candidate", "included", "included", "included"]

    pg.keyboard.press("?")
    expect(pg.locator("#help")).to_be_visible()
    expect(pg.locator("#help")).to_contain_text("space")
    pg.keyboard.press("Escape")
    expect(pg.locator("#help")).to_be_hidden()

    pg.keyboard.press("/")
    assert pg.evaluate("document.activeElement.id") == "q"
    pg.keyboard.type("logistics")
    pg.keyboard.press("Enter")
    pg.wait_for_url(re.compile(r"q=logistics"))
    expect(pg.locator("tr.row").first).to_contain_text("logistics")
    pg.goto(pg.url.split("?")[0] + "?status=all")
    OUTPUT.mkdir(exist_ok=True)
    pg.screenshot(path=str(OUTPUT / "desk-queue.png"), full_page=False)


def test_edit_a_blurb_and_save(page: Any, desk: tuple[DeskServer, Settings]) -> None:
    server, settings = desk
    pg = page
    item = fixtures.item_id(settings, "1")
    pg.goto(f"{server.url}/items/{item}")
    pg.fill("input[name=headline]", "US and Japan hold 2+2 in Tokyo")
    pg.fill("input[name=key_phrase]", "2+2 talks")
    pg.fill("#blurb", "The **2+2 talks** [met](https://e.test/1) in Tokyo.")
    sync_api.expect(pg.locator("#blurb-preview strong")).to_have_text("2+2 talks")
    sync_api.expect(pg.locator("#blurb-preview a")).to_have_attribute("href", "https://e.test/1")
    pg.select_option("select[name=section]", "Defense & Security")
    pg.select_option("select[name=status]", "included")
    pg.check('input[name=links][value="https://kyodo.test/2plus2"]')
    OUTPUT.mkdir(exist_ok=True)
    pg.screenshot(path=str(OUTPUT / "desk-item.png"), full_page=True)
    pg.locator("#blurb").focus()
    pg.keyboard.press("Control+s")
    pg.wait_for_url(re.compile(r"saved=1"))
    sync_api.expect(pg.get_by_text("Saved.")).to_be_visible()
    db = open_db(settings.store_path)
    saved = editorial.get_item(db, item)
    db.close()
    assert saved["blurb"] == "The **2+2 talks** [met](https://e.test/1) in Tokyo."
    assert saved["section"] == "Defense & Security" and saved["status"] == "included"


def _preview_headlines(pg: Any) -> list[str]:
    frame = pg.frame_locator("#preview")
    return [t.strip() for t in frame.locator("ul").first.locator("li").all_inner_texts()]


def test_reorder_the_issue_by_keys_and_drag(page: Any,
                                            desk: tuple[DeskServer, Settings]) -> None:
    server, settings = desk
    db = open_db(settings.store_path)
    items = [fixtures.item_id(settings, g) for g in ("9", "10", "11")]
    editorial.update_items(db, items, {"status": "included", "section": "Diplomacy"},
                           editor="alice")
    # Each included item is an issue entry of its own; the issue page orders entries.
    held = entry_of(db, items)
    ids = [held[i] for i in items]
    for position, entry_id in enumerate(ids, start=1):
        entries.update(db, entry_id, {"position": position, "section": "Diplomacy"},
                       editor="alice")
    db.close()
    pg = page
    pg.goto(server.url + "/issue")
    diplomacy = pg.locator('ol.sec-items[data-section="Diplomacy"] li.issue-item')

    def order() -> list[int]:
        return [int(x) for x in pg.eval_on_selector_all(
            'ol.sec-items[data-section="Diplomacy"] li.issue-item',
            "ls => ls.map(l => l.dataset.id)")]

    assert order()[:3] == ids
    before = _preview_headlines(pg)
    # Keys: select the first Diplomacy item and move it down one place.
    diplomacy.first.click()
    pg.keyboard.press("]")
    sync_api.expect(pg.locator("#save-state")).to_have_text("order saved")
    assert order()[:3] == [ids[1], ids[0], ids[2]]
    db = open_db(settings.store_path)
    assert [entry_row(db, i)["position"] for i in ids] == [2, 1, 3]
    db.close()

    def preview_changed() -> bool:
        return _preview_headlines(pg) != before

    deadline = time.monotonic() + 10
    while not preview_changed() and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _preview_headlines(pg)
    assert after != before
    assert after.index("Routine item number 10 about alliance logistics") < \
        after.index("Routine item number 9 about alliance logistics")

    # alt+down moves it on; then drag the last one to the top.
    pg.keyboard.press("Alt+ArrowDown")
    sync_api.expect(pg.locator("#save-state")).to_have_text("order saved")
    assert order()[:3] == [ids[1], ids[2], ids[0]]
    pg.locator("#save-state").evaluate("e => e.textContent = ''")
    diplomacy.nth(2).drag_to(diplomacy.nth(0), target_position={"x": 40, "y": 3})
    sync_api.expect(pg.locator("#save-state")).to_have_text("order saved")
    assert order()[0] == ids[0]
    db = open_db(settings.store_path)
    assert entry_row(db, ids[0])["position"] == 1
    db.close()
    pg.wait_for_timeout(500)
    OUTPUT.mkdir(exist_ok=True)
    pg.screenshot(path=str(OUTPUT / "desk-issue.png"), full_page=False)


def test_sources_page(page: Any, desk: tuple[DeskServer, Settings]) -> None:
    server, _ = desk
    page.goto(server.url + "/sources")
    sync_api.expect(page.locator("table.sources")).to_contain_text("NHK World")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "desk-sources.png"), full_page=False)
